//! [`AuditStore`] in PostgreSQL: the `events` table.

use super::*;

pub(super) fn event_from_row(row: &Row) -> StoreResult<Event> {
    let outcome: String = row.get(7);
    let Some(outcome) = Outcome::parse(&outcome) else {
        return Err(StoreError::Backend(format!("unknown outcome {outcome:?}")));
    };
    let http_status: Option<i32> = row.get(9);
    Ok(Event {
        id: row.get(0),
        at: row.get(1),
        app_id: row.get(2),
        app_name: row.get(3),
        object_kind: row.get(4),
        object_id: row.get(5),
        operation: row.get(6),
        outcome,
        rule: row.get(8),
        http_status: http_status.and_then(|status| u16::try_from(status).ok()),
        summary: row.get(10),
    })
}

/// An event's values as the `events` columns take them, in
/// [`EVENT_COLUMNS`] order, each with its type (for `query_typed`).
pub(super) struct EventValues<'a> {
    event: &'a Event,
    id: String,
    outcome: &'static str,
    http_status: Option<i32>,
}

impl<'a> EventValues<'a> {
    /// The event's values, with a new id when it has none.
    pub(super) fn of(event: &'a Event) -> Self {
        EventValues {
            event,
            id: if event.id.is_empty() {
                new_id()
            } else {
                event.id.clone()
            },
            outcome: event.outcome.as_str(),
            http_status: event.http_status.map(i32::from),
        }
    }

    pub(super) fn params(&self) -> [(&(dyn ToSql + Sync), Type); 11] {
        [
            (&self.id, Type::TEXT),
            (&self.event.at, Type::TIMESTAMPTZ),
            (&self.event.app_id, Type::TEXT),
            (&self.event.app_name, Type::TEXT),
            (&self.event.object_kind, Type::TEXT),
            (&self.event.object_id, Type::TEXT),
            (&self.event.operation, Type::TEXT),
            (&self.outcome, Type::TEXT),
            (&self.event.rule, Type::TEXT),
            (&self.http_status, Type::INT4),
            (&self.event.summary, Type::TEXT),
        ]
    }
}

pub(super) fn insert_event(transaction: &mut Tx<'_, '_>, event: &Event) -> Step<Event> {
    let values = EventValues::of(event);
    transaction.execute_typed(
        &format!(
            "INSERT INTO events ({EVENT_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ),
        &values.params(),
    )?;
    Ok(Event {
        id: values.id,
        ..event.clone()
    })
}

impl AuditStore for PostgresStore {
    fn record_event(&self, event: Event) -> StoreResult<Event> {
        self.write(|transaction| insert_event(transaction, &event))
    }

    fn events(&self, query: &EventQuery, page: Page) -> StoreResult<Listing<Event>> {
        let (limit, offset) = page_clause(page);
        // Each condition is inert when its parameter is NULL.
        let filter = "($1::text IS NULL OR app_id = $1) AND ($2::text IS NULL OR operation = $2)
             AND ($3::text IS NULL OR outcome = $3) AND ($4::timestamptz IS NULL OR at >= $4)
             AND ($5::timestamptz IS NULL OR at < $5) AND ($6::text IS NULL OR object_id = $6)";
        let outcome = query.outcome.map(Outcome::as_str);
        // The filter's parameters, then the page's.
        let filter_params: [&(dyn ToSql + Sync); 6] = [
            &query.app_id,
            &query.operation,
            &outcome,
            &query.since,
            &query.until,
            &query.object_id,
        ];
        let mut paged_params = filter_params.to_vec();
        paged_params.extend([&limit as &(dyn ToSql + Sync), &offset]);
        self.read(|transaction| {
            let total: i64 = transaction
                .query_one(
                    &format!("SELECT COUNT(*) FROM events WHERE {filter}"),
                    &filter_params,
                )?
                .get(0);
            let rows = transaction.query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE {filter}
                     ORDER BY at DESC, id LIMIT $7 OFFSET $8"
                ),
                &paged_params,
            )?;
            Ok(Listing {
                items: collect(rows, event_from_row)?,
                total: to_u64(total),
            })
        })
    }

    fn prune_events(&self, before: Timestamp) -> StoreResult<u64> {
        self.write(|transaction| {
            Ok(transaction.execute("DELETE FROM events WHERE at < $1", &[&before])?)
        })
    }
}
