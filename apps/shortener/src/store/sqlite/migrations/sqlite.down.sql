DROP TABLE outbox; DROP TABLE links;
