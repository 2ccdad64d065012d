//! ClickHouse through the `clickhouse` crate: DDL, a RowBinary insert, and a
//! select, on the server version CI installs.

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use system_tests::{ClickHouseServer, require};

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
struct Click {
    short_code: String,
    clicked_at: u32,
    is_bot: u8,
}

#[tokio::test]
async fn clickhouse_creates_inserts_and_selects() {
    let clickhouse = require!(ClickHouseServer::start());
    // Validation needs RowBinaryWithNamesAndTypes, which 18.16 predates.
    let client = Client::default()
        .with_url(clickhouse.url())
        .with_validation(false);
    client
        .query("CREATE DATABASE smoke")
        .execute()
        .await
        .unwrap();
    let client = client.with_database("smoke");
    client
        .query(
            "CREATE TABLE clicks (short_code String, clicked_at DateTime, is_bot UInt8) \
             ENGINE = MergeTree ORDER BY (short_code, clicked_at)",
        )
        .execute()
        .await
        .unwrap();

    let rows: Vec<Click> = (0..1000u32)
        .map(|n| Click {
            short_code: format!("code{}", n % 3),
            clicked_at: 1_763_726_400 + n,
            is_bot: u8::from(n % 10 == 0),
        })
        .collect();
    let mut insert = client.insert::<Click>("clicks").await.unwrap();
    for row in &rows {
        insert.write(row).await.unwrap();
    }
    insert.end().await.unwrap();

    let count: u64 = client
        .query("SELECT count() FROM clicks")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(count, 1000);
    let bots: u64 = client
        .query("SELECT count() FROM clicks WHERE short_code = ? AND is_bot = 1")
        .bind("code0")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        bots,
        rows.iter()
            .filter(|r| r.short_code == "code0" && r.is_bot == 1)
            .count() as u64
    );
    let mut back = client
        .query("SELECT ?fields FROM clicks ORDER BY clicked_at")
        .fetch_all::<Click>()
        .await
        .unwrap();
    back.sort_by_key(|c| c.clicked_at);
    assert_eq!(back, rows);
}
