-- Incremental checkpoints (see the Postgres migration of the same name): `layout` 1 is a
-- whole snapshot per engine, 2 a head per engine with its items in `engine_state`.
ALTER TABLE engine_checkpoints ADD COLUMN layout INTEGER NOT NULL DEFAULT 1;

CREATE TABLE engine_state (
    scope         TEXT NOT NULL,
    engine        TEXT NOT NULL,
    kind          TEXT NOT NULL,
    key           BLOB NOT NULL,
    value         BLOB NOT NULL,
    PRIMARY KEY (scope, engine, kind, key)
) STRICT, WITHOUT ROWID;
