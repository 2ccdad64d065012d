ALTER TABLE links DROP COLUMN password_hash;
