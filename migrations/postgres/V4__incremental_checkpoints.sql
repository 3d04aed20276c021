-- Incremental checkpoints: a batch writes the engine state it changed, not the whole state.
-- `engine_checkpoints` keeps one row per scope; `layout` says what its byte columns hold:
-- 1 (every row written before this migration) each engine's whole snapshot, still restored;
-- 2 each engine's head (clocks, counters, buffers), the items being in `engine_state`. A
-- scope restored from layout 1 is rewritten in layout 2 by its next batch (all its items).
ALTER TABLE engine_checkpoints ADD COLUMN layout SMALLINT NOT NULL DEFAULT 1;

-- One item of an engine's state (an alert, an incident, a service's SLA windows…): written
-- when the batch changed it, deleted when the batch removed it, in the batch's transaction.
CREATE TABLE engine_state (
    scope         TEXT NOT NULL,
    engine        TEXT NOT NULL,
    kind          TEXT NOT NULL,
    key           BYTEA NOT NULL,
    value         BYTEA NOT NULL,
    PRIMARY KEY (scope, engine, kind, key)
);
