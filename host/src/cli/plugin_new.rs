//! `scimlink plugin new NAME`: a new connector crate.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::shown;
use crate::sandbox::scaffold::{self, SDK_GIT};

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The connector's name: lower-case letters, digits and dashes.
    name: String,
    /// Where the crate goes; `./NAME` when absent. Inside a Cargo
    /// workspace, the crate is added to its members.
    #[arg(long)]
    path: Option<PathBuf>,
    /// The guest SDK's sources (the `guest-sdk` folder of a scimlink
    /// checkout); the ones this scimlink was built from when they exist,
    /// else the SDK from the project's git repository.
    #[arg(long, env = "SCIMLINK_SDK")]
    sdk: Option<PathBuf>,
}

pub fn run(args: NewArgs) -> anyhow::Result<ExitCode> {
    let folder = args.path.unwrap_or_else(|| PathBuf::from(&args.name));
    let sdk = args.sdk.or_else(scaffold::local_sdk);
    if let Some(sdk) = &sdk
        && !sdk.join("Cargo.toml").is_file()
    {
        anyhow::bail!("--sdk {}: no Cargo.toml there", shown(sdk));
    }
    let made = scaffold::scaffold(&args.name, &folder, sdk.as_deref())?;
    println!("created the connector {} in {}", args.name, shown(&folder));
    match &sdk {
        Some(sdk) => println!("  SDK          {}", shown(sdk)),
        None => println!("  SDK          {SDK_GIT} (no local copy found; --sdk to use one)"),
    }
    if let Some(workspace) = &made.workspace {
        println!("  workspace    a member of {}", shown(workspace));
    }
    println!("  edit         {}", shown(&folder.join("src/lib.rs")));
    println!(
        "  build        (cd {} && cargo build --release --target wasm32-wasip2)",
        shown(&folder)
    );
    println!(
        "  component    target/{} (under the cargo target folder)",
        made.component
    );
    println!("  test         scimlink plugin test <component>");
    Ok(ExitCode::SUCCESS)
}
