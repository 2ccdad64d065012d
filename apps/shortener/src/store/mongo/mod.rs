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

mod keys;
mod links;
mod outbox;
mod spool;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::{self, doc};
use mongodb::error::{
    ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT, WriteFailure,
};
use mongodb::options::IndexOptions;
use mongodb::{Client, ClientSession, Collection, IndexModel};
use uuid::Uuid;

use self::keys::KeyDocument;
use self::links::LinkDocument;
use self::outbox::OutboxDocument;
use self::spool::SpoolDocument;
use super::{Store, StoreError};
use service_kit::Backoff;

/// Attempts of one transaction before giving up on transient errors.
const TRANSACTION_ATTEMPTS: usize = 20;
/// Attempts of a commit whose result is unknown before reporting the store
/// unavailable.
const COMMIT_ATTEMPTS: usize = 5;

/// The MongoDB adapter of every store port ([`Store`]).
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

#[async_trait]
impl Store for MongoStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.database
            .run_command(doc! { "ping": 1 })
            .await
            .map(drop)
            .map_err(unavailable)
    }
}
