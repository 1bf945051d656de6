//! `scimlink plugin check FILE.wasm`: the host's own validation of a
//! component, then a look at what it produces.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use super::{Format, LimitArgs, shown};
use crate::runtime::{Loader, Runtime, check};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The component to check.
    file: PathBuf,
    #[command(flatten)]
    limits: LimitArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    // Metered, so the receipts show the instructions (fuel) each call cost.
    let runtime = Runtime::new(args.limits.runtime_config(true))?;
    let loader = Loader::new(runtime);
    let (plugin, load) = match loader.load_path(&args.file) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let report = match check::report(&plugin, &load, &shown(&args.file)) {
        Ok(report) => report,
        Err(reason) => {
            eprintln!("error: {reason}");
            return Ok(ExitCode::FAILURE);
        }
    };
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print_text(&report),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(report: &Value) {
    let manifest = &report["manifest"];
    let capabilities = &manifest["capabilities"];
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    println!("ok: {} is a valid connector", text(&report["file"]));
    println!();
    println!("  name          {}", text(&manifest["name"]));
    println!("  version       {}", text(&manifest["version"]));
    println!("  contract      {}", text(&report["contract"]));
    if !text(&manifest["description"]).is_empty() {
        println!("  description   {}", text(&manifest["description"]));
    }
    if let Some(template) = manifest["base_url_template"].as_str() {
        println!("  base URL      {template}");
    }
    println!("  groups        {}", capabilities["groups"]);
    println!("  direct assign {}", capabilities["direct_assignment"]);
    println!("  offboarding   {}", text(&capabilities["offboarding"]));
    println!("  updates       {}", text(&capabilities["update_method"]));
    println!("  members/PATCH {}", capabilities["max_members_per_patch"]);
    let passwords = &capabilities["passwords"];
    let takes = match (
        passwords["on_create"] == true,
        passwords["on_change"].as_str(),
    ) {
        (false, None) => "none".to_string(),
        (true, None) => "on create".to_string(),
        (false, Some(method)) => format!("on change ({method})"),
        (true, Some(method)) => format!("on create, on change ({method})"),
    };
    println!("  passwords     {takes}");
    if let Some(settings) = manifest["settings"].as_array() {
        for setting in settings {
            println!(
                "  setting       {}{} — {}",
                text(&setting["key"]),
                if setting["required"] == true {
                    " (required)"
                } else {
                    ""
                },
                text(&setting["description"])
            );
        }
    }
    println!("  sha256        {}", text(&report["sha256"]));
    println!();
    println!(
        "SCIM user for the sample user {}:",
        text(&report["sample_user"]["user_name"])
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&report["sample_user"]["scim"]).unwrap_or_default()
    );
    println!("lookup filters, in order:");
    for filter in report["sample_user"]["lookup_filters"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!("  {}", text(filter));
    }
    if !report["sample_group"].is_null() {
        println!("SCIM group for the sample group:");
        println!(
            "{}",
            serde_json::to_string_pretty(&report["sample_group"]).unwrap_or_default()
        );
    }
    println!();
    println!("cost per call:");
    for receipt in report["receipts"].as_array().into_iter().flatten() {
        println!(
            "  {:<15} {:>8} µs  {:>10} fuel  {:>6} KiB memory  {:>6} bytes out",
            text(&receipt["call"]),
            receipt["wall_time"],
            receipt["fuel"],
            receipt["peak_memory_bytes"].as_u64().unwrap_or(0) >> 10,
            receipt["output_bytes"],
        );
    }
}
