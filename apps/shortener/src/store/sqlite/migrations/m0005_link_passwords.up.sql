-- The argon2id hash of a link's password.
ALTER TABLE links ADD COLUMN password_hash TEXT;
