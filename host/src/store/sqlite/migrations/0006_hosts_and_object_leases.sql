-- The hosts whose engines share this database, each present until `until`
-- unless it announces itself again, with the connectors it serves (a JSON
-- object of name → version).
CREATE TABLE hosts (
    engine     TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    connectors TEXT NOT NULL,
    seen       TEXT NOT NULL,
    until      TEXT NOT NULL
);

-- One object of one application is synced by one host at a time: the one
-- holding its lease until `until`.
CREATE TABLE object_leases (
    app_id      TEXT NOT NULL,
    object_kind TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    holder      TEXT NOT NULL,
    until       TEXT NOT NULL,
    PRIMARY KEY (app_id, object_kind, object_id)
);
