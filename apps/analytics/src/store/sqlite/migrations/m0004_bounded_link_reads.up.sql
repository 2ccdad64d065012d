-- The link list's order, and the reconciliation report's
-- two lists, each read one page at a time.
CREATE INDEX url_creations_newest
    ON url_creations (COALESCE(created_at, 0), shortener_url_id);
CREATE INDEX url_creations_uncreated
    ON url_creations (shortener_url_id) WHERE created_at IS NULL;
CREATE INDEX url_creations_deleted
    ON url_creations (shortener_url_id) WHERE deleted_at IS NOT NULL;
