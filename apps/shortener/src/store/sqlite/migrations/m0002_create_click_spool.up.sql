-- Clicks JetStream could not take, kept until the relay publishes them.
CREATE TABLE click_spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id BLOB NOT NULL UNIQUE,
    url_id BLOB NOT NULL,
    clicked_at TEXT NOT NULL,
    payload BLOB NOT NULL
);
