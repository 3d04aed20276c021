-- What incident timers did (respond and resolve targets per priority): warnings, breaches,
-- met and missed, one row per natural key.
CREATE TABLE incident_sla (
    key           TEXT PRIMARY KEY,
    service       TEXT NOT NULL,
    incident      TEXT NOT NULL,
    priority      SMALLINT NOT NULL,
    target        TEXT NOT NULL,            -- respond | resolve
    event         TEXT NOT NULL,            -- warning | breach | met | missed
    level_percent DOUBLE PRECISION NOT NULL,
    target_ns     BIGINT NOT NULL,
    elapsed_ns    BIGINT NOT NULL,          -- counted time (business hours if so, no maintenance)
    opened_ns     BIGINT NOT NULL,
    at_ns         BIGINT NOT NULL,
    record        JSONB NOT NULL
);
CREATE INDEX incident_sla_service_at ON incident_sla (service, at_ns);
