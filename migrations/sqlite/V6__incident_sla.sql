-- What incident timers did (respond and resolve targets per priority): warnings, breaches,
-- met and missed, one row per natural key.
CREATE TABLE incident_sla (
    key           TEXT NOT NULL PRIMARY KEY,
    service       TEXT NOT NULL,
    incident      TEXT NOT NULL,
    priority      INTEGER NOT NULL,
    target        TEXT NOT NULL,            -- respond | resolve
    event         TEXT NOT NULL,            -- warning | breach | met | missed
    level_percent REAL NOT NULL,
    target_ns     INTEGER NOT NULL,
    elapsed_ns    INTEGER NOT NULL,         -- counted time (business hours if so, no maintenance)
    opened_ns     INTEGER NOT NULL,
    at_ns         INTEGER NOT NULL,
    record        TEXT NOT NULL             -- JSON
) STRICT;
CREATE INDEX incident_sla_service_at ON incident_sla (service, at_ns);
