//! [`ApplicationStore`] in SQLite: the `applications` table, each token
//! sealed in its `token_sealed` column with its nonce beside it.

use super::*;

pub(super) fn app_from_row(row: &Row<'_>) -> RowResult<AppRecord> {
    let state: String = row.get(6)?;
    let settings: String = row.get(7)?;
    let Some(state) = AppState::parse(&state) else {
        return Ok(Err(StoreError::Backend(format!(
            "unknown application state {state:?}"
        ))));
    };
    let settings: Vec<(String, String)> = match serde_json::from_str(&settings) {
        Ok(settings) => settings,
        Err(error) => return Ok(Err(StoreError::Backend(error.to_string()))),
    };
    Ok(Ok(AppRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        label: row.get(2)?,
        connector: row.get(3)?,
        base_url: row.get(4)?,
        manage_groups: row.get(5)?,
        state,
        settings,
        version: row.get(8)?,
        created: row.get(9)?,
        modified: row.get(10)?,
        capabilities: serde_json::from_str(&row.get::<_, String>(11)?).unwrap_or(Value::Null),
        pacing: serde_json::from_str(&row.get::<_, String>(12)?).unwrap_or_default(),
        state_reason: row.get(13)?,
        guard: serde_json::from_str(&row.get::<_, String>(14)?).unwrap_or_default(),
        passwords: serde_json::from_str(&row.get::<_, String>(15)?).unwrap_or_default(),
    }))
}

impl ApplicationStore for SqliteStore {
    fn create_app(&self, app: AppWrite) -> StoreResult<AppRecord> {
        let id = new_id();
        let (nonce, sealed) = self
            .cipher
            .seal(&id, &app.token)
            .map_err(|error| StoreError::Secret(error.to_string()))?;
        let settings = serde_json::to_string(&app.settings)
            .map_err(|error| StoreError::Backend(error.to_string()))?;
        self.write(|transaction| {
            let taken = transaction
                .prepare_cached("SELECT 1 FROM applications WHERE name = ?1")?
                .exists([&app.name])?;
            if taken {
                return Err(StoreError::Conflict {
                    entity: "application",
                    field: "name",
                    value: app.name.clone(),
                });
            }
            let at = Timestamp::now();
            transaction.execute(
                "INSERT INTO applications (id, name, label, connector, base_url, token_nonce,
                     token_sealed, manage_groups, state, settings, version, created, modified, pacing,
                     guard, password_policy)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'inactive', ?9, 1, ?10, ?10, ?11, ?12, ?13)",
                params![
                    id,
                    app.name,
                    app.label,
                    app.connector,
                    app.base_url,
                    nonce,
                    sealed,
                    app.manage_groups,
                    settings,
                    at,
                    serde_json::to_string(&app.pacing).unwrap_or_else(|_| "{}".into()),
                    serde_json::to_string(&app.guard).unwrap_or_else(|_| "{}".into()),
                    serde_json::to_string(&app.passwords).unwrap_or_else(|_| "{}".into())
                ],
            )?;
            append_change(transaction, &id, ChangeKind::AppCreated { name: app.name.clone() })?;
            self.app_in(transaction, &id)
        })
    }

    fn get_app(&self, name_or_id: &str) -> StoreResult<Option<AppRecord>> {
        self.read(|connection| match self.app_in(connection, name_or_id) {
            Ok(app) => Ok(Some(app)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        })
    }

    fn list_apps(&self, page: Page) -> StoreResult<Listing<AppRecord>> {
        let (limit, offset) = page_clause(page);
        self.read(|connection| {
            let total: u64 = connection
                .prepare_cached("SELECT COUNT(*) FROM applications")?
                .query_row([], |row| row.get(0))?;
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {APP_COLUMNS} FROM applications ORDER BY name LIMIT ?1 OFFSET ?2"
            ))?;
            let items = collect(&mut statement, params![limit, offset], app_from_row)?;
            Ok(Listing { items, total })
        })
    }

    fn update_app(&self, name_or_id: &str, update: AppUpdate) -> StoreResult<AppRecord> {
        self.write(|transaction| {
            let mut app = self.app_in(transaction, name_or_id)?;
            let changes = rules::apply_app_update(&mut app, &update);
            if let Some(token) = &update.token {
                let (nonce, sealed) = self
                    .cipher
                    .seal(&app.id, token)
                    .map_err(|error| StoreError::Secret(error.to_string()))?;
                transaction.execute(
                    "UPDATE applications SET token_nonce = ?2, token_sealed = ?3 WHERE id = ?1",
                    params![app.id, nonce, sealed],
                )?;
            }
            if changes.is_empty() {
                return Ok(app);
            }
            let settings = serde_json::to_string(&app.settings)
                .map_err(|error| StoreError::Backend(error.to_string()))?;
            transaction.execute(
                "UPDATE applications SET label = ?2, base_url = ?3, manage_groups = ?4, state = ?5,
                     settings = ?6, version = version + 1, modified = ?7, capabilities = ?8,
                     pacing = ?9, state_reason = ?10, guard = ?11, password_policy = ?12
                 WHERE id = ?1",
                params![
                    app.id,
                    app.label,
                    app.base_url,
                    app.manage_groups,
                    app.state.as_str(),
                    settings,
                    Timestamp::now(),
                    app.capabilities.to_string(),
                    serde_json::to_string(&app.pacing).unwrap_or_else(|_| "{}".into()),
                    app.state_reason,
                    serde_json::to_string(&app.guard).unwrap_or_else(|_| "{}".into()),
                    serde_json::to_string(&app.passwords).unwrap_or_else(|_| "{}".into())
                ],
            )?;
            for change in changes {
                append_change(transaction, &app.id, change)?;
            }
            self.app_in(transaction, &app.id)
        })
    }

    fn delete_app(&self, name_or_id: &str) -> StoreResult<()> {
        self.write(|transaction| {
            let app = self.app_in(transaction, name_or_id)?;
            transaction.execute("DELETE FROM applications WHERE id = ?1", [&app.id])?;
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
        self.read(|connection| {
            let (id, nonce, sealed): (String, Vec<u8>, Vec<u8>) = connection
                .query_row(
                    "SELECT id, token_nonce, token_sealed FROM applications WHERE id = ?1 OR name = ?1",
                    [name_or_id],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?
                .ok_or_else(|| not_found("application", name_or_id))?;
            self.cipher.open(&id, &nonce, &sealed).ok_or_else(|| {
                StoreError::Secret(
                    "the host key differs from the one that sealed it; rotate the token".into(),
                )
            })
        })
    }
}
