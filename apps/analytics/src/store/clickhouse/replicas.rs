//! Several ClickHouse servers holding the same tables, replicated through
//! ZooKeeper (or ClickHouse Keeper), and failover between them.
//!
//! - `ANALYTICS_CLICKHOUSE_URL` takes a comma-separated list. Every server
//!   reachable at start gets the database and the schema (DDL is per server
//!   on ClickHouse); one that was not gets them when it is first used.
//! - The store works on one server at a time, the first of the list that
//!   answers. A monitor pings it every `CHECK_EVERY`, and a failed write
//!   checks at once; when it does not answer, the store moves to the next
//!   one that does. It stays there until that one fails in turn, so two
//!   instances do not flap between servers.
//! - With `ANALYTICS_CLICKHOUSE_REPLICATED=true`, every table of the schema
//!   is created `Replicated*MergeTree`, at
//!   `/clickhouse/tables/{shard}/<database>/<table>` with replica name
//!   `{replica}`: the `<macros>` each server's configuration defines. Any
//!   replica then takes inserts and replicates them to the others; a replica
//!   that was down fetches what it missed when it returns.
//! - A schema migrations table stays local to each server: it records what
//!   that server has.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use clickhouse::Client;

use super::ClickHouseSettings;

/// How often the server in use is checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a check waits for an answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub(super) struct Replica {
    pub(super) url: String,
    /// Without a database: creates it.
    pub(super) server: Client,
    /// In the store's database.
    pub(super) client: Client,
}

pub(super) struct Replicas {
    pub(super) list: Vec<Replica>,
    active: AtomicUsize,
    /// Per server: its database and schema are in place.
    prepared: Vec<AtomicBool>,
    /// One failover at a time.
    pub(super) switching: tokio::sync::Mutex<()>,
    /// The dirty marks this store wrote lately (see `mark_dirty`).
    pub(super) recent_marks: std::sync::Mutex<super::rollups::RecentMarks>,
}

impl ClickHouseSettings {
    /// The servers, in order of preference.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.url.split(',').map(str::trim).filter(|u| !u.is_empty())
    }
}

impl Replicas {
    pub(super) fn new(settings: &ClickHouseSettings) -> Self {
        let list: Vec<Replica> = settings
            .urls()
            .map(|url| {
                let mut server = Client::default().with_url(url).with_validation(false);
                if let Some(user) = &settings.user {
                    server = server.with_user(user);
                }
                if let Some(password) = &settings.password {
                    server = server.with_password(password);
                }
                Replica {
                    url: url.to_owned(),
                    client: server.clone().with_database(&settings.database),
                    server,
                }
            })
            .collect();
        Self::of(list)
    }

    pub(super) fn of(list: Vec<Replica>) -> Self {
        Self {
            prepared: list.iter().map(|_| AtomicBool::new(false)).collect(),
            list,
            active: AtomicUsize::new(0),
            switching: tokio::sync::Mutex::new(()),
            recent_marks: std::sync::Mutex::default(),
        }
    }

    pub(super) fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    pub(super) fn set_active(&self, index: usize) {
        self.active.store(index, Ordering::Release);
    }

    pub(super) fn is_prepared(&self, index: usize) -> bool {
        self.prepared[index].load(Ordering::Acquire)
    }

    pub(super) fn set_prepared(&self, index: usize) {
        self.prepared[index].store(true, Ordering::Release);
    }
}

/// Whether the server answers within `CHECK_TIMEOUT`.
pub(super) async fn answers(client: &Client) -> bool {
    let ping = client.query("SELECT 1").fetch_one::<u8>();
    matches!(tokio::time::timeout(CHECK_TIMEOUT, ping).await, Ok(Ok(1)))
}

/// `sql` with its table's `*MergeTree` engine made `Replicated*MergeTree`
/// (a statement without one is returned as it is).
pub(super) fn replicated(sql: &str, database: &str) -> String {
    let Some(table) = sql
        .split("CREATE TABLE IF NOT EXISTS ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| c.is_whitespace() || c == '(').next())
    else {
        return sql.to_owned();
    };
    let Some(at) = sql.find("ENGINE = ") else {
        return sql.to_owned();
    };
    let engine_at = at + "ENGINE = ".len();
    let rest = &sql[engine_at..];
    let Some(open) = rest.find('(') else {
        return sql.to_owned();
    };
    let engine = &rest[..open];
    if !engine.ends_with("MergeTree") {
        return sql.to_owned();
    }
    let close = open + rest[open..].find(')').unwrap_or(0);
    let args = rest[open + 1..close].trim();
    let database = database.replace(['\'', '\\', '/'], "_");
    let path = format!("'/clickhouse/tables/{{shard}}/{database}/{table}', '{{replica}}'");
    let args = if args.is_empty() {
        path
    } else {
        format!("{path}, {args}")
    };
    format!(
        "{}Replicated{engine}({args}){}",
        &sql[..engine_at],
        &rest[close + 1..]
    )
}

/// Checks the server in use every `CHECK_EVERY` while the store lives.
pub(super) fn monitor(store: Weak<Replicas>, settings: ClickHouseSettings) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let Some(replicas) = store.upgrade() else {
                return;
            };
            super::ClickHouseStore {
                replicas,
                settings: settings.clone(),
            }
            .fail_over()
            .await;
        }
    });
}

pub(super) fn shared(replicas: Replicas) -> Arc<Replicas> {
    Arc::new(replicas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_become_replicated_with_the_database_and_table_in_the_path() {
        let sql = "CREATE TABLE IF NOT EXISTS click_days (
            day UInt32, version UInt64
        ) ENGINE = ReplacingMergeTree(version) ORDER BY (day)";
        assert_eq!(
            replicated(sql, "analytics"),
            "CREATE TABLE IF NOT EXISTS click_days (
            day UInt32, version UInt64
        ) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/analytics/click_days', \
             '{replica}', version) ORDER BY (day)"
        );
        let plain = "CREATE TABLE IF NOT EXISTS d (x UInt8) ENGINE = MergeTree() ORDER BY x";
        assert!(replicated(plain, "a'b").contains(
            "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/a_b/d', '{replica}') ORDER BY x"
        ));
    }

    #[test]
    fn statements_without_an_engine_are_kept() {
        let insert = "INSERT INTO link_codes SELECT short_code FROM url_creations FINAL";
        assert_eq!(replicated(insert, "analytics"), insert);
    }

    #[test]
    fn the_list_of_urls_is_split_and_trimmed() {
        let settings = ClickHouseSettings {
            url: "http://a:8123, http://b:8123,".into(),
            database: "analytics".into(),
            user: None,
            password: None,
            replicated: true,
        };
        assert_eq!(
            settings.urls().collect::<Vec<_>>(),
            ["http://a:8123", "http://b:8123"]
        );
    }
}
