-- The latest event time a scope's engines had seen when its checkpoint was written. Restored
-- with the engines: a restarted worker whose inputs are all quiet moves its clock there, as
-- the uninterrupted worker did (without it, the restored clock stopped at the slowest
-- input's time and windows after it stayed open until new traffic came).
ALTER TABLE engine_checkpoints ADD COLUMN latest_event_ns BIGINT;
