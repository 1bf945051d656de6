//! `scimlink plugin rollback NAME`: puts the version of a connector that
//! served before the current one back into the plugins folder. A running
//! host picks it up like any deploy (from its precompile cache, so within
//! moments); a stopped one serves it when it starts.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::shown;
use crate::runtime::history::History;

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The connector's manifest name.
    name: String,
    /// The host's data folder (its serving history is under it).
    #[arg(long, default_value = "data", env = "SCIMLINK_DATA")]
    data: PathBuf,
    /// The host's plugins folder.
    #[arg(long, default_value = "dist/plugins", env = "SCIMLINK_PLUGINS")]
    plugins: PathBuf,
}

pub fn run(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let history = History::new(args.data.join("plugin-history"));
    match history.restore_previous(&args.name, &args.plugins) {
        Ok(restored) => {
            println!(
                "connector {} rolled back from {} to {} in {}",
                restored.name,
                restored.from_version,
                restored.to_version,
                shown(&restored.file)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}
