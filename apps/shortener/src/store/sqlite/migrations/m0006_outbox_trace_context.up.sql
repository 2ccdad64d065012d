-- The trace of the request that wrote an event.
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
