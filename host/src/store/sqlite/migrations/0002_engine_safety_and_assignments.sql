-- Objects an application refused for a reason another attempt will not
-- cure (a 4xx other than 408/409/429, a connector's refusal, an ambiguous
-- lookup): one row per object, until a sync of it succeeds or an operator
-- replays it.
CREATE TABLE dead_letters (
    app_id       TEXT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    object_kind  TEXT NOT NULL,
    object_id    TEXT NOT NULL,
    operation    TEXT NOT NULL,
    reason       TEXT NOT NULL,
    http_status  INTEGER,
    first_failed TEXT NOT NULL,
    last_failed  TEXT NOT NULL,
    failures     INTEGER NOT NULL,
    PRIMARY KEY (app_id, object_kind, object_id)
) WITHOUT ROWID;

-- Changes the deprovisioning guard held for one application: the change
-- itself, so that an approval applies exactly it.
CREATE TABLE held_changes (
    id              TEXT PRIMARY KEY,
    app_id          TEXT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    change          TEXT NOT NULL,
    offboarding     INTEGER NOT NULL,
    active_accounts INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('held', 'approved', 'rejected')),
    held_at         TEXT NOT NULL,
    decided_at      TEXT
);
CREATE INDEX held_changes_app ON held_changes (app_id, held_at);

-- Users assigned to an application directly, not through a bound group
-- (for connectors whose manifest allows it).
CREATE TABLE assignments (
    app_id  TEXT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created TEXT NOT NULL,
    PRIMARY KEY (app_id, user_id)
) WITHOUT ROWID;
CREATE INDEX assignments_user ON assignments (user_id);
