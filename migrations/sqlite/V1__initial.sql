-- slaflow's tables in the embedded store (SQLite): the same tables, columns, keys and
-- indexes as migrations/postgres/V1__initial.sql, in SQLite's types. STRICT makes SQLite
-- reject a value of the wrong type, as Postgres would. Mappings: BIGINT/SMALLINT/BOOLEAN ->
-- INTEGER (booleans 0/1), DOUBLE PRECISION -> REAL, BYTEA -> BLOB, JSONB -> TEXT (JSON),
-- TEXT[] -> TEXT (a JSON array), TIMESTAMPTZ -> TEXT (RFC 3339, UTC).
-- A change to one schema needs the same change to the other (a new V2 in each directory).

-- Incidents, current state (upserted as their records arrive).
CREATE TABLE incidents (
    id            TEXT NOT NULL PRIMARY KEY,
    service       TEXT NOT NULL,
    opened_ns     INTEGER NOT NULL,
    status        TEXT NOT NULL,            -- open | acknowledged | resolved
    priority      INTEGER NOT NULL,
    major         INTEGER NOT NULL DEFAULT 0,
    resolved_ns   INTEGER,
    resolve_reason TEXT,
    suspected_changes TEXT NOT NULL DEFAULT '[]', -- JSON array of change ids
    updated_ns    INTEGER NOT NULL
) STRICT;
CREATE INDEX incidents_service_opened ON incidents (service, opened_ns);

-- The alerts of each incident, with their duplicate counts.
CREATE TABLE incident_alerts (
    incident      TEXT NOT NULL,
    alert         TEXT NOT NULL,            -- source/fingerprint
    ci            TEXT NOT NULL DEFAULT '',
    joined_ns     INTEGER NOT NULL,
    symptom       INTEGER NOT NULL DEFAULT 0,
    root_cause_ci TEXT,
    occurrences   INTEGER NOT NULL DEFAULT 1,
    last_seen_ns  INTEGER NOT NULL,
    PRIMARY KEY (incident, alert)
) STRICT;

-- Every correlation record except duplicates (counted in incident_alerts).
CREATE TABLE incident_events (
    key           TEXT NOT NULL PRIMARY KEY,
    type          TEXT NOT NULL,
    incident      TEXT,
    time_ns       INTEGER NOT NULL,
    record        TEXT NOT NULL             -- JSON
) STRICT;
CREATE INDEX incident_events_incident ON incident_events (incident, time_ns);

-- Warnings, breaches and burn-rate alert changes.
CREATE TABLE breaches (
    key           TEXT NOT NULL PRIMARY KEY,
    type          TEXT NOT NULL,            -- warning | breach | burn_rate_alert
    service       TEXT NOT NULL,
    objective     TEXT NOT NULL,
    kind          TEXT NOT NULL,
    period        TEXT NOT NULL,            -- YYYY-MM in the contract's time zone
    measured      REAL,
    threshold     REAL,
    window_start_ns INTEGER,
    window_end_ns INTEGER,
    detected_ns   INTEGER NOT NULL,
    record        TEXT NOT NULL             -- JSON
) STRICT;
CREATE INDEX breaches_service_period ON breaches (service, period);

-- Closed SLA windows; the histogram in HdrHistogram's V2 compressed encoding (µs).
CREATE TABLE sla_windows (
    service       TEXT NOT NULL,
    operation     TEXT NOT NULL,
    granularity   TEXT NOT NULL,            -- hour | day | month
    start_ns      INTEGER NOT NULL,
    end_ns        INTEGER NOT NULL,
    count         INTEGER NOT NULL,
    errors        INTEGER NOT NULL,
    mean_ns       REAL NOT NULL,
    p50_ns        INTEGER NOT NULL,
    p95_ns        INTEGER NOT NULL,
    p99_ns        INTEGER NOT NULL,
    max_ns        INTEGER NOT NULL,
    histogram     BLOB NOT NULL,
    PRIMARY KEY (service, operation, granularity, start_ns)
) STRICT;

-- Monthly reports: the final one replaces any on-demand one of the same month.
CREATE TABLE monthly_reports (
    service       TEXT NOT NULL,
    period        TEXT NOT NULL,
    complete      INTEGER NOT NULL,
    availability_percent REAL NOT NULL,
    credit_percent REAL NOT NULL,
    credit_amount REAL,
    report        TEXT NOT NULL,            -- JSON
    PRIMARY KEY (service, period)
) STRICT;

-- Records that could not be decoded: kept with their reason and origin.
CREATE TABLE dead_letters (
    origin        TEXT NOT NULL,            -- topic, file or endpoint
    partition     INTEGER NOT NULL,         -- -1 outside Kafka
    "offset"      INTEGER NOT NULL,         -- Kafka offset, or line / sequence number
    format        TEXT NOT NULL,
    reason        TEXT NOT NULL,
    payload       BLOB NOT NULL,
    received_ns   INTEGER NOT NULL,
    PRIMARY KEY (origin, partition, "offset")
) STRICT;

-- The next offset to read per group/topic/partition: the source of truth on assignment.
CREATE TABLE consumer_offsets (
    group_id      TEXT NOT NULL,
    topic         TEXT NOT NULL,
    partition     INTEGER NOT NULL,
    next_offset   INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
) STRICT;

-- Engine state per scope (a partition, or a replay), written with its batch.
CREATE TABLE engine_checkpoints (
    scope         TEXT NOT NULL PRIMARY KEY,
    correlate     BLOB NOT NULL,
    sla           BLOB NOT NULL,
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
