-- Clicks and link copies (the name is the one sea-orm's derive gave this
-- file's first migration).
CREATE TABLE clicks (
    event_id BLOB PRIMARY KEY NOT NULL,
    shortener_url_id BLOB NOT NULL,
    short_code TEXT NOT NULL,
    clicked_at INTEGER NOT NULL,
    referrer_host TEXT NOT NULL,
    browser TEXT NOT NULL,
    os TEXT NOT NULL,
    device TEXT NOT NULL,
    is_bot INTEGER NOT NULL,
    visitor_key TEXT NOT NULL,
    country TEXT NOT NULL
) WITHOUT ROWID;
-- Every stats query reads one link over a time range.
CREATE INDEX clicks_by_link_time ON clicks (shortener_url_id, clicked_at);
-- No foreign key: shortener_url_id is a soft reference to
-- a row the shortener owns; a click may come first.
CREATE TABLE url_creations (
    shortener_url_id BLOB PRIMARY KEY NOT NULL,
    short_code TEXT NOT NULL,
    target TEXT,
    target_host TEXT,
    created_at INTEGER,
    expires_at INTEGER,
    deleted_at INTEGER,
    last_update_us INTEGER NOT NULL,
    expires_from_update INTEGER NOT NULL,
    version INTEGER NOT NULL
);
CREATE INDEX url_creations_by_code ON url_creations (short_code);
