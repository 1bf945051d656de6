//! The engine's loop: it consumes the outbox and syncs every user a change
//! touches in every active application.
//!
//! The outbox is the durable queue. A change is claimed with a lease and
//! completed only after every sync it caused has finished (or failed for
//! good, which an event records); a host killed in between leaves the lease
//! to expire and the change to be claimed again. Because a sync is
//! level-triggered ([`super::provision`]), running a change twice, or
//! changes out of order, converges on the same state.
//!
//! The loop runs on a thread of its own with a single-threaded runtime: the
//! store is synchronous, and its short calls then block nothing else.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::provision::{SyncError, Target, sync_user};
use crate::runtime::PluginRegistry;
use crate::scim_client::{ClientSettings, ScimClient};
use crate::store::{AppRecord, AppState, Change, Page, Store, StoreError};

/// How long a claimed change is held before another consumer may take it:
/// after a crash, how long its changes wait. A long change renews its lease
/// every [`RENEW_EVERY`].
const LEASE_SECONDS: u32 = 20;
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// Changes claimed at once.
const BATCH: u32 = 100;
/// How often an idle engine looks for work.
const IDLE_POLL: Duration = Duration::from_millis(50);

pub struct Engine {
    store: Arc<dyn Store>,
    plugins: Arc<PluginRegistry>,
    consumer: String,
    clients: HashMap<String, (i64, Arc<ScimClient>)>,
    /// The changes claimed now, and when their leases were last renewed.
    claimed: Vec<i64>,
    renewed: std::time::Instant,
}

impl Engine {
    /// Starts the engine on its own thread.
    pub fn start(
        store: Arc<dyn Store>,
        plugins: Arc<PluginRegistry>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("scimlink-engine".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!("the provisioning engine cannot start: {error}");
                        return;
                    }
                };
                let mut engine = Engine {
                    store,
                    plugins,
                    consumer: format!("engine-{}", uuid::Uuid::new_v4()),
                    clients: HashMap::new(),
                    claimed: Vec::new(),
                    renewed: std::time::Instant::now(),
                };
                runtime.block_on(engine.run());
            })
    }

    async fn run(&mut self) {
        loop {
            match self.step().await {
                Ok(0) => tokio::time::sleep(IDLE_POLL).await,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!("provisioning engine: {error}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Claims a batch of changes and applies them; how many it claimed.
    pub async fn step(&mut self) -> Result<usize, StoreError> {
        let changes = self
            .store
            .claim_changes(&self.consumer, BATCH, LEASE_SECONDS)?;
        let claimed = changes.len();
        self.claimed = changes.iter().map(|change| change.seq).collect();
        self.renewed = std::time::Instant::now();
        let mut done = Vec::with_capacity(claimed);
        if changes.is_empty() {
            return Ok(0);
        }
        // Read once a batch: a user's change goes to every active app.
        let active = self.active_apps()?;
        for change in changes {
            match self.apply(&change, &active).await {
                Ok(()) => done.push(change.seq),
                // Left to its lease: it is tried again when the lease ends.
                Err(error) => tracing::warn!(
                    "change {} ({} {} {}) waits for another try: {error}",
                    change.seq,
                    change.entity,
                    change.entity_id,
                    change.action
                ),
            }
        }
        self.store.complete_changes(&self.consumer, &done)?;
        Ok(claimed)
    }

    fn active_apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        let mut apps = Vec::new();
        let mut offset = 0;
        loop {
            let page = self.store.list_apps(Page {
                offset,
                limit: 1000,
            })?;
            let count = page.items.len() as u64;
            apps.extend(
                page.items
                    .into_iter()
                    .filter(|app| app.state == AppState::Active),
            );
            offset += count;
            if count == 0 || offset >= page.total {
                return Ok(apps);
            }
        }
    }

    /// The users a change touches, per application.
    fn affected(
        &self,
        change: &Change,
        active: &[AppRecord],
    ) -> Result<Vec<(AppRecord, BTreeSet<String>)>, StoreError> {
        let ids = |key: &str| -> BTreeSet<String> {
            change
                .detail
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        };
        let everywhere =
            |users: BTreeSet<String>| -> Result<Vec<(AppRecord, BTreeSet<String>)>, StoreError> {
                Ok(active
                    .iter()
                    .map(|app| (app.clone(), users.clone()))
                    .collect())
            };
        let one_app =
            |users: BTreeSet<String>| -> Result<Vec<(AppRecord, BTreeSet<String>)>, StoreError> {
                Ok(self
                    .store
                    .get_app(&change.entity_id)?
                    .filter(|app| app.state == AppState::Active)
                    .map(|app| vec![(app, users)])
                    .unwrap_or_default())
            };
        match (change.entity.as_str(), change.action.as_str()) {
            ("user", _) => everywhere(BTreeSet::from([change.entity_id.clone()])),
            // A member may be a group: its users (nested included) are
            // the ones whose scope may have changed.
            ("group", "members-changed") => {
                let mut members: Vec<String> = ids("added").into_iter().collect();
                members.extend(ids("removed"));
                everywhere(self.store.users_of(&members)?.into_iter().collect())
            }
            ("group", "deleted") => {
                let members: Vec<String> = ids("members").into_iter().collect();
                everywhere(self.store.users_of(&members)?.into_iter().collect())
            }
            ("binding", "bound") => {
                let users = self
                    .store
                    .users_in_scope(&change.entity_id)?
                    .into_iter()
                    .collect();
                one_app(users)
            }
            ("binding", "unbound") => {
                let members: Vec<String> = ids("members").into_iter().collect();
                one_app(self.store.users_of(&members)?.into_iter().collect())
            }
            ("app", "activated") => {
                // The first sync: everyone in scope, and every account the
                // ledger knows (some may have left scope meanwhile).
                let mut users: BTreeSet<String> = self
                    .store
                    .users_in_scope(&change.entity_id)?
                    .into_iter()
                    .collect();
                users.extend(
                    self.store
                        .ledger_entries(&change.entity_id, "user")?
                        .into_iter()
                        .map(|entry| entry.object_id),
                );
                one_app(users)
            }
            _ => Ok(Vec::new()),
        }
    }

    fn client(&mut self, app: &AppRecord) -> Result<Arc<ScimClient>, SyncError> {
        if let Some((version, client)) = self.clients.get(&app.id)
            && *version == app.version
        {
            return Ok(Arc::clone(client));
        }
        let base =
            super::lifecycle::resolved_base_url(app).map_err(|reason| SyncError::Connector {
                connector: app.connector.clone(),
                reason,
            })?;
        let token = self.store.app_token(&app.id)?;
        let settings = ClientSettings::paced(&app.pacing);
        let client = ScimClient::new(&base, &token, settings)?;
        self.clients
            .insert(app.id.clone(), (app.version, Arc::clone(&client)));
        Ok(client)
    }

    async fn apply(&mut self, change: &Change, active: &[AppRecord]) -> Result<(), SyncError> {
        for (app, users) in self.affected(change, active)? {
            let Some(plugin) = self.plugins.get(&app.connector) else {
                return Err(SyncError::Connector {
                    connector: app.connector.clone(),
                    reason: "not served by this host".into(),
                });
            };
            let client = self.client(&app)?;
            let target = Target {
                store: self.store.as_ref(),
                app: &app,
                plugin: &plugin,
                client: &client,
            };
            for user in &users {
                if self.renewed.elapsed() >= RENEW_EVERY {
                    self.store
                        .renew_claims(&self.consumer, &self.claimed, LEASE_SECONDS)?;
                    self.renewed = std::time::Instant::now();
                }
                match sync_user(&target, user).await {
                    Ok(_) => {}
                    // Failed for good: the event says so; another try
                    // would fail the same way.
                    Err(SyncError::Application(error)) if error.is_permanent() => {}
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(())
    }
}
