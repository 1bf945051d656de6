-- Work is shared out per application: a change is handed out once
-- (dispatched_at) as one pending pair per application it concerns, and
-- each application's pairs are leased by the engine running that
-- application's work. The engine's single turn is gone with it: every
-- host's engine runs, each for its own applications.
ALTER TABLE outbox ADD COLUMN dispatched_at TEXT;
ALTER TABLE change_progress ADD COLUMN claimed_by TEXT;
ALTER TABLE change_progress ADD COLUMN claimed_until TEXT;
CREATE INDEX change_progress_pending ON change_progress (app_id, seq) WHERE NOT done;
DROP TABLE engine_turn;
