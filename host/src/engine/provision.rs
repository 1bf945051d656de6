//! Bringing one user's account in one application to the directory's
//! desired state.
//!
//! [`sync_user`] is level-triggered: it reads what the directory wants now
//! (in scope or not, the connector's document) and what the application
//! holds (the ledger), and sends only the difference. Running it twice does
//! nothing the second time, which is what makes a retried or replayed
//! change safe:
//! - no ledger entry and in scope: look the account up with the connector's
//!   filters, in order; a hit is taken over (updated and linked) only when
//!   [`super::takeover`] allows it — the only one, carrying the filtered
//!   value, held by no other directory user — else refused with a dead
//!   letter; no hit at all means create;
//! - a ledger entry whose document hash equals the new one: nothing is sent;
//! - a changed document: the account is replaced (`PUT`); an account deleted
//!   in the application is looked up and created again;
//! - out of scope with a ledger entry: deactivated (`active` false) or
//!   deleted, as the connector's manifest says, once the deprovisioning
//!   guard admits it ([`super::guard`]).
//!
//! Every sync holds the user's lock and decides on what it reads under it
//! ([`super::locks::hold_user`]).
//!
//! Every request that is sent ends in an audit event.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::directory_user::directory_user;
use super::locks::{HeldUser, hold_user, hold_user_and_password, hold_users};
use super::passwords::{self, Password};
use super::takeover::{Candidate, LookupKind, vet};
use crate::runtime::LoadedPlugin;
use crate::runtime::contract::{Offboarding, Setting, UpdateMethod};
use crate::scim_client::{ScimClient, ScimClientError, ScimRequest, percent_encode, user_path};
use crate::store::Timestamp;
use crate::store::{AppRecord, Event, LedgerChange, LedgerEntry, Outcome, StoreError, StoreHandle};

pub const LOOKUP: &str = "user_lookup_provision";
pub const CREATE: &str = "user_create_provision";
pub const UPDATE: &str = "user_update_provision";
pub const DEPROVISION: &str = "user_deprovision";
pub const DELETE: &str = "user_delete_provision";

pub(crate) use crate::store::rules::DEACTIVATED;

/// What a sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Synced {
    Unchanged,
    Created,
    TakenOver,
    Updated,
    Deactivated,
    Deleted,
    /// The connector refused to map the user, or the lookup was ambiguous:
    /// an event says why; nothing was sent that could be wrong.
    Refused,
    /// The deprovisioning guard holds the offboarding for an operator
    /// ([`super::guard`]): nothing was sent, the ledger is as it was.
    Held,
}

/// Why a sync could not finish; the change that caused it is tried again.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Application(#[from] ScimClientError),
    #[error("connector {connector}: {reason}")]
    Connector { connector: String, reason: String },
    /// The application cannot be served at all (its connector, settings or
    /// token): nothing of any object can be sent until the cause is gone.
    #[error(transparent)]
    Unavailable(#[from] super::connections::Unavailable),
    /// No temporary password could be made for a new account (the system's
    /// random source failed): nothing was sent.
    #[error(transparent)]
    Password(#[from] passwords::TemporaryPasswordError),
}

/// What one sync works with.
pub struct Target<'a> {
    pub store: &'a StoreHandle,
    pub app: &'a AppRecord,
    pub plugin: &'a LoadedPlugin,
    pub client: &'a ScimClient,
    /// The engine's lease on the application, when the engine syncs:
    /// nothing is sent once it is lost. `None` for work an operator asked
    /// for.
    pub turn: Option<&'a super::turn::Turn>,
}

impl Target<'_> {
    /// Sends `request` to the application, unless this is the engine's
    /// work and the engine no longer holds its turn.
    pub(crate) async fn send(
        &self,
        request: &ScimRequest,
    ) -> Result<crate::scim_client::ScimResponse, ScimClientError> {
        if self.turn.is_some_and(|turn| !turn.is_held()) {
            return Err(ScimClientError::NotSent(
                "this host's engine no longer holds its turn (it was paused or cut off past \
                 it); the engine that took over carries on"
                    .into(),
            ));
        }
        self.client.send(request).await
    }

    pub(crate) fn settings(&self) -> Vec<Setting> {
        settings_of(self.app)
    }

    pub(crate) async fn record(
        &self,
        user_id: &str,
        operation: &str,
        outcome: Outcome,
        rule: Option<String>,
        status: Option<u16>,
        summary: String,
    ) {
        self.record_object("user", user_id, operation, outcome, rule, status, summary)
            .await;
    }

    /// Records an event about one object (`user` or `group`) of the
    /// application; an event that cannot be recorded is logged.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn record_object(
        &self,
        object_kind: &str,
        object_id: &str,
        operation: &str,
        outcome: Outcome,
        rule: Option<String>,
        status: Option<u16>,
        summary: String,
    ) {
        let event = self.event(
            object_kind,
            object_id,
            operation,
            outcome,
            rule,
            status,
            summary,
        );
        if let Err(error) = self.store.record_event(event).await {
            tracing::error!("cannot record an event: {error}");
        }
    }

    /// An event about one of the application's users.
    pub(crate) fn user_event(
        &self,
        user_id: &str,
        operation: &str,
        outcome: Outcome,
        rule: Option<String>,
        status: Option<u16>,
        summary: String,
    ) -> Event {
        self.event("user", user_id, operation, outcome, rule, status, summary)
    }

    /// An event about one object of the application.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn event(
        &self,
        object_kind: &str,
        object_id: &str,
        operation: &str,
        outcome: Outcome,
        rule: Option<String>,
        status: Option<u16>,
        summary: String,
    ) -> Event {
        Event {
            id: String::new(),
            at: Timestamp::now(),
            app_id: Some(self.app.id.clone()),
            app_name: Some(self.app.name.clone()),
            object_kind: Some(object_kind.to_string()),
            object_id: Some(object_id.to_string()),
            operation: operation.to_string(),
            outcome,
            rule,
            http_status: status,
            summary,
        }
    }

    pub(crate) async fn failed(
        &self,
        user_id: &str,
        operation: &str,
        rule: Option<String>,
        error: &ScimClientError,
    ) {
        // Nothing happened in the application: the engine that took over
        // records what it does.
        if matches!(error, ScimClientError::NotSent(_)) {
            return;
        }
        if error.is_permanent() {
            self.dead_letter(
                "user",
                user_id,
                operation,
                error.to_string(),
                error.status(),
            )
            .await;
        }
        self.record(
            user_id,
            operation,
            Outcome::Failure,
            rule,
            error.status(),
            error.to_string(),
        )
        .await;
    }

    /// Records a lookup whose answer may not be taken over: a dead letter
    /// and a failure event, with `filter` as the rule; nothing is sent.
    pub(crate) async fn refuse(
        &self,
        user_id: &str,
        operation: &str,
        filter: &str,
        status: Option<u16>,
        reason: String,
    ) {
        self.dead_letter("user", user_id, operation, reason.clone(), None)
            .await;
        self.record(
            user_id,
            operation,
            Outcome::Failure,
            Some(filter.to_string()),
            status,
            reason,
        )
        .await;
    }

    /// Lists an object as failed for a reason another attempt will not
    /// cure, for an operator to see and replay.
    pub(crate) async fn dead_letter(
        &self,
        object_kind: &str,
        object_id: &str,
        operation: &str,
        reason: String,
        http_status: Option<u16>,
    ) {
        let letter = crate::store::DeadLetter {
            app_id: self.app.id.clone(),
            object_kind: object_kind.to_string(),
            object_id: object_id.to_string(),
            operation: operation.to_string(),
            reason,
            http_status,
            first_failed: Timestamp::now(),
            last_failed: Timestamp::now(),
            failures: 0,
        };
        if let Err(error) = self.store.put_dead_letter(&letter).await {
            tracing::error!("cannot list a dead letter: {error}");
        }
    }

    /// Records what the application now holds, and the event of the
    /// request it accepted, in one transaction; `document` is what it
    /// accepted, when the next update may be a PATCH against it.
    #[allow(clippy::too_many_arguments)]
    async fn link_recorded(
        &self,
        user_id: &str,
        remote_id: &str,
        doc_hash: &str,
        document: Option<&str>,
        password: Option<&Password>,
        operation: &str,
        rule: Option<String>,
        status: Option<u16>,
        summary: String,
    ) -> Result<(), StoreError> {
        let entry = LedgerEntry {
            app_id: self.app.id.clone(),
            object_kind: "user".into(),
            object_id: user_id.to_string(),
            remote_id: remote_id.to_string(),
            doc_hash: doc_hash.to_string(),
            document: document.map(str::to_string),
            updated: Timestamp::now(),
        };
        let summary = match password {
            Some(password) => format!("{summary}, with {}", password.described()),
            None => summary,
        };
        let event = self.event(
            "user",
            user_id,
            operation,
            Outcome::Success,
            rule,
            status,
            summary,
        );
        let change = match password {
            Some(password) => LedgerChange::PutWithPassword(&entry, password.sent()),
            None => LedgerChange::Put(&entry),
        };
        self.record_held(change, event).await
    }

    /// Records a ledger change and its event; where hosts share the store,
    /// only while this host still holds the user (its lease, taken with the
    /// user's lock): a host paused past it records nothing, since another
    /// host may have synced the user since.
    pub(crate) async fn record_held(
        &self,
        change: LedgerChange<'_>,
        event: Event,
    ) -> Result<(), StoreError> {
        if self.store.shared_by_hosts() {
            self.store
                .record_with_ledger_holding(super::locks::holder(), change, Some(event))
                .await
        } else {
            self.store.record_with_ledger(change, event).await
        }
    }

    /// Forgets the user's account (it is gone from the application) and
    /// records why, in one transaction.
    async fn forget_recorded(
        &self,
        user_id: &str,
        operation: &str,
        rule: Option<String>,
        status: Option<u16>,
        summary: String,
    ) -> Result<(), StoreError> {
        let event = self.event(
            "user",
            user_id,
            operation,
            Outcome::Success,
            rule,
            status,
            summary,
        );
        self.record_held(
            LedgerChange::Remove {
                app_id: &self.app.id,
                object_kind: "user",
                object_id: user_id,
            },
            event,
        )
        .await
    }
}

pub(crate) fn hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Brings `user_id`'s account in the target application to what the
/// directory wants.
pub async fn sync_user(target: &Target<'_>, user_id: &str) -> Result<Synced, SyncError> {
    let held = if passwords::taken(target) {
        hold_user_and_password(target.store, &target.app.id, user_id).await?
    } else {
        hold_user(target.store, &target.app.id, user_id).await?
    };
    sync_held(target, held).await
}

/// Users a sync of many holds and reads at once ([`sync_users`]).
const HELD_AT_ONCE: usize = 32;

/// [`sync_user`] for each of `user_ids`, `in_flight` at a time: each
/// result beside its user. Users are held and read [`HELD_AT_ONCE`] at a
/// time, one store call for them all ([`super::locks::hold_users`]): the
/// next chunk is held once the last user of this one has started, and each
/// user is let go when its sync ends. Where hosts share the store, a
/// chunk's leases are taken together too.
pub async fn sync_users<'u>(
    target: &Target<'_>,
    user_ids: &'u [String],
    in_flight: usize,
) -> Vec<(&'u String, Result<Synced, SyncError>)> {
    use futures_util::StreamExt;
    let with_password = passwords::taken(target);
    // A batch whose turn is over (its application let go, or taken over)
    // holds and reads no more users: each fails as its send would.
    let turn_over = || target.turn.is_some_and(|turn| !turn.is_held());
    let not_sent = || {
        SyncError::Application(ScimClientError::NotSent(
            "this host's engine no longer holds its turn; the engine that runs the \
             application carries on"
                .into(),
        ))
    };
    futures_util::stream::iter(user_ids.chunks(HELD_AT_ONCE))
        .then(|chunk| async move {
            let held = if turn_over() {
                None
            } else {
                Some(hold_users(target.store, &target.app.id, chunk, with_password).await)
            };
            (chunk, held)
        })
        .flat_map(|(chunk, held)| {
            let items: Vec<(&'u String, Result<HeldUser, SyncError>)> = match held {
                Some(Ok(held)) => {
                    let mut held: std::collections::HashMap<String, Result<HeldUser, StoreError>> =
                        held.into_iter().collect();
                    // A user named twice is synced once.
                    chunk
                        .iter()
                        .filter_map(|user| {
                            held.remove(user)
                                .map(|held| (user, held.map_err(SyncError::from)))
                        })
                        .collect()
                }
                // A chunk whose locks or read failed as a whole fails each
                // of its users, as a sync that cannot read its user does.
                Some(Err(error)) => {
                    let reason = error.to_string();
                    chunk
                        .iter()
                        .map(|user| {
                            (
                                user,
                                Err(SyncError::Store(StoreError::Backend(reason.clone()))),
                            )
                        })
                        .collect()
                }
                None => chunk.iter().map(|user| (user, Err(not_sent()))).collect(),
            };
            futures_util::stream::iter(items)
        })
        .map(|(user, held)| async move {
            match held {
                Ok(held) if turn_over() => {
                    drop(held);
                    (user, Err(not_sent()))
                }
                Ok(held) => {
                    // Boxed: a user's sync is kilobytes, and the futures
                    // in flight are moved as they are queued and polled.
                    let sync = Box::pin(sync_held(target, held));
                    (user, sync.await)
                }
                Err(error) => (user, Err(error)),
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await
}

/// [`sync_user`] once the user is held and read.
async fn sync_held(target: &Target<'_>, mut held: HeldUser) -> Result<Synced, SyncError> {
    let user_id = held.user_id.clone();
    let user_id = user_id.as_str();
    let store = target.store;
    let user = if held.in_scope {
        held.user.take()
    } else {
        None
    };
    let Some(user) = user else {
        let how = target.plugin.manifest().capabilities.offboarding;
        return offboard(target, &held, how, "out of scope").await;
    };
    let entry = held.entry.take();
    let record = directory_user(&user);
    let settings = target.settings();
    let desired = match desired_document(target.plugin, &record, &settings) {
        Ok(document) => DesiredUser::new(document),
        Err(Desired::Refused(error)) => {
            let operation = if entry.is_some() { UPDATE } else { CREATE };
            let reason = format!("the connector refused {}: {error}", user.user_name);
            target
                .dead_letter("user", user_id, operation, reason.clone(), None)
                .await;
            target
                .record(
                    user_id,
                    operation,
                    Outcome::Failure,
                    Some("mapping".into()),
                    None,
                    reason,
                )
                .await;
            return Ok(Synced::Refused);
        }
        Err(Desired::Failed(error)) => return Err(error),
    };
    let mut own = passwords::waiting(target, held.password.take());
    if let Some(entry) = &entry {
        if entry.doc_hash == desired.hash {
            return then_password(
                target,
                &user,
                &entry.remote_id,
                &desired,
                own,
                Synced::Unchanged,
            )
            .await;
        }
        // Turning an active account inactive is an offboarding: guarded.
        let suspend = crate::store::OffboardAction::Suspend;
        if super::guard::deactivates(entry, &desired.document)
            && super::guard::admit(target, entry, suspend, "active=false in the directory").await?
                == super::guard::Admitted::Held
        {
            return Ok(Synced::Held);
        }
        let path = user_path(&entry.remote_id);
        let previous = entry
            .document
            .as_deref()
            .and_then(|text| serde_json::from_str::<Value>(text).ok());
        let patch = match (
            previous,
            &target.plugin.manifest().capabilities.update_method,
        ) {
            (Some(previous), UpdateMethod::Patch) => {
                changed_attributes(&previous, &desired.document)
            }
            _ => None,
        };
        let (request, what) = match patch {
            Some((operations, names)) => (
                ScimRequest::with_body(
                    reqwest::Method::PATCH,
                    path.clone(),
                    json!({
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": operations,
                    }),
                ),
                format!("PATCH {path} ({})", names.join(", ")),
            ),
            None => (
                desired.request(reqwest::Method::PUT, path.clone()),
                format!("PUT {path}"),
            ),
        };
        match target.send(&request).await {
            Ok(answer) => {
                target
                    .link_recorded(
                        user_id,
                        &entry.remote_id,
                        &desired.hash,
                        Some(&desired.text),
                        None,
                        UPDATE,
                        None,
                        Some(answer.status.as_u16()),
                        format!("{what} for {}", user.user_name),
                    )
                    .await?;
                return then_password(
                    target,
                    &user,
                    &entry.remote_id,
                    &desired,
                    own,
                    Synced::Updated,
                )
                .await;
            }
            // Deleted in the application: found again or created below.
            Err(error) if error.status() == Some(404) => {
                store
                    .remove_ledger_entry(&target.app.id, "user", user_id)
                    .await?;
            }
            Err(error) => {
                target.failed(user_id, UPDATE, None, &error).await;
                return Err(error.into());
            }
        }
    }
    let filters = match target.plugin.lookup_filters(&record, &settings) {
        Ok(called) => called.value,
        Err(error) => {
            return Err(SyncError::Connector {
                connector: target.plugin.name().to_string(),
                reason: error.to_string(),
            });
        }
    };
    for filter in filters {
        let request = ScimRequest::get(format!("/Users?filter={}", percent_encode(&filter)));
        let answer = match target.send(&request).await {
            Ok(answer) => answer,
            Err(error) => {
                target.failed(user_id, LOOKUP, Some(filter), &error).await;
                return Err(error.into());
            }
        };
        let remote_id = match vet(LookupKind::User, &filter, answer.body()) {
            Candidate::None => continue,
            Candidate::One(remote_id) => remote_id,
            Candidate::Refused(reason) => {
                target
                    .refuse(
                        user_id,
                        LOOKUP,
                        &filter,
                        Some(answer.status.as_u16()),
                        reason,
                    )
                    .await;
                return Ok(Synced::Refused);
            }
        };
        let synced = take_over(target, &user, &remote_id, &filter, &desired).await?;
        if synced != Synced::TakenOver {
            return Ok(synced);
        }
        return then_password(target, &user, &remote_id, &desired, own, synced).await;
    }
    let support = passwords::support(target.plugin, target.app);
    let password = passwords::for_new_account(&support, &mut own, &target.app.passwords)?;
    // What the ledger keeps is the document without the password.
    let request = match &password {
        Some(password) => passwords::request_with_password(
            reqwest::Method::POST,
            "/Users",
            &desired.document,
            &desired.text,
            password.secret(),
        ),
        None => desired.request(reqwest::Method::POST, "/Users"),
    };
    match target.send(&request).await {
        Ok(answer) => {
            let Some(remote_id) = answer.id() else {
                let error = ScimClientError::Status {
                    method: "POST".into(),
                    path: "/Users".into(),
                    status: answer.status.as_u16(),
                    detail: "the created account has no id".into(),
                    attempts: answer.attempts,
                };
                target
                    .failed(user_id, CREATE, Some("created".into()), &error)
                    .await;
                return Err(error.into());
            };
            let linked = target
                .link_recorded(
                    user_id,
                    remote_id,
                    &desired.hash,
                    Some(&desired.text),
                    password.as_ref(),
                    CREATE,
                    Some("created".into()),
                    Some(answer.status.as_u16()),
                    format!("POST /Users for {} → {remote_id}", user.user_name),
                )
                .await;
            match linked {
                Ok(()) => {
                    then_password(target, &user, remote_id, &desired, own, Synced::Created).await
                }
                // The application answered the create with an account it
                // already had (some upsert on POST): it belongs to another.
                Err(StoreError::LinkedElsewhere { holder, .. }) => {
                    let reason = format!(
                        "the application answered POST /Users with account {remote_id}, {}",
                        already_linked(store, remote_id, &holder, &user.user_name).await
                    );
                    target
                        .refuse(user_id, CREATE, "created", None, reason)
                        .await;
                    Ok(Synced::Refused)
                }
                Err(error) => Err(error.into()),
            }
        }
        Err(error) => {
            target
                .failed(user_id, CREATE, Some("created".into()), &error)
                .await;
            Err(error.into())
        }
    }
}

/// Takes over the account a lookup found for `user`: refused when another
/// directory user holds it, else updated with the directory's document and
/// linked. The account's own lock is held throughout, so that two users
/// cannot take the same account at once.
async fn take_over(
    target: &Target<'_>,
    user: &crate::store::UserRecord,
    remote_id: &str,
    filter: &str,
    desired: &DesiredUser,
) -> Result<Synced, SyncError> {
    let _account =
        super::locks::lock_object(target.store, &target.app.id, "user account", remote_id).await?;
    let rule = format!("takeover: {filter}");
    let holder = target
        .store
        .ledger_holder(&target.app.id, "user", remote_id)
        .await?;
    if let Some(holder) = holder.filter(|holder| holder.object_id != user.id) {
        let reason =
            already_linked(target.store, remote_id, &holder.object_id, &user.user_name).await;
        target.refuse(&user.id, LOOKUP, filter, None, reason).await;
        return Ok(Synced::Refused);
    }
    let request = desired.request(reqwest::Method::PUT, user_path(remote_id));
    let answer = match target.send(&request).await {
        Ok(answer) => answer,
        Err(error) => {
            target.failed(&user.id, CREATE, Some(rule), &error).await;
            return Err(error.into());
        }
    };
    let linked = target
        .link_recorded(
            &user.id,
            remote_id,
            &desired.hash,
            Some(&desired.text),
            None,
            CREATE,
            Some(rule),
            Some(answer.status.as_u16()),
            format!(
                "linked existing account {remote_id} for {} and updated it",
                user.user_name
            ),
        )
        .await;
    match linked {
        Ok(()) => Ok(Synced::TakenOver),
        // Linked by another host between the check and now.
        Err(StoreError::LinkedElsewhere { holder, .. }) => {
            let reason = already_linked(target.store, remote_id, &holder, &user.user_name).await;
            target.refuse(&user.id, LOOKUP, filter, None, reason).await;
            Ok(Synced::Refused)
        }
        Err(error) => Err(error.into()),
    }
}

/// Sends the user's own password to the account `remote_id`, which now
/// holds `desired`, when one is waiting and the application takes password
/// changes; a sync that had nothing else to send then counts as an update.
async fn then_password(
    target: &Target<'_>,
    user: &crate::store::UserRecord,
    remote_id: &str,
    desired: &DesiredUser,
    own: Option<Password>,
    synced: Synced,
) -> Result<Synced, SyncError> {
    let method = passwords::support(target.plugin, target.app).on_change;
    let (Some(password), Some(method)) = (own, method) else {
        return Ok(synced);
    };
    let entry = LedgerEntry {
        app_id: target.app.id.clone(),
        object_kind: "user".into(),
        object_id: user.id.clone(),
        remote_id: remote_id.to_owned(),
        doc_hash: desired.hash.clone(),
        document: Some(desired.text.clone()),
        updated: Timestamp::now(),
    };
    passwords::push(
        target,
        &user.user_name,
        &entry,
        &desired.document,
        &password,
        method,
    )
    .await?;
    Ok(match synced {
        Synced::Unchanged => Synced::Updated,
        other => other,
    })
}

/// Why an account is not taken over for `user_name`: `holder` has it.
async fn already_linked(
    store: &StoreHandle,
    remote_id: &str,
    holder: &str,
    user_name: &str,
) -> String {
    let holder_name = store.get_user(holder).await.ok().flatten().map_or_else(
        || "deleted from the directory".to_string(),
        |user| user.user_name,
    );
    format!(
        "account {remote_id} is already linked to user {holder} ({holder_name}); \
         it is not taken over for {user_name} (to hand it over, `scimlink app release \
         APP {holder}`, then replay)"
    )
}

/// [`sync_user`] for a caller waiting on the answer (provisioning on
/// demand): a transient failure — a request lost on a connection the
/// application had just closed, say — is tried once more at once, which
/// lookup-before-create makes safe. (The engine instead leaves the change
/// to its lease.)
pub async fn sync_user_now(target: &Target<'_>, user_id: &str) -> Result<Synced, SyncError> {
    match sync_user(target, user_id).await {
        Err(SyncError::Application(error)) if !error.is_permanent() => {
            sync_user(target, user_id).await
        }
        other => other,
    }
}

/// Why there is no document for a user.
pub(crate) enum Desired {
    /// The connector refused the user (a mapping error): nothing to send.
    Refused(crate::runtime::PluginError),
    /// The connector failed (trap, deadline, bad output).
    Failed(SyncError),
}

/// The document the application should hold for a user, serialized once:
/// its text is what is sent and what the ledger keeps, and the text's hash
/// is what later syncs compare.
struct DesiredUser {
    document: Value,
    text: String,
    hash: String,
}

impl DesiredUser {
    fn new(document: Value) -> Self {
        let text = document.to_string();
        let hash = hash(&text);
        DesiredUser {
            document,
            text,
            hash,
        }
    }

    /// A request that sends the document as it is.
    fn request(&self, method: reqwest::Method, path: impl Into<String>) -> ScimRequest {
        ScimRequest::with_text(
            method,
            path,
            self.text.clone(),
            crate::scim::passwords_in(&self.document),
        )
    }
}

/// The document the application should hold for `record`: the
/// connector's, and the host's part of it — a directory suspension or an
/// expired password makes the account inactive whatever the connector wrote.
pub(crate) fn desired_document(
    plugin: &LoadedPlugin,
    record: &crate::runtime::contract::DirectoryUser,
    settings: &[Setting],
) -> Result<Value, Desired> {
    let document = match plugin.map_user(record, settings) {
        Ok(called) => called.value,
        Err(error) if !error.is_plugin_fault() => return Err(Desired::Refused(error)),
        Err(error) => {
            return Err(Desired::Failed(SyncError::Connector {
                connector: plugin.name().to_string(),
                reason: error.to_string(),
            }));
        }
    };
    let mut body = document.value();
    if record.suspended || record.password_expired {
        body["active"] = Value::Bool(false);
    }
    Ok(body)
}

pub(crate) fn settings_of(app: &AppRecord) -> Vec<Setting> {
    app.settings
        .iter()
        .map(|(key, value)| Setting {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

/// The PATCH operations that turn `previous` into `next`, attribute by
/// attribute (an extension counts as one attribute), with their names;
/// `None` when nothing but bookkeeping differs.
pub(crate) fn changed_attributes(
    previous: &Value,
    next: &Value,
) -> Option<(Vec<Value>, Vec<String>)> {
    let (Value::Object(previous), Value::Object(next)) = (previous, next) else {
        return None;
    };
    let bookkeeping = |key: &str| matches!(key, "schemas" | "id" | "meta");
    let mut operations = Vec::new();
    let mut names = Vec::new();
    for (key, value) in next.iter().filter(|(key, _)| !bookkeeping(key)) {
        if previous.get(key) != Some(value) {
            operations.push(json!({ "op": "replace", "path": key, "value": value }));
            names.push(key.clone());
        }
    }
    for key in previous.keys().filter(|key| !bookkeeping(key)) {
        if !next.contains_key(key) {
            operations.push(json!({ "op": "remove", "path": key }));
            names.push(key.clone());
        }
    }
    (!operations.is_empty()).then_some((operations, names))
}

/// Deactivates or deletes the account of a user who is out of the
/// application's scope, as read under its lock; `rule` is what decided it,
/// for the event. A user in scope, or without an account, is left alone.
pub(crate) async fn offboard(
    target: &Target<'_>,
    held: &HeldUser,
    how: Offboarding,
    rule: &str,
) -> Result<Synced, SyncError> {
    let (Some(entry), false) = (&held.entry, held.in_scope) else {
        return Ok(Synced::Unchanged);
    };
    let user_id = held.user_id.as_str();
    let path = user_path(&entry.remote_id);
    // The deprovisioning guard decides before anything is sent; an account
    // already deactivated is left alone below, so it is not asked about.
    if !(matches!(how, Offboarding::Deactivate) && entry.doc_hash == DEACTIVATED)
        && super::guard::admit(target, entry, how.into(), rule).await?
            == super::guard::Admitted::Held
    {
        return Ok(Synced::Held);
    }
    let rule = || Some(rule.to_string());
    match how {
        Offboarding::Delete => {
            match target.send(&ScimRequest::delete(path.clone())).await {
                // Already gone is what was wanted.
                Ok(_) => {}
                Err(error) if error.status() == Some(404) => {}
                Err(error) => {
                    target.failed(user_id, DELETE, rule(), &error).await;
                    return Err(error.into());
                }
            }
            target
                .forget_recorded(user_id, DELETE, rule(), None, format!("DELETE {path}"))
                .await?;
            Ok(Synced::Deleted)
        }
        Offboarding::Deactivate => {
            if entry.doc_hash == DEACTIVATED {
                return Ok(Synced::Unchanged);
            }
            let body = json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "replace", "path": "active", "value": false }],
            });
            match target
                .send(&ScimRequest::with_body(
                    reqwest::Method::PATCH,
                    path.clone(),
                    body,
                ))
                .await
            {
                Ok(answer) => {
                    // No document: the account is not what the last one
                    // said, so coming back sends it whole.
                    target
                        .link_recorded(
                            user_id,
                            &entry.remote_id,
                            DEACTIVATED,
                            None,
                            None,
                            DEPROVISION,
                            rule(),
                            Some(answer.status.as_u16()),
                            format!("PATCH {path} active=false"),
                        )
                        .await?;
                    Ok(Synced::Deactivated)
                }
                Err(error) if error.status() == Some(404) => {
                    target
                        .forget_recorded(
                            user_id,
                            DEPROVISION,
                            rule(),
                            Some(404),
                            format!("{path} no longer exists in the application"),
                        )
                        .await?;
                    Ok(Synced::Deleted)
                }
                Err(error) => {
                    target.failed(user_id, DEPROVISION, rule(), &error).await;
                    Err(error.into())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changed_attributes_are_patched() {
        let previous = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "ada", "title": "Analyst", "nickName": "Ada",
            "name": { "givenName": "Ada", "familyName": "Lovelace" }
        });
        let next = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "x"],
            "userName": "ada", "title": "Countess",
            "name": { "givenName": "Ada", "familyName": "King" }
        });
        let (operations, names) = changed_attributes(&previous, &next).unwrap();
        // Changed attributes in the document's order, then removed ones.
        assert_eq!(names, ["name", "title", "nickName"]);
        assert!(
            operations.contains(&json!({ "op": "replace", "path": "title", "value": "Countess" }))
        );
        assert_eq!(operations[2], json!({ "op": "remove", "path": "nickName" }));
        assert_eq!(changed_attributes(&previous, &previous), None);
    }
}
