//! The admin commands (`scimlink app …`, `scimlink directory import`): a
//! client of a running host's admin API.
//!
//! The token comes from `SCIMLINK_ADMIN_TOKEN`, never from the command line,
//! so it does not land in shell history or the process list. A failure
//! prints the API's own message, and the field at fault when there is one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::serve::ADMIN_TOKEN_ENV;
use super::{Format, shown};
use crate::scim_client::percent_encode;

#[derive(Debug, Args)]
pub struct Connection {
    /// The host's address.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:8080",
        env = "SCIMLINK_HOST"
    )]
    host: String,
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Add an application (inactive until activated).
    Add(AppAdd),
    /// List applications.
    List {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Show one application: its settings, pacing and guard thresholds.
    Show {
        name: String,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Set the application's own deprovisioning-guard thresholds; what is
    /// not given stays as it is.
    Guard(AppGuard),
    /// Bind a group (by display name) to an application.
    Bind { name: String, group: String },
    /// Unbind a group from an application.
    Unbind { name: String, group: String },
    /// Assign a user (userName or id) to an application directly.
    Assign { name: String, user: String },
    /// Remove a user's direct assignment.
    Unassign { name: String, user: String },
    /// Stop managing the account linked to a user who is out of scope or
    /// deleted (its id): the account is left as it is. Hands an account over
    /// to another user whose takeover was refused; then replay the refused
    /// user's dead letter.
    Release { name: String, user: String },
    /// Start provisioning to an application.
    Activate { name: String },
    /// Stop provisioning to an application.
    Deactivate { name: String },
    /// Replace an application's bearer token without deactivating it.
    RotateToken {
        name: String,
        /// The new token; `-` reads it from standard input.
        #[arg(long)]
        token: String,
    },
    /// Change an application's base URL, settings or label. A change that
    /// moves the base URL to another server (scheme, host or port) needs
    /// --token: the stored token is never sent to a new server.
    Update(AppUpdateArgs),
    /// Turn "manage groups and group membership" on or off.
    ManageGroups {
        name: String,
        #[arg(action = clap::ArgAction::Set)]
        enabled: bool,
    },
    /// List the application's accounts as new or imported; with --apply,
    /// import the new ones into the directory.
    Import(AppImport),
    /// Show or change how temporary passwords are made for the
    /// application (when its connector takes passwords).
    PasswordPolicy(AppPasswordPolicy),
    /// Print, once, the temporary password the host made for a user's
    /// account, to hand to the user (kept only under `--reveal once`).
    RevealPassword { name: String, user: String },
}

#[derive(Debug, Args)]
pub struct AppPasswordPolicy {
    /// The application's name.
    name: String,
    /// Whether passwords are sent to the application at all (when its
    /// connector takes them): `false` for an application that refuses them.
    #[arg(long, action = clap::ArgAction::Set)]
    send: Option<bool>,
    /// Characters in a temporary password (8–128).
    #[arg(long)]
    length: Option<u16>,
    /// The character classes a temporary password holds, each at least
    /// once: a comma-separated list of lowercase, uppercase, digits,
    /// symbols.
    #[arg(long, value_delimiter = ',')]
    classes: Option<Vec<PasswordClass>>,
    /// Whether an operator may read a temporary password once
    /// (`scimlink app reveal-password`), or never.
    #[arg(long, value_enum)]
    reveal: Option<RevealArg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PasswordClass {
    Lowercase,
    Uppercase,
    Digits,
    Symbols,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RevealArg {
    Once,
    Never,
}

#[derive(Debug, Args)]
pub struct AppImport {
    /// The application's name.
    name: String,
    /// Import (without it, only list).
    #[arg(long)]
    apply: bool,
    /// Only this account (remote id); repeatable.
    #[arg(long = "user", requires = "apply")]
    users: Vec<String>,
    /// The bound group imported users join (NAME-imported by default).
    #[arg(long, requires = "apply")]
    group: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Debug, Args)]
pub struct AppGuard {
    /// The application's name.
    name: String,
    /// Hold offboardings past this share (0–100) of its active accounts…
    #[arg(long)]
    percent: Option<f64>,
    /// …and past this many.
    #[arg(long)]
    minimum: Option<u64>,
    /// Count offboardings over this many seconds.
    #[arg(long)]
    window_seconds: Option<u64>,
    /// Return to the host's defaults (before the options above apply).
    #[arg(long)]
    host_defaults: bool,
}

#[derive(Debug, Args)]
pub struct AppUpdateArgs {
    /// The application's name.
    name: String,
    /// New SCIM base URL; `{placeholders}` are filled from settings.
    #[arg(long)]
    base_url: Option<String>,
    /// KEY=VALUE, repeatable: set (or replace) this setting; the others stay.
    #[arg(long = "setting", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
    /// Shown to people.
    #[arg(long)]
    label: Option<String>,
    /// The application's bearer token, needed when the base URL moves to
    /// another server; `-` reads it from standard input.
    #[arg(long)]
    token: Option<String>,
}

#[derive(Debug, Args)]
pub struct AppAdd {
    /// Unique name of the application: a-z, 0-9 and -.
    name: String,
    /// The connector's manifest name (see `GET /api/v1/plugins`).
    #[arg(long)]
    connector: String,
    /// SCIM base URL; `{placeholders}` are filled from settings. The
    /// connector's own when absent.
    #[arg(long)]
    base_url: Option<String>,
    /// The application's bearer token; `-` reads it from standard input,
    /// which keeps it out of the process list and shell history.
    #[arg(long)]
    token: String,
    /// KEY=VALUE, repeatable (for example tenantId=1234).
    #[arg(long = "setting", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
    /// Push groups and group membership.
    #[arg(long)]
    manage_groups: bool,
    /// Shown to people; the name when absent.
    #[arg(long)]
    label: Option<String>,
    /// Requests per second at most (default 10, polite to a SaaS API).
    #[arg(long)]
    requests_per_second: Option<f64>,
    /// Requests in flight at most (default 4).
    #[arg(long)]
    concurrency: Option<u32>,
    /// The deprovisioning guard holds offboardings past this share (0–100)
    /// of the active accounts (the host's `--guard-percent` when absent)…
    #[arg(long)]
    guard_percent: Option<f64>,
    /// …and past this many (the host's `--guard-minimum` when absent)…
    #[arg(long)]
    guard_minimum: Option<u64>,
    /// …counted over this many seconds (the host's
    /// `--guard-window-seconds` when absent).
    #[arg(long)]
    guard_window_seconds: Option<u64>,
}

/// The `guard` object of the admin API: only the thresholds given.
fn guard_json(percent: Option<f64>, minimum: Option<u64>, window_seconds: Option<u64>) -> Value {
    let mut guard = serde_json::Map::new();
    if let Some(percent) = percent {
        guard.insert("percent".into(), json!(percent));
    }
    if let Some(minimum) = minimum {
        guard.insert("minimum".into(), json!(minimum));
    }
    if let Some(window_seconds) = window_seconds {
        guard.insert("windowSeconds".into(), json!(window_seconds));
    }
    Value::Object(guard)
}

/// An application's guard thresholds as one line of text.
fn guard_text(guard: &Value) -> String {
    let part = |key: &str, unit: &str| match &guard[key] {
        Value::Null => "host default".to_string(),
        value => format!("{value}{unit}"),
    };
    format!(
        "percent {}, minimum {}, window {}",
        part("percent", "%"),
        part("minimum", ""),
        part("windowSeconds", " s")
    )
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

/// `scimlink provision APP USER` or `scimlink provision APP --group GROUP`:
/// one user, or one group with its members, now.
#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// The application's name.
    name: String,
    /// The user's userName or id.
    #[arg(required_unless_present = "group")]
    user: Option<String>,
    /// A group (name or id): its users, then the group with its members.
    #[arg(long, conflicts_with = "user")]
    group: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// `scimlink plan APP`: what a sync would send, without sending it.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The application's name.
    name: String,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// `scimlink events`: the audit trail, newest first.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this application's events (name or id).
    #[arg(long)]
    app: Option<String>,
    /// Only this operation (`idm_integration_activate`, `user_create_provision` …).
    #[arg(long)]
    operation: Option<String>,
    /// Only successes or only failures.
    #[arg(long, value_parser = ["success", "failure"])]
    outcome: Option<String>,
    /// Only events at or after: an RFC 3339 time or a span back (`30m`, `12h`, `7d`).
    #[arg(long)]
    since: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    limit: u64,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Import users (and groups) from a CSV or JSON file.
    Import(ImportArgs),
    /// Set a user's password, read from standard input (one line). It
    /// reaches each application that takes passwords once, and is kept
    /// sealed only until they all have it.
    SetPassword {
        /// The user's id or userName.
        user: String,
    },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// CSV with a header row (userName, email, givenName, familyName,
    /// displayName, active, title, department, employeeNumber, organization,
    /// location, phone, externalId, groups — groups separated by `;`), or
    /// JSON: {"users": [...], "groups": [{"name", "members": [userName]}]}.
    file: PathBuf,
    /// Users sent per request; each request is one transaction.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: u32,
}

/// A blocking client of the admin API.
struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl AdminClient {
    fn new(connection: &Connection) -> anyhow::Result<Self> {
        let token = std::env::var(ADMIN_TOKEN_ENV)
            .with_context(|| format!("set {ADMIN_TOKEN_ENV} to the host's admin token"))?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build()
            .context("cannot set up the HTTP client")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        Ok(AdminClient {
            base: connection.host.trim_end_matches('/').to_string(),
            token,
            http,
            runtime,
        })
    }

    /// Every item of a paginated list (`path` may carry a query), at most
    /// `most`, fetched a thousand at a time.
    fn all_items(&self, path: &str, most: u64) -> anyhow::Result<Vec<Value>> {
        let joiner = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        while (items.len() as u64) < most {
            let limit = (most - items.len() as u64).min(1000);
            let page = self.call(
                Method::GET,
                &format!("{path}{joiner}offset={}&limit={limit}", items.len()),
                None,
            )?;
            let page_items = page["items"].as_array().cloned().unwrap_or_default();
            if page_items.is_empty() {
                break;
            }
            items.extend(page_items);
            if items.len() as u64 >= page["total"].as_u64().unwrap_or(0) {
                break;
            }
        }
        Ok(items)
    }

    fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}/api/v1{path}", self.base);
        self.runtime.block_on(async {
            let mut request = self.http.request(method, &url).bearer_auth(&self.token);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request
                .send()
                .await
                .with_context(|| format!("cannot reach the host at {}", self.base))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if status.is_success() {
                if status == StatusCode::NO_CONTENT || text.is_empty() {
                    return Ok(Value::Null);
                }
                return serde_json::from_str(&text).context("the host's answer is not JSON");
            }
            let error: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let message = error
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or(text.as_str());
            match error.pointer("/error/field").and_then(Value::as_str) {
                Some(field) => bail!("{message} (field {field}; HTTP {status})"),
                None => bail!("{message} (HTTP {status})"),
            }
        })
    }
}

/// `scimlink app update`: only what is given changes; settings are merged
/// into the application's current ones.
fn run_app_update(client: &AdminClient, update: AppUpdateArgs) -> anyhow::Result<ExitCode> {
    let path = format!("/apps/{}", percent_encode(&update.name));
    let mut body = serde_json::Map::new();
    if let Some(base_url) = update.base_url {
        body.insert("baseUrl".into(), base_url.into());
    }
    if let Some(label) = update.label {
        body.insert("label".into(), label.into());
    }
    if !update.settings.is_empty() {
        let current = client.call(Method::GET, &path, None)?;
        let mut settings = current["settings"].as_object().cloned().unwrap_or_default();
        for (key, value) in update.settings {
            settings.insert(key, value.into());
        }
        body.insert("settings".into(), settings.into());
    }
    let gave_token = update.token.is_some();
    if let Some(token) = update.token {
        body.insert("token".into(), token_argument(token)?.into());
    }
    if body.is_empty() {
        bail!("nothing to change: give --base-url, --setting, --label or --token");
    }
    let app = match client.call(Method::PATCH, &path, Some(Value::Object(body))) {
        Ok(app) => app,
        Err(error) if !gave_token && error.to_string().contains("(field token;") => {
            bail!(
                "{error}\nrun the same command again with `--token -` and the application's \
                 token for the new server on standard input"
            )
        }
        Err(error) => return Err(error),
    };
    println!(
        "{} updated → {}",
        app["name"].as_str().unwrap_or_default(),
        app["resolvedBaseUrl"].as_str().unwrap_or_default(),
    );
    Ok(ExitCode::SUCCESS)
}

/// A password policy as people read it.
fn policy_text(policy: &Value) -> String {
    if policy["send"] == false {
        return "off: no password is sent".into();
    }
    let classes: Vec<&str> = ["lowercase", "uppercase", "digits", "symbols"]
        .into_iter()
        .filter(|class| policy[*class].as_bool() == Some(true))
        .collect();
    format!(
        "sent; temporary ones of {} characters ({}), revealed {}",
        policy["length"],
        classes.join(", "),
        policy["reveal"].as_str().unwrap_or("never")
    )
}

/// One line of standard input without its line ending: a password, which
/// may begin or end with spaces. At a terminal it asks, and what is typed
/// is not shown.
fn password_from_stdin() -> anyhow::Result<crate::secrets::Secret> {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    let hidden = if stdin.is_terminal() {
        eprint!("password (not shown): ");
        Some(EchoOff::on()?)
    } else {
        None
    };
    let mut line = zeroize::Zeroizing::new(String::new());
    stdin
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    if hidden.is_some() {
        eprintln!();
    }
    drop(hidden);
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        bail!("standard input held no password");
    }
    Ok(crate::secrets::Secret::new(password))
}

/// The terminal on standard input not echoing what is typed, until
/// dropped.
struct EchoOff {
    before: rustix::termios::Termios,
}

impl EchoOff {
    fn on() -> anyhow::Result<Self> {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let before = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
        let mut quiet = before.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        tcsetattr(&stdin, OptionalActions::Now, &quiet)
            .context("cannot stop the terminal echoing")?;
        Ok(EchoOff { before })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.before,
        );
    }
}

/// The token as given, or read from standard input when given as `-`.
fn token_argument(token: String) -> anyhow::Result<String> {
    if token != "-" {
        return Ok(token);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the token from standard input")?;
    let token = line.trim().to_string();
    if token.is_empty() {
        bail!("standard input held no token");
    }
    Ok(token)
}

pub fn run_app(connection: Connection, command: AppCommand) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(&connection)?;
    match command {
        AppCommand::Assign { name, user } => {
            client.call(
                Method::PUT,
                &format!(
                    "/apps/{}/assignments/{}",
                    percent_encode(&name),
                    percent_encode(&user)
                ),
                None,
            )?;
            println!("assigned {user} to {name}");
        }
        AppCommand::Unassign { name, user } => {
            client.call(
                Method::DELETE,
                &format!(
                    "/apps/{}/assignments/{}",
                    percent_encode(&name),
                    percent_encode(&user)
                ),
                None,
            )?;
            println!("unassigned {user} from {name}");
        }
        AppCommand::Release { name, user } => {
            let released = client.call(
                Method::POST,
                &format!(
                    "/apps/{}/release/{}",
                    percent_encode(&name),
                    percent_encode(&user)
                ),
                None,
            )?;
            println!(
                "account {} in {name} is no longer managed (it was {user}'s); \
                 replay a refused user with `scimlink dead-letters {name} --replay`",
                released["remoteId"].as_str().unwrap_or("-")
            );
        }
        AppCommand::ManageGroups { name, enabled } => {
            client.call(
                Method::PATCH,
                &format!("/apps/{}", percent_encode(&name)),
                Some(json!({ "manageGroups": enabled })),
            )?;
            let state = if enabled { "on" } else { "off" };
            println!("{name}: group management {state}");
        }
        AppCommand::Import(import) => return run_app_import(&client, import),
        AppCommand::Update(update) => return run_app_update(&client, update),
        AppCommand::Add(add) => {
            let settings: BTreeMap<String, String> = add.settings.into_iter().collect();
            let app = client.call(
                Method::POST,
                "/apps",
                Some(json!({
                    "name": add.name,
                    "label": add.label,
                    "connector": add.connector,
                    "baseUrl": add.base_url,
                    "token": token_argument(add.token)?,
                    "settings": settings,
                    "manageGroups": add.manage_groups,
                    "pacing": {
                        "requestsPerSecond": add.requests_per_second.unwrap_or(10.0),
                        "concurrency": add.concurrency.unwrap_or(4),
                    },
                    "guard": guard_json(
                        add.guard_percent,
                        add.guard_minimum,
                        add.guard_window_seconds,
                    ),
                })),
            )?;
            println!(
                "added {} ({}) → {}; inactive until `scimlink app activate {}`",
                app["name"].as_str().unwrap_or_default(),
                app["connector"].as_str().unwrap_or_default(),
                app["resolvedBaseUrl"].as_str().unwrap_or_default(),
                app["name"].as_str().unwrap_or_default(),
            );
        }
        AppCommand::List { format } => {
            let apps = client.all_items("/apps", u64::MAX)?;
            match format {
                Format::Json => println!("{}", Value::Array(apps)),
                Format::Text => {
                    if apps.is_empty() {
                        println!("no applications");
                    }
                    for app in apps {
                        println!(
                            "{:<24} {:<12} {:<18} groups:{:<5} {}",
                            app["name"].as_str().unwrap_or_default(),
                            app["state"].as_str().unwrap_or_default(),
                            app["connector"].as_str().unwrap_or_default(),
                            if app["manageGroups"].as_bool() == Some(true) {
                                "on"
                            } else {
                                "off"
                            },
                            app["resolvedBaseUrl"].as_str().unwrap_or_default(),
                        );
                        if let Some(reason) = app["stateReason"].as_str() {
                            println!("    quarantined: {reason}");
                        }
                    }
                }
            }
        }
        AppCommand::Show { name, format } => {
            let app = client.call(
                Method::GET,
                &format!("/apps/{}", percent_encode(&name)),
                None,
            )?;
            match format {
                Format::Json => println!("{app}"),
                Format::Text => {
                    let text = |key: &str| app[key].as_str().unwrap_or("-").to_string();
                    println!("name        {}", text("name"));
                    println!("label       {}", text("label"));
                    println!("connector   {}", text("connector"));
                    println!("state       {}", text("state"));
                    println!("base URL    {}", text("resolvedBaseUrl"));
                    println!(
                        "groups      {}",
                        if app["manageGroups"].as_bool() == Some(true) {
                            "managed"
                        } else {
                            "not managed"
                        }
                    );
                    println!("pacing      {}", app["pacing"]);
                    println!("guard       {}", guard_text(&app["guard"]));
                }
            }
        }
        AppCommand::Guard(args) => {
            let path = format!("/apps/{}", percent_encode(&args.name));
            let mut guard = if args.host_defaults {
                json!({})
            } else {
                client.call(Method::GET, &path, None)?["guard"].clone()
            };
            let given = guard_json(args.percent, args.minimum, args.window_seconds);
            if let (Some(guard), Some(given)) = (guard.as_object_mut(), given.as_object()) {
                guard.extend(given.clone());
            }
            let app = client.call(Method::PATCH, &path, Some(json!({ "guard": guard })))?;
            println!("{}: guard {}", args.name, guard_text(&app["guard"]));
        }
        AppCommand::Bind { name, group } => {
            client.call(
                Method::PUT,
                &format!(
                    "/apps/{}/bindings/{}",
                    percent_encode(&name),
                    percent_encode(&group)
                ),
                None,
            )?;
            println!("bound group {group:?} to {name}");
        }
        AppCommand::Unbind { name, group } => {
            client.call(
                Method::DELETE,
                &format!(
                    "/apps/{}/bindings/{}",
                    percent_encode(&name),
                    percent_encode(&group)
                ),
                None,
            )?;
            println!("unbound group {group:?} from {name}");
        }
        AppCommand::Activate { name } => {
            client.call(
                Method::POST,
                &format!("/apps/{}/activate", percent_encode(&name)),
                None,
            )?;
            println!("{name} is active");
        }
        AppCommand::Deactivate { name } => {
            client.call(
                Method::POST,
                &format!("/apps/{}/deactivate", percent_encode(&name)),
                None,
            )?;
            println!("{name} is inactive");
        }
        AppCommand::PasswordPolicy(args) => {
            let path = format!("/apps/{}", percent_encode(&args.name));
            let mut policy = client.call(Method::GET, &path, None)?["passwordPolicy"].clone();
            let changed = args.send.is_some()
                || args.length.is_some()
                || args.classes.is_some()
                || args.reveal.is_some();
            if let Some(send) = args.send {
                policy["send"] = json!(send);
            }
            if let Some(length) = args.length {
                policy["length"] = json!(length);
            }
            if let Some(classes) = &args.classes {
                for (key, class) in [
                    ("lowercase", PasswordClass::Lowercase),
                    ("uppercase", PasswordClass::Uppercase),
                    ("digits", PasswordClass::Digits),
                    ("symbols", PasswordClass::Symbols),
                ] {
                    policy[key] = json!(classes.contains(&class));
                }
            }
            if let Some(reveal) = args.reveal {
                policy["reveal"] = json!(match reveal {
                    RevealArg::Once => "once",
                    RevealArg::Never => "never",
                });
            }
            if changed {
                policy = client.call(
                    Method::PATCH,
                    &path,
                    Some(json!({ "passwordPolicy": policy })),
                )?["passwordPolicy"]
                    .clone();
            }
            println!("{}: passwords {}", args.name, policy_text(&policy));
        }
        AppCommand::RevealPassword { name, user } => {
            let revealed = client.call(
                Method::POST,
                &format!(
                    "/apps/{}/users/{}/temporary-password",
                    percent_encode(&name),
                    percent_encode(&user)
                ),
                None,
            )?;
            let password = revealed["password"].as_str().unwrap_or_default();
            println!("{password}");
        }
        AppCommand::RotateToken { name, token } => {
            client.call(
                Method::POST,
                &format!("/apps/{}/rotate-token", percent_encode(&name)),
                Some(json!({ "token": token_argument(token)? })),
            )?;
            println!("{name}: token replaced");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_provision(connection: Connection, args: ProvisionArgs) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(&connection)?;
    let (path, what) = match (&args.group, &args.user) {
        (Some(group), _) => (
            format!(
                "/apps/{}/provision-group/{}",
                percent_encode(&args.name),
                percent_encode(group)
            ),
            format!("group {group}"),
        ),
        (None, Some(user)) => (
            format!(
                "/apps/{}/provision/{}",
                percent_encode(&args.name),
                percent_encode(user)
            ),
            user.clone(),
        ),
        (None, None) => bail!("name a user, or a group with --group"),
    };
    let done = client.call(Method::POST, &path, None)?;
    match args.format {
        Format::Json => println!("{done}"),
        Format::Text => {
            match done.get("members").and_then(Value::as_array) {
                Some(members) => {
                    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                    for member in members {
                        *counts
                            .entry(member["result"].as_str().unwrap_or("-"))
                            .or_default() += 1;
                    }
                    let counts: Vec<String> = counts
                        .iter()
                        .map(|(result, count)| format!("{count} {result}"))
                        .collect();
                    println!(
                        "{what} in {}: group {}; members: {}",
                        args.name,
                        done["group"].as_str().unwrap_or("-"),
                        if counts.is_empty() {
                            "none".to_string()
                        } else {
                            counts.join(", ")
                        }
                    );
                }
                None => println!(
                    "{what} in {}: {}",
                    args.name,
                    done["result"].as_str().unwrap_or("-")
                ),
            }
            for event in done["events"].as_array().into_iter().flatten().rev() {
                println!(
                    "  {} {} {}",
                    event["operation"].as_str().unwrap_or("-"),
                    event["outcome"].as_str().unwrap_or("-"),
                    event["summary"].as_str().unwrap_or_default()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_plan(connection: Connection, args: PlanArgs) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(&connection)?;
    let operations = client.all_items(
        &format!("/apps/{}/plan", percent_encode(&args.name)),
        u64::MAX,
    )?;
    match args.format {
        Format::Json => println!("{}", Value::Array(operations)),
        Format::Text => {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for operation in &operations {
                let name = operation["operation"].as_str().unwrap_or("-").to_string();
                let attributes: Vec<&str> = operation["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let attributes = if attributes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", attributes.join(", "))
                };
                println!(
                    "{:<20} {:<28}{attributes}  {}",
                    name,
                    operation["name"]
                        .as_str()
                        .unwrap_or(operation["object_id"].as_str().unwrap_or("-")),
                    operation["detail"].as_str().unwrap_or_default()
                );
                *counts.entry(name).or_default() += 1;
            }
            let summary: Vec<String> = counts
                .iter()
                .map(|(name, count)| format!("{count} {name}"))
                .collect();
            if summary.is_empty() {
                println!("{}: nothing to send", args.name);
            } else {
                println!("{}: {}; nothing was sent", args.name, summary.join(", "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_events(connection: Connection, args: EventsArgs) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(&connection)?;
    let mut query = Vec::new();
    for (key, value) in [
        ("app", &args.app),
        ("operation", &args.operation),
        ("outcome", &args.outcome),
        ("since", &args.since),
    ] {
        if let Some(value) = value {
            query.push(format!("{key}={}", percent_encode(value)));
        }
    }
    let path = if query.is_empty() {
        "/events".to_string()
    } else {
        format!("/events?{}", query.join("&"))
    };
    let events = client.all_items(&path, args.limit)?;
    match args.format {
        Format::Json => println!("{}", Value::Array(events)),
        Format::Text => {
            if events.is_empty() {
                println!("no events");
            }
            for event in &events {
                let text = |key: &str| event[key].as_str().unwrap_or("-").to_string();
                let status = event["http_status"]
                    .as_u64()
                    .map(|status| format!(" HTTP {status}"))
                    .unwrap_or_default();
                let rule = event["rule"]
                    .as_str()
                    .map(|rule| format!(" [{rule}]"))
                    .unwrap_or_default();
                println!(
                    "{}  {:<16} {:<28} {:<7}{status}{rule}  {}",
                    text("at"),
                    text("app_name"),
                    text("operation"),
                    text("outcome"),
                    text("summary"),
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_directory(
    connection: Connection,
    command: DirectoryCommand,
) -> anyhow::Result<ExitCode> {
    let args = match command {
        DirectoryCommand::Import(args) => args,
        DirectoryCommand::SetPassword { user } => {
            let password = password_from_stdin()?;
            let client = AdminClient::new(&connection)?;
            client.call(
                Method::PUT,
                &format!("/users/{}/password", percent_encode(&user)),
                Some(json!({ "password": password.expose() })),
            )?;
            println!("{user}: password set; it reaches each application that takes passwords once");
            return Ok(ExitCode::SUCCESS);
        }
    };
    // Read and check the whole file before sending anything.
    let (users, groups) = super::import::read_file(&args.file)
        .with_context(|| format!("cannot import {}", shown(&args.file)))?;
    let client = AdminClient::new(&connection)?;
    let total = users.len() as u64;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} users {per_sec} {eta} left")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut outcome = [0u64; 4];
    let mut add = |result: &Value| {
        for (slot, key) in [
            "users_created",
            "users_updated",
            "groups_created",
            "memberships_added",
        ]
        .iter()
        .enumerate()
        {
            outcome[slot] += result[key].as_u64().unwrap_or(0);
        }
    };
    for chunk in users.chunks(args.batch as usize) {
        let result = client.call(
            Method::POST,
            "/directory/import",
            Some(json!({ "users": chunk })),
        )?;
        add(&result);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    if !groups.is_empty() {
        let result = client.call(
            Method::POST,
            "/directory/import",
            Some(json!({ "groups": groups })),
        )?;
        add(&result);
    }
    println!(
        "imported {total} users from {}: {} created, {} updated; {} groups created, {} memberships added",
        shown(&args.file),
        outcome[0],
        outcome[1],
        outcome[2],
        outcome[3]
    );
    Ok(ExitCode::SUCCESS)
}

/// `scimlink dead-letters APP`: what an application refused for good.
#[derive(Debug, Args)]
pub struct DeadLettersArgs {
    /// The application's name.
    name: String,
    /// Replay them (or only the users and groups named by id with
    /// `--object`): they leave the list and are synced again.
    #[arg(long)]
    replay: bool,
    /// With `--replay`: only this user or group id; repeatable.
    #[arg(long = "object", requires = "replay")]
    objects: Vec<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub fn run_dead_letters(connection: Connection, args: DeadLettersArgs) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(&connection)?;
    let app = percent_encode(&args.name);
    if args.replay {
        let objects = (!args.objects.is_empty()).then_some(&args.objects);
        let done = client.call(
            Method::POST,
            &format!("/apps/{app}/dead-letters/replay"),
            Some(json!({ "objects": objects })),
        )?;
        match args.format {
            Format::Json => println!("{done}"),
            Format::Text => println!(
                "{}: {} queued for another sync",
                args.name,
                done["replayed"].as_u64().unwrap_or(0)
            ),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let letters = client.all_items(&format!("/apps/{app}/dead-letters"), u64::MAX)?;
    match args.format {
        Format::Json => println!("{}", Value::Array(letters)),
        Format::Text => {
            if letters.is_empty() {
                println!("{}: no dead letters", args.name);
            }
            for letter in &letters {
                println!(
                    "{} {} {:<24} {} failure(s) since {}  {}",
                    letter["object_kind"].as_str().unwrap_or("-"),
                    letter["object_id"].as_str().unwrap_or("-"),
                    letter["operation"].as_str().unwrap_or("-"),
                    letter["failures"].as_u64().unwrap_or(0),
                    letter["first_failed"].as_str().unwrap_or("-"),
                    letter["reason"].as_str().unwrap_or_default()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `scimlink held`: the offboardings the deprovisioning guard holds, one
/// hold per application.
#[derive(Debug, Subcommand)]
pub enum HeldCommand {
    /// List holds with their offboardings, newest first (decided ones
    /// included).
    List {
        /// Only this application's.
        #[arg(long)]
        app: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Carry out every offboarding of a hold.
    Approve { id: String },
    /// Send nothing of a hold, and release its accounts: left as they
    /// are, no longer managed.
    Reject { id: String },
}

pub fn run_held(connection: Connection, command: HeldCommand) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(&connection)?;
    let (id, verb) = match command {
        HeldCommand::List { app, format } => {
            let path = match app {
                Some(app) => format!("/held-changes?app={}", percent_encode(&app)),
                None => "/held-changes".to_string(),
            };
            let held = client.all_items(&path, u64::MAX)?;
            match format {
                Format::Json => println!("{}", Value::Array(held)),
                Format::Text => {
                    if held.is_empty() {
                        println!("no held changes");
                    }
                    let names = app_names(&client)?;
                    for hold in &held {
                        let app_id = hold["app_id"].as_str().unwrap_or("-");
                        println!(
                            "{} {:<8} {} {}: {} offboarding(s) held (threshold {} of {} active accounts)",
                            hold["id"].as_str().unwrap_or("-"),
                            hold["state"].as_str().unwrap_or("-"),
                            hold["held_at"].as_str().unwrap_or("-"),
                            names.get(app_id).map_or(app_id, String::as_str),
                            hold["offboarding"].as_u64().unwrap_or(0),
                            hold["threshold"].as_u64().unwrap_or(0),
                            hold["active_accounts"].as_u64().unwrap_or(0)
                        );
                        if let Some(change) = hold.get("change").filter(|change| !change.is_null())
                        {
                            println!(
                                "  the change {} {} {}",
                                change["entity"].as_str().unwrap_or("-"),
                                change["entity_id"].as_str().unwrap_or("-"),
                                change["action"].as_str().unwrap_or("-")
                            );
                        }
                        for object in hold["objects"].as_array().into_iter().flatten() {
                            let done = object["carried_out"]
                                .as_str()
                                .map(|at| format!(" (carried out {at})"))
                                .unwrap_or_default();
                            println!(
                                "  {:<10} {:<24} {} account {}: {}{done}",
                                object["action"].as_str().unwrap_or("-"),
                                object["user_name"].as_str().unwrap_or("-"),
                                object["object_id"].as_str().unwrap_or("-"),
                                object["remote_id"].as_str().unwrap_or("-"),
                                object["reason"].as_str().unwrap_or("-"),
                            );
                        }
                    }
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        HeldCommand::Approve { id } => (id, "approve"),
        HeldCommand::Reject { id } => (id, "reject"),
    };
    let held = client.call(
        Method::POST,
        &format!("/held-changes/{}/{verb}", percent_encode(&id)),
        None,
    )?;
    println!("{id}: {}", held["state"].as_str().unwrap_or("-"));
    Ok(ExitCode::SUCCESS)
}

/// Application names by id.
fn app_names(client: &AdminClient) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(client
        .all_items("/apps", u64::MAX)?
        .iter()
        .map(|app| {
            (
                app["id"].as_str().unwrap_or_default().to_string(),
                app["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

/// `scimlink reconcile APP`: read the application back and repair drift.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The application's name.
    name: String,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub fn run_reconcile(connection: Connection, args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(&connection)?;
    let done = client.call(
        Method::POST,
        &format!("/apps/{}/reconcile", percent_encode(&args.name)),
        None,
    )?;
    match args.format {
        Format::Json => println!("{done}"),
        Format::Text => println!(
            "{}: listed {} accounts; {} repaired, {} recreated, {} provisioned; {} groups repaired",
            args.name,
            done["listed"].as_u64().unwrap_or(0),
            done["repaired"].as_u64().unwrap_or(0),
            done["recreated"].as_u64().unwrap_or(0),
            done["provisioned"].as_u64().unwrap_or(0),
            done["groups_repaired"].as_u64().unwrap_or(0)
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn run_app_import(client: &AdminClient, args: AppImport) -> anyhow::Result<ExitCode> {
    let app = percent_encode(&args.name);
    if args.apply {
        let users = (!args.users.is_empty()).then_some(&args.users);
        let done = client.call(
            Method::POST,
            &format!("/apps/{app}/import"),
            Some(json!({ "users": users, "group": args.group })),
        )?;
        match args.format {
            Format::Json => println!("{done}"),
            Format::Text => println!(
                "{}: {} created, {} linked, {} failed, {} refused (already linked); in group {}",
                args.name,
                done["created"].as_u64().unwrap_or(0),
                done["linked"].as_u64().unwrap_or(0),
                done["failed"].as_u64().unwrap_or(0),
                done["refused"].as_u64().unwrap_or(0),
                done["group"].as_str().unwrap_or("-")
            ),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let accounts = client.all_items(&format!("/apps/{app}/import"), u64::MAX)?;
    match args.format {
        Format::Json => println!("{}", Value::Array(accounts)),
        Format::Text => {
            for account in &accounts {
                println!(
                    "{:<9} {:<34} {}",
                    account["status"].as_str().unwrap_or("-"),
                    account["remote_id"].as_str().unwrap_or("-"),
                    account["user_name"].as_str().unwrap_or("-")
                );
            }
            let new = accounts
                .iter()
                .filter(|account| account["status"] == "new")
                .count();
            println!(
                "{}: {} accounts, {new} new; `scimlink app import {} --apply` imports them",
                args.name,
                accounts.len(),
                args.name
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `scimlink status`: work waiting in the engine and what needs an operator.
pub fn run_status(connection: Connection, format: Format) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(&connection)?;
    let status = client.call(Method::GET, "/status", None)?;
    match format {
        Format::Json => println!("{status}"),
        Format::Text => {
            let count = |key: &str| status[key].as_u64().unwrap_or(0);
            println!("pending changes   {}", count("pendingChanges"));
            println!(
                "applications      {} active, {} inactive, {} quarantined",
                count("activeApps"),
                count("inactiveApps"),
                count("quarantinedApps")
            );
            for app in status["quarantined"].as_array().into_iter().flatten() {
                println!(
                    "  {} is quarantined: {}",
                    app["name"].as_str().unwrap_or("-"),
                    app["reason"].as_str().unwrap_or("no reason recorded")
                );
            }
            let held_apps: Vec<&str> = status["heldApps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if held_apps.is_empty() {
                println!("held changes      0");
            } else {
                println!(
                    "held changes      {} ({} offboardings held in {}; `scimlink held list`)",
                    count("heldChanges"),
                    count("heldOffboardings"),
                    held_apps.join(", ")
                );
            }
            println!("dead letters      {}", count("deadLetters"));
            let hosts = status["hosts"].as_array().map_or(&[][..], Vec::as_slice);
            println!("hosts             {}", hosts.len());
            for host in hosts {
                let connectors: Vec<String> = host["connectors"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, version)| format!("{name} {}", version.as_str().unwrap_or("?")))
                    .collect();
                let running: Vec<&str> = host["applications"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                println!(
                    "  {} runs {}; serves {}",
                    host["name"].as_str().unwrap_or("-"),
                    if running.is_empty() {
                        "no application".to_string()
                    } else {
                        running.join(", ")
                    },
                    if connectors.is_empty() {
                        "no connectors".to_string()
                    } else {
                        connectors.join(", ")
                    }
                );
            }
            for mismatch in status["connectorMismatches"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let versions: Vec<String> = mismatch["hosts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|host| {
                        format!(
                            "{} {}",
                            host["host"].as_str().unwrap_or("-"),
                            host["version"].as_str().unwrap_or("(not loaded)")
                        )
                    })
                    .collect();
                let applications: Vec<&str> = mismatch["applications"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                println!(
                    "  connector {} differs between hosts ({}), used by {}",
                    mismatch["connector"].as_str().unwrap_or("-"),
                    versions.join("; "),
                    applications.join(", ")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
