//! Links in MongoDB: documents of `links` (`_id` the link's UUID, unique
//! index on `code`), written with their outbox event in one transaction.

use async_trait::async_trait;
use mongodb::bson::{self, doc};
use mongodb::{ClientSession, Collection};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::outbox::OutboxDocument;
use super::{
    MongoStore, TxnError, is_duplicate_key, time_from_bson, time_to_bson, unavailable, uuid_to_bson,
};
use crate::domain::{ShortCode, TargetUrl};
use crate::store::{
    Link, LinkOrder, LinkQuery, Links, OutboxEvent, StoreError, stored_redirect_type,
};

/// A link as stored. Times have millisecond precision (BSON dates).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct LinkDocument {
    #[serde(rename = "_id")]
    id: bson::Uuid,
    code: String,
    url: String,
    target_host: String,
    redirect_type: i32,
    created_at: bson::DateTime,
    updated_at: bson::DateTime,
    expires_at: Option<bson::DateTime>,
    deleted_at: Option<bson::DateTime>,
    click_count: i64,
    version: i64,
    /// Absent on links made before keys existed.
    #[serde(default)]
    owner: Option<bson::Uuid>,
    #[serde(default = "forward_query_default")]
    forward_query: bool,
    /// Absent on links made before titles and tags existed.
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    password_hash: Option<String>,
}

fn forward_query_default() -> bool {
    true
}

impl LinkDocument {
    fn from_link(link: &Link) -> Self {
        Self {
            id: uuid_to_bson(link.id),
            code: link.code.to_string(),
            url: link.url.to_string(),
            target_host: link.url.host().to_owned(),
            redirect_type: i32::from(link.redirect_type.status()),
            created_at: time_to_bson(link.created_at),
            updated_at: time_to_bson(link.updated_at),
            expires_at: link.expires_at.map(time_to_bson),
            deleted_at: link.deleted_at.map(time_to_bson),
            click_count: i64::try_from(link.click_count).unwrap_or(i64::MAX),
            version: i64::try_from(link.version).unwrap_or(i64::MAX),
            owner: link.owner.map(uuid_to_bson),
            forward_query: link.forward_query,
            title: link.title.clone(),
            tags: link.tags.clone(),
            password_hash: link.password_hash.clone(),
        }
    }

    fn into_link(self) -> Result<Link, StoreError> {
        let redirect_type = stored_redirect_type(&self.code, self.redirect_type)?;
        Ok(Link {
            id: Uuid::from_bytes(self.id.bytes()),
            code: ShortCode::from_store(self.code),
            url: TargetUrl::from_store(self.url, self.target_host),
            redirect_type,
            created_at: time_from_bson(self.created_at),
            updated_at: time_from_bson(self.updated_at),
            expires_at: self.expires_at.map(time_from_bson),
            deleted_at: self.deleted_at.map(time_from_bson),
            click_count: u64::try_from(self.click_count).unwrap_or_default(),
            version: u64::try_from(self.version).unwrap_or_default(),
            owner: self.owner.map(|id| Uuid::from_bytes(id.bytes())),
            forward_query: self.forward_query,
            title: self.title,
            tags: self.tags,
            password_hash: self.password_hash,
        })
    }
}

/// `$inc` of each link's counter inside a transaction.
pub(super) async fn add_counts(
    links: &Collection<LinkDocument>,
    session: &mut ClientSession,
    counts: &[(bson::Uuid, i64)],
) -> Result<(), TxnError> {
    for &(id, clicks) in counts {
        links
            .update_one(
                doc! { "_id": id },
                doc! { "$inc": { "click_count": clicks } },
            )
            .session(&mut *session)
            .await?;
    }
    Ok(())
}

pub(super) fn bson_counts(counts: &[(Uuid, u64)]) -> Vec<(bson::Uuid, i64)> {
    counts
        .iter()
        .map(|&(id, n)| (uuid_to_bson(id), i64::try_from(n).unwrap_or(i64::MAX)))
        .collect()
}

#[async_trait]
impl Links for MongoStore {
    async fn insert(&self, link: &Link, event: &OutboxEvent) -> Result<(), StoreError> {
        let document = LinkDocument::from_link(link);
        let entry = OutboxDocument::from_event(event);
        let code = link.code.to_string();
        self.transaction(|session| {
            let (links, outbox) = (self.links.clone(), self.outbox.clone());
            let (document, entry, code) = (document.clone(), entry.clone(), code.clone());
            Box::pin(async move {
                if let Err(error) = links.insert_one(&document).session(&mut *session).await {
                    return Err(if is_duplicate_key(&error) {
                        TxnError::Store(StoreError::CodeTaken(code))
                    } else {
                        TxnError::Mongo(error)
                    });
                }
                outbox.insert_one(&entry).session(&mut *session).await?;
                Ok(())
            })
        })
        .await
    }

    async fn insert_many(&self, links: &[(Link, OutboxEvent)]) -> Result<Vec<bool>, StoreError> {
        if links.is_empty() {
            return Ok(Vec::new());
        }
        let codes: Vec<String> = links.iter().map(|(l, _)| l.code.to_string()).collect();
        let documents: Vec<LinkDocument> = links
            .iter()
            .map(|(l, _)| LinkDocument::from_link(l))
            .collect();
        let entries: Vec<OutboxDocument> = links
            .iter()
            .map(|(_, e)| OutboxDocument::from_event(e))
            .collect();
        self.transaction(|session| {
            let (links, outbox) = (self.links.clone(), self.outbox.clone());
            let (codes, documents, entries) = (codes.clone(), documents.clone(), entries.clone());
            Box::pin(async move {
                // The codes already used, read in the transaction; a code
                // taken after this read fails the insert as a duplicate,
                // and the caller tries again.
                let mut taken = std::collections::HashSet::new();
                let mut cursor = links
                    .clone_with_type::<bson::Document>()
                    .find(doc! { "code": { "$in": &codes } })
                    .projection(doc! { "code": 1 })
                    .session(&mut *session)
                    .await?;
                while let Some(found) = cursor.next(&mut *session).await {
                    if let Ok(code) = found?.get_str("code") {
                        taken.insert(code.to_owned());
                    }
                }
                let fresh: Vec<bool> = codes.iter().map(|c| !taken.contains(c)).collect();
                let new_links: Vec<&LinkDocument> = documents
                    .iter()
                    .zip(&fresh)
                    .filter_map(|(d, f)| f.then_some(d))
                    .collect();
                let new_entries: Vec<&OutboxDocument> = entries
                    .iter()
                    .zip(&fresh)
                    .filter_map(|(e, f)| f.then_some(e))
                    .collect();
                if !new_links.is_empty() {
                    if let Err(error) = links.insert_many(new_links).session(&mut *session).await {
                        return Err(if is_duplicate_key(&error) {
                            TxnError::Store(StoreError::Conflict("a code of the batch".into()))
                        } else {
                            TxnError::Mongo(error)
                        });
                    }
                    outbox
                        .insert_many(new_entries)
                        .session(&mut *session)
                        .await?;
                }
                Ok(fresh)
            })
        })
        .await
    }

    async fn find(&self, code: &str) -> Result<Option<Link>, StoreError> {
        self.links
            .find_one(doc! { "code": code })
            .await
            .map_err(unavailable)?
            .map(LinkDocument::into_link)
            .transpose()
    }

    async fn list(&self, query: &LinkQuery) -> Result<Vec<Link>, StoreError> {
        let mut filter = doc! { "deleted_at": null };
        if let Some(owner) = query.owner {
            filter.insert("owner", uuid_to_bson(owner));
        }
        if let Some(text) = &query.text {
            // The text as it is, case-insensitive: escaped, so a user's
            // `.*` is two characters, not a pattern.
            let contains = || bson::Regex {
                pattern: regex::escape(text),
                options: "i".into(),
            };
            filter.insert(
                "$or",
                vec![
                    doc! { "code": contains() },
                    doc! { "url": contains() },
                    doc! { "title": contains() },
                ],
            );
        }
        if let Some(ids) = &query.ids {
            let ids: Vec<bson::Uuid> = ids.iter().copied().map(uuid_to_bson).collect();
            filter.insert("_id", doc! { "$in": ids });
        }
        if let Some(tag) = &query.tag {
            // Matches an element of the array.
            filter.insert("tags", tag.as_str());
        }
        let sort = match query.order {
            LinkOrder::Newest => {
                if let Some(after) = query.after {
                    filter.insert("_id", doc! { "$lt": uuid_to_bson(after.id) });
                }
                doc! { "_id": -1 }
            }
            LinkOrder::MostClicked => {
                if let Some(after) = query.after {
                    let clicks = i64::try_from(after.clicks).unwrap_or(i64::MAX);
                    let after_id = uuid_to_bson(after.id);
                    filter.insert(
                        "$and",
                        vec![doc! { "$or": [
                            { "click_count": { "$lt": clicks } },
                            { "click_count": clicks, "_id": { "$lt": after_id } },
                        ] }],
                    );
                }
                doc! { "click_count": -1, "_id": -1 }
            }
        };
        let mut cursor = self
            .links
            .find(filter)
            .sort(sort)
            .limit(i64::from(query.limit))
            .await
            .map_err(unavailable)?;
        let mut links = Vec::new();
        while cursor.advance().await.map_err(unavailable)? {
            let document = cursor
                .deserialize_current()
                .map_err(|e| StoreError::Unavailable(e.into()))?;
            links.push(document.into_link()?);
        }
        Ok(links)
    }

    async fn update(&self, link: &Link, event: Option<&OutboxEvent>) -> Result<(), StoreError> {
        let document = LinkDocument::from_link(link);
        let entry = event.map(OutboxDocument::from_event);
        let expected_version = document.version - 1;
        let code = link.code.to_string();
        self.transaction(|session| {
            let (links, outbox) = (self.links.clone(), self.outbox.clone());
            let (document, entry, code) = (document.clone(), entry.clone(), code.clone());
            Box::pin(async move {
                // Identity, creation time and the click counter are never
                // rewritten by an update.
                let set = doc! {
                    "url": &document.url,
                    "target_host": &document.target_host,
                    "redirect_type": document.redirect_type,
                    "forward_query": document.forward_query,
                    "title": &document.title,
                    "tags": &document.tags,
                    "password_hash": &document.password_hash,
                    "updated_at": document.updated_at,
                    "expires_at": document.expires_at,
                    "deleted_at": document.deleted_at,
                    "version": document.version,
                };
                let result = links
                    .update_one(
                        doc! { "_id": document.id, "version": expected_version },
                        doc! { "$set": set },
                    )
                    .session(&mut *session)
                    .await?;
                if result.matched_count != 1 {
                    return Err(TxnError::Store(StoreError::Conflict(code)));
                }
                if let Some(entry) = &entry {
                    outbox.insert_one(entry).session(&mut *session).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn add_clicks(&self, counts: &[(Uuid, u64)]) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        // All or nothing: a retried flush after a partial one would count twice.
        let counts = bson_counts(counts);
        self.transaction(|session| {
            let (links, counts) = (self.links.clone(), counts.clone());
            Box::pin(async move { add_counts(&links, session, &counts).await })
        })
        .await
    }
}
