-- API keys (digests, never keys), the key that made each link, and
-- per-link query forwarding.
ALTER TABLE links ADD COLUMN owner BLOB;
ALTER TABLE links ADD COLUMN forward_query INTEGER NOT NULL DEFAULT 1;
CREATE INDEX links_owner ON links (owner, id) WHERE deleted_at IS NULL;
CREATE TABLE api_keys (
    id BLOB PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);
