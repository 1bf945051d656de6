-- One engine consumes the outbox at a time among the hosts of a database:
-- the one holding this single row's turn until `until`, renewed while it
-- runs; the others stand by and take it over once it runs out.
CREATE TABLE engine_turn (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    until  TEXT NOT NULL
);
