-- Links and their outbox (the name is the one sea-orm's derive gave this
-- file's first migration).
CREATE TABLE links (
    id BLOB PRIMARY KEY NOT NULL,
    code TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    target_host TEXT NOT NULL,
    redirect_type INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    expires_at TEXT,
    deleted_at TEXT,
    click_count INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id BLOB NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    event_version INTEGER NOT NULL,
    payload BLOB NOT NULL,
    created_at TEXT NOT NULL,
    sent_at TEXT
);
-- The relay only ever scans unsent rows.
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
