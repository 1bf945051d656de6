//! The `scimlink` command line.
//!
//! `scimlink serve` runs the host; `scimlink plugin check` validates a
//! connector exactly as the host would before it serves; `scimlink app` and
//! `scimlink directory` drive a running host through its admin API. Errors reach the
//! user as one line naming what failed and why, and a non-zero exit status.

mod admin;
mod check;
pub mod import;
mod migrate;
mod plugin_new;
mod plugin_test;
mod rollback;
mod sandbox;
pub(crate) mod serve;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::runtime::{PluginLimits, RuntimeConfig};

#[derive(Debug, Parser)]
#[command(
    name = "scimlink",
    version,
    about = "Self-hosted SCIM 2.0 provisioning with WebAssembly connectors"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the host: load the plugins folder and follow its changes.
    Serve(serve::ServeArgs),
    /// Move a stopped host's SQLite database into an empty PostgreSQL
    /// database, for several hosts to share.
    Migrate(migrate::MigrateArgs),
    /// Work with connector components.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Manage applications of a running host (through its admin API).
    App {
        #[command(flatten)]
        connection: admin::Connection,
        #[command(subcommand)]
        command: admin::AppCommand,
    },
    /// Provision one user in an application now and show what was done.
    Provision {
        #[command(flatten)]
        connection: admin::Connection,
        #[command(flatten)]
        args: admin::ProvisionArgs,
    },
    /// What a sync of an application would send, without sending it.
    Plan {
        #[command(flatten)]
        connection: admin::Connection,
        #[command(flatten)]
        args: admin::PlanArgs,
    },
    /// The audit trail of a running host (through its admin API).
    Events {
        #[command(flatten)]
        connection: admin::Connection,
        #[command(flatten)]
        args: admin::EventsArgs,
    },
    /// Work waiting in the engine, and what needs an operator.
    Status {
        #[command(flatten)]
        connection: admin::Connection,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Read an application back now and repair what changed there.
    Reconcile {
        #[command(flatten)]
        connection: admin::Connection,
        #[command(flatten)]
        args: admin::ReconcileArgs,
    },
    /// What an application refused for good; `--replay` syncs it again.
    DeadLetters {
        #[command(flatten)]
        connection: admin::Connection,
        #[command(flatten)]
        args: admin::DeadLettersArgs,
    },
    /// Offboardings the deprovisioning guard holds, one hold per
    /// application: list, approve, reject.
    Held {
        #[command(flatten)]
        connection: admin::Connection,
        #[command(subcommand)]
        command: admin::HeldCommand,
    },
    /// A simulated SCIM application, with switchable quirks, to provision
    /// into and to test connectors against.
    SandboxSp(sandbox::SandboxSpArgs),
    /// Change the directory of a running host (through its admin API).
    Directory {
        #[command(flatten)]
        connection: admin::Connection,
        #[command(subcommand)]
        command: admin::DirectoryCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Load and validate a component exactly as the host would; print its
    /// manifest and what it produces for a sample user.
    Check(check::CheckArgs),
    /// Put back the version of a connector that served before the current
    /// one; a running host serves it within moments.
    Rollback(rollback::RollbackArgs),
    /// Drive a connector through the whole provisioning lifecycle in a
    /// throwaway host, against the simulated application or your own
    /// endpoint, and report every step; exits non-zero on any failure.
    Test(plugin_test::TestArgs),
    /// Create a connector crate: builds to a component with one command and
    /// passes `plugin test` as it is.
    New(plugin_new::NewArgs),
}

/// Output format of commands that report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// The limits every plugin runs under unless configured otherwise.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Linear memory cap per plugin instance, in MiB.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub memory_mib: u32,
    /// CPU deadline per plugin call, in milliseconds.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub deadline_ms: u64,
    /// Largest document a plugin may return, in KiB.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub output_kib: u32,
}

impl LimitArgs {
    pub fn limits(&self) -> PluginLimits {
        PluginLimits {
            memory_bytes: (self.memory_mib as usize) << 20,
            call_deadline: Duration::from_millis(self.deadline_ms),
            output_bytes: (self.output_kib as usize) << 10,
        }
    }

    pub fn runtime_config(&self, metering: bool) -> RuntimeConfig {
        RuntimeConfig {
            default_limits: self.limits(),
            metering,
            ..RuntimeConfig::default()
        }
    }
}

/// Parses the command line and runs the command.
pub fn run() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Plugin(PluginCommand::Check(args)) => check::run(args),
        Command::Plugin(PluginCommand::Rollback(args)) => rollback::run(args),
        Command::Plugin(PluginCommand::Test(args)) => plugin_test::run(args),
        Command::Plugin(PluginCommand::New(args)) => plugin_new::run(args),
        Command::App {
            connection,
            command,
        } => admin::run_app(connection, command),
        Command::Events { connection, args } => admin::run_events(connection, args),
        Command::Plan { connection, args } => admin::run_plan(connection, args),
        Command::Provision { connection, args } => admin::run_provision(connection, args),
        Command::Status { connection, format } => admin::run_status(connection, format),
        Command::Reconcile { connection, args } => admin::run_reconcile(connection, args),
        Command::DeadLetters { connection, args } => admin::run_dead_letters(connection, args),
        Command::Held {
            connection,
            command,
        } => admin::run_held(connection, command),
        Command::Directory {
            connection,
            command,
        } => admin::run_directory(connection, command),
        Command::SandboxSp(args) => sandbox::run(args),
    }
}

/// A path argument shown as the user typed it.
pub(crate) fn shown(path: &std::path::Path) -> String {
    PathBuf::from(path).display().to_string()
}
