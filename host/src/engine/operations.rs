//! What an operator does to one application on demand: activate and
//! deactivate it, replace its token, change or remove it, see the plan of a
//! sync, provision a user or a group now, reconcile, import the
//! application's own accounts, and release an account.
//!
//! [`Operations`] is the one door to these for every front end (the admin
//! API today). It owns the rules they share, so that no front end can skip
//! one:
//! - an application is named by its name or id; one that sends must be
//!   active and its connector served by this host;
//! - everything sent to an application goes through its shared client
//!   ([`Clients`]), so its rate limit, circuit breaker and `Retry-After`
//!   pause hold for work done on demand as for the engine's own;
//! - a change that moves an application to another origin must bring the
//!   token for it: the stored token is never sent to a server it was not
//!   given for;
//! - a new token is tested before it replaces the old one (an inactive
//!   application is not contacted; its token is tested on activation);
//! - every operation that changes something records its event; an event
//!   that cannot be recorded is logged, because what it describes has
//!   happened.
//!
//! Nothing here knows HTTP: [`OperationError`] says what went wrong and the
//! front end chooses how to answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::connections::{Clients, Unavailable};
use super::groups::{GroupSynced, USER_RELEASE, sync_group_now};
use super::import::{Imported, RemoteUser};
use super::lifecycle::{self, origin_move};
use super::plan::Planned;
use super::provision::{SyncError, Synced, Target, sync_user_now};
use super::reconcile::Reconciled;
use crate::runtime::{LoadedPlugin, PluginRegistry};
use crate::scim_client::ScimClient;
use crate::store::{
    AppRecord, AppState, AppUpdate, Event, EventQuery, LedgerChange, Outcome, Page, Secret,
    StoreError, StoreHandle, Timestamp, group_id_by_id_or_name, user_by_id_or_name,
};

/// Why an operation did not happen, or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("application {0:?} not found")]
    NoSuchApp(String),
    #[error("{app} is {state}: activate it first")]
    NotActive { app: String, state: &'static str },
    #[error("connector {0} is not served by this host")]
    ConnectorNotServed(String),
    /// The base URL cannot be built from the application's settings.
    #[error("{0}")]
    BaseUrl(String),
    /// The application failed a connection test or a request.
    #[error("the connection test of {app} failed: {summary}")]
    ConnectionFailed { app: String, summary: String },
    /// The connector failed (trap, deadline, bad output).
    #[error("{0}")]
    Connector(String),
    /// The application cannot be served at all right now.
    #[error(transparent)]
    Unavailable(Unavailable),
    /// No temporary password could be made for a new account.
    #[error(transparent)]
    Password(#[from] super::passwords::TemporaryPasswordError),
    #[error(
        "this change moves {app} from {from} to {to}: give the application's token for {to} in the same request (\"token\"), so that the stored one is never sent to another server"
    )]
    MovedWithoutToken {
        app: String,
        from: String,
        to: String,
    },
    #[error("the reconcile of {app} stopped: {reason}")]
    ReconcileFailed { app: String, reason: String },
    #[error("no account of {app} is linked to {user_id}")]
    NotLinked { app: String, user_id: String },
    #[error(
        "{user_id} is in the scope of {app}: the next sync would take account {remote_id} over again; take the user out of scope first"
    )]
    InScope {
        app: String,
        user_id: String,
        remote_id: String,
    },
}

impl OperationError {
    /// A sync that failed in `app`, in the terms of an operation.
    fn of_sync(app: &AppRecord, error: SyncError) -> Self {
        match error {
            SyncError::Store(error) => OperationError::Store(error),
            SyncError::Application(error) => OperationError::ConnectionFailed {
                app: app.name.clone(),
                summary: error.to_string(),
            },
            SyncError::Connector { .. } => OperationError::Connector(error.to_string()),
            SyncError::Unavailable(unavailable) => OperationError::Unavailable(unavailable),
            SyncError::Password(error) => OperationError::Password(error),
        }
    }
}

/// One user provisioned now.
#[derive(Debug, Clone)]
pub struct ProvisionedUser {
    pub user_id: String,
    pub result: Synced,
    /// The events the attempt recorded about the user, newest first.
    pub events: Vec<Event>,
}

/// One group provisioned now, with its users.
#[derive(Debug, Clone)]
pub struct ProvisionedGroup {
    pub group_id: String,
    /// Its users (nested groups' included), each with what was done.
    pub members: Vec<(String, Synced)>,
    pub group: GroupSynced,
    /// The events the attempt recorded, newest first.
    pub events: Vec<Event>,
}

/// An account the host no longer manages.
#[derive(Debug, Clone)]
pub struct Released {
    /// The directory user (possibly deleted) the account was linked to.
    pub user_id: String,
    /// The account in the application, left as it is.
    pub remote_id: String,
}

/// The operations on demand, over the host's store, connectors and the
/// applications' shared clients. Cheap to clone.
#[derive(Clone)]
pub struct Operations {
    store: StoreHandle,
    plugins: Option<Arc<PluginRegistry>>,
    clients: Arc<Clients>,
}

impl std::fmt::Debug for Operations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operations").finish_non_exhaustive()
    }
}

impl Operations {
    /// `plugins` is `None` on a host that serves no connector: every
    /// operation that needs one is then refused.
    pub fn new(
        store: StoreHandle,
        plugins: Option<Arc<PluginRegistry>>,
        clients: Arc<Clients>,
    ) -> Self {
        Operations {
            store,
            plugins,
            clients,
        }
    }

    /// The connectors this host serves, if any.
    pub fn plugins(&self) -> Option<&Arc<PluginRegistry>> {
        self.plugins.as_ref()
    }

    /// An application by name or id.
    pub async fn app(&self, app: &str) -> Result<AppRecord, OperationError> {
        self.store
            .get_app(app)
            .await?
            .ok_or_else(|| OperationError::NoSuchApp(app.to_string()))
    }

    /// The connector serving `app` on this host.
    pub fn served(&self, app: &AppRecord) -> Result<Arc<LoadedPlugin>, OperationError> {
        self.plugins
            .as_ref()
            .and_then(|plugins| plugins.get(&app.connector))
            .ok_or_else(|| OperationError::ConnectorNotServed(app.connector.clone()))
    }

    /// An application that is active.
    async fn active_app(&self, app: &str) -> Result<AppRecord, OperationError> {
        let app = self.app(app).await?;
        if app.state != AppState::Active {
            return Err(OperationError::NotActive {
                app: app.name,
                state: app.state.as_str(),
            });
        }
        Ok(app)
    }

    /// The application's shared client.
    async fn client(&self, app: &AppRecord) -> Result<Arc<ScimClient>, OperationError> {
        self.clients
            .client(&self.store, app)
            .await
            .map_err(|error| match error {
                SyncError::Store(error) => OperationError::Store(error),
                SyncError::Unavailable(Unavailable::BaseUrl(reason)) => {
                    OperationError::BaseUrl(reason)
                }
                other => OperationError::ConnectionFailed {
                    app: app.name.clone(),
                    summary: other.to_string(),
                },
            })
    }

    /// Records an event; a failure to record is logged, not returned: the
    /// change it describes has happened.
    pub async fn record(&self, event: Event) {
        if let Err(error) = self.store.record_event(event).await {
            tracing::error!("cannot record an event: {error:?}");
        }
    }

    /// Activates an application: its connection is tested (what it
    /// supports is kept) and provisioning starts. A failed test leaves it
    /// as it was.
    pub async fn activate(&self, app: &str) -> Result<AppRecord, OperationError> {
        let current = self.app(app).await?;
        let client = self.client(&current).await?;
        match lifecycle::test_with(&client).await {
            Ok(tested) => {
                let update = AppUpdate {
                    state: Some(AppState::Active),
                    capabilities: Some(tested.capabilities),
                    ..AppUpdate::default()
                };
                let app = self.store.update_app(&current.id, update).await?;
                self.record(lifecycle::event(
                    &app,
                    lifecycle::ACTIVATE,
                    Outcome::Success,
                    Some(tested.http_status),
                    tested.summary,
                ))
                .await;
                Ok(app)
            }
            Err(untested) => {
                self.record(lifecycle::event(
                    &current,
                    lifecycle::ACTIVATE,
                    Outcome::Failure,
                    untested.http_status,
                    untested.summary.clone(),
                ))
                .await;
                Err(OperationError::ConnectionFailed {
                    app: current.name,
                    summary: untested.summary,
                })
            }
        }
    }

    /// Deactivates an application: nothing more is sent.
    pub async fn deactivate(&self, app: &str) -> Result<AppRecord, OperationError> {
        let update = AppUpdate {
            state: Some(AppState::Inactive),
            ..AppUpdate::default()
        };
        let app = self.store.update_app(app, update).await?;
        self.record(lifecycle::event(
            &app,
            lifecycle::DELETE,
            Outcome::Success,
            None,
            "deactivated: nothing more is sent",
        ))
        .await;
        Ok(app)
    }

    /// Replaces the application's token, tested first unless the
    /// application is inactive; a token the application refuses is not
    /// kept.
    pub async fn rotate_token(
        &self,
        app: &str,
        token: Secret,
    ) -> Result<AppRecord, OperationError> {
        let current = self.app(app).await?;
        let tested = if current.state == AppState::Inactive {
            None
        } else {
            match lifecycle::test_connection(&current, &token).await {
                Ok(tested) => Some(tested),
                Err(untested) => {
                    self.record(lifecycle::event(
                        &current,
                        lifecycle::REAUTH,
                        Outcome::Failure,
                        untested.http_status,
                        format!("new token refused, the old one stays: {}", untested.summary),
                    ))
                    .await;
                    return Err(OperationError::ConnectionFailed {
                        app: current.name,
                        summary: untested.summary,
                    });
                }
            }
        };
        let update = AppUpdate {
            token: Some(token),
            ..AppUpdate::default()
        };
        let app = self.store.update_app(&current.id, update).await?;
        let (status, summary) = match tested {
            Some(tested) => (
                Some(tested.http_status),
                format!("token replaced; {}", tested.summary),
            ),
            None => (
                None,
                "token replaced; it is tested when the application is activated".to_string(),
            ),
        };
        self.record(lifecycle::event(
            &app,
            lifecycle::REAUTH,
            Outcome::Success,
            status,
            summary,
        ))
        .await;
        Ok(app)
    }

    /// Changes `current` by `update` (absent fields stay; the caller has
    /// checked the values). A change that moves the application to another
    /// origin must carry the token. The event lists what changed; a change
    /// of nothing records none.
    pub async fn update(
        &self,
        current: &AppRecord,
        update: AppUpdate,
    ) -> Result<AppRecord, OperationError> {
        let settings_now: BTreeMap<String, String> = current.settings.iter().cloned().collect();
        let settings_then: BTreeMap<String, String> = match &update.settings {
            Some(settings) => settings.iter().cloned().collect(),
            None => settings_now.clone(),
        };
        let base_url_then = update.base_url.as_deref().unwrap_or(&current.base_url);
        let moved = origin_move(
            &current.base_url,
            &settings_now,
            base_url_then,
            &settings_then,
        );
        if let (Some(moved), None) = (&moved, &update.token) {
            return Err(OperationError::MovedWithoutToken {
                app: current.name.clone(),
                from: moved.from.clone(),
                to: moved.to.clone(),
            });
        }
        let changed: Vec<&str> = [
            ("label", update.label.is_some()),
            ("base URL", update.base_url.is_some()),
            ("group management", update.manage_groups.is_some()),
            ("settings", update.settings.is_some()),
            ("pacing", update.pacing.is_some()),
            ("guard thresholds", update.guard.is_some()),
            ("token", update.token.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, is_set)| is_set.then_some(name))
        .collect();
        let app = self.store.update_app(&current.id, update).await?;
        if !changed.is_empty() {
            let origin_note = moved
                .map(|moved| format!("; origin {} → {}", moved.from, moved.to))
                .unwrap_or_default();
            self.record(lifecycle::event(
                &app,
                lifecycle::UPDATE,
                Outcome::Success,
                None,
                format!("changed: {}{origin_note}", changed.join(", ")),
            ))
            .await;
        }
        Ok(app)
    }

    /// Removes an application from the host; its accounts are left as they
    /// are.
    pub async fn remove(&self, app: &str) -> Result<(), OperationError> {
        let current = self.app(app).await?;
        self.store.delete_app(&current.id).await?;
        self.record(lifecycle::event(
            &current,
            lifecycle::DELETE,
            Outcome::Success,
            None,
            "removed from scimlink",
        ))
        .await;
        Ok(())
    }

    /// What a sync of every user of the application would send now. The
    /// application is not contacted.
    pub async fn plan(&self, app: &str) -> Result<Vec<Planned>, OperationError> {
        let app = self.app(app).await?;
        let plugin = self.served(&app)?;
        // The plan calls the connector and reads the store throughout: it
        // runs off the async runtime.
        let planned = self
            .store
            .run_fallible(move |store| {
                super::plan::plan(store, &plugin, &app).map_err(|error| match error {
                    SyncError::Store(error) => OperationError::Store(error),
                    other => OperationError::Connector(other.to_string()),
                })
            })
            .await?;
        Ok(planned)
    }

    /// Reads the application back and repairs every drift; the reconcile
    /// is recorded as one event either way.
    pub async fn reconcile(&self, app: &str) -> Result<Reconciled, OperationError> {
        let app = self.active_app(app).await?;
        let plugin = self.served(&app)?;
        let client = self.client(&app).await?;
        let target = self.target(&app, &plugin, &client);
        let result = super::reconcile::reconcile_app(&target).await;
        let failure = result.as_ref().err().map(ToString::to_string);
        let done = super::worker::record_reconcile(&target, result).await?;
        match failure {
            Some(reason) => Err(OperationError::ReconcileFailed {
                app: app.name,
                reason,
            }),
            None => Ok(done),
        }
    }

    /// The application's accounts, each new (only there) or imported
    /// (linked to a directory user). Nothing is written.
    pub async fn importable(&self, app: &str) -> Result<Vec<RemoteUser>, OperationError> {
        let app = self.active_app(app).await?;
        let plugin = self.served(&app)?;
        let client = self.client(&app).await?;
        let target = self.target(&app, &plugin, &client);
        super::import::remote_users(&target).await.map_err(|error| {
            OperationError::ConnectionFailed {
                app: app.name.clone(),
                summary: error.to_string(),
            }
        })
    }

    /// Imports the accounts that exist only in the application (those of
    /// `users`, by remote id, or all) into the directory, in `group`
    /// (`APP-imported` when `None`), bound to the application.
    pub async fn import(
        &self,
        app: &str,
        users: Option<&[String]>,
        group: Option<String>,
    ) -> Result<Imported, OperationError> {
        let app = self.active_app(app).await?;
        let plugin = self.served(&app)?;
        let client = self.client(&app).await?;
        let group = group
            .filter(|group| !group.trim().is_empty())
            .unwrap_or_else(|| format!("{}-imported", app.name));
        let target = self.target(&app, &plugin, &client);
        super::import::import_users(&target, users, &group)
            .await
            .map_err(|error| OperationError::of_sync(&app, error))
    }

    /// Provisions one user (by id or userName) now; a new account joins its
    /// groups in the application at once, too.
    pub async fn provision_user(
        &self,
        app: &str,
        user: &str,
    ) -> Result<ProvisionedUser, OperationError> {
        let app = self.active_app(app).await?;
        let plugin = self.served(&app)?;
        let key = user.to_string();
        let user_id = self
            .store
            .run(move |store| Ok(user_by_id_or_name(store, &key)?.id))
            .await?;
        let client = self.client(&app).await?;
        let since = Timestamp::now();
        let target = self.target(&app, &plugin, &client);
        let failed = |error| OperationError::of_sync(&app, error);
        let result = sync_user_now(&target, &user_id).await.map_err(failed)?;
        if matches!(result, Synced::Created | Synced::TakenOver) {
            for group_id in self
                .store
                .bound_groups_containing(&app.id, &user_id)
                .await?
            {
                sync_group_now(&target, &group_id).await.map_err(failed)?;
            }
        }
        let events = self
            .events_since(&app, since)
            .await?
            .into_iter()
            .filter(|event| event.object_id.as_deref() == Some(user_id.as_str()))
            .collect();
        Ok(ProvisionedUser {
            user_id,
            result,
            events,
        })
    }

    /// Provisions one group (by id or name) now: each of its users, then
    /// the group with its membership when groups are managed.
    pub async fn provision_group(
        &self,
        app: &str,
        group: &str,
    ) -> Result<ProvisionedGroup, OperationError> {
        let app = self.active_app(app).await?;
        let plugin = self.served(&app)?;
        let key = group.to_string();
        let (group_id, users) = self
            .store
            .run(move |store| {
                let group_id = group_id_by_id_or_name(store, &key)?;
                let users = store.users_of(std::slice::from_ref(&group_id))?;
                Ok((group_id, users))
            })
            .await?;
        let client = self.client(&app).await?;
        let since = Timestamp::now();
        let target = self.target(&app, &plugin, &client);
        let failed = |error| OperationError::of_sync(&app, error);
        let mut members = Vec::with_capacity(users.len());
        for user_id in users {
            let result = sync_user_now(&target, &user_id).await.map_err(failed)?;
            members.push((user_id, result));
        }
        let group = sync_group_now(&target, &group_id).await.map_err(failed)?;
        let events = self.events_since(&app, since).await?;
        Ok(ProvisionedGroup {
            group_id,
            members,
            group,
            events,
        })
    }

    /// Stops managing the account linked to a user (by id or userName; a
    /// user deleted from the directory by its old id) who is out of the
    /// application's scope: the link is forgotten and the account is left
    /// as it is. A user in scope is refused, since the next sync would take
    /// the account over again.
    pub async fn release(&self, app: &str, user: &str) -> Result<Released, OperationError> {
        let app = self.app(app).await?;
        let key = user.to_string();
        let user_id = self
            .store
            .run(move |store| match user_by_id_or_name(store, &key) {
                Ok(found) => Ok(found.id),
                Err(StoreError::NotFound { .. }) => Ok(key),
                Err(error) => Err(error),
            })
            .await?;
        let held = super::locks::hold_user(&self.store, &app.id, &user_id).await?;
        let Some(entry) = held.entry.clone() else {
            return Err(OperationError::NotLinked {
                app: app.name,
                user_id,
            });
        };
        if held.in_scope {
            return Err(OperationError::InScope {
                app: app.name,
                user_id,
                remote_id: entry.remote_id,
            });
        }
        let event = Event {
            id: String::new(),
            at: Timestamp::now(),
            app_id: Some(app.id.clone()),
            app_name: Some(app.name.clone()),
            object_kind: Some("user".into()),
            object_id: Some(user_id.clone()),
            operation: USER_RELEASE.to_string(),
            outcome: Outcome::Success,
            rule: Some("operator: released".into()),
            http_status: None,
            summary: format!(
                "account {} left as it is in the application; no longer managed",
                entry.remote_id
            ),
        };
        let forget = LedgerChange::Remove {
            app_id: &app.id,
            object_kind: "user",
            object_id: &user_id,
        };
        self.store.record_with_ledger(forget, event).await?;
        drop(held);
        Ok(Released {
            user_id,
            remote_id: entry.remote_id,
        })
    }

    fn target<'a>(
        &'a self,
        app: &'a AppRecord,
        plugin: &'a LoadedPlugin,
        client: &'a ScimClient,
    ) -> Target<'a> {
        Target {
            store: &self.store,
            app,
            plugin,
            client,
            turn: None,
        }
    }

    /// The events recorded for `app` since `since`, newest first: what an
    /// operation on demand shows of itself. At most 1,000.
    async fn events_since(
        &self,
        app: &AppRecord,
        since: Timestamp,
    ) -> Result<Vec<Event>, StoreError> {
        let query = EventQuery {
            app_id: Some(app.id.clone()),
            since: Some(since),
            ..EventQuery::default()
        };
        let page = Page {
            offset: 0,
            limit: 1000,
        };
        Ok(self.store.events(&query, page).await?.items)
    }
}
