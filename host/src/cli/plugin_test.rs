//! `scimlink plugin test FILE.wasm`: the connector through the whole
//! lifecycle, in a throwaway host, against the simulated application or
//! the vendor's own endpoint.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::{LimitArgs, shown};
use crate::sandbox::harness::{self, Options};
use crate::sandbox::report;
use crate::sandbox::sp::Quirks;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
    Junit,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The component to test.
    file: PathBuf,
    /// Test against this SCIM base URL instead of the simulated
    /// application. Only users and groups the test makes up are touched,
    /// and everything it created is deleted at the end.
    #[arg(long, requires = "token", conflicts_with = "replay")]
    against: Option<String>,
    /// The bearer token of `--against`.
    #[arg(long, env = "SCIMLINK_SANDBOX_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Connector settings, KEY=VALUE; required settings not given are
    /// "sandbox".
    #[arg(long = "settings", num_args = 1.., value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
    /// Show the requests and call costs of every step, not only failed ones.
    #[arg(long)]
    verbose: bool,
    /// Write every exchange with the application into this folder, to
    /// replay later with --replay.
    #[arg(long, conflicts_with = "replay")]
    record: Option<PathBuf>,
    /// Answer from a folder written by --record: no network at all.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// The simulated application's quirks, as JSON: putOnly,
    /// patchActiveOnly, maxMembersPerPatch, caseSensitiveFilters,
    /// tooManyRequestsRate, retryAfterSeconds, serverErrorRate, latencyMs,
    /// entraStyle, tenants, seed; e.g. {"putOnly": true}.
    #[arg(long, value_name = "JSON", conflicts_with_all = ["against", "replay"])]
    quirks: Option<String>,
    /// Seconds the engine may take to apply one step.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    step_timeout_seconds: u64,
    #[command(flatten)]
    limits: LimitArgs,
}

pub fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let mut settings = BTreeMap::new();
    for pair in &args.settings {
        let (key, value) = pair
            .split_once('=')
            .filter(|(key, _)| !key.trim().is_empty())
            .with_context(|| format!("--settings takes KEY=VALUE, not {pair:?}"))?;
        settings.insert(key.trim().to_string(), value.to_string());
    }
    let quirks: Quirks = match &args.quirks {
        Some(text) => serde_json::from_str(text).context("--quirks is not valid")?,
        None => Quirks::default(),
    };
    quirks.check().context("--quirks is not valid")?;
    if !args.file.is_file() {
        anyhow::bail!("{} is not a file", shown(&args.file));
    }
    if let Some(folder) = &args.replay
        && !folder.is_dir()
    {
        anyhow::bail!("the recording {} is not a folder", shown(folder));
    }
    let options = Options {
        component: args.file.clone(),
        against: args.against.clone().zip(args.token.clone()),
        settings,
        limits: args.limits.limits(),
        record: args.record.clone(),
        replay: args.replay.clone(),
        quirks,
        step_timeout: Duration::from_secs(args.step_timeout_seconds),
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // A person at a terminal sees each step as it ends; the report follows.
    let progress: Option<harness::Progress> = std::io::stderr().is_terminal().then(|| {
        Box::new(|step: &harness::Step| {
            eprintln!(
                "{}  {} ({} ms)",
                step.outcome.label(),
                step.name,
                step.millis
            );
        }) as harness::Progress
    });
    let report = tokio.block_on(harness::run(options, progress))?;
    let shown_report = match args.format {
        ReportFormat::Text => report::text(&report, args.verbose),
        ReportFormat::Json => report::json(&report),
        ReportFormat::Junit => report::junit(&report),
    };
    print!("{shown_report}");
    if let Some(folder) = &args.record {
        eprintln!("recorded the exchanges in {}", shown(folder));
    }
    tokio.shutdown_timeout(Duration::from_millis(200));
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
