-- slaflow's tables. Every output row has a natural key, so a retried or replayed batch
-- cannot write a row twice; a batch's rows, the engines' checkpoint and the next Kafka
-- offsets are written in one transaction.

-- Incidents, current state (upserted as their records arrive).
CREATE TABLE incidents (
    id            TEXT PRIMARY KEY,
    service       TEXT NOT NULL,
    opened_ns     BIGINT NOT NULL,
    status        TEXT NOT NULL,            -- open | acknowledged | resolved
    priority      SMALLINT NOT NULL,
    major         BOOLEAN NOT NULL DEFAULT FALSE,
    resolved_ns   BIGINT,
    resolve_reason TEXT,
    suspected_changes TEXT[] NOT NULL DEFAULT '{}',
    updated_ns    BIGINT NOT NULL
);
CREATE INDEX incidents_service_opened ON incidents (service, opened_ns);

-- The alerts of each incident, with their duplicate counts.
CREATE TABLE incident_alerts (
    incident      TEXT NOT NULL,
    alert         TEXT NOT NULL,            -- source/fingerprint
    ci            TEXT NOT NULL DEFAULT '',
    joined_ns     BIGINT NOT NULL,
    symptom       BOOLEAN NOT NULL DEFAULT FALSE,
    root_cause_ci TEXT,
    occurrences   BIGINT NOT NULL DEFAULT 1,
    last_seen_ns  BIGINT NOT NULL,
    PRIMARY KEY (incident, alert)
);

-- Every correlation record except duplicates (counted in incident_alerts).
CREATE TABLE incident_events (
    key           TEXT PRIMARY KEY,
    type          TEXT NOT NULL,
    incident      TEXT,
    time_ns       BIGINT NOT NULL,
    record        JSONB NOT NULL
);
CREATE INDEX incident_events_incident ON incident_events (incident, time_ns);

-- Warnings, breaches and burn-rate alert changes.
CREATE TABLE breaches (
    key           TEXT PRIMARY KEY,
    type          TEXT NOT NULL,            -- warning | breach | burn_rate_alert
    service       TEXT NOT NULL,
    objective     TEXT NOT NULL,
    kind          TEXT NOT NULL,
    period        TEXT NOT NULL,            -- YYYY-MM in the contract's time zone
    measured      DOUBLE PRECISION,
    threshold     DOUBLE PRECISION,
    window_start_ns BIGINT,
    window_end_ns BIGINT,
    detected_ns   BIGINT NOT NULL,
    record        JSONB NOT NULL
);
CREATE INDEX breaches_service_period ON breaches (service, period);

-- Closed SLA windows; the histogram in HdrHistogram's V2 compressed encoding (µs).
CREATE TABLE sla_windows (
    service       TEXT NOT NULL,
    operation     TEXT NOT NULL,
    granularity   TEXT NOT NULL,            -- hour | day | month
    start_ns      BIGINT NOT NULL,
    end_ns        BIGINT NOT NULL,
    count         BIGINT NOT NULL,
    errors        BIGINT NOT NULL,
    mean_ns       DOUBLE PRECISION NOT NULL,
    p50_ns        BIGINT NOT NULL,
    p95_ns        BIGINT NOT NULL,
    p99_ns        BIGINT NOT NULL,
    max_ns        BIGINT NOT NULL,
    histogram     BYTEA NOT NULL,
    PRIMARY KEY (service, operation, granularity, start_ns)
);

-- Monthly reports: the final one replaces any on-demand one of the same month.
CREATE TABLE monthly_reports (
    service       TEXT NOT NULL,
    period        TEXT NOT NULL,
    complete      BOOLEAN NOT NULL,
    availability_percent DOUBLE PRECISION NOT NULL,
    credit_percent DOUBLE PRECISION NOT NULL,
    credit_amount DOUBLE PRECISION,
    report        JSONB NOT NULL,
    PRIMARY KEY (service, period)
);

-- Records that could not be decoded: kept with their reason and origin.
CREATE TABLE dead_letters (
    origin        TEXT NOT NULL,            -- topic, file or endpoint
    partition     INTEGER NOT NULL,         -- -1 outside Kafka
    "offset"      BIGINT NOT NULL,          -- Kafka offset, or line / sequence number
    format        TEXT NOT NULL,
    reason        TEXT NOT NULL,
    payload       BYTEA NOT NULL,
    received_ns   BIGINT NOT NULL,
    PRIMARY KEY (origin, partition, "offset")
);

-- The next offset to read per group/topic/partition: the source of truth on assignment.
CREATE TABLE consumer_offsets (
    group_id      TEXT NOT NULL,
    topic         TEXT NOT NULL,
    partition     INTEGER NOT NULL,
    next_offset   BIGINT NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);

-- Engine state per scope (a partition, or a replay), written with its batch.
CREATE TABLE engine_checkpoints (
    scope         TEXT PRIMARY KEY,
    correlate     BYTEA NOT NULL,
    sla           BYTEA NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
