//! `scimlink serve`: the host process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::{LimitArgs, shown};
use crate::auth::{BearerToken, TokenOrigin};
use crate::host::HostBuilder;
use crate::runtime::cache::PrecompileCache;
use crate::runtime::history::History;
use crate::runtime::watcher::{DEFAULT_DEBOUNCE, FolderWatcher};
use crate::runtime::{Loader, PluginLimits, PluginRegistry, Runtime};
use crate::store::{PostgresStore, SqliteStore, Store, StoreHandle, TokenCipher};

/// The environment variable that sets the admin API's bearer token.
pub const ADMIN_TOKEN_ENV: &str = "SCIMLINK_ADMIN_TOKEN";
/// The environment variable that sets the inbound SCIM server's token.
pub const SCIM_TOKEN_ENV: &str = "SCIMLINK_SCIM_TOKEN";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Folder of the host's data (the precompile cache lives under it).
    #[arg(long, default_value = "data", env = "SCIMLINK_DATA")]
    data: PathBuf,
    /// A PostgreSQL database to keep the directory and the engine's state
    /// in, shared by every host that names it
    /// (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, `?host=/folder`
    /// for a Unix socket). Without it, the embedded SQLite database under
    /// `--data`.
    #[arg(long, env = "SCIMLINK_DATABASE_URL", hide_env_values = true)]
    database: Option<String>,
    /// Folder of connector components (*.wasm), watched for changes.
    #[arg(long, default_value = "dist/plugins", env = "SCIMLINK_PLUGINS")]
    plugins: PathBuf,
    /// JSON file of per-connector limits:
    /// {"NAME": {"memory_bytes": N, "call_deadline": MS, "output_bytes": N}}.
    #[arg(long)]
    limits: Option<PathBuf>,
    /// Days audit events are kept.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    event_retention_days: u32,
    /// Address the admin API and the inbound SCIM server listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "SCIMLINK_LISTEN")]
    listen: SocketAddr,
    /// Seconds between connection tests of a quarantined application.
    #[arg(long, default_value_t = 30, env = "SCIMLINK_QUARANTINE_PROBE_SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=86_400))]
    quarantine_probe_seconds: u64,
    /// The deprovisioning guard holds an application's offboardings
    /// (deactivations, deletions, suspensions) once those within the window
    /// exceed this percentage of its active accounts…
    #[arg(long, default_value_t = 10.0)]
    guard_percent: f64,
    /// …and this many of them. An application may set its own
    /// (`scimlink app guard`).
    #[arg(long, default_value_t = 20)]
    guard_minimum: u64,
    /// How far back the guard counts an application's offboardings.
    #[arg(long, default_value_t = 3600,
        value_parser = clap::value_parser!(u64).range(1..=2_592_000))]
    guard_window_seconds: u64,
    /// Seconds between reads of each application to repair drift.
    #[arg(long, default_value_t = 3600, env = "SCIMLINK_RECONCILE_SECONDS",
        value_parser = clap::value_parser!(u64).range(1..))]
    reconcile_seconds: u64,
    /// Attempts at one change in one application before the objects that
    /// still fail (a persistent 5xx for one user, a connector that traps on
    /// one user's data) are dead-lettered.
    #[arg(long, default_value_t = 8, env = "SCIMLINK_RETRY_ATTEMPTS",
        value_parser = clap::value_parser!(u32).range(1..=100))]
    retry_attempts: u32,
    /// Seconds to wait after the first failed attempt; each further one
    /// doubles the wait, up to ten minutes.
    #[arg(long, default_value_t = 5, env = "SCIMLINK_RETRY_BACKOFF_SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=600))]
    retry_backoff_seconds: u64,
    /// Seconds a user's password is kept, sealed, for the applications
    /// still owed it (one quarantined, one whose account keeps failing)
    /// before it is wiped with an event for each; also how long a
    /// temporary password waits for an operator to read it. A week by
    /// default.
    #[arg(long, default_value_t = 7 * 24 * 3600, env = "SCIMLINK_PASSWORD_RETENTION_SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=365 * 24 * 3600))]
    password_retention_seconds: u64,
    /// Inbound SCIM searches that read the whole directory (`/.search`, a
    /// filter other than an indexed equality, a sort) running at once; one
    /// more waits up to 10 seconds for its turn, then gets 503 with
    /// Retry-After.
    #[arg(long, default_value_t = 4,
        env = "SCIMLINK_SCIM_SCAN_CONCURRENCY",
        value_parser = clap::value_parser!(u16).range(1..=256))]
    scim_scan_concurrency: u16,
    /// Serve the admin API and the inbound SCIM server only, and leave
    /// provisioning to the hosts that run the engine on the same database.
    #[arg(long, env = "SCIMLINK_NO_ENGINE")]
    no_engine: bool,
    #[command(flatten)]
    default_limits: LimitArgs,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let per_plugin = match &args.limits {
        Some(path) => read_limits(path)?,
        None => BTreeMap::new(),
    };
    let runtime = Runtime::new(args.default_limits.runtime_config(false))?;
    // --- The data folder is the owner's only (0700), made so before
    // anything is written in it; the host key, which authenticates the
    // precompile cache, lives in it.
    if crate::secrets::private_folder(&args.data)
        .with_context(|| format!("cannot create the data folder {}", shown(&args.data)))?
    {
        tracing::warn!(
            "the data folder {} was open to other users: now only its owner can use it",
            shown(&args.data)
        );
    }
    let cipher = TokenCipher::for_data_folder(&args.data)?;
    let cache_folder = args.data.join("plugin-cache");
    let cache_key = cipher.derive_key(crate::runtime::cache::CACHE_KEY_LABEL);
    let cache = PrecompileCache::open(&cache_folder, &cache_key)
        .with_context(|| format!("cannot create {}", shown(&cache_folder)))?;
    // --- end of the data folder's setup.
    let loader = Loader::new(runtime)
        .with_cache(cache)
        .with_limits(per_plugin);
    let history = History::new(args.data.join("plugin-history"));
    let registry = Arc::new(PluginRegistry::new(loader, &args.plugins).with_history(history));

    tracing::info!(
        "scimlink {} serving connectors from {} (contract {})",
        env!("CARGO_PKG_VERSION"),
        shown(&args.plugins),
        crate::runtime::CURRENT_CONTRACT
    );
    // Connectors present at start serve before the first request arrives.
    registry.sync();
    let _watcher = FolderWatcher::start(Arc::clone(&registry), DEFAULT_DEBOUNCE)
        .context("cannot start watching the plugins folder")?;

    // Before the async runtime starts: nothing here can stall a task.
    let key_check = host_key_check(&cipher);
    let store: Arc<dyn Store> = match &args.database {
        None => Arc::new(
            SqliteStore::open_in(&args.data, cipher)
                .with_context(|| format!("cannot open the directory in {}", shown(&args.data)))?,
        ),
        Some(url) => {
            let store = PostgresStore::open(url, cipher).context("cannot open the database")?;
            tracing::info!("keeping the directory in {store:?}");
            Arc::new(store)
        }
    };
    check_host_key(store.as_ref(), &key_check)?;
    let (admin_token, admin_origin) =
        BearerToken::establish(store.as_ref(), ADMIN_TOKEN_ENV, "admin_token_sha256")?;
    let (scim_token, scim_origin) =
        BearerToken::establish(store.as_ref(), SCIM_TOKEN_ENV, "scim_token_sha256")?;
    anyhow::ensure!(
        args.guard_percent.is_finite() && (0.0..=100.0).contains(&args.guard_percent),
        "--guard-percent must be between 0 and 100, not {}",
        args.guard_percent
    );
    let engine_settings = crate::engine::worker::EngineSettings {
        quarantine_probe: std::time::Duration::from_secs(args.quarantine_probe_seconds),
        guard_percent: args.guard_percent,
        guard_minimum: args.guard_minimum,
        guard_window: std::time::Duration::from_secs(args.guard_window_seconds),
        reconcile_every: std::time::Duration::from_secs(args.reconcile_seconds),
        retry_attempts: args.retry_attempts,
        retry_backoff: std::time::Duration::from_secs(args.retry_backoff_seconds),
        password_retention: std::time::Duration::from_secs(args.password_retention_seconds),
    };
    let mut builder = HostBuilder::new(store, admin_token, scim_token)
        .connectors(Arc::clone(&registry))
        .connector_history(History::new(args.data.join("plugin-history")))
        .scan_limit(crate::scim_server::ScanLimit::new(
            usize::from(args.scim_scan_concurrency),
            crate::scim_server::ScanLimit::DEFAULT_WAIT,
        ));
    if args.no_engine {
        if args.database.is_none() {
            tracing::warn!(
                "--no-engine without --database: nothing provisions this host's own \
                 SQLite directory"
            );
        }
        tracing::info!("the engine does not run on this host (--no-engine)");
    } else {
        builder = builder.engine(engine_settings);
    }
    // Bound before the engine starts: a host that cannot listen neither
    // announces itself to the others nor takes any work.
    let listener = std::net::TcpListener::bind(args.listen)
        .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let host = builder.build()?;
    let app = host.router();

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tokio.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener
            .local_addr()
            .context("cannot read the listening address")?;
        announce(address, &admin_origin, &scim_origin);
        tokio::spawn(prune_events(host.store_handle(), args.event_retention_days));
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("the HTTP server failed")
    })?;
    tracing::info!("shutting down");
    Ok(ExitCode::SUCCESS)
}

/// Where the store keeps the fingerprint of the host key its tokens are
/// sealed with.
const HOST_KEY_CHECK: &str = "host_key_check";

/// The host key's fingerprint: SHA-256 of a key derived from it for this
/// purpose alone, so that it reveals nothing of the host key or of any
/// other key derived from it.
fn host_key_check(cipher: &TokenCipher) -> String {
    use sha2::Digest;
    let derived = cipher.derive_key("scimlink host key check");
    hex::encode(sha2::Sha256::digest(derived.as_slice()))
}

/// Refuses to start with a host key other than the one the store's tokens
/// were sealed with: every application would fail on its own, one after
/// the other, instead. Hosts sharing a database share their key
/// (`SCIMLINK_SECRET_KEY`, or the same `secret.key`).
fn check_host_key(store: &dyn Store, key_check: &str) -> anyhow::Result<()> {
    let refused = || {
        anyhow::anyhow!(
            "this host's key is not the one the database's application tokens are sealed \
             with: give it the key of the other hosts ({} or {} in the data folder)",
            crate::secrets::SECRET_KEY_ENV,
            crate::secrets::SECRET_KEY_FILE
        )
    };
    let kept = store
        .meta(HOST_KEY_CHECK)
        .context("cannot read the host key's fingerprint")?;
    if kept.is_none() {
        // A database from before fingerprints were kept: the key must open
        // the tokens it holds.
        let apps = store
            .list_apps(crate::store::Page {
                offset: 0,
                limit: 1,
            })
            .context("cannot read the applications")?;
        if let Some(app) = apps.items.first()
            && let Err(crate::store::StoreError::Secret(_)) = store.app_token(&app.id)
        {
            return Err(refused());
        }
    }
    // Of hosts starting together on a new database, one key is kept and
    // the others are refused.
    let kept = store
        .set_meta_if_absent(HOST_KEY_CHECK, key_check)
        .context("cannot record the host key's fingerprint")?;
    if kept == key_check {
        Ok(())
    } else {
        Err(refused())
    }
}

/// Deletes events older than the retention period, at start and every six
/// hours.
async fn prune_events(store: StoreHandle, retention_days: u32) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(6 * 3600));
    loop {
        every.tick().await;
        let retention = std::time::Duration::from_secs(u64::from(retention_days) * 86_400);
        let before = crate::store::Timestamp::ago(retention);
        match store.prune_events(before).await {
            Ok(0) => {}
            Ok(pruned) => {
                tracing::info!("deleted {pruned} events older than {retention_days} days")
            }
            Err(error) => tracing::warn!("cannot prune old events: {error}"),
        }
    }
}

/// Ctrl-C, or SIGTERM from a service manager: requests in flight finish.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Tells the operator where everything is, and shows a generated token
/// this once.
fn announce(address: SocketAddr, admin: &TokenOrigin, scim: &TokenOrigin) {
    let base = format!("http://{address}");
    println!("scimlink is listening on {base}");
    println!("  console         {base}/console");
    println!("  admin API       {base}/api/v1");
    println!("  inbound SCIM    {base}/scim/v2");
    println!("  OpenAPI         {base}/openapi.json");
    println!("  health          {base}/health");
    for (what, env, origin) in [
        ("admin", ADMIN_TOKEN_ENV, admin),
        ("inbound SCIM", SCIM_TOKEN_ENV, scim),
    ] {
        match origin {
            TokenOrigin::Generated(token) => {
                println!("  {what} token (shown once; set {env} to choose your own): {token}")
            }
            TokenOrigin::Regenerated(token) => println!(
                "  {what} token (new, shown once: {env} is no longer set, and any token \
                 generated before it was set stays deleted): {token}"
            ),
            TokenOrigin::Environment(_) => println!("  {what} token: from {env}"),
            TokenOrigin::Stored => println!(
                "  {what} token: the one generated on first start (set {env} to replace it)"
            ),
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

fn read_limits(path: &std::path::Path) -> anyhow::Result<BTreeMap<String, PluginLimits>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the limits file {}", shown(path)))?;
    let limits: BTreeMap<String, PluginLimits> = serde_json::from_str(&text)
        .with_context(|| format!("the limits file {} is not valid", shown(path)))?;
    let ceiling = crate::runtime::RuntimeConfig::default().memory_ceiling;
    for (name, limits) in &limits {
        if limits.memory_bytes == 0 || limits.memory_bytes > ceiling {
            anyhow::bail!(
                "the limits file {}: {name}.memory_bytes must be between 1 and {ceiling}",
                shown(path)
            );
        }
        if limits.call_deadline.is_zero() || limits.output_bytes == 0 {
            anyhow::bail!(
                "the limits file {}: {name}.call_deadline and {name}.output_bytes must be above 0",
                shown(path)
            );
        }
    }
    Ok(limits)
}

fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
}
