-- Dead letters an operator can work with: see the Postgres migration of the same name. SQLite
-- cannot change a primary key in place, so the table is rebuilt: `id` (INTEGER PRIMARY KEY,
-- AUTOINCREMENT so a purged id is never reused), `seq` in the natural key, the HTTP origin's
-- endpoint and remote address, and an index on `received_ns`. Existing rows are copied with
-- `seq` 0, oldest first.
CREATE TABLE dead_letters_v3 (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    origin        TEXT NOT NULL,            -- topic, file, or "http"
    partition     INTEGER NOT NULL,         -- -1 outside Kafka
    "offset"      INTEGER NOT NULL,         -- Kafka offset, or line / receive time
    seq           INTEGER NOT NULL DEFAULT 0,
    endpoint      TEXT,                     -- HTTP path, e.g. /v1/ingest/alertmanager
    remote_addr   TEXT,                     -- HTTP client, ip:port
    format        TEXT NOT NULL,
    reason        TEXT NOT NULL,
    payload       BLOB NOT NULL,
    received_ns   INTEGER NOT NULL,
    UNIQUE (origin, partition, "offset", seq)
) STRICT;
INSERT INTO dead_letters_v3 (origin, partition, "offset", seq, format, reason, payload, received_ns)
    SELECT origin, partition, "offset", 0, format, reason, payload, received_ns FROM dead_letters
    ORDER BY received_ns, origin, partition, "offset";
DROP TABLE dead_letters;
ALTER TABLE dead_letters_v3 RENAME TO dead_letters;
CREATE INDEX dead_letters_received ON dead_letters (received_ns);
