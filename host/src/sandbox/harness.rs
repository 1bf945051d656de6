//! The sandbox test: one connector driven through the whole provisioning
//! lifecycle its manifest claims, inside a throwaway host, with every step
//! checked by reading the application back.
//!
//! Invariants:
//! - the host is the production host (store, engine, admin API, runtime
//!   under production limits), started in this process on a temporary
//!   folder and a loopback port; nothing of a real deployment is read or
//!   written;
//! - every user and group the test touches in the application is one it
//!   made up for this run (names carry the run id), and every account or
//!   group created in the application during the run is deleted at the end,
//!   whatever failed before;
//! - a step passes only on what the application answers — read back by
//!   the test, or by the host's own reconcile, which lists the application —
//!   never on what the host believes; the host's belief (the ledger) is
//!   only used to find which remote object to read;
//! - every step is reported, with the requests the host sent and what each
//!   connector call cost; a step that cannot run because an earlier one
//!   failed is reported as skipped, with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use super::sp::{Quirks, SandboxSp};
use super::tape::{self, CHECK_HEADER, Exchange, Sender, Tape, Upstream};
use crate::engine::directory_user::directory_user;
use crate::engine::reconcile::differing_attributes;
use crate::host::{Host, HostBuilder, HostError};
use crate::runtime::contract::Setting;
use crate::runtime::{
    CallReceipt, LoadedPlugin, Loader, PluginIdentity, PluginLimits, PluginRegistry, ReceiptTap,
    Runtime, RuntimeConfig,
};
use crate::store::{SqliteStore, Store, StoreHandle, Timestamp, TokenCipher};

/// The tenant path of the simulated application.
const SANDBOX_TENANT: &str = "sandbox/scim/v2";
/// The name of the application in the throwaway host.
const APP: &str = "sandbox-app";
/// The file of a recording that names its run.
const RUN_FILE: &str = "run.json";

/// What to test and against what.
#[derive(Debug, Clone)]
pub struct Options {
    pub component: PathBuf,
    /// The application's base URL and token; the simulator when absent.
    pub against: Option<(String, String)>,
    pub settings: BTreeMap<String, String>,
    pub limits: PluginLimits,
    /// Write the exchanges here as fixtures.
    pub record: Option<PathBuf>,
    /// Answer from these fixtures instead of an application.
    pub replay: Option<PathBuf>,
    /// The simulated application's behaviour.
    pub quirks: Quirks,
    /// How long the engine may take to apply one step.
    pub step_timeout: Duration,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

impl Outcome {
    /// How a report marks it.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
        }
    }
}

/// One step of the lifecycle.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: &'static str,
    /// What the step does, in a sentence.
    pub purpose: &'static str,
    pub outcome: Outcome,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What a reader should know even when it passed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The requests the host sent, in order.
    pub requests: Vec<Exchange>,
    /// The test's own reads and writes of the application.
    pub checks: Vec<Exchange>,
    /// The connector calls the step made, with their cost.
    pub calls: Vec<CallReceipt>,
    pub millis: u64,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub connector: Option<PluginIdentity>,
    /// What the connector was tested against.
    pub application: String,
    pub run_id: String,
    pub steps: Vec<Step>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.steps.iter().all(|step| step.outcome != Outcome::Fail)
    }

    pub fn count(&self, outcome: Outcome) -> usize {
        self.steps.iter().filter(|s| s.outcome == outcome).count()
    }
}

/// Why the test could not run at all (as opposed to a failed step).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("cannot prepare the throwaway host: {0}")]
    Host(String),
    #[error(transparent)]
    Tape(#[from] tape::TapeError),
    #[error("the recording in {0} names no run (run.json is missing or invalid)")]
    RunFile(String),
}

/// A synthetic person of this run.
#[derive(Debug, Clone)]
struct Person {
    user_name: String,
    given: &'static str,
    family: &'static str,
    title: &'static str,
    employee_number: String,
}

impl Person {
    fn new(run: &str, given: &'static str, family: &'static str, n: u32) -> Person {
        Person {
            user_name: format!(
                "{}.{}.{run}@sandbox.example",
                given.to_lowercase(),
                family.to_lowercase()
            ),
            given,
            family,
            title: "Engineer",
            employee_number: format!("{run}-{n}"),
        }
    }

    fn fields(&self) -> Value {
        json!({
            "userName": self.user_name,
            "givenName": self.given,
            "familyName": self.family,
            "displayName": format!("{} {}", self.given, self.family),
            "email": self.user_name,
            "title": self.title,
            "employeeNumber": self.employee_number,
            "department": "Sandbox",
            "organization": "Sandbox Inc",
        })
    }
}

/// Runs the whole lifecycle and reports it; `progress` hears of each step
/// as it ends.
pub async fn run(options: Options, progress: Option<Progress>) -> Result<Report, HarnessError> {
    let (run_id, recorded_directory) = match &options.replay {
        Some(folder) => read_run(folder)?,
        None => (
            uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
            BTreeMap::new(),
        ),
    };
    let host_error = |e: &dyn std::fmt::Display| HarnessError::Host(e.to_string());
    let folder = tempfile::tempdir().map_err(|e| host_error(&e))?;

    // The simulator lives as long as the run.
    let mut simulator = None;
    let tenant = options
        .quirks
        .tenants
        .first()
        .map(|t| t.trim_matches('/').to_string())
        .unwrap_or_else(|| SANDBOX_TENANT.to_string());
    let (upstream, application, token) = match (&options.replay, &options.against) {
        (Some(folder), _) => (
            Upstream::Replay(tape::load(folder)?),
            format!("the recording in {}", folder.display()),
            "replayed".to_string(),
        ),
        (None, Some((url, token))) => (Upstream::Forward(url.clone()), url.clone(), token.clone()),
        (None, None) => {
            let token = format!("sandbox-{}", uuid::Uuid::new_v4().simple());
            let quirks = Quirks {
                tokens: vec![token.clone()],
                ..options.quirks.clone()
            };
            let sp = SandboxSp::start(([127, 0, 0, 1], 0).into(), quirks)
                .await
                .map_err(|e| host_error(&e))?;
            let base = sp.base_url(&tenant);
            simulator = Some(sp);
            (
                Upstream::Forward(base.clone()),
                format!("the simulated application at {base}"),
                token,
            )
        }
    };
    let tape = Tape::start(upstream).await.map_err(|e| host_error(&e))?;

    let mut run = Run {
        steps: Vec::new(),
        tape,
        tap: ReceiptTap::default(),
        admin: None,
        http: reqwest::Client::new(),
        app_token: token,
        plugin: None,
        store: None,
        run_id: run_id.clone(),
        timeout: options.step_timeout,
        created: Vec::new(),
        directory: BTreeMap::new(),
        recorded_directory,
        app_id: String::new(),
        step_from: 0,
        step_started_at: Timestamp::EPOCH,
        stop_engine: Arc::default(),
        stop_api: None,
        progress,
        simulator,
    };
    run.lifecycle(&options, folder.path()).await;
    run.cleanup().await;
    run.stop_engine
        .store(true, std::sync::atomic::Ordering::Release);
    if let Some(stop) = run.stop_api.take() {
        let _ = stop.send(());
    }

    if let Some(record) = &options.record {
        // Listings show the application's other accounts too: a recording
        // keeps only their ids.
        let ours = |resource: &Value| resource.to_string().contains(&run_id);
        run.tape.save(record, &ours)?;
        let text = json!({ "runId": run_id, "directory": run.directory }).to_string();
        std::fs::write(record.join(RUN_FILE), text).map_err(|source| tape::TapeError::Write {
            path: record.display().to_string(),
            source,
        })?;
    }
    drop(run.simulator.take());
    Ok(Report {
        connector: run.plugin.as_ref().map(|p| p.identity().clone()),
        application,
        run_id,
        steps: run.steps,
    })
}

/// The run id and directory ids of a recording.
fn read_run(folder: &Path) -> Result<(String, BTreeMap<String, String>), HarnessError> {
    let missing = || HarnessError::RunFile(folder.display().to_string());
    let text = std::fs::read_to_string(folder.join(RUN_FILE)).map_err(|_| missing())?;
    let value: Value = serde_json::from_str(&text).map_err(|_| missing())?;
    let run_id = value["runId"]
        .as_str()
        .filter(|id| id.chars().all(|c| c.is_ascii_alphanumeric()) && !id.is_empty())
        .map(str::to_string)
        .ok_or_else(missing)?;
    let directory = serde_json::from_value(value["directory"].clone()).unwrap_or_default();
    Ok((run_id, directory))
}

/// A step's result before it is timed and filed.
enum Ended {
    Passed(Vec<String>),
    Skipped(String),
}

type StepResult = Result<Ended, String>;

fn passed() -> StepResult {
    Ok(Ended::Passed(Vec::new()))
}

struct Admin {
    base: String,
    token: String,
}

struct Run {
    steps: Vec<Step>,
    tape: Tape,
    tap: ReceiptTap,
    admin: Option<Admin>,
    http: reqwest::Client,
    app_token: String,
    plugin: Option<Arc<LoadedPlugin>>,
    store: Option<StoreHandle>,
    run_id: String,
    timeout: Duration,
    /// Remote objects created during the run: (`Users` or `Groups`, id).
    created: Vec<(&'static str, String)>,
    /// Directory ids by userName or group name.
    directory: BTreeMap<String, String>,
    /// The same, of the recorded run a replay answers from.
    recorded_directory: BTreeMap<String, String>,
    app_id: String,
    /// Where the current step's exchanges start in the tape.
    step_from: usize,
    /// When the current step began, RFC 3339.
    step_started_at: Timestamp,
    /// Ends the throwaway host's engine thread, and its admin API.
    stop_engine: Arc<std::sync::atomic::AtomicBool>,
    stop_api: Option<tokio::sync::oneshot::Sender<()>>,
    progress: Option<Progress>,
    /// The simulated application, unless the test runs against another.
    simulator: Option<SandboxSp>,
}

/// Told of every step as it is filed, for a long run to show progress.
pub type Progress = Box<dyn Fn(&Step) + Send + Sync>;

/// The steps, in order: (name, purpose).
const LOAD: (&str, &str) = (
    "load",
    "validate the component under production limits, as the host does before serving it",
);
const CONNECT: (&str, &str) = (
    "connect",
    "add the application and activate it: the host tests the connection",
);
const TAKEOVER: (&str, &str) = (
    "lookup-takeover",
    "an account that exists already is found by the connector's lookup and taken over, not duplicated",
);
const CREATE: (&str, &str) = (
    "create",
    "a user granted access gets an account holding the directory's values",
);
const UPDATE: (&str, &str) = ("update", "a change in the directory reaches the account");
const PASSWORD: (&str, &str) = (
    "password",
    "an application that takes passwords gets one on create and each one the user sets, once; no recording holds one",
);
const READ_BACK: (&str, &str) = (
    "read-back",
    "a reconcile reads every account back and finds nothing to repair",
);
const DEACTIVATE: (&str, &str) = (
    "deactivate",
    "a user who loses access has no active account",
);
const DELETE: (&str, &str) = (
    "delete",
    "a user deleted from the directory has no active account",
);
const GROUP_CREATE: (&str, &str) = (
    "group-create",
    "turning group management on pushes the bound group with its members",
);
const GROUP_TAKEOVER: (&str, &str) = (
    "group-takeover",
    "a bound group whose name exists in the application takes that group over",
);
const GROUP_MEMBERSHIP: (&str, &str) = (
    "group-membership",
    "members added and removed in the directory are added and removed in the application; the removed user has no active account",
);
const GROUP_RENAME: (&str, &str) = (
    "group-rename",
    "renaming a group renames the same group in the application",
);
const GROUP_MANAGEMENT_OFF: (&str, &str) = (
    "group-management-disabled",
    "turning group management off changes no group and no account",
);
const GROUP_UNBIND: (&str, &str) = (
    "group-unbind",
    "unbinding a group: members it alone gave access have no active account, the others keep theirs",
);
const GROUP_DELETE: (&str, &str) = (
    "group-delete",
    "deleting a bound group: its members without other access have no active account",
);
const IMPORT: (&str, &str) = (
    "import",
    "an account that exists only in the application is listed and imported into the directory",
);
const CLEANUP: (&str, &str) = (
    "cleanup",
    "every account and group the test created in the application is deleted",
);

/// Every step after `connect`, in order: what a failed load or connection
/// skips.
const AFTER_CONNECT: [(&str, &str); 16] = [
    TAKEOVER,
    CREATE,
    UPDATE,
    PASSWORD,
    READ_BACK,
    DEACTIVATE,
    DELETE,
    GROUP_CREATE,
    GROUP_TAKEOVER,
    GROUP_MEMBERSHIP,
    GROUP_RENAME,
    GROUP_MANAGEMENT_OFF,
    GROUP_UNBIND,
    GROUP_DELETE,
    IMPORT,
    CLEANUP,
];

const GROUP_STEPS: [(&str, &str); 7] = [
    GROUP_CREATE,
    GROUP_TAKEOVER,
    GROUP_MEMBERSHIP,
    GROUP_RENAME,
    GROUP_MANAGEMENT_OFF,
    GROUP_UNBIND,
    GROUP_DELETE,
];

impl Run {
    async fn lifecycle(&mut self, options: &Options, folder: &Path) {
        let mark = self.begin();
        let loaded = self.load(options, folder).await;
        let loaded_ok = loaded.is_ok();
        self.end(LOAD, mark, loaded);
        if !loaded_ok {
            self.skip_rest(&[CONNECT], "the connector did not load");
            return self.skip_rest(&AFTER_CONNECT, "the connector did not load");
        }
        let mark = self.begin();
        let connected = self.connect(options).await;
        let connected_ok = connected.is_ok();
        self.end(CONNECT, mark, connected);
        if !connected_ok {
            return self.skip_rest(&AFTER_CONNECT, "the application could not be activated");
        }

        let run = self.run_id.clone();
        let ada = Person::new(&run, "Ada", "Lovelace", 1);
        let grace = Person::new(&run, "Grace", "Hopper", 2);
        let alan = Person::new(&run, "Alan", "Turing", 3);
        let access = format!("sandbox-{run}-access");

        // Users are in scope through a bound group: the one way every
        // connector's application is reached (direct assignment is optional).
        let mark = self.begin();
        let result = self.takeover(&alan, &access).await;
        self.end(TAKEOVER, mark, result);
        let mark = self.begin();
        let result = self.create(&ada, &access).await;
        self.end(CREATE, mark, result);
        // A create whose checks failed still made an account: the steps
        // after it run on that account.
        let created = match self.directory.get(&ada.user_name) {
            Some(id) => self.linked("user", id).await.is_ok(),
            None => false,
        };
        if created {
            let mark = self.begin();
            let result = self.update(&ada).await;
            self.end(UPDATE, mark, result);
            let takes_passwords = self.plugin.as_ref().is_some_and(|plugin| {
                let passwords = &plugin.manifest().capabilities.passwords;
                passwords.on_create || passwords.on_change.is_some()
            });
            if takes_passwords {
                let mark = self.begin();
                let result = self.password(&ada).await;
                self.end(PASSWORD, mark, result);
            } else {
                self.skip_rest(
                    &[PASSWORD],
                    "the connector's manifest says its application takes no passwords",
                );
            }
            let mark = self.begin();
            let result = self.read_back().await;
            self.end(READ_BACK, mark, result);
            let mark = self.begin();
            let result = self.leave_scope(&ada, &access).await;
            self.end(DEACTIVATE, mark, result);
        } else {
            self.skip_rest(
                &[UPDATE, PASSWORD, READ_BACK, DEACTIVATE],
                "create made no account",
            );
        }
        let mark = self.begin();
        let result = self.delete(&alan).await;
        self.end(DELETE, mark, result);

        let groups = self
            .plugin
            .as_ref()
            .is_some_and(|p| p.manifest().capabilities.groups);
        if groups {
            self.groups(&access, &ada, &grace).await;
        } else {
            self.skip_rest(
                &GROUP_STEPS,
                "the connector's manifest says its application has no groups",
            );
        }
        let mark = self.begin();
        let result = self.import().await;
        self.end(IMPORT, mark, result);
    }

    async fn groups(&mut self, access: &str, ada: &Person, grace: &Person) {
        let run = self.run_id.clone();
        let mark = self.begin();
        let result = self.group_create(access, grace).await;
        let ok = result.is_ok();
        self.end(GROUP_CREATE, mark, result);
        if !ok {
            return self.skip_rest(&GROUP_STEPS[1..], "group-create failed");
        }
        let team = format!("sandbox-{run}-team");
        let mark = self.begin();
        let result = self.group_takeover(&team, ada).await;
        let ok = result.is_ok();
        self.end(GROUP_TAKEOVER, mark, result);
        if !ok {
            return self.skip_rest(&GROUP_STEPS[2..], "group-takeover failed");
        }
        let mark = self.begin();
        let result = self.group_membership(access, &team, ada, grace).await;
        self.end(GROUP_MEMBERSHIP, mark, result);
        let renamed = format!("sandbox-{run}-crew");
        let mark = self.begin();
        let result = self.group_rename(&team, &renamed).await;
        let ok = result.is_ok();
        self.end(GROUP_RENAME, mark, result);
        let team = if ok { renamed } else { team };
        let mark = self.begin();
        let result = self.group_management_off(&[access, &team], grace).await;
        self.end(GROUP_MANAGEMENT_OFF, mark, result);
        let katherine = Person::new(&run, "Katherine", "Johnson", 4);
        let mark = self.begin();
        let result = self.group_unbind(&team, grace, &katherine).await;
        self.end(GROUP_UNBIND, mark, result);
        let mark = self.begin();
        let result = self.group_delete(access, grace).await;
        self.end(GROUP_DELETE, mark, result);
    }

    // ---- the steps -------------------------------------------------------

    async fn load(&mut self, options: &Options, folder: &Path) -> StepResult {
        let runtime = Runtime::new(RuntimeConfig {
            default_limits: options.limits,
            // Metered: every receipt shows the instructions a call cost.
            metering: true,
            ..RuntimeConfig::default()
        })
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
        let loader = Loader::new(runtime).with_receipt_tap(self.tap.clone());
        let (plugin, report) = loader.load_path(&options.component).map_err(|e| e.reason)?;
        let manifest = plugin.manifest().clone();
        let plugins = folder.join("plugins");
        std::fs::create_dir_all(&plugins).map_err(|e| e.to_string())?;
        std::fs::copy(
            &options.component,
            plugins.join(format!("{}.wasm", manifest.name)),
        )
        .map_err(|e| format!("cannot copy the component: {e}"))?;
        let registry = Arc::new(PluginRegistry::new(loader, &plugins));
        registry.sync();
        let plugin = registry
            .get(&manifest.name)
            .ok_or_else(|| "the host did not serve the component".to_string())?;
        let notes = vec![
            format!(
                "{} (contract {}), loaded in {} ms",
                plugin.identity(),
                plugin.identity().contract,
                report.elapsed.as_millis()
            ),
            format!(
                "limits: {} MiB memory, {} ms CPU per call, {} KiB output",
                options.limits.memory_bytes >> 20,
                options.limits.call_deadline.as_millis(),
                options.limits.output_bytes >> 10
            ),
            {
                let claims = crate::runtime::contract::manifest_json(&manifest);
                let c = &claims["capabilities"];
                format!(
                    "claims: groups {}, direct assignment {}, offboarding by {}, updates by {}, {} members per PATCH",
                    c["groups"],
                    c["direct_assignment"],
                    c["offboarding"].as_str().unwrap_or("?"),
                    c["update_method"].as_str().unwrap_or("?"),
                    c["max_members_per_patch"]
                )
            },
        ];
        drop(plugin);
        self.plugin = registry.get(&manifest.name);
        let mut notes = notes;
        if let Some(sp) = &self.simulator {
            // The simulated application holds the connector to its word.
            let mut quirks = sp.quirks();
            if quirks.max_members_per_patch.is_none() {
                let most = manifest.capabilities.max_members_per_patch.max(1) as usize;
                quirks.max_members_per_patch = Some(most);
                notes.push(format!(
                    "the simulated application refuses group PATCHes of more than {most} members, as the manifest says"
                ));
            }
            sp.set_quirks(quirks).map_err(|e| e.to_string())?;
        }

        let data = folder.join("data");
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        let admin_token = format!("admin-{}", uuid::Uuid::new_v4().simple());
        let host_admin_token = crate::auth::BearerToken::from_plain(&admin_token);
        let stop_engine = Arc::clone(&self.stop_engine);
        // Opening the store and starting the engine call the store
        // synchronously: on the blocking pool, not on this task's thread.
        let host = tokio::task::spawn_blocking(move || -> Result<Host, String> {
            let cipher = TokenCipher::for_data_folder(&data).map_err(|e| e.to_string())?;
            let store: Arc<dyn Store> =
                Arc::new(SqliteStore::open_in(&data, cipher).map_err(|e| e.to_string())?);
            HostBuilder::new(
                store,
                host_admin_token,
                crate::auth::BearerToken::from_plain(&uuid::Uuid::new_v4().to_string()),
            )
            .connectors(registry)
            .engine_until(
                crate::engine::worker::EngineSettings {
                    quarantine_probe: Duration::from_secs(1),
                    // Never hold a change: a test deprovisions a third of its
                    // accounts at a time.
                    guard_percent: 100.0,
                    guard_minimum: u64::MAX,
                    reconcile_every: Duration::from_secs(86_400),
                    ..crate::engine::worker::EngineSettings::default()
                },
                stop_engine,
            )
            .build()
            .map_err(|error| match error {
                HostError::EngineStart(cause) => format!("cannot start the engine: {cause}"),
                other => other.to_string(),
            })
        })
        .await
        .map_err(|e| format!("cannot start the host: {e}"))??;
        let api = host.router();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| e.to_string())?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, api)
                .with_graceful_shutdown(async {
                    let _ = api_stopped.await;
                })
                .await;
        });
        self.stop_api = Some(stop_api);
        self.admin = Some(Admin {
            base: format!("http://{address}/api/v1"),
            token: admin_token,
        });
        self.store = Some(host.store_handle());
        Ok(Ended::Passed(notes))
    }

    async fn connect(&mut self, options: &Options) -> StepResult {
        let plugin = self.plugin()?;
        let mut settings = options.settings.clone();
        let mut notes = Vec::new();
        for spec in &plugin.manifest().settings {
            if spec.required && !settings.contains_key(&spec.key) {
                settings.insert(spec.key.clone(), "sandbox".into());
                notes.push(format!(
                    "setting {} is required and was not given: it is \"sandbox\"",
                    spec.key
                ));
            }
        }
        let connector = plugin.name().to_string();
        let body = json!({
            "name": APP,
            "connector": connector,
            "baseUrl": self.tape.base_url(),
            "token": self.app_token,
            "settings": settings,
            // Production's retries; no rate limit and no quarantine, which
            // would only slow the test down.
            "pacing": {"requestsPerSecond": 1000.0, "concurrency": 4, "timeoutSeconds": 30,
                       "maxAttempts": 6, "quarantineAfter": 1000},
        });
        let app = self.admin("POST", "/apps", Some(body)).await?;
        self.app_id = app["id"].as_str().unwrap_or_default().to_string();
        self.admin("POST", &format!("/apps/{APP}/activate"), None)
            .await?;
        Ok(Ended::Passed(notes))
    }

    async fn takeover(&mut self, alan: &Person, access: &str) -> StepResult {
        let plugin = self.plugin()?;
        let alan_id = self.directory_user(alan).await?;
        self.directory_group(access).await?;
        self.admin("PUT", &format!("/apps/{APP}/bindings/{access}"), None)
            .await?;
        // The account as the connector would create it, made by hand first.
        let record = self
            .store()?
            .get_user(&alan_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the directory lost the user")?;
        let settings = self.settings().await?;
        let document = self.quietly(|| plugin.map_user(&directory_user(&record), &settings));
        let document = document
            .map_err(|e| format!("map-user refused the user: {e}"))?
            .value;
        let existing = self.remote_create("Users", document.value()).await?;
        self.add_member(access, alan).await?;
        let linked = self.linked("user", &alan_id).await?;
        if linked != existing {
            return Err(format!(
                "the host linked the user to {linked}, not to the existing account {existing}"
            ));
        }
        let posts = self.host_created("/Users");
        if posts > 0 {
            return Err(format!(
                "the host created an account ({posts} POST /Users) although one existed"
            ));
        }
        let account = self.remote_object("Users", &existing).await?;
        if !is_active(&account) {
            return Err("the taken-over account is not active".into());
        }
        passed()
    }

    async fn create(&mut self, ada: &Person, access: &str) -> StepResult {
        self.directory_user(ada).await?;
        self.add_member(access, ada).await?;
        let id = self
            .linked("user", &self.directory[&ada.user_name].clone())
            .await?;
        let sent = self
            .host_requests()
            .into_iter()
            .find(|e| e.method == "POST" && e.path.starts_with("/Users") && e.status < 300)
            .and_then(|e| e.request)
            .ok_or("the host sent no successful POST /Users")?;
        let mut problems = mapping_problems(&sent, ada);
        let account = self.remote_object("Users", &id).await?;
        if !is_active(&account) {
            problems.push("the new account is not active".into());
        }
        let lost = differing_attributes(&sent, &account);
        if !lost.is_empty() {
            problems.push(format!(
                "the application does not hold {} as sent",
                lost.join(", ")
            ));
        }
        fail_on(problems)
    }

    async fn update(&mut self, ada: &Person) -> StepResult {
        let user_id = self.directory[&ada.user_name].clone();
        let before = self.mapped(&user_id).await?;
        self.admin(
            "PATCH",
            &format!("/users/{user_id}"),
            Some(json!({"title": "Principal Engineer", "familyName": "Byron"})),
        )
        .await?;
        self.settle().await?;
        let after = self.mapped(&user_id).await?;
        let writes: Vec<Exchange> = self
            .host_requests()
            .into_iter()
            .filter(|e| matches!(e.method.as_str(), "PATCH" | "PUT"))
            .collect();
        if before == after {
            return match writes.first() {
                Some(write) => Err(format!(
                    "the connector maps neither title nor familyName, yet the host sent {}",
                    write.line()
                )),
                None => Ok(Ended::Passed(vec![
                    "the connector maps neither title nor familyName: nothing to send".into(),
                ])),
            };
        }
        let Some(write) = writes.iter().find(|e| e.status < 300) else {
            return Err(match writes.first() {
                Some(write) => format!("the application refused the update: {}", answer(write)),
                None => "the directory changed, the host sent no update".into(),
            });
        };
        let mut problems = Vec::new();
        if write.method == "PUT"
            && let Some(body) = &write.request
        {
            problems.extend(mapping_problems(
                body,
                &Person {
                    title: "Principal Engineer",
                    family: "Byron",
                    ..ada.clone()
                },
            ));
        }
        let id = self.linked("user", &user_id).await?;
        let account = self.remote_object("Users", &id).await?;
        let lost = differing_attributes(&after, &account);
        if !lost.is_empty() {
            problems.push(format!(
                "after the update the application does not hold {}",
                lost.join(", ")
            ));
        }
        fail_on(problems)
    }

    /// The create carried a password (the manifest says on create), and a
    /// password the user sets reaches the account once (on change); the
    /// recording holds neither.
    async fn password(&mut self, ada: &Person) -> StepResult {
        let passwords = self.plugin()?.manifest().capabilities.passwords;
        let mut problems = Vec::new();
        let mut notes = Vec::new();
        if passwords.on_create {
            let created = self.tape.since(0).into_iter().find(|e| {
                e.by == Sender::Host
                    && e.method == "POST"
                    && e.path.starts_with("/Users")
                    && e.status < 300
                    && e.request
                        .as_ref()
                        .is_some_and(|r| r["userName"] == ada.user_name)
            });
            match created.and_then(|e| e.request) {
                Some(sent) if sent["password"] == crate::scim::REDACTED => {
                    notes.push("the create carried a password (redacted in the recording)".into());
                }
                Some(_) => problems.push(
                    "the manifest says the application takes a password on create, yet the \
                     create carried none"
                        .to_string(),
                ),
                None => {
                    problems.push("the host sent no successful POST /Users for the user".into())
                }
            }
        }
        let Some(method) = passwords.on_change else {
            notes.push("the manifest says the application takes no password changes".into());
            return if problems.is_empty() {
                Ok(Ended::Passed(notes))
            } else {
                fail_on(problems)
            };
        };
        let user_id = self.directory[&ada.user_name].clone();
        let password =
            crate::engine::passwords::temporary(&crate::store::PasswordPolicy::default())
                .map_err(|error| error.to_string())?;
        self.admin(
            "PUT",
            &format!("/users/{user_id}/password"),
            Some(json!({ "password": password.expose() })),
        )
        .await?;
        self.settle().await?;
        // A request that set a password: the recording redacted it, so
        // what it redacted is what was sent.
        let carried = |e: &Exchange| {
            e.request.as_ref().is_some_and(|body| {
                crate::scim::passwords_in(body)
                    .iter()
                    .any(|sent| sent == crate::scim::REDACTED)
            })
        };
        let pushes: Vec<Exchange> = self
            .host_requests()
            .into_iter()
            .filter(|e| matches!(e.method.as_str(), "PATCH" | "PUT") && carried(e))
            .collect();
        let expected = match method {
            crate::runtime::contract::UpdateMethod::Patch => "PATCH",
            crate::runtime::contract::UpdateMethod::Put => "PUT",
        };
        match pushes.as_slice() {
            [] => problems.push("the user set a password; the host sent none".into()),
            [push] if push.status >= 300 => problems.push(format!(
                "the application refused the password: {}",
                answer(push)
            )),
            [push] if push.method != expected => problems.push(format!(
                "the manifest says passwords change by {expected}; the host sent {}",
                push.method
            )),
            [_] => notes.push(format!(
                "the password the user set was sent once, by {expected}"
            )),
            more => problems.push(format!(
                "the password the user set was sent {} times",
                more.len()
            )),
        }
        let recorded = serde_json::to_string(&self.tape.since(0)).unwrap_or_default();
        if recorded.contains(password.expose()) {
            problems.push("the recording holds the password in clear".into());
        }
        if problems.is_empty() {
            Ok(Ended::Passed(notes))
        } else {
            fail_on(problems)
        }
    }

    async fn read_back(&mut self) -> StepResult {
        let done = self
            .admin("POST", &format!("/apps/{APP}/reconcile"), None)
            .await?;
        let repairs = ["repaired", "recreated", "provisioned", "groups_repaired"]
            .iter()
            .filter_map(|key| {
                let n = done[*key].as_u64().unwrap_or(0);
                (n > 0).then(|| format!("{n} {key}"))
            })
            .collect::<Vec<_>>();
        if repairs.is_empty() {
            return Ok(Ended::Passed(vec![format!(
                "{} accounts listed",
                done["listed"].as_u64().unwrap_or(0)
            )]));
        }
        let drift = self.events_with_rule("drift").await;
        Err(format!(
            "the application does not hold what the host sent: {}{}",
            repairs.join(", "),
            if drift.is_empty() {
                String::new()
            } else {
                format!(" ({})", drift.join("; "))
            }
        ))
    }

    async fn leave_scope(&mut self, ada: &Person, access: &str) -> StepResult {
        let user_id = self.directory[&ada.user_name].clone();
        let remote = self.linked("user", &user_id).await?;
        self.admin(
            "DELETE",
            &format!("/groups/{access}/members/{}", ada.user_name),
            None,
        )
        .await?;
        self.settle().await?;
        let rule = self.last_rule().await;
        self.no_active_account(
            &remote,
            "the user removed from the application's only group",
        )
        .await
        .map_err(|e| format!("{e}{}", rule_named(&rule)))
    }

    async fn delete(&mut self, alan: &Person) -> StepResult {
        let user_id = self
            .directory
            .get(&alan.user_name)
            .cloned()
            .ok_or("lookup-takeover did not create the user")?;
        let remote = self.linked("user", &user_id).await?;
        self.admin("DELETE", &format!("/users/{user_id}"), None)
            .await?;
        self.settle().await?;
        let rule = self.last_rule().await;
        self.no_active_account(&remote, "the user deleted from the directory")
            .await
            .map_err(|e| format!("{e}{}", rule_named(&rule)))
    }

    async fn group_create(&mut self, access: &str, grace: &Person) -> StepResult {
        self.directory_user(grace).await?;
        self.add_member(access, grace).await?;
        self.set_group_management(true).await?;
        let group = self.remote_group_named(access).await?.ok_or_else(|| {
            format!("no group {access:?} in the application after group management was turned on")
        })?;
        let grace_remote = self
            .linked("user", &self.directory[&grace.user_name].clone())
            .await?;
        expect_members(&group, access, &[&grace_remote], &[])
    }

    async fn group_takeover(&mut self, team: &str, ada: &Person) -> StepResult {
        let existing = self
            .remote_create(
                "Groups",
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": team}),
            )
            .await?;
        self.directory_group(team).await?;
        self.add_member(team, ada).await?;
        self.admin("PUT", &format!("/apps/{APP}/bindings/{team}"), None)
            .await?;
        self.settle().await?;
        let posts = self.host_created("/Groups");
        if posts > 0 {
            return Err(format!(
                "the host created a group ({posts} POST /Groups) although {team:?} existed"
            ));
        }
        let group = self.remote_object("Groups", &existing).await?;
        let ada_remote = self
            .linked("user", &self.directory[&ada.user_name].clone())
            .await?;
        expect_members(&group, team, &[&ada_remote], &[])?;
        let account = self.remote_object("Users", &ada_remote).await?;
        if !is_active(&account) {
            return Err("the member given access again has no active account".into());
        }
        passed()
    }

    async fn group_membership(
        &mut self,
        access: &str,
        team: &str,
        ada: &Person,
        grace: &Person,
    ) -> StepResult {
        // The removed member must lose its last access; a failed
        // deactivate step may have left it in the access group.
        let _ = self
            .admin(
                "DELETE",
                &format!("/groups/{access}/members/{}", ada.user_name),
                None,
            )
            .await;
        self.settle().await?;
        let group_id = self.linked("group", &self.directory[team].clone()).await?;
        self.add_member(team, grace).await?;
        let ada_remote = self
            .linked("user", &self.directory[&ada.user_name].clone())
            .await?;
        let grace_remote = self
            .linked("user", &self.directory[&grace.user_name].clone())
            .await?;
        let group = self.remote_object("Groups", &group_id).await?;
        expect_members(&group, team, &[&ada_remote, &grace_remote], &[])?;
        self.admin(
            "DELETE",
            &format!("/groups/{team}/members/{}", ada.user_name),
            None,
        )
        .await?;
        self.settle().await?;
        let rule = self.last_rule().await;
        // The host never deletes a group for one member's removal, whatever
        // the rule asks: a group gone here is the application's doing.
        let group = self
            .remote_object("Groups", &group_id)
            .await
            .map_err(|e| format!("{e}{}", rule_named(&rule)))?;
        expect_members(&group, team, &[&grace_remote], &[&ada_remote])
            .map_err(|e| format!("{e}{}", rule_named(&rule)))?;
        self.no_active_account(&ada_remote, "the member removed from the group")
            .await
            .map_err(|e| format!("{e}{}", rule_named(&rule)))
    }

    async fn group_rename(&mut self, team: &str, renamed: &str) -> StepResult {
        let directory_id = self.directory[team].clone();
        let group_id = self.linked("group", &directory_id).await?;
        self.admin(
            "PATCH",
            &format!("/groups/{directory_id}"),
            Some(json!({"name": renamed})),
        )
        .await?;
        self.directory.insert(renamed.to_string(), directory_id);
        self.settle().await?;
        let group = self.remote_object("Groups", &group_id).await?;
        match group["displayName"].as_str() {
            Some(name) if name == renamed => passed(),
            other => Err(format!(
                "the group {group_id} is named {other:?} in the application, not {renamed:?}"
            )),
        }
    }

    async fn group_management_off(&mut self, groups: &[&str], grace: &Person) -> StepResult {
        let mut before = Vec::new();
        for name in groups {
            let id = self.linked("group", &self.directory[*name].clone()).await?;
            before.push((
                id.clone(),
                member_ids(&self.remote_object("Groups", &id).await?),
            ));
        }
        self.set_group_management(false).await?;
        let writes: Vec<String> = self
            .host_requests()
            .iter()
            .filter(|e| e.method != "GET")
            .map(Exchange::line)
            .collect();
        let mut problems = Vec::new();
        for (id, members) in before {
            match self.remote_read(&format!("/Groups/{id}")).await? {
                (200, Some(group)) if member_ids(&group) == members => {}
                (200, Some(_)) => problems.push(format!("the members of group {id} changed")),
                (status, _) => problems.push(format!("group {id} answers {status}")),
            }
        }
        let grace_remote = self
            .linked("user", &self.directory[&grace.user_name].clone())
            .await?;
        if !is_active(&self.remote_object("Users", &grace_remote).await?) {
            problems.push("a member still in scope lost its active account".into());
        }
        self.set_group_management(true).await?;
        if !problems.is_empty() && !writes.is_empty() {
            problems.push(format!("the host sent {}", writes.join(", ")));
        }
        fail_on(problems)
    }

    async fn group_unbind(&mut self, team: &str, grace: &Person, katherine: &Person) -> StepResult {
        self.directory_user(katherine).await?;
        self.add_member(team, katherine).await?;
        let katherine_remote = self
            .linked("user", &self.directory[&katherine.user_name].clone())
            .await?;
        let grace_remote = self
            .linked("user", &self.directory[&grace.user_name].clone())
            .await?;
        let group_id = self.linked("group", &self.directory[team].clone()).await?;
        let team_directory_id = self.directory[team].clone();
        self.admin(
            "DELETE",
            &format!("/apps/{APP}/bindings/{team_directory_id}"),
            None,
        )
        .await?;
        self.settle().await?;
        let rule = self.last_rule().await;
        let mut notes = vec![format!(
            "the group is {} in the application{}",
            match self.remote_read(&format!("/Groups/{group_id}")).await? {
                (200, Some(group)) => format!("kept with {} members", member_ids(&group).len()),
                (404, _) => "deleted".into(),
                (status, _) => format!("answering {status}"),
            },
            rule_named(&rule)
        )];
        if let Err(e) = self
            .no_active_account(
                &katherine_remote,
                "the member only the unbound group gave access",
            )
            .await
        {
            return Err(format!("{e}{}", rule_named(&rule)));
        }
        if !is_active(&self.remote_object("Users", &grace_remote).await?) {
            return Err(format!(
                "a member another bound group still gives access lost its active account{}",
                rule_named(&rule)
            ));
        }
        notes.push("members keep or lose their accounts by their remaining access".into());
        Ok(Ended::Passed(notes))
    }

    async fn group_delete(&mut self, access: &str, grace: &Person) -> StepResult {
        let directory_id = self.directory[access].clone();
        let group_id = self.linked("group", &directory_id).await?;
        let grace_remote = self
            .linked("user", &self.directory[&grace.user_name].clone())
            .await?;
        self.admin("DELETE", &format!("/groups/{directory_id}"), None)
            .await?;
        self.settle().await?;
        let rule = self.last_rule().await;
        self.no_active_account(&grace_remote, "the member of the deleted group")
            .await
            .map_err(|e| format!("{e}{}", rule_named(&rule)))?;
        let fate = match self.remote_read(&format!("/Groups/{group_id}")).await? {
            (404, _) => "deleted".to_string(),
            (200, Some(group)) => format!("kept with {} members", member_ids(&group).len()),
            (status, _) => format!("answering {status}"),
        };
        Ok(Ended::Passed(vec![format!(
            "the group is {fate} in the application{}",
            rule_named(&rule)
        )]))
    }

    async fn import(&mut self) -> StepResult {
        let run = self.run_id.clone();
        let user_name = format!("mary.jackson.{run}@sandbox.example");
        let remote = self
            .remote_create(
                "Users",
                json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": user_name,
                    "name": {"givenName": "Mary", "familyName": "Jackson"},
                    "displayName": "Mary Jackson",
                    "emails": [{"value": user_name, "type": "work", "primary": true}],
                    "active": true,
                }),
            )
            .await?;
        // The application may hold many accounts: page until ours shows.
        let mut offset = 0;
        let entry = loop {
            let page = self
                .admin(
                    "GET",
                    &format!("/apps/{APP}/import?limit=1000&offset={offset}"),
                    None,
                )
                .await?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            if let Some(entry) = items
                .iter()
                .find(|item| item["remote_id"].as_str() == Some(remote.as_str()))
            {
                break entry.clone();
            }
            offset += items.len() as u64;
            if items.is_empty() || offset >= page["total"].as_u64().unwrap_or(0) {
                return Err(format!(
                    "the import listing does not show the account {remote}"
                ));
            }
        };
        if entry["status"].as_str() != Some("new") {
            return Err(format!(
                "the account {remote} is listed as {}, not new",
                entry["status"]
            ));
        }
        // A group of this run: the import binds it, and the engine pushes it.
        let group = format!("sandbox-{run}-imported");
        self.admin(
            "POST",
            &format!("/apps/{APP}/import"),
            Some(json!({"users": [remote], "group": group})),
        )
        .await?;
        self.settle().await?;
        let imported = self
            .admin("GET", &format!("/users/{user_name}"), None)
            .await
            .map_err(|e| format!("the imported account is not in the directory: {e}"))?;
        let mut problems = Vec::new();
        if imported["givenName"].as_str() != Some("Mary") {
            problems.push(format!(
                "read-user gave the directory user givenName {}, the account says \"Mary\"",
                imported["givenName"]
            ));
        }
        fail_on(problems)
    }

    async fn cleanup(&mut self) {
        // Without a connection nothing was created, and the step is
        // filed as skipped already.
        if self.steps.iter().any(|s| s.name == CLEANUP.0) {
            return;
        }
        let mark = self.begin();
        let mut problems = Vec::new();
        if let Err(e) = self.settle().await {
            problems.push(e);
        }
        // Everything created in the application, by the host or by the
        // test; groups first, so no membership points at a deleted user.
        let mut created: Vec<(&'static str, String)> = self
            .tape
            .since(0)
            .into_iter()
            .filter(|e| e.method == "POST" && (200..300).contains(&e.status))
            .filter_map(|e| {
                let kind = if e.path.starts_with("/Groups") {
                    "Groups"
                } else if e.path.starts_with("/Users") {
                    "Users"
                } else {
                    return None;
                };
                Some((kind, e.response?["id"].as_str()?.to_string()))
            })
            .collect();
        created.append(&mut self.created);
        // Groups first (false sorts first), each object once.
        let created: BTreeSet<(bool, &'static str, String)> = created
            .into_iter()
            .map(|(kind, id)| (kind != "Groups", kind, id))
            .collect();
        let mut deleted = 0;
        for (_, kind, id) in &created {
            match self.remote("DELETE", &format!("/{kind}/{id}"), None).await {
                Ok((status, _)) if status < 300 => deleted += 1,
                Ok((404, _)) => {}
                Ok((status, body)) => problems.push(unexpected(
                    &format!("DELETE /{kind}/{id}"),
                    status,
                    body.as_ref(),
                )),
                Err(e) => problems.push(e),
            }
        }
        let result = fail_on(problems).map(|_| {
            Ended::Passed(vec![format!(
                "{deleted} of {} created objects deleted (the rest were gone already)",
                created.len()
            )])
        });
        self.end(CLEANUP, mark, result);
    }

    // ---- bookkeeping -----------------------------------------------------

    fn begin(&mut self) -> (usize, Instant) {
        // Calls made between steps belong to no step.
        self.tap.take();
        self.step_from = self.tape.len();
        self.step_started_at = Timestamp::now();
        (self.step_from, Instant::now())
    }

    fn end(
        &mut self,
        step: (&'static str, &'static str),
        mark: (usize, Instant),
        result: StepResult,
    ) {
        self.file(step, mark.1, mark.0, result);
    }

    fn file(
        &mut self,
        (name, purpose): (&'static str, &'static str),
        started: Instant,
        from: usize,
        result: StepResult,
    ) {
        let (outcome, reason, notes) = match result {
            Ok(Ended::Passed(notes)) => (Outcome::Pass, None, notes),
            Ok(Ended::Skipped(reason)) => (Outcome::Skip, Some(reason), Vec::new()),
            Err(reason) => (Outcome::Fail, Some(reason), Vec::new()),
        };
        let (mut requests, mut checks) = (Vec::new(), Vec::new());
        for exchange in self.tape.since(from) {
            match exchange.by {
                Sender::Host => requests.push(exchange),
                Sender::Check => checks.push(exchange),
            }
        }
        let mut reason = reason;
        if outcome != Outcome::Skip {
            // What the application refused explains most failures.
            let unmatched: Vec<String> = requests
                .iter()
                .filter(|e| e.unmatched)
                .map(Exchange::line)
                .collect();
            let schema: Vec<String> = requests.iter().filter_map(schema_problem).collect();
            let extra: Vec<String> =
                schema
                    .into_iter()
                    .chain((!unmatched.is_empty()).then(|| {
                        format!("the recording has no answer for {}", unmatched.join(", "))
                    }))
                    .collect();
            if !extra.is_empty() {
                reason = Some(
                    reason
                        .into_iter()
                        .chain(extra)
                        .collect::<Vec<_>>()
                        .join("; "),
                );
            }
        }
        let outcome = if outcome == Outcome::Pass && reason.is_some() {
            Outcome::Fail
        } else {
            outcome
        };
        let step = Step {
            name,
            purpose,
            outcome,
            reason,
            notes,
            requests,
            checks,
            // A skipped step made no call; what was made meanwhile is not its.
            calls: if outcome == Outcome::Skip {
                Vec::new()
            } else {
                self.tap.take()
            },
            millis: started.elapsed().as_millis().try_into().unwrap_or(u64::MAX),
        };
        if let Some(progress) = &self.progress {
            progress(&step);
        }
        self.steps.push(step);
    }

    fn skip_rest(&mut self, steps: &[(&'static str, &'static str)], why: &str) {
        for step in steps {
            self.file(
                *step,
                Instant::now(),
                self.tape.len(),
                Ok(Ended::Skipped(why.into())),
            );
        }
    }

    fn plugin(&self) -> Result<Arc<LoadedPlugin>, String> {
        self.plugin
            .clone()
            .ok_or_else(|| "no connector loaded".into())
    }

    fn store(&self) -> Result<StoreHandle, String> {
        self.store.clone().ok_or_else(|| "no host started".into())
    }

    async fn settings(&self) -> Result<Vec<Setting>, String> {
        let app = self
            .store()?
            .get_app(APP)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the application is gone")?;
        Ok(crate::engine::provision::settings_of(&app))
    }

    /// What the connector maps a directory user to now.
    async fn mapped(&self, user_id: &str) -> Result<Value, String> {
        let record = self
            .store()?
            .get_user(user_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the directory lost the user")?;
        let (plugin, settings) = (self.plugin()?, self.settings().await?);
        let document = self
            .quietly(|| plugin.map_user(&directory_user(&record), &settings))
            .map_err(|e| e.to_string())?;
        Ok(document.value.value())
    }

    /// Runs a connector call of the test's own, keeping it out of the
    /// step's receipts (they show what the host's work cost).
    fn quietly<T>(&self, call: impl FnOnce() -> T) -> T {
        let before = self.tap.take();
        let result = call();
        self.tap.take();
        self.tap.restore(before);
        result
    }

    /// The remote id the host linked a directory object to.
    async fn linked(&self, kind: &str, object_id: &str) -> Result<String, String> {
        let entry = self
            .store()?
            .ledger_entry(&self.app_id, kind, object_id)
            .await
            .map_err(|e| e.to_string())?;
        match entry {
            Some(entry) => Ok(entry.remote_id),
            None => Err(self.failure_explained(kind).await),
        }
    }

    /// Why the host holds no account: the last failure event, if any.
    async fn failure_explained(&self, kind: &str) -> String {
        let store = match self.store() {
            Ok(store) => store,
            Err(e) => return e,
        };
        let query = crate::store::EventQuery {
            app_id: Some(self.app_id.clone()),
            outcome: Some(crate::store::Outcome::Failure),
            ..Default::default()
        };
        let last = store
            .events(
                &query,
                crate::store::Page {
                    offset: 0,
                    limit: 1,
                },
            )
            .await
            .ok()
            .and_then(|listing| listing.items.into_iter().next());
        match last {
            Some(event) => format!(
                "the host holds no {kind} in the application: {}",
                event.summary
            ),
            None => format!("the host holds no {kind} in the application"),
        }
    }

    /// How many objects the host created at `endpoint` in the current step.
    fn host_created(&self, endpoint: &str) -> usize {
        self.host_requests()
            .iter()
            .filter(|e| e.method == "POST" && e.path == endpoint && e.status < 300)
            .count()
    }

    /// The requests the host sent in the current step.
    fn host_requests(&self) -> Vec<Exchange> {
        self.tape
            .since(self.step_from)
            .into_iter()
            .filter(|e| e.by == Sender::Host)
            .collect()
    }

    /// The connector's rule recorded last in this step, or nothing.
    async fn last_rule(&self) -> String {
        self.events_with_rule("")
            .await
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// The rule names recorded since the step began, newest first: the
    /// connector's own rules when `containing` is empty, else the rules
    /// containing it.
    async fn events_with_rule(&self, containing: &str) -> Vec<String> {
        let Ok(store) = self.store() else {
            return Vec::new();
        };
        let query = crate::store::EventQuery {
            app_id: Some(self.app_id.clone()),
            since: Some(self.step_started_at),
            ..Default::default()
        };
        store
            .events(
                &query,
                crate::store::Page {
                    offset: 0,
                    limit: 100,
                },
            )
            .await
            .map(|listing| {
                listing
                    .items
                    .into_iter()
                    .filter_map(|e| e.rule)
                    .filter(|rule| {
                        if containing.is_empty() {
                            is_connector_rule(rule)
                        } else {
                            rule.contains(containing)
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    // ---- the host --------------------------------------------------------

    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let admin = self.admin.as_ref().ok_or("no host started")?;
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", admin.base))
            .bearer_auth(&admin.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request
            .send()
            .await
            .map_err(|e| format!("the host's API failed: {e}"))?;
        let status = answer.status();
        let value: Value = answer.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            // The admin API's error body: {"error": {"code", "message"}}.
            let why = value["error"]["message"].as_str().unwrap_or("");
            return Err(format!(
                "the host answered {method} {path} with {status}: {why}"
            ));
        }
        Ok(value)
    }

    /// Waits until the engine has applied every change.
    async fn settle(&self) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let status = self.admin("GET", "/status", None).await?;
            let pending = status["pendingChanges"].as_u64().unwrap_or(0);
            if pending == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the engine did not apply the change within {} s ({pending} pending)",
                    self.timeout.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn directory_user(&mut self, person: &Person) -> Result<String, String> {
        let user = self.admin("POST", "/users", Some(person.fields())).await?;
        let id = user["id"].as_str().ok_or("the host returned no user id")?;
        self.remember(&person.user_name, id);
        Ok(id.to_string())
    }

    async fn directory_group(&mut self, name: &str) -> Result<String, String> {
        let group = self
            .admin("POST", "/groups", Some(json!({"name": name})))
            .await?;
        let id = group["id"]
            .as_str()
            .ok_or("the host returned no group id")?;
        self.remember(name, id);
        Ok(id.to_string())
    }

    /// Keeps a directory object's id, and tells a replay which recorded id
    /// it stands for.
    fn remember(&mut self, name: &str, id: &str) {
        if let Some(recorded) = self.recorded_directory.get(name) {
            self.tape.substitute(recorded, id);
        }
        self.directory.insert(name.to_string(), id.to_string());
    }

    async fn add_member(&self, group: &str, person: &Person) -> Result<(), String> {
        self.admin(
            "PUT",
            &format!("/groups/{group}/members/{}", person.user_name),
            None,
        )
        .await?;
        self.settle().await
    }

    async fn set_group_management(&self, on: bool) -> Result<(), String> {
        self.admin(
            "PATCH",
            &format!("/apps/{APP}"),
            Some(json!({"manageGroups": on})),
        )
        .await?;
        self.settle().await
    }

    // ---- the application -------------------------------------------------

    /// One request of the test's own. A 429 is retried (the application
    /// did nothing), and so is a 5xx of a GET or DELETE (doing it twice is
    /// harmless), a few times, after the `Retry-After` asked for: the
    /// test reads back through the same limits the host works under.
    async fn remote(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Option<Value>), String> {
        const ATTEMPTS: u32 = 6;
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let idempotent = matches!(method, reqwest::Method::GET | reqwest::Method::DELETE);
        let mut attempt = 1;
        loop {
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.tape.base_url()))
                .bearer_auth(&self.app_token)
                .header(CHECK_HEADER, "1");
            if let Some(body) = &body {
                request = request
                    .header("content-type", "application/scim+json")
                    .body(body.to_string());
            }
            let answer = request
                .send()
                .await
                .map_err(|e| format!("cannot reach the application: {e}"))?;
            let status = answer.status().as_u16();
            let again = status == 429 || (idempotent && status >= 500);
            if again && attempt < ATTEMPTS {
                let wait = answer
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(Duration::from_millis(100 << attempt), Duration::from_secs)
                    .min(Duration::from_secs(10));
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            let body = answer.json::<Value>().await.ok();
            return Ok((status, body));
        }
    }

    async fn remote_read(&self, path: &str) -> Result<(u16, Option<Value>), String> {
        self.remote("GET", path, None).await
    }

    /// Creates a user or group of the test's own. A 5xx may or may not
    /// have created it: the name is looked up before the POST is sent
    /// again, so a retry never makes a second one.
    async fn remote_create(&mut self, kind: &'static str, body: Value) -> Result<String, String> {
        let name_attribute = if kind == "Groups" {
            "displayName"
        } else {
            "userName"
        };
        let name = body[name_attribute]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut attempt = 1;
        let id = loop {
            let (status, answer) = self
                .remote("POST", &format!("/{kind}"), Some(body.clone()))
                .await?;
            if (200..300).contains(&status) {
                break answer
                    .as_ref()
                    .and_then(|a| a["id"].as_str())
                    .ok_or_else(|| format!("POST /{kind} answered without an id"))?
                    .to_string();
            }
            if status < 500 || attempt >= 3 || name.is_empty() {
                return Err(unexpected(
                    &format!("POST /{kind}"),
                    status,
                    answer.as_ref(),
                ));
            }
            let filter = encode(&format!("{name_attribute} eq \"{name}\""));
            if let (200, Some(found)) = self
                .remote_read(&format!("/{kind}?filter={filter}"))
                .await?
                && let Some(id) = found["Resources"][0]["id"].as_str()
            {
                break id.to_string();
            }
            attempt += 1;
        };
        self.created.push((kind, id.clone()));
        Ok(id)
    }

    /// A user (`Users`) or group (`Groups`) as the application holds it.
    async fn remote_object(&self, kind: &str, id: &str) -> Result<Value, String> {
        match self.remote_read(&format!("/{kind}/{id}")).await? {
            (200, Some(object)) => Ok(object),
            (status, body) => Err(unexpected(&format!("{kind}/{id}"), status, body.as_ref())),
        }
    }

    async fn remote_group_named(&self, name: &str) -> Result<Option<Value>, String> {
        let filter = format!("displayName eq \"{name}\"");
        let path = format!("/Groups?filter={}", encode(&filter));
        match self.remote_read(&path).await? {
            (200, Some(list)) => Ok(list["Resources"]
                .as_array()
                .and_then(|r| r.first())
                .cloned()),
            (status, body) => Err(unexpected("the group search", status, body.as_ref())),
        }
    }

    async fn no_active_account(&self, remote: &str, who: &str) -> StepResult {
        match self.remote_read(&format!("/Users/{remote}")).await? {
            (404, _) => Ok(Ended::Passed(vec![format!(
                "{who}: account {remote} deleted"
            )])),
            (200, Some(account)) if !is_active(&account) => Ok(Ended::Passed(vec![format!(
                "{who}: account {remote} deactivated"
            )])),
            (200, Some(_)) => Err(format!("{who} still has an active account ({remote})")),
            (status, body) => Err(unexpected(
                &format!("the account {remote}"),
                status,
                body.as_ref(),
            )),
        }
    }
}

/// Whether an event's rule was named by the connector (an `on-group-event`
/// decision) rather than by the engine's own bookkeeping.
fn is_connector_rule(rule: &str) -> bool {
    const ENGINE_RULES: [&str; 6] = [
        "mapping",
        "created",
        "membership",
        "renamed",
        "updated",
        "read-user",
    ];
    !ENGINE_RULES.contains(&rule) && !rule.starts_with("drift") && !rule.contains(" eq ")
}

/// Passed when nothing is wrong, else every problem in one reason.
fn fail_on(problems: Vec<String>) -> StepResult {
    if problems.is_empty() {
        passed()
    } else {
        Err(problems.join("; "))
    }
}

fn rule_named(rule: &str) -> String {
    if rule.is_empty() {
        String::new()
    } else {
        format!(" (the connector's rule: {rule})")
    }
}

fn unexpected(what: &str, status: u16, body: Option<&Value>) -> String {
    let detail = body
        .map(|b| {
            b["detail"]
                .as_str()
                .or_else(|| b["error"]["message"].as_str())
                .map(str::to_string)
                .unwrap_or_else(|| b.to_string())
        })
        .unwrap_or_default();
    format!("{what} answers {status} {detail}")
        .trim_end()
        .to_string()
}

fn answer(exchange: &Exchange) -> String {
    unexpected(
        &format!("{} {}", exchange.method, exchange.path),
        exchange.status,
        exchange.response.as_ref(),
    )
}

fn is_active(account: &Value) -> bool {
    match &account["active"] {
        Value::Bool(active) => *active,
        Value::String(text) => !text.eq_ignore_ascii_case("false"),
        // SCIM's default: an account without the attribute is active.
        _ => true,
    }
}

fn member_ids(group: &Value) -> BTreeSet<String> {
    group["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["value"].as_str().map(str::to_string))
        .collect()
}

fn expect_members(group: &Value, name: &str, present: &[&str], absent: &[&str]) -> StepResult {
    let members = member_ids(group);
    let missing: Vec<&str> = present
        .iter()
        .copied()
        .filter(|id| !members.contains(*id))
        .collect();
    let extra: Vec<&str> = absent
        .iter()
        .copied()
        .filter(|id| members.contains(*id))
        .collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!(
            "group {name:?} lacks the member(s) {}",
            missing.join(", ")
        ));
    }
    if !extra.is_empty() {
        problems.push(format!(
            "group {name:?} still has the removed member(s) {}",
            extra.join(", ")
        ));
    }
    fail_on(problems)
}

/// The values a connector sends must be the directory's: a standard
/// attribute holding another attribute's value is a wrong mapping.
fn mapping_problems(document: &Value, person: &Person) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expect = |path: &str, found: &Value, wanted: &str| {
        if let Some(found) = found.as_str()
            && found != wanted
        {
            problems.push(format!(
                "{path} is {found:?}, the directory's {path} is {wanted:?}"
            ));
        }
    };
    expect(
        "name.givenName",
        &document["name"]["givenName"],
        person.given,
    );
    expect(
        "name.familyName",
        &document["name"]["familyName"],
        person.family,
    );
    expect("title", &document["title"], person.title);
    let enterprise = &document[crate::scim::schema::ENTERPRISE_USER.id];
    expect(
        "employeeNumber",
        &enterprise["employeeNumber"],
        &person.employee_number,
    );
    expect("department", &enterprise["department"], "Sandbox");
    expect("organization", &enterprise["organization"], "Sandbox Inc");
    for email in document["emails"].as_array().into_iter().flatten() {
        if let Some(value) = email["value"].as_str()
            && !value.eq_ignore_ascii_case(&person.user_name)
        {
            problems.push(format!(
                "emails holds {value:?}, the directory's email is {:?}",
                person.user_name
            ));
        }
    }
    match document["userName"].as_str() {
        Some(name)
            if name.eq_ignore_ascii_case(&person.user_name) || name == person.employee_number => {}
        Some(name) => problems.push(format!(
            "userName is {name:?}; the directory's userName (and email) is {:?}",
            person.user_name
        )),
        None => problems.push("the document has no userName".into()),
    }
    problems
}

/// What in a request body breaks the SCIM schema, if anything.
fn schema_problem(exchange: &Exchange) -> Option<String> {
    let body = exchange.request.as_ref()?;
    let path = exchange.path.split('?').next().unwrap_or_default();
    let kind = match path.split('/').nth(1) {
        // `/Users/.search` is a query, not a resource.
        _ if path.contains("/.") => return None,
        Some("Users") => &crate::scim::schema::USER_TYPE,
        Some("Groups") => &crate::scim::schema::GROUP_TYPE,
        _ => return None,
    };
    let problem = match exchange.method.as_str() {
        "POST" | "PUT" => {
            // Extensions of the application's own are its business.
            let (known, _) = super::sp::split_foreign_extensions(kind, body.as_object()?);
            crate::scim::schema::check_resource(kind, &Value::Object(known)).err()
        }
        "PATCH" => crate::scim::patch::parse_request(body).err(),
        _ => None,
    }?;
    Some(format!(
        "{} {} breaks the SCIM schema: {}",
        exchange.method, exchange.path, problem.detail
    ))
}

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ada() -> Person {
        Person::new("r1", "Ada", "Lovelace", 1)
    }

    #[test]
    fn a_faithful_mapping_has_no_problems() {
        let document = json!({
            "userName": "ada.lovelace.r1@sandbox.example",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"value": "ada.lovelace.r1@sandbox.example"}],
            "title": "Engineer",
        });
        assert!(mapping_problems(&document, &ada()).is_empty());
    }

    #[test]
    fn swapped_names_are_named() {
        let document = json!({
            "userName": "ada.lovelace.r1@sandbox.example",
            "name": {"givenName": "Lovelace", "familyName": "Ada"},
        });
        let problems = mapping_problems(&document, &ada());
        assert_eq!(problems.len(), 2);
        assert!(problems[0].contains("name.givenName is \"Lovelace\""));
    }

    #[test]
    fn a_schema_breaking_body_is_named() {
        let exchange = Exchange {
            by: Sender::Host,
            method: "POST".into(),
            path: "/Users".into(),
            status: 201,
            request: Some(json!({"userName": "x", "active": "yes"})),
            response: None,
            response_text: None,
            retry_after: None,
            unmatched: false,
        };
        assert!(schema_problem(&exchange).is_some());
        // A search is a query, not a resource.
        let search = Exchange {
            path: "/Users/.search".into(),
            ..exchange
        };
        assert!(schema_problem(&search).is_none());
    }

    #[test]
    fn active_reads_strings_and_absence() {
        assert!(!is_active(&json!({"active": "False"})));
        assert!(is_active(&json!({})));
        assert!(!is_active(&json!({"active": false})));
    }
}
