-- The hosts whose engines share this database, each present until `until`
-- unless it announces itself again, with the connectors it serves (name →
-- version).
CREATE TABLE hosts (
    engine     TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT NOT NULL,
    connectors JSONB NOT NULL,
    seen       TIMESTAMPTZ NOT NULL,
    until      TIMESTAMPTZ NOT NULL
);

-- One object of one application is synced by one host at a time: the one
-- holding its lease until `until`.
CREATE TABLE object_leases (
    app_id      TEXT COLLATE "C" NOT NULL,
    object_kind TEXT COLLATE "C" NOT NULL,
    object_id   TEXT COLLATE "C" NOT NULL,
    holder      TEXT NOT NULL,
    until       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (app_id, object_kind, object_id)
);
