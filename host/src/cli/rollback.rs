//! `scimlink plugin rollback NAME`: puts the version of a connector that
//! served before the current one back into the plugins folder. A running
//! host picks it up like any deploy (from its precompile cache, so within
//! moments); a stopped one serves it when it starts.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use sha2::{Digest, Sha256};

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
    let (current, previous) = match history.rollback_target(&args.name) {
        Ok(target) => target,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let target = file_holding(&args.plugins, &current.sha256)
        .unwrap_or_else(|| args.plugins.join(format!("{}.wasm", args.name)));
    let source = history.component_path(&args.name, &previous.sha256);
    // Copy beside, then rename: the host never reads half a file.
    let temporary = args.plugins.join(format!(".{}.rollback", args.name));
    if let Err(e) =
        std::fs::copy(&source, &temporary).and_then(|_| std::fs::rename(&temporary, &target))
    {
        let _ = std::fs::remove_file(&temporary);
        eprintln!(
            "error: cannot put {} in place of {}: {e}",
            shown(&source),
            shown(&target)
        );
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "connector {} rolled back from {} to {} in {}",
        args.name,
        current.version,
        previous.version,
        shown(&target)
    );
    Ok(ExitCode::SUCCESS)
}

/// The `*.wasm` file of `folder` whose contents have this sha256.
fn file_holding(folder: &Path, sha256: &str) -> Option<PathBuf> {
    std::fs::read_dir(folder)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "wasm"))
        .find(|path| {
            std::fs::read(path).is_ok_and(|bytes| hex::encode(Sha256::digest(&bytes)) == sha256)
        })
}
