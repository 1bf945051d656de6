//! How far along the reconciles this process runs are, for the console
//! and `GET /api/v1/apps/{app}/overview`.
//!
//! Invariants: one entry per application, replaced when its next reconcile
//! starts; a finished entry keeps its outcome until then. Entries are what
//! this process saw: a reconcile another host runs shows there, not here.
//! Nothing here is needed for correctness; a lost update only shows stale
//! figures.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use serde::Serialize;
use utoipa::ToSchema;

use super::reconcile::Reconciled;
use crate::store::Timestamp;

/// A reconcile of one application: running, done or failed.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileProgress {
    /// `running`, `done` or `failed`.
    pub state: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// When it ended (RFC 3339), once it has.
    pub finished: Option<String>,
    /// Accounts the application has listed so far.
    pub listed: u64,
    /// The summary of a finished reconcile, or why it failed.
    pub summary: Option<String>,
}

static RUNS: LazyLock<Mutex<HashMap<String, ReconcileProgress>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn with_runs<T>(change: impl FnOnce(&mut HashMap<String, ReconcileProgress>) -> T) -> T {
    change(&mut RUNS.lock().unwrap_or_else(PoisonError::into_inner))
}

/// One reconcile's progress, from its start to its end: one that is
/// dropped before it finishes shows as interrupted.
pub(crate) struct Run {
    app_id: String,
    finished: bool,
}

impl Run {
    pub(crate) fn start(app_id: &str) -> Run {
        started(app_id);
        Run {
            app_id: app_id.to_string(),
            finished: false,
        }
    }

    pub(crate) fn finish(&mut self, result: Result<&Reconciled, String>) {
        finished(&self.app_id, result);
        self.finished = true;
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if !self.finished {
            finished(
                &self.app_id,
                Err("interrupted before it finished".to_string()),
            );
        }
    }
}

/// A reconcile of `app_id` starts.
fn started(app_id: &str) {
    with_runs(|runs| {
        runs.insert(
            app_id.to_string(),
            ReconcileProgress {
                state: "running".into(),
                started: Timestamp::now().to_string(),
                finished: None,
                listed: 0,
                summary: None,
            },
        )
    });
}

/// The application has listed `listed` accounts so far.
pub(crate) fn listed(app_id: &str, listed: u64) {
    with_runs(|runs| {
        if let Some(run) = runs.get_mut(app_id) {
            run.listed = listed;
        }
    });
}

/// The reconcile of `app_id` ended.
fn finished(app_id: &str, result: Result<&Reconciled, String>) {
    with_runs(|runs| {
        if let Some(run) = runs.get_mut(app_id) {
            run.finished = Some(Timestamp::now().to_string());
            match result {
                Ok(done) => {
                    run.state = "done".into();
                    run.listed = done.listed;
                    run.summary = Some(done.summary());
                }
                Err(reason) => {
                    run.state = "failed".into();
                    run.summary = Some(reason);
                }
            }
        }
    });
}

/// The last reconcile of `app_id` this process ran, or the one running.
pub fn of(app_id: &str) -> Option<ReconcileProgress> {
    with_runs(|runs| runs.get(app_id).cloned())
}
