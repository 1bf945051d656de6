-- The deprovisioning guard counts offboardings per application across
-- changes, over a sliding window, and holds an application's offboardings
-- (not a change) once they cross its threshold.

-- Per-application overrides of the host's guard defaults, as JSON:
-- {"percent", "minimum", "windowSeconds"}, each absent for the default.
ALTER TABLE applications ADD COLUMN guard TEXT NOT NULL DEFAULT '{}';

-- Offboardings the guard let through, which the window counts while
-- `counted` is 1: an approved one is not counted, and an operator's
-- decision on a hold stops counting every earlier one (rows are kept, so
-- that a retry is recognised).
-- `entry_state` is the ledger entry the offboarding found (remote id,
-- document hash, when it was written): a retry finds the same one, an
-- account offboarded again after coming back does not. Rows older than an application's window are
-- pruned when its next offboarding is decided.
CREATE TABLE guard_admissions (
    app_id      TEXT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    object_id   TEXT NOT NULL,
    entry_state TEXT NOT NULL,
    kind        TEXT NOT NULL,
    counted     INTEGER NOT NULL DEFAULT 1,
    at          TEXT NOT NULL
);
CREATE INDEX guard_admissions_app ON guard_admissions (app_id, at);

-- A hold is now per application: the offboardings it holds are listed
-- here. `change` stays for the holds an older scimlink made of a whole
-- change (approving one replays that change); a hold of this version has
-- 'null' there.
ALTER TABLE held_changes ADD COLUMN threshold INTEGER NOT NULL DEFAULT 0;
CREATE TABLE held_offboardings (
    held_id     TEXT NOT NULL REFERENCES held_changes (id) ON DELETE CASCADE,
    object_kind TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    user_name   TEXT,
    remote_id   TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('deactivate', 'delete', 'suspend')),
    reason      TEXT NOT NULL,
    held_at     TEXT NOT NULL,
    -- When an approved offboarding went past the guard.
    carried_out TEXT,
    PRIMARY KEY (held_id, object_kind, object_id)
) WITHOUT ROWID;
CREATE INDEX held_offboardings_object ON held_offboardings (object_id);
-- (An application has at most one open hold of this version; no unique
-- index says so, as an older scimlink may have left several open holds of
-- whole changes. The store keeps it: holds are made in the guard's
-- write transaction, after looking for an open one.)
