//! [`AuditStore`] in SQLite: the `events` table.

use super::*;

pub(super) fn event_from_row(row: &Row<'_>) -> RowResult<Event> {
    let outcome: String = row.get(7)?;
    let Some(outcome) = Outcome::parse(&outcome) else {
        return Ok(Err(StoreError::Backend(format!(
            "unknown outcome {outcome:?}"
        ))));
    };
    Ok(Ok(Event {
        id: row.get(0)?,
        at: row.get(1)?,
        app_id: row.get(2)?,
        app_name: row.get(3)?,
        object_kind: row.get(4)?,
        object_id: row.get(5)?,
        operation: row.get(6)?,
        outcome,
        rule: row.get(8)?,
        http_status: row.get(9)?,
        summary: row.get(10)?,
    }))
}

pub(super) fn insert_event(transaction: &Connection, mut event: Event) -> StoreResult<Event> {
    if event.id.is_empty() {
        event.id = new_id();
    }
    transaction
        .prepare_cached(&format!(
            "INSERT INTO events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ))?
        .execute(params![
            event.id,
            event.at,
            event.app_id,
            event.app_name,
            event.object_kind,
            event.object_id,
            event.operation,
            event.outcome.as_str(),
            event.rule,
            event.http_status,
            event.summary
        ])?;
    Ok(event)
}

impl AuditStore for SqliteStore {
    fn record_event(&self, event: Event) -> StoreResult<Event> {
        self.write(|transaction| insert_event(transaction, event))
    }

    fn events(&self, query: &EventQuery, page: Page) -> StoreResult<Listing<Event>> {
        let (limit, offset) = page_clause(page);
        // Each condition is inert when its parameter is NULL.
        let filter = "(?1 IS NULL OR app_id = ?1) AND (?2 IS NULL OR operation = ?2)
             AND (?3 IS NULL OR outcome = ?3) AND (?4 IS NULL OR at >= ?4)
             AND (?5 IS NULL OR at < ?5) AND (?6 IS NULL OR object_id = ?6)";
        let outcome = query.outcome.map(Outcome::as_str);
        // The filter's parameters, then the page's.
        let filter_params: [&dyn rusqlite::ToSql; 6] = [
            &query.app_id,
            &query.operation,
            &outcome,
            &query.since,
            &query.until,
            &query.object_id,
        ];
        let mut paged_params = filter_params.to_vec();
        paged_params.extend([&limit as &dyn rusqlite::ToSql, &offset]);
        self.read(|connection| {
            let total: u64 = connection.query_row(
                &format!("SELECT COUNT(*) FROM events WHERE {filter}"),
                &filter_params[..],
                |row| row.get(0),
            )?;
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE {filter}
                 ORDER BY at DESC, id LIMIT ?7 OFFSET ?8"
            ))?;
            let items = collect(&mut statement, &paged_params[..], event_from_row)?;
            Ok(Listing { items, total })
        })
    }

    fn prune_events(&self, before: Timestamp) -> StoreResult<u64> {
        self.write(|transaction| {
            Ok(transaction.execute("DELETE FROM events WHERE at < ?1", [before])? as u64)
        })
    }
}
