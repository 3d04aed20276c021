-- The latest event time a scope's engines had seen when its checkpoint was written (see the
-- Postgres migration of the same name).
ALTER TABLE engine_checkpoints ADD COLUMN latest_event_ns INTEGER;
