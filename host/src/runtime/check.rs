//! What `scimlink plugin check` reports of a component: the host's own
//! validation (done by the [`Loader`]), then its manifest, what it makes of
//! a sample user and group, and what each of those calls cost.
//!
//! The CLI and the admin API (`POST /api/v1/plugins/check`) share this one
//! report, so a component checked in the console is checked exactly as on
//! the command line.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use super::contract::manifest_json;
use super::{CallReceipt, LoadReport, LoadedPlugin, Loader, Runtime, RuntimeConfig, validate};

/// The report of a component that loaded: `file` names it.
pub fn report(plugin: &LoadedPlugin, load: &LoadReport, file: &str) -> Result<Value, String> {
    let settings = [];
    let user = validate::fixture_user();
    let mut receipts: Vec<CallReceipt> = Vec::new();
    let fail = |call: &str, error: super::PluginError| format!("{call} failed: {error}");

    let user_document = plugin
        .map_user(&user, &settings)
        .map_err(|error| fail("map-user", error))?;
    receipts.push(user_document.receipt);
    let filters = plugin
        .lookup_filters(&user, &settings)
        .map_err(|error| fail("lookup-filters", error))?;
    receipts.push(filters.receipt);
    let group_document = if plugin.manifest().capabilities.groups {
        let called = plugin
            .map_group(&validate::fixture_group(), &settings)
            .map_err(|error| fail("map-group", error))?;
        receipts.push(called.receipt);
        Some(called.value.value())
    } else {
        None
    };
    Ok(json!({
        "file": file,
        "sha256": plugin.identity().sha256,
        "contract": plugin.identity().contract,
        "compile_ms": load.elapsed.as_millis() as u64,
        "manifest": manifest_json(plugin.manifest()),
        "sample_user": {
            "user_name": user.username,
            "scim": user_document.value.value(),
            "lookup_filters": filters.value,
        },
        "sample_group": group_document,
        "receipts": receipts,
    }))
}

/// Why a component was not checked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CheckError {
    /// The component is not a valid connector.
    #[error("{0}")]
    Invalid(String),
    /// The host could not run the check.
    #[error("{0}")]
    Host(String),
}

/// Checks an uploaded component (`file` names it) on a metered runtime of
/// its own, apart from the one serving connectors: a component that fails
/// to load or to answer never touches what the host serves.
pub fn check_bytes(bytes: &[u8], file: &str) -> Result<Value, CheckError> {
    // One at a time: a compile takes a core for a second or two.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let runtime = checking_runtime().map_err(CheckError::Host)?;
    let loader = Loader::new(runtime);
    let (plugin, load) = loader
        .load_bytes(bytes, Path::new(file))
        .map_err(|error| CheckError::Invalid(error.to_string()))?;
    report(&plugin, &load, file).map_err(CheckError::Invalid)
}

/// One metered runtime for every check this process makes, built on first
/// use with a small instance pool: checks are rare and one at a time.
fn checking_runtime() -> Result<Arc<Runtime>, String> {
    static RUNTIME: OnceLock<Result<Arc<Runtime>, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            Runtime::new(RuntimeConfig {
                metering: true,
                max_instances: 8,
                ..RuntimeConfig::default()
            })
            .map_err(|error| format!("the checking runtime cannot start: {error}"))
        })
        .clone()
}
