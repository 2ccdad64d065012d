//! The MongoDB-wire test server through the official `mongodb` driver: a
//! unique index, duplicate-key errors, and a multi-document transaction (what
//! the shortener's outbox relies on).

use mongodb::bson::{Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::IndexOptions;
use mongodb::{Client, IndexModel};
use system_tests::{MongoServer, require};

fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    matches!(&*error.kind, ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == 11000)
}

#[tokio::test]
async fn mongo_enforces_a_unique_index_and_finds_documents() {
    let mongo = require!(MongoServer::start());
    let client = Client::with_uri_str(mongo.uri()).await.unwrap();
    let links = client.database("smoke").collection::<Document>("links");
    links
        .create_index(
            IndexModel::builder()
                .keys(doc! { "code": 1 })
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await
        .unwrap();

    links
        .insert_one(doc! { "code": "abc1234", "url": "https://example.com/" })
        .await
        .unwrap();
    let duplicate = links
        .insert_one(doc! { "code": "abc1234", "url": "https://example.org/" })
        .await
        .unwrap_err();
    assert!(is_duplicate_key(&duplicate), "{duplicate}");

    let found = links
        .find_one(doc! { "code": "abc1234" })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.get_str("url").unwrap(), "https://example.com/");
    assert_eq!(links.count_documents(doc! {}).await.unwrap(), 1);
}

#[tokio::test]
async fn mongo_commits_and_aborts_multi_document_transactions() {
    let mongo = require!(MongoServer::start());
    let client = Client::with_uri_str(mongo.uri()).await.unwrap();
    let db = client.database("smoke");
    let links = db.collection::<Document>("links");
    let outbox = db.collection::<Document>("outbox");
    // Collections must exist before a transaction writes to them on MongoDB < 4.4.
    db.create_collection("links").await.unwrap();
    db.create_collection("outbox").await.unwrap();

    let mut session = client.start_session().await.unwrap();
    session.start_transaction().await.unwrap();
    links
        .insert_one(doc! { "code": "committed" })
        .session(&mut session)
        .await
        .unwrap();
    outbox
        .insert_one(doc! { "event": "created", "code": "committed" })
        .session(&mut session)
        .await
        .unwrap();
    session.commit_transaction().await.unwrap();

    session.start_transaction().await.unwrap();
    links
        .insert_one(doc! { "code": "aborted" })
        .session(&mut session)
        .await
        .unwrap();
    outbox
        .insert_one(doc! { "event": "created", "code": "aborted" })
        .session(&mut session)
        .await
        .unwrap();
    session.abort_transaction().await.unwrap();

    assert_eq!(links.count_documents(doc! {}).await.unwrap(), 1);
    assert_eq!(
        outbox
            .count_documents(doc! { "code": "committed" })
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        outbox
            .count_documents(doc! { "code": "aborted" })
            .await
            .unwrap(),
        0
    );
}
