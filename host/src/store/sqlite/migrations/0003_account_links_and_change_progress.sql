-- One remote account is linked to at most one directory object per
-- application and kind. Before this was enforced, a takeover could link an
-- account that another object already held. Such links are resolved here
-- without touching any account: the most recent link stays (it is the one
-- that last wrote the account), and every older one is taken off the ledger
-- and listed as a dead letter that names the account and its other holder,
-- so that an operator sees which objects the host stopped managing.
INSERT INTO dead_letters (app_id, object_kind, object_id, operation, reason,
                          http_status, first_failed, last_failed, failures)
SELECT older.app_id, older.object_kind, older.object_id,
       CASE older.object_kind WHEN 'group' THEN 'group_create_provision'
                              ELSE 'user_lookup_provision' END,
       'account ' || older.remote_id || ' was also linked to ' || older.object_kind || ' '
           || newer.object_id || ', which keeps it; this link was dropped',
       NULL,
       strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 1
FROM (
    SELECT app_id, object_kind, object_id, remote_id,
           ROW_NUMBER() OVER (PARTITION BY app_id, object_kind, remote_id
                              ORDER BY updated DESC, object_id DESC) AS rank
    FROM ledger
) AS older
JOIN (
    SELECT app_id, object_kind, object_id, remote_id,
           ROW_NUMBER() OVER (PARTITION BY app_id, object_kind, remote_id
                              ORDER BY updated DESC, object_id DESC) AS rank
    FROM ledger
) AS newer
  ON newer.app_id = older.app_id AND newer.object_kind = older.object_kind
 AND newer.remote_id = older.remote_id AND newer.rank = 1
WHERE older.rank > 1
ON CONFLICT (app_id, object_kind, object_id)
DO UPDATE SET operation = excluded.operation, reason = excluded.reason,
              http_status = NULL, last_failed = excluded.last_failed,
              failures = failures + 1;

DELETE FROM ledger
WHERE (app_id, object_kind, object_id) IN (
    SELECT app_id, object_kind, object_id FROM (
        SELECT app_id, object_kind, object_id,
               ROW_NUMBER() OVER (PARTITION BY app_id, object_kind, remote_id
                                  ORDER BY updated DESC, object_id DESC) AS rank
        FROM ledger
    ) WHERE rank > 1
);

CREATE UNIQUE INDEX ledger_remote ON ledger (app_id, object_kind, remote_id);

-- Why an application is quarantined, for operators: its circuit opened, or
-- it cannot be served at all (connector missing, a setting the base URL
-- needs, a token that no longer opens). NULL in any other state.
ALTER TABLE applications ADD COLUMN state_reason TEXT;

-- Progress of each change per application: a change is done when every
-- application it concerns is done with it, so that one application's
-- failure never holds the change back for the others. A pair that failed
-- waits until retry_at; after the last attempt its objects are
-- dead-lettered and the pair is done.
CREATE TABLE change_progress (
    seq        INTEGER NOT NULL REFERENCES outbox (seq) ON DELETE CASCADE,
    app_id     TEXT NOT NULL,
    done       INTEGER NOT NULL,
    attempts   INTEGER NOT NULL,
    retry_at   TEXT,
    last_error TEXT,
    PRIMARY KEY (seq, app_id)
) WITHOUT ROWID;
