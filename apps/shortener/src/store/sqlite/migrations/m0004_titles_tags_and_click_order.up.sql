-- Titles and tags, and the indexes of a listing by clicks (a tag or text
-- filter scans the owner's links).
ALTER TABLE links ADD COLUMN title TEXT;
ALTER TABLE links ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
CREATE INDEX links_by_clicks ON links (click_count DESC, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX links_owner_by_clicks ON links (owner, click_count DESC, id DESC)
    WHERE deleted_at IS NULL;
