-- Work is shared out per application: a change is handed out once
-- (dispatched_at) as one pending pair per application it concerns, and
-- each application's pairs are leased by the engine running that
-- application's work. The engine's single turn is gone with it: every
-- host's engine runs, each for its own applications.
ALTER TABLE outbox ADD COLUMN dispatched_at TIMESTAMPTZ;
ALTER TABLE change_progress ADD COLUMN claimed_by TEXT;
ALTER TABLE change_progress ADD COLUMN claimed_until TIMESTAMPTZ;
CREATE INDEX change_progress_pending ON change_progress (app_id, seq) WHERE NOT done;
CREATE INDEX outbox_undispatched ON outbox (seq) WHERE dispatched_at IS NULL AND done_at IS NULL;
DROP TABLE engine_turn;
