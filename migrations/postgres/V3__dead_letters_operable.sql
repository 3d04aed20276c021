-- Dead letters an operator can work with (`slaflow dead-letters list|show|replay|purge`):
-- - a record (an HTTP body, a Kafka message, a file line) can yield several dead letters (its
--   rejected items, events rejected one by one), so the natural key gains `seq`, the dead
--   letter's number within its record; writing a batch twice still adds nothing;
-- - each row gets a short `id` for the command line (`show 42`);
-- - an HTTP body records the endpoint it was posted to and the client's address (also when
--   it was forwarded to Kafka and dead-lettered by a worker: then topic, partition and
--   offset are set too);
-- - `received_ns` is indexed for time-range queries (`--since`, `--until`).
-- Existing rows keep their key with `seq` 0 and no endpoint or address (not recorded then).
ALTER TABLE dead_letters ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dead_letters ADD COLUMN endpoint TEXT;        -- HTTP path, e.g. /v1/ingest/alertmanager
ALTER TABLE dead_letters ADD COLUMN remote_addr TEXT;     -- HTTP client, ip:port
ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_pkey;
ALTER TABLE dead_letters ADD COLUMN id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY;
ALTER TABLE dead_letters ADD CONSTRAINT dead_letters_record UNIQUE (origin, partition, "offset", seq);
CREATE INDEX dead_letters_received ON dead_letters (received_ns);
