DROP INDEX links_owner_by_clicks; DROP INDEX links_by_clicks;
ALTER TABLE links DROP COLUMN tags;
ALTER TABLE links DROP COLUMN title;
