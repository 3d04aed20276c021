-- `engine_state` as a rowid table: a WITHOUT ROWID table keeps whole rows in its B-tree,
-- interior pages included, and SQLite reads an overflowing row in full to compare keys, so
-- every lookup past an incident with many members read its whole value (a profile of the
-- Alertmanager harness: a fifth of the time in that copy). SQLite advises WITHOUT ROWID for
-- rows under about a twentieth of a page; here the key is indexed and the value kept apart.
CREATE TABLE engine_state_v5 (
    scope         TEXT NOT NULL,
    engine        TEXT NOT NULL,
    kind          TEXT NOT NULL,
    key           BLOB NOT NULL,
    value         BLOB NOT NULL,
    UNIQUE (scope, engine, kind, key)
) STRICT;

INSERT INTO engine_state_v5 (scope, engine, kind, key, value)
    SELECT scope, engine, kind, key, value FROM engine_state;
DROP TABLE engine_state;
ALTER TABLE engine_state_v5 RENAME TO engine_state;
