//! Production store: MongoDB through the official driver.
//!
//! Links live in `links` (`_id` = the link's UUID, unique index on `code`);
//! events wait in `outbox`, written in the same multi-document transaction as
//! the link. MongoDB must run as a replica set (a one-node set is enough) for
//! transactions. Transactions are retried on `TransientTransactionError`
//! (e.g. a write conflict between two requests claiming one code), and a
//! commit is retried on `UnknownTransactionCommitResult` as the driver spec
//! advises, but only a few times with backoff: a store that stays away is
//! reported as unavailable, never waited for without end.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::{self, doc, oid::ObjectId, spec::BinarySubtype, Binary};
use mongodb::error::{
    ErrorKind, WriteFailure, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT,
};
use mongodb::options::IndexOptions;
use mongodb::{Client, ClientSession, Collection, IndexModel};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    stored_digest, stored_redirect_type, stored_role, Link, LinkOrder, LinkQuery, LinkStore,
    OutboxEvent, SpoolState, SpooledClick, StoreError,
};
use crate::keys::{KeyDigest, KeyRecord};
use service_kit::Backoff;

/// Attempts of one transaction before giving up on transient errors.
const TRANSACTION_ATTEMPTS: usize = 20;
/// Attempts of a commit whose result is unknown before reporting the store
/// unavailable.
const COMMIT_ATTEMPTS: usize = 5;

/// The MongoDB adapter of [`LinkStore`].
#[derive(Debug, Clone)]
pub struct MongoStore {
    client: Client,
    database: mongodb::Database,
    links: Collection<LinkDocument>,
    outbox: Collection<OutboxDocument>,
    spool: Collection<SpoolDocument>,
    keys: Collection<KeyDocument>,
}

impl MongoStore {
    /// Connects and makes sure the indexes exist (idempotent).
    pub async fn connect(uri: &str, database: &str) -> anyhow::Result<Self> {
        let client = Client::with_uri_str(uri)
            .await
            .context("failed to parse the MongoDB connection string")?;
        let database = client.database(database);
        let links = database.collection::<LinkDocument>("links");
        let outbox = database.collection::<OutboxDocument>("outbox");
        let spool = database.collection::<SpoolDocument>("click_spool");
        let keys = database.collection::<KeyDocument>("api_keys");
        ensure_index(&keys, doc! { "name": 1 }, Some("name_unique")).await?;
        ensure_index(&keys, doc! { "digest": 1 }, Some("digest_unique")).await?;
        ensure_index(&links, doc! { "owner": 1, "_id": -1 }, None).await?;
        ensure_index(
            &links,
            doc! { "owner": 1, "click_count": -1, "_id": -1 },
            None,
        )
        .await?;
        ensure_index(&links, doc! { "tags": 1, "_id": -1 }, None).await?;
        ensure_index(&links, doc! { "code": 1 }, Some("code_unique")).await?;
        ensure_index(&outbox, doc! { "event_id": 1 }, Some("event_id_unique")).await?;
        ensure_index(&outbox, doc! { "sent_at": 1, "_id": 1 }, None).await?;
        // Collections must exist before a transaction writes to them on MongoDB < 4.4.
        let existing = database
            .list_collection_names()
            .await
            .context("failed to list the MongoDB collections")?;
        for name in ["links", "outbox", "click_spool", "api_keys"] {
            if !existing.iter().any(|n| n == name) {
                let _ = database.create_collection(name).await;
            }
        }
        Ok(Self {
            client,
            database,
            links,
            outbox,
            spool,
            keys,
        })
    }

    /// Runs `body` in a transaction, retrying it whole on transient errors.
    async fn transaction<T, F>(&self, mut body: F) -> Result<T, StoreError>
    where
        F: FnMut(
            &mut ClientSession,
        ) -> Pin<Box<dyn Future<Output = Result<T, TxnError>> + Send + '_>>,
    {
        let mut session = self.client.start_session().await.map_err(unavailable)?;
        let mut last = None;
        for attempt in 0..TRANSACTION_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(2 * attempt as u64)).await;
            }
            session.start_transaction().await.map_err(unavailable)?;
            let mut value = match body(&mut session).await {
                Ok(value) => Some(value),
                Err(error) => {
                    let _ = session.abort_transaction().await;
                    match error {
                        TxnError::Mongo(e) if e.contains_label(TRANSIENT_TRANSACTION_ERROR) => {
                            last = Some(e);
                            continue;
                        }
                        TxnError::Mongo(e) => return Err(unavailable(e)),
                        TxnError::Store(e) => return Err(e),
                    }
                }
            };
            let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(500));
            for commit in 1..=COMMIT_ATTEMPTS {
                match session.commit_transaction().await {
                    Ok(()) => return Ok(value.take().expect("committed once")),
                    Err(e)
                        if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
                            && commit < COMMIT_ATTEMPTS =>
                    {
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                    Err(e) if e.contains_label(TRANSIENT_TRANSACTION_ERROR) => {
                        last = Some(e);
                        break;
                    }
                    Err(e) => return Err(unavailable(e)),
                }
            }
        }
        Err(unavailable(last.expect("a transient error made us retry")))
    }
}

/// Creates an index if it is missing (idempotent); a `unique_name` makes it
/// unique under that name.
async fn ensure_index<T: Send + Sync>(
    collection: &Collection<T>,
    keys: bson::Document,
    unique_name: Option<&str>,
) -> anyhow::Result<()> {
    let described = format!("{}.{keys}", collection.name());
    let mut model = IndexModel::builder().keys(keys).build();
    if let Some(name) = unique_name {
        model.options = Some(
            IndexOptions::builder()
                .unique(true)
                .name(name.to_owned())
                .build(),
        );
    }
    collection
        .create_index(model)
        .await
        .with_context(|| format!("failed to create the index on {described}"))?;
    Ok(())
}

/// What a transaction body can fail with: a driver error (maybe transient)
/// or a verdict about the data (never retried).
enum TxnError {
    Mongo(mongodb::error::Error),
    Store(StoreError),
}

impl From<mongodb::error::Error> for TxnError {
    fn from(error: mongodb::error::Error) -> Self {
        TxnError::Mongo(error)
    }
}

fn unavailable(error: mongodb::error::Error) -> StoreError {
    StoreError::Unavailable(error.into())
}

fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    match &*error.kind {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == 11000,
        ErrorKind::Command(e) => e.code == 11000,
        ErrorKind::InsertMany(e) => e.write_errors.iter().flatten().any(|e| e.code == 11000),
        _ => false,
    }
}

fn uuid_to_bson(id: Uuid) -> bson::Uuid {
    bson::Uuid::from_bytes(id.into_bytes())
}

fn time_to_bson(at: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(at.timestamp_millis())
}

fn time_from_bson(at: bson::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or_default()
}

/// A link as stored. Times have millisecond precision (BSON dates).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LinkDocument {
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
            code: link.code.clone(),
            url: link.url.clone(),
            target_host: link.target_host.clone(),
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
            code: self.code,
            url: self.url,
            target_host: self.target_host,
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

/// An outbox entry. `_id` is an ObjectId made by this process at write time:
/// increasing within a process, so sorting by it is write order.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OutboxDocument {
    #[serde(rename = "_id")]
    id: ObjectId,
    event_id: bson::Uuid,
    subject: String,
    event_version: i32,
    payload: Binary,
    created_at: bson::DateTime,
    sent_at: Option<bson::DateTime>,
    /// The W3C `traceparent` of the request that wrote the event; absent on
    /// untraced writes and on entries older than tracing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
}

impl OutboxDocument {
    fn from_event(event: &OutboxEvent) -> Self {
        Self {
            id: ObjectId::new(),
            event_id: uuid_to_bson(event.event_id),
            subject: event.subject.clone(),
            event_version: i32::try_from(event.event_version).unwrap_or(i32::MAX),
            payload: Binary {
                subtype: BinarySubtype::Generic,
                bytes: event.payload.clone(),
            },
            created_at: time_to_bson(event.created_at),
            sent_at: None,
            traceparent: event.traceparent.clone(),
        }
    }
}

/// An API key's record: its digest, never the key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyDocument {
    #[serde(rename = "_id")]
    id: bson::Uuid,
    name: String,
    role: String,
    /// SHA-256 of the key, hex.
    digest: String,
    created_at: bson::DateTime,
    last_used_at: Option<bson::DateTime>,
    revoked_at: Option<bson::DateTime>,
}

impl KeyDocument {
    fn from_record(key: &KeyRecord) -> Self {
        Self {
            id: uuid_to_bson(key.id),
            name: key.name.clone(),
            role: key.role.as_str().to_owned(),
            digest: key.digest.to_hex(),
            created_at: time_to_bson(key.created_at),
            last_used_at: key.last_used_at.map(time_to_bson),
            revoked_at: key.revoked_at.map(time_to_bson),
        }
    }

    fn into_record(self) -> Result<KeyRecord, StoreError> {
        Ok(KeyRecord {
            role: stored_role(&self.name, &self.role)?,
            digest: stored_digest(&self.name, &self.digest)?,
            id: Uuid::from_bytes(self.id.bytes()),
            name: self.name,
            created_at: time_from_bson(self.created_at),
            last_used_at: self.last_used_at.map(time_from_bson),
            revoked_at: self.revoked_at.map(time_from_bson),
        })
    }
}

/// A spooled click. `_id` is the event id: a UUID v7, so sorting by it is
/// click order, and spooling the same click twice keeps one document.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SpoolDocument {
    #[serde(rename = "_id")]
    id: bson::Uuid,
    url_id: bson::Uuid,
    clicked_at: bson::DateTime,
    payload: Binary,
}

impl SpoolDocument {
    fn from_click(click: &SpooledClick) -> Self {
        Self {
            id: uuid_to_bson(click.event_id),
            url_id: uuid_to_bson(click.url_id),
            clicked_at: time_to_bson(click.clicked_at),
            payload: Binary {
                subtype: BinarySubtype::Generic,
                bytes: click.payload.to_vec(),
            },
        }
    }

    fn into_click(self) -> SpooledClick {
        SpooledClick {
            event_id: Uuid::from_bytes(self.id.bytes()),
            url_id: Uuid::from_bytes(self.url_id.bytes()),
            clicked_at: time_from_bson(self.clicked_at),
            payload: self.payload.bytes.into(),
        }
    }
}

/// `$inc` of each link's counter inside a transaction.
async fn add_counts(
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

fn bson_counts(counts: &[(Uuid, u64)]) -> Vec<(bson::Uuid, i64)> {
    counts
        .iter()
        .map(|&(id, n)| (uuid_to_bson(id), i64::try_from(n).unwrap_or(i64::MAX)))
        .collect()
}

#[async_trait]
impl LinkStore for MongoStore {
    async fn insert(&self, link: &Link, event: &OutboxEvent) -> Result<(), StoreError> {
        let document = LinkDocument::from_link(link);
        let entry = OutboxDocument::from_event(event);
        let code = link.code.clone();
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
        let codes: Vec<String> = links.iter().map(|(l, _)| l.code.clone()).collect();
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
        let code = link.code.clone();
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

    async fn spool_clicks(&self, clicks: &[SpooledClick]) -> Result<(), StoreError> {
        if clicks.is_empty() {
            return Ok(());
        }
        let documents: Vec<SpoolDocument> = clicks.iter().map(SpoolDocument::from_click).collect();
        let inserted = self
            .transaction(|session| {
                let (spool, documents) = (self.spool.clone(), documents.clone());
                Box::pin(async move {
                    match spool.insert_many(&documents).session(&mut *session).await {
                        Ok(_) => Ok(()),
                        Err(e) if is_duplicate_key(&e) => {
                            Err(TxnError::Store(StoreError::CodeTaken(String::new())))
                        }
                        Err(e) => Err(e.into()),
                    }
                })
            })
            .await;
        match inserted {
            // Some were spooled before (a commit whose result was unknown):
            // the slow path, one upsert each, keeps every click once.
            Err(StoreError::CodeTaken(_)) => {
                self.transaction(|session| {
                    let (spool, documents) = (self.spool.clone(), documents.clone());
                    Box::pin(async move {
                        for document in &documents {
                            spool
                                .replace_one(doc! { "_id": document.id }, document)
                                .upsert(true)
                                .session(&mut *session)
                                .await?;
                        }
                        Ok(())
                    })
                })
                .await
            }
            other => other,
        }
    }

    async fn spooled_clicks(&self, limit: u32) -> Result<Vec<SpooledClick>, StoreError> {
        let mut cursor = self
            .spool
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .limit(i64::from(limit))
            .await
            .map_err(unavailable)?;
        let mut clicks = Vec::new();
        while cursor.advance().await.map_err(unavailable)? {
            let document = cursor
                .deserialize_current()
                .map_err(|e| StoreError::Unavailable(e.into()))?;
            clicks.push(document.into_click());
        }
        Ok(clicks)
    }

    async fn unspool_clicks(
        &self,
        event_ids: &[Uuid],
        counts: &[(Uuid, u64)],
    ) -> Result<(), StoreError> {
        let ids: Vec<bson::Uuid> = event_ids.iter().copied().map(uuid_to_bson).collect();
        let counts = bson_counts(counts);
        self.transaction(|session| {
            let (spool, links) = (self.spool.clone(), self.links.clone());
            let (ids, counts) = (ids.clone(), counts.clone());
            Box::pin(async move {
                spool
                    .delete_many(doc! { "_id": { "$in": ids } })
                    .session(&mut *session)
                    .await?;
                add_counts(&links, session, &counts).await
            })
        })
        .await
    }

    async fn spool_state(&self) -> Result<SpoolState, StoreError> {
        let depth = self
            .spool
            .count_documents(doc! {})
            .await
            .map_err(unavailable)?;
        let oldest = self
            .spool
            .find_one(doc! {})
            .sort(doc! { "_id": 1 })
            .await
            .map_err(unavailable)?
            .map(|d| time_from_bson(d.clicked_at));
        Ok(SpoolState { depth, oldest })
    }

    async fn outbox_pending(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
        let mut cursor = self
            .outbox
            .find(doc! { "sent_at": null })
            .sort(doc! { "_id": 1 })
            .limit(i64::from(limit))
            .await
            .map_err(unavailable)?;
        let mut events = Vec::new();
        while cursor.advance().await.map_err(unavailable)? {
            let row = cursor
                .deserialize_current()
                .map_err(|e| StoreError::Unavailable(e.into()))?;
            events.push(OutboxEvent {
                event_id: Uuid::from_bytes(row.event_id.bytes()),
                subject: row.subject,
                event_version: u32::try_from(row.event_version).unwrap_or_default(),
                payload: row.payload.bytes,
                created_at: time_from_bson(row.created_at),
                traceparent: row.traceparent,
            });
        }
        Ok(events)
    }

    async fn outbox_mark_sent(
        &self,
        event_ids: &[Uuid],
        sent_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if event_ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<bson::Uuid> = event_ids.iter().copied().map(uuid_to_bson).collect();
        self.outbox
            .update_many(
                doc! { "event_id": { "$in": ids } },
                doc! { "$set": { "sent_at": time_to_bson(sent_at) } },
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn outbox_depth(&self) -> Result<u64, StoreError> {
        self.outbox
            .count_documents(doc! { "sent_at": null })
            .await
            .map_err(unavailable)
    }

    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        match self.keys.insert_one(KeyDocument::from_record(key)).await {
            Ok(_) => Ok(()),
            Err(error) if is_duplicate_key(&error) => {
                Err(StoreError::KeyNameTaken(key.name.clone()))
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn find_key(&self, digest: &KeyDigest) -> Result<Option<KeyRecord>, StoreError> {
        self.keys
            .find_one(doc! { "digest": digest.to_hex() })
            .await
            .map_err(unavailable)?
            .map(KeyDocument::into_record)
            .transpose()
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let mut cursor = self
            .keys
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .await
            .map_err(unavailable)?;
        let mut keys = Vec::new();
        while cursor.advance().await.map_err(unavailable)? {
            let document = cursor
                .deserialize_current()
                .map_err(|e| StoreError::Unavailable(e.into()))?;
            keys.push(document.into_record()?);
        }
        Ok(keys)
    }

    async fn revoke_key(&self, name: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let result = self
            .keys
            .update_one(
                doc! { "name": name, "revoked_at": null },
                doc! { "$set": { "revoked_at": time_to_bson(at) } },
            )
            .await
            .map_err(unavailable)?;
        Ok(result.modified_count > 0)
    }

    async fn touch_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.keys
            .update_one(
                doc! { "_id": uuid_to_bson(id) },
                doc! { "$set": { "last_used_at": time_to_bson(at) } },
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.database
            .run_command(doc! { "ping": 1 })
            .await
            .map(drop)
            .map_err(unavailable)
    }
}
