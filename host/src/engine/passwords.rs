//! Users' passwords into the applications that take them.
//!
//! A connector declares whether its application takes passwords
//! (`capabilities.passwords`: on create, and on change by PATCH or PUT);
//! the connector never sees one. The host adds `password` to what it sends:
//! - a new account gets the user's own password when one is waiting, else
//!   a temporary one made by the application's [`PasswordPolicy`], sent once
//!   and recorded as set, never its value (kept sealed for an operator to
//!   read once only when the policy says so);
//! - a password the user sets later is sent once to each application that
//!   takes password changes and holds an account of the user, by the
//!   connector's method, as its own request and its own event;
//! - a failed push is a failed write: retried with the change, then
//!   dead-lettered, like any other.
//!
//! An application's policy may turn passwords off for it, whatever its
//! connector takes ([`support`]).
//!
//! [`sweep`] keeps a password only while some application is still owed
//! it: it wipes one that every such application has, and one that waited
//! past the retention (an application quarantined too long, an account
//! that keeps failing), recording an event for each application that never
//! got it. It decides only what it can know: an application whose
//! connector this host does not serve at the newest version any host
//! serves counts as owed (the host that runs it decides), and a password
//! no application is owed yet is kept a while ([`UNCLAIMED_GRACE`]), since
//! an identity provider creates a user first and puts them in a group
//! after.
//!
//! Invariant: a password's value appears in no event, log line, ledger
//! entry or error the host keeps; an application's answer that repeats it
//! is scrubbed of it by the SCIM client before anything reads the answer
//! ([`crate::scim::scrub_passwords`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::provision::{SyncError, Target};
use crate::runtime::contract::{PasswordSupport, UpdateMethod};
use crate::runtime::{LoadedPlugin, PluginRegistry};
use crate::scim_client::{ScimRequest, user_path};
use crate::secrets::{KeyError, Secret, random_bytes};
use crate::store::{
    AppRecord, AppState, Event, HostPresence, LedgerChange, LedgerEntry, Outcome, PasswordPolicy,
    PasswordSent, PasswordState, PendingPassword, Reveal, StoreError, StoreHandle, Timestamp,
};

/// The event of a password sent to an account that exists, or of one that
/// expired before it could be.
pub const PASSWORD: &str = "user_password_provision";

/// How often passwords are looked over for wiping.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// How long a password no application is owed, and none has had, is kept
/// for an application the user is about to reach.
pub const UNCLAIMED_GRACE: Duration = Duration::from_secs(10 * 60);

/// Whether and how `app` takes passwords: what its connector declares,
/// unless the application's policy turns passwords off.
pub(crate) fn support(plugin: &LoadedPlugin, app: &AppRecord) -> PasswordSupport {
    if app.passwords.send {
        plugin.manifest().capabilities.passwords
    } else {
        PasswordSupport {
            on_create: false,
            on_change: None,
        }
    }
}

/// What the host will send as a user's password to one application.
pub(crate) enum Password {
    /// The user's own, of this generation.
    Own { generation: String, secret: Secret },
    /// One the host made by the application's policy.
    Temporary { secret: Secret, reveal: Reveal },
}

impl Password {
    pub(crate) fn secret(&self) -> &Secret {
        match self {
            Password::Own { secret, .. } | Password::Temporary { secret, .. } => secret,
        }
    }

    /// How the store records it with the account's ledger entry.
    pub(crate) fn sent(&self) -> PasswordSent<'_> {
        match self {
            Password::Own { generation, .. } => PasswordSent::Own { generation },
            Password::Temporary { secret, reveal } => PasswordSent::Temporary {
                reveal: matches!(reveal, Reveal::Once).then_some(secret),
            },
        }
    }

    /// How an event says what was sent.
    pub(crate) fn described(&self) -> &'static str {
        match self {
            Password::Own { .. } => "the user's password",
            Password::Temporary {
                reveal: Reveal::Once,
                ..
            } => "a temporary password (kept, sealed, for an operator to read once)",
            Password::Temporary {
                reveal: Reveal::Never,
                ..
            } => "a temporary password (not kept)",
        }
    }
}

/// Whether the target application takes passwords at all: a sync to it
/// reads the user's waiting password ([`waiting`]).
pub(crate) fn taken(target: &Target<'_>) -> bool {
    let support = support(target.plugin, target.app);
    support.on_create || support.on_change.is_some()
}

/// The user's own password when it is waiting for the target application,
/// whose connector takes passwords: of what was read with the user
/// ([`super::locks::hold_user_and_password`]).
pub(crate) fn waiting(target: &Target<'_>, pending: Option<PendingPassword>) -> Option<Password> {
    if !taken(target) {
        return None;
    }
    pending
        .filter(|pending| !pending.delivered_to.contains(&target.app.id))
        .map(|pending| Password::Own {
            generation: pending.generation,
            secret: pending.secret,
        })
}

/// The password a new account is created with, if the application takes
/// one on create: the user's own when waiting, else a temporary one.
pub(crate) fn for_new_account(
    support: &PasswordSupport,
    own: &mut Option<Password>,
    policy: &PasswordPolicy,
) -> Result<Option<Password>, TemporaryPasswordError> {
    if !support.on_create {
        return Ok(None);
    }
    if let Some(own) = own.take() {
        return Ok(Some(own));
    }
    Ok(Some(Password::Temporary {
        secret: temporary(policy)?,
        reveal: policy.reveal,
    }))
}

/// `document` with the password added, as the application receives it.
pub(crate) fn with_password(document: &Value, password: &Secret) -> Value {
    let mut sent = document.clone();
    sent["password"] = Value::String(password.expose().to_owned());
    sent
}

/// The request that sends `document` with the password added, where `text`
/// is the document's serialization (what the ledger keeps). The password is
/// written in front of that text rather than into a copy of the document,
/// so the document is not copied and serialized again for every account
/// created; a document that already names a `password` has it replaced, as
/// [`with_password`] does.
pub(crate) fn request_with_password(
    method: reqwest::Method,
    path: impl Into<String>,
    document: &Value,
    text: &str,
    password: &Secret,
) -> ScimRequest {
    let secret = password.expose();
    match (document, text.strip_prefix('{')) {
        (Value::Object(fields), Some(rest)) if !fields.contains_key("password") => {
            debug_assert_eq!(text, document.to_string());
            let quoted = Value::from(secret).to_string();
            let mut sent = String::with_capacity(text.len() + quoted.len() + 12);
            sent.push_str("{\"password\":");
            sent.push_str(&quoted);
            if !fields.is_empty() {
                sent.push(',');
            }
            sent.push_str(rest);
            let mut passwords = crate::scim::passwords_in(document);
            passwords.push(secret.to_owned());
            ScimRequest::with_text(method, path, sent, passwords)
        }
        _ => ScimRequest::with_body(method, path, with_password(document, password)),
    }
}

/// Sends the user's own password to the account `entry` links, by the
/// connector's method, and records its delivery with the entry in one
/// transaction. `document` is what the account holds (the PUT's body).
pub(crate) async fn push(
    target: &Target<'_>,
    user_name: &str,
    entry: &LedgerEntry,
    document: &Value,
    password: &Password,
    method: UpdateMethod,
) -> Result<(), SyncError> {
    let path = user_path(&entry.remote_id);
    let request = match method {
        UpdateMethod::Patch => ScimRequest::with_body(
            reqwest::Method::PATCH,
            path.clone(),
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{
                    "op": "replace",
                    "path": "password",
                    "value": password.secret().expose(),
                }],
            }),
        ),
        UpdateMethod::Put => ScimRequest::with_body(
            reqwest::Method::PUT,
            path.clone(),
            with_password(document, password.secret()),
        ),
    };
    let verb = match method {
        UpdateMethod::Patch => "PATCH",
        UpdateMethod::Put => "PUT",
    };
    match target.send(&request).await {
        Ok(answer) => {
            let event = target.user_event(
                &entry.object_id,
                PASSWORD,
                Outcome::Success,
                Some("password".into()),
                Some(answer.status.as_u16()),
                format!("{verb} {path}: {} for {user_name}", password.described()),
            );
            let entry = LedgerEntry {
                updated: Timestamp::now(),
                ..entry.clone()
            };
            target
                .record_held(
                    LedgerChange::PutWithPassword(&entry, password.sent()),
                    event,
                )
                .await?;
            Ok(())
        }
        Err(error) => {
            target
                .failed(&entry.object_id, PASSWORD, Some("password".into()), &error)
                .await;
            Err(error.into())
        }
    }
}

/// Why no temporary password could be made.
#[derive(Debug, thiserror::Error)]
pub enum TemporaryPasswordError {
    #[error("the application's password policy cannot make a password: {0}")]
    Policy(String),
    #[error(transparent)]
    Random(#[from] KeyError),
}

/// `retention` as people say it: "90 seconds", "15 minutes", "7 days".
fn span(retention: Duration) -> String {
    let seconds = retention.as_secs();
    match seconds {
        0..120 => format!("{seconds} seconds"),
        120..7200 => format!("{} minutes", seconds / 60),
        7200..172_800 => format!("{} hours", seconds / 3600),
        _ => format!("{} days", seconds / 86_400),
    }
}

/// A temporary password by `policy`: each enabled class at least once, the
/// rest drawn from all of them, in a random order.
pub fn temporary(policy: &PasswordPolicy) -> Result<Secret, TemporaryPasswordError> {
    policy.check().map_err(TemporaryPasswordError::Policy)?;
    let classes = policy.classes();
    let every: Vec<char> = classes.iter().flat_map(|class| class.chars()).collect();
    let mut chosen: Vec<char> = Vec::with_capacity(usize::from(policy.length));
    let mut draws = Draws::new();
    for class in &classes {
        let class: Vec<char> = class.chars().collect();
        chosen.push(class[draws.uniform(class.len())?]);
    }
    while chosen.len() < usize::from(policy.length) {
        chosen.push(every[draws.uniform(every.len())?]);
    }
    // Fisher–Yates, so the classes' first characters are not in front.
    for i in (1..chosen.len()).rev() {
        chosen.swap(i, draws.uniform(i + 1)?);
    }
    let password = Secret::new(chosen.iter().collect::<String>());
    chosen.fill('\0');
    Ok(password)
}

/// Bytes from the system's random source, read a buffer at a time rather
/// than a call per draw, and wiped when dropped.
struct Draws {
    buffer: [u8; 256],
    used: usize,
}

impl Draws {
    fn new() -> Draws {
        Draws {
            buffer: [0; 256],
            used: 256,
        }
    }

    fn next_u32(&mut self) -> Result<u32, KeyError> {
        if self.used + 4 > self.buffer.len() {
            random_bytes(&mut self.buffer)?;
            self.used = 0;
        }
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(&self.buffer[self.used..self.used + 4]);
        self.used += 4;
        Ok(u32::from_le_bytes(bytes))
    }

    /// A uniform draw from `0..bound`, by rejection.
    fn uniform(&mut self, bound: usize) -> Result<usize, KeyError> {
        let bound = bound as u32;
        let zone = u32::MAX - u32::MAX % bound;
        loop {
            let drawn = self.next_u32()?;
            if drawn < zone {
                return Ok((drawn % bound) as usize);
            }
        }
    }
}

impl Drop for Draws {
    fn drop(&mut self) {
        // What is left would tell the password's characters.
        zeroize::Zeroize::zeroize(&mut self.buffer);
    }
}

/// Which applications are still owed `password`: those active or
/// quarantined that take it (on change, or on create while the user has no
/// account there), with the user in scope, that have not had it; and
/// those this host cannot judge, whose connector it does not serve at the
/// newest version (`newest`, over the hosts present).
async fn owed(
    store: &StoreHandle,
    plugins: &PluginRegistry,
    newest: &std::collections::BTreeMap<String, String>,
    apps: &[AppRecord],
    password: &PasswordState,
) -> Result<Vec<AppRecord>, StoreError> {
    let mut owed = Vec::new();
    for app in apps {
        if !matches!(app.state, AppState::Active | AppState::Quarantined)
            || password.delivered_to.contains(&app.id)
        {
            continue;
        }
        let judged = plugins.get(&app.connector).filter(|plugin| {
            newest
                .get(&app.connector)
                .is_none_or(|version| *version == plugin.manifest().version)
        });
        let Some(plugin) = judged else {
            owed.push(app.clone());
            continue;
        };
        let support = support(&plugin, app);
        if !support.on_create && support.on_change.is_none() {
            continue;
        }
        if !store.user_in_scope(&app.id, &password.user_id).await? {
            continue;
        }
        let linked = store
            .ledger_entry(&app.id, "user", &password.user_id)
            .await?
            .is_some();
        if support.on_change.is_some() || !linked {
            owed.push(app.clone());
        }
    }
    Ok(owed)
}

/// Sweeps every few seconds, for the life of the engine ([`sweep`]);
/// `hosts` are the hosts present, as the engine last announced itself.
pub(crate) async fn keep_swept(
    store: StoreHandle,
    plugins: Arc<PluginRegistry>,
    hosts: Arc<Mutex<Vec<HostPresence>>>,
    retention: Duration,
) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let present = hosts.lock().map(|hosts| hosts.clone()).unwrap_or_default();
        let swept = match super::worker::all_apps(&store).await {
            Ok(apps) => sweep(&store, &plugins, &present, &apps, retention).await,
            Err(error) => Err(error),
        };
        if let Err(error) = swept {
            tracing::warn!("provisioning engine: cannot look passwords over: {error}");
        }
    }
}

/// Wipes every password no application is owed any more (once one has
/// had it, or it went unclaimed past [`UNCLAIMED_GRACE`]), and every one
/// that waited past `retention` (with an event for each application that
/// never got it), and the temporary passwords nobody read within it.
pub async fn sweep(
    store: &StoreHandle,
    plugins: &PluginRegistry,
    hosts: &[HostPresence],
    apps: &[AppRecord],
    retention: Duration,
) -> Result<(), StoreError> {
    let stored = store.run(|store| store.passwords()).await?;
    let newest = super::hosts::newest_versions(hosts);
    let expired_before = Timestamp::ago(retention);
    let unclaimed_before = Timestamp::ago(UNCLAIMED_GRACE.min(retention));
    for password in stored {
        let owed = owed(store, plugins, &newest, apps, &password).await?;
        let expired = password.set_at < expired_before;
        let settled = owed.is_empty()
            && (!password.delivered_to.is_empty() || password.set_at < unclaimed_before);
        if !settled && !expired {
            continue;
        }
        let wiped = {
            let (user_id, generation) = (password.user_id.clone(), password.generation.clone());
            store
                .run(move |store| store.wipe_password(&user_id, &generation))
                .await?
        };
        if !wiped || !expired {
            continue;
        }
        for app in owed {
            let event = Event {
                id: String::new(),
                at: Timestamp::now(),
                app_id: Some(app.id.clone()),
                app_name: Some(app.name.clone()),
                object_kind: Some("user".into()),
                object_id: Some(password.user_id.clone()),
                operation: PASSWORD.into(),
                outcome: Outcome::Failure,
                rule: Some("expired".into()),
                http_status: None,
                summary: format!(
                    "the password set at {} waited more than {} for {} and was wiped \
                     without reaching it; the user must set it again",
                    password.set_at,
                    span(retention),
                    app.name
                ),
            };
            store.record_event(event).await?;
        }
    }
    store
        .run(move |store| store.wipe_temporary_passwords(expired_before))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_written_into_the_text_sends_what_the_document_would() {
        let secret = Secret::new("zq\"x\\y\u{e9}\n");
        let documents = [
            json!({}),
            json!({ "userName": "ada", "name": { "givenName": "Ada" }, "active": true }),
            json!({ "active": true, "password": "from the connector" }),
        ];
        for document in documents {
            let text = document.to_string();
            let request =
                request_with_password(reqwest::Method::POST, "/Users", &document, &text, &secret);
            let sent: Value = serde_json::from_str(request.body_text().unwrap()).unwrap();
            assert_eq!(sent, with_password(&document, &secret), "{text}");
            let shown = format!("{request:?}");
            assert!(!shown.contains("zq"), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
        }
    }

    #[test]
    fn a_temporary_password_has_the_policy_length_and_every_class() {
        let policy = PasswordPolicy::default();
        for _ in 0..200 {
            let password = temporary(&policy).unwrap();
            let text = password.expose();
            assert_eq!(text.chars().count(), 20);
            for class in policy.classes() {
                assert!(text.chars().any(|c| class.contains(c)), "{class}");
            }
        }
    }

    #[test]
    fn a_retention_reads_as_people_say_it() {
        assert_eq!(span(Duration::from_secs(6)), "6 seconds");
        assert_eq!(span(Duration::from_secs(900)), "15 minutes");
        assert_eq!(span(Duration::from_secs(36 * 3600)), "36 hours");
        assert_eq!(span(Duration::from_secs(7 * 86_400)), "7 days");
    }

    #[test]
    fn a_policy_of_digits_only_makes_digits() {
        let policy = PasswordPolicy {
            length: 8,
            lowercase: false,
            uppercase: false,
            symbols: false,
            ..PasswordPolicy::default()
        };
        let password = temporary(&policy).unwrap();
        assert!(password.expose().chars().all(|c| c.is_ascii_digit()));
        assert_eq!(password.expose().len(), 8);
    }

    #[test]
    fn temporary_passwords_differ() {
        let policy = PasswordPolicy::default();
        let drawn: std::collections::HashSet<String> = (0..100)
            .map(|_| temporary(&policy).unwrap().expose().to_owned())
            .collect();
        assert_eq!(drawn.len(), 100);
    }

    #[test]
    fn a_policy_that_cannot_make_a_password_is_refused() {
        let none = PasswordPolicy {
            lowercase: false,
            uppercase: false,
            digits: false,
            symbols: false,
            ..PasswordPolicy::default()
        };
        assert!(temporary(&none).is_err());
        let short = PasswordPolicy {
            length: 4,
            ..PasswordPolicy::default()
        };
        assert!(short.check().is_err());
    }
}
