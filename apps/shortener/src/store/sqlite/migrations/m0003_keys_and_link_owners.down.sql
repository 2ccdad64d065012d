DROP TABLE api_keys; DROP INDEX links_owner;
ALTER TABLE links DROP COLUMN forward_query;
ALTER TABLE links DROP COLUMN owner;
