//! [`ApplicationStore`] in PostgreSQL: the `applications` table, each token
//! sealed in its `token_sealed` column with its nonce beside it.

use super::*;

pub(super) fn app_from_row(row: &Row) -> StoreResult<AppRecord> {
    let state: String = row.get(6);
    let Some(state) = AppState::parse(&state) else {
        return Err(StoreError::Backend(format!(
            "unknown application state {state:?}"
        )));
    };
    let settings: Vec<(String, String)> = serde_json::from_value(row.get(7))
        .map_err(|error| StoreError::Backend(format!("stored settings: {error}")))?;
    Ok(AppRecord {
        id: row.get(0),
        name: row.get(1),
        label: row.get(2),
        connector: row.get(3),
        base_url: row.get(4),
        manage_groups: row.get(5),
        state,
        settings,
        version: row.get(8),
        created: row.get(9),
        modified: row.get(10),
        capabilities: row.get(11),
        pacing: serde_json::from_value(row.get(12)).unwrap_or_default(),
        state_reason: row.get(13),
        guard: serde_json::from_value(row.get(14)).unwrap_or_default(),
        passwords: serde_json::from_value(row.get(15)).unwrap_or_default(),
    })
}

/// An application by name or id, within a transaction.
pub(super) fn app_in(
    transaction: &mut Session<'_, impl GenericClient>,
    name_or_id: &str,
) -> Step<AppRecord> {
    let row = transaction
        .query_opt(
            // An id is preferred to a name that happens to spell it.
            &format!(
                "SELECT {APP_COLUMNS} FROM applications WHERE id = $1 OR name = $1
                 ORDER BY (id = $1) DESC LIMIT 1"
            ),
            &[&name_or_id],
        )?
        .ok_or_else(|| not_found("application", name_or_id))?;
    Ok(app_from_row(&row)?)
}

fn json<T: Serialize>(value: &T) -> StoreResult<Value> {
    serde_json::to_value(value).map_err(|error| StoreError::Backend(error.to_string()))
}

impl ApplicationStore for PostgresStore {
    fn create_app(&self, app: AppWrite) -> StoreResult<AppRecord> {
        let id = new_id();
        let (nonce, sealed) = self
            .cipher
            .seal(&id, &app.token)
            .map_err(|error| StoreError::Secret(error.to_string()))?;
        let settings = json(&app.settings)?;
        let pacing = json(&app.pacing)?;
        let guard = json(&app.guard)?;
        let passwords = json(&app.passwords)?;
        self.write(|transaction| {
            let taken = transaction
                .query_opt("SELECT 1 FROM applications WHERE name = $1", &[&app.name])?
                .is_some();
            if taken {
                return Err(StoreError::Conflict {
                    entity: "application",
                    field: "name",
                    value: app.name.clone(),
                }
                .into());
            }
            let at = Timestamp::now();
            transaction.execute(
                "INSERT INTO applications (id, name, label, connector, base_url, token_nonce,
                     token_sealed, manage_groups, state, settings, version, created, modified,
                     pacing, guard, password_policy)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'inactive', $9, 1, $10, $10, $11, $12, $13)",
                &[
                    &id,
                    &app.name,
                    &app.label,
                    &app.connector,
                    &app.base_url,
                    &nonce,
                    &sealed,
                    &app.manage_groups,
                    &settings,
                    &at,
                    &pacing,
                    &guard,
                    &passwords,
                ],
            )?;
            append_change(
                transaction,
                &id,
                ChangeKind::AppCreated {
                    name: app.name.clone(),
                },
            )?;
            app_in(transaction, &id)
        })
    }

    fn get_app(&self, name_or_id: &str) -> StoreResult<Option<AppRecord>> {
        self.read(|transaction| match app_in(transaction, name_or_id) {
            Ok(app) => Ok(Some(app)),
            Err(Failure::Store(StoreError::NotFound { .. })) => Ok(None),
            Err(failure) => Err(failure),
        })
    }

    fn list_apps(&self, page: Page) -> StoreResult<Listing<AppRecord>> {
        let (limit, offset) = page_clause(page);
        self.read(|transaction| {
            let total: i64 = transaction
                .query_one("SELECT COUNT(*) FROM applications", &[])?
                .get(0);
            let rows = transaction.query(
                &format!("SELECT {APP_COLUMNS} FROM applications ORDER BY name LIMIT $1 OFFSET $2"),
                &[&limit, &offset],
            )?;
            Ok(Listing {
                items: collect(rows, app_from_row)?,
                total: to_u64(total),
            })
        })
    }

    fn update_app(&self, name_or_id: &str, update: AppUpdate) -> StoreResult<AppRecord> {
        // Each attempt of the transaction seals with a nonce of its own.
        let resealed = |app_id: &str| -> StoreResult<Option<(Vec<u8>, Vec<u8>)>> {
            match &update.token {
                Some(token) => self
                    .cipher
                    .seal(app_id, token)
                    .map(Some)
                    .map_err(|error| StoreError::Secret(error.to_string())),
                None => Ok(None),
            }
        };
        self.write(|transaction| {
            let mut app = app_in(transaction, name_or_id)?;
            let changes = rules::apply_app_update(&mut app, &update);
            if let Some((nonce, sealed)) = resealed(&app.id)? {
                transaction.execute(
                    "UPDATE applications SET token_nonce = $2, token_sealed = $3 WHERE id = $1",
                    &[&app.id, &nonce, &sealed],
                )?;
            }
            if changes.is_empty() {
                return Ok(app);
            }
            transaction.execute(
                "UPDATE applications SET label = $2, base_url = $3, manage_groups = $4, state = $5,
                     settings = $6, version = version + 1, modified = $7, capabilities = $8,
                     pacing = $9, state_reason = $10, guard = $11, password_policy = $12
                 WHERE id = $1",
                &[
                    &app.id,
                    &app.label,
                    &app.base_url,
                    &app.manage_groups,
                    &app.state.as_str(),
                    &json(&app.settings)?,
                    &Timestamp::now(),
                    &app.capabilities,
                    &json(&app.pacing)?,
                    &app.state_reason,
                    &json(&app.guard)?,
                    &json(&app.passwords)?,
                ],
            )?;
            for change in changes {
                append_change(transaction, &app.id, change)?;
            }
            app_in(transaction, &app.id)
        })
    }

    fn delete_app(&self, name_or_id: &str) -> StoreResult<()> {
        self.write(|transaction| {
            let app = app_in(transaction, name_or_id)?;
            transaction.execute("DELETE FROM applications WHERE id = $1", &[&app.id])?;
            append_change(
                transaction,
                &app.id,
                ChangeKind::AppDeleted {
                    name: app.name.clone(),
                },
            )
        })
    }

    fn app_token(&self, name_or_id: &str) -> StoreResult<Secret> {
        let (id, nonce, sealed): (String, Vec<u8>, Vec<u8>) = self.read(|transaction| {
            let row = transaction
                .query_opt(
                    "SELECT id, token_nonce, token_sealed FROM applications
                     WHERE id = $1 OR name = $1",
                    &[&name_or_id],
                )?
                .ok_or_else(|| not_found("application", name_or_id))?;
            Ok((row.get(0), row.get(1), row.get(2)))
        })?;
        self.cipher.open(&id, &nonce, &sealed).ok_or_else(|| {
            StoreError::Secret(
                "the host key differs from the one that sealed it; rotate the token".into(),
            )
        })
    }
}
