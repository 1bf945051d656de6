//! Hosts that serve different connectors: which one's engine should run,
//! and where each application's connector is served.
//!
//! Connectors are loaded per host, from each host's own folder, so the
//! hosts sharing a database may serve different connectors, or other
//! versions of one. An application's connector counts as *served* by a host
//! that has it at the newest version any present host has: an older copy
//! elsewhere is a host not yet upgraded, and what it would send is not what
//! the newest connector sends.
//!
//! Rules:
//! - the engine's turn belongs with a host that serves the most
//!   applications; a host that serves fewer than another present host
//!   leaves the turn to it (ties keep the turn where it is);
//! - an application whose connector another present host serves but this
//!   one does not is not this host's to send to: its work waits for a host
//!   that serves it, and is neither failed nor quarantined;
//! - an application whose connector no present host serves is quarantined
//!   by whichever engine runs, as on a single host;
//! - every difference between hosts that matters to an application is a
//!   [`Mismatch`], which `status` shows.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::store::{AppRecord, AppState, HostPresence};

/// The newest version of each connector any present host serves.
pub fn newest_versions(hosts: &[HostPresence]) -> BTreeMap<String, String> {
    let mut newest: BTreeMap<String, String> = BTreeMap::new();
    for host in hosts {
        for (name, version) in &host.connectors {
            match newest.get(name) {
                Some(known) if compare_versions(known, version) != Ordering::Less => {}
                _ => {
                    newest.insert(name.clone(), version.clone());
                }
            }
        }
    }
    newest
}

/// Versions compare as semantic versions; text that is not one compares
/// as text, below any that is.
fn compare_versions(left: &str, right: &str) -> Ordering {
    match (semver::Version::parse(left), semver::Version::parse(right)) {
        (Ok(left), Ok(right)) => left.cmp(&right),
        (Ok(_), Err(_)) => Ordering::Greater,
        (Err(_), Ok(_)) => Ordering::Less,
        (Err(_), Err(_)) => left.cmp(right),
    }
}

/// Whether `connectors` (a host's) serve `connector` at the newest version.
pub fn serves(
    connectors: &BTreeMap<String, String>,
    connector: &str,
    newest: &BTreeMap<String, String>,
) -> bool {
    match (connectors.get(connector), newest.get(connector)) {
        (Some(version), Some(newest)) => version == newest,
        _ => false,
    }
}

/// The applications an engine looks after: active and quarantined ones.
fn looked_after(apps: &[AppRecord]) -> impl Iterator<Item = &AppRecord> {
    apps.iter()
        .filter(|app| matches!(app.state, AppState::Active | AppState::Quarantined))
}

/// How many of `apps` a host with `connectors` serves.
pub fn coverage(
    connectors: &BTreeMap<String, String>,
    apps: &[AppRecord],
    newest: &BTreeMap<String, String>,
) -> usize {
    looked_after(apps)
        .filter(|app| serves(connectors, &app.connector, newest))
        .count()
}

/// The present host this one (`engine`, serving `connectors`) should leave
/// the engine's turn to: the one that serves the most of `apps`, when that
/// is more than this host does.
pub fn better_host<'a>(
    engine: &str,
    connectors: &BTreeMap<String, String>,
    hosts: &'a [HostPresence],
    apps: &[AppRecord],
) -> Option<&'a HostPresence> {
    let newest = newest_versions(hosts);
    let mine = coverage(connectors, apps, &newest);
    hosts
        .iter()
        .filter(|host| host.engine != engine)
        .map(|host| (coverage(&host.connectors, apps, &newest), host))
        .filter(|(theirs, _)| *theirs > mine)
        // The most; among equals, the first in engine order.
        .max_by(|(left, left_host), (right, right_host)| {
            left.cmp(right)
                .then_with(|| right_host.engine.cmp(&left_host.engine))
        })
        .map(|(_, host)| host)
}

/// The present hosts that serve `app`'s connector, when this host (serving
/// `connectors`) does not and another does: its work is theirs.
pub fn served_elsewhere<'a>(
    connectors: &BTreeMap<String, String>,
    app: &AppRecord,
    hosts: &'a [HostPresence],
) -> Vec<&'a HostPresence> {
    let newest = newest_versions(hosts);
    if serves(connectors, &app.connector, &newest) {
        return Vec::new();
    }
    hosts
        .iter()
        .filter(|host| serves(&host.connectors, &app.connector, &newest))
        .collect()
}

/// Why this host does not send to `app`, for its event and its progress.
pub fn not_served_here(
    connectors: &BTreeMap<String, String>,
    app: &AppRecord,
    elsewhere: &[&HostPresence],
) -> String {
    let here = match connectors.get(&app.connector) {
        Some(version) => format!("serves version {version}"),
        None => "does not serve it".to_string(),
    };
    let names: Vec<String> = elsewhere
        .iter()
        .map(|host| {
            let version = host
                .connectors
                .get(&app.connector)
                .map_or("", String::as_str);
            format!("{} ({version})", host.name)
        })
        .collect();
    format!(
        "connector {} is served by {}; the host running the engine {here}: its work waits \
         for a host that serves it",
        app.connector,
        names.join(", ")
    )
}

/// A connector the present hosts do not all serve alike, and the
/// applications that use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub connector: String,
    /// The newest version a present host serves, if any does.
    pub newest: Option<String>,
    /// Each present host's version; `None` where it is not loaded.
    pub hosts: Vec<(String, Option<String>)>,
    /// The applications (active or quarantined) that use it, by name.
    pub applications: Vec<String>,
}

/// Every connector an application uses that the present hosts do not all
/// serve at the same version.
pub fn mismatches(hosts: &[HostPresence], apps: &[AppRecord]) -> Vec<Mismatch> {
    let newest = newest_versions(hosts);
    let mut used: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for app in looked_after(apps) {
        used.entry(&app.connector)
            .or_default()
            .push(app.name.clone());
    }
    used.into_iter()
        .filter(|(connector, _)| {
            hosts
                .iter()
                .any(|host| !serves(&host.connectors, connector, &newest))
        })
        .map(|(connector, applications)| Mismatch {
            connector: connector.to_string(),
            newest: newest.get(connector).cloned(),
            hosts: hosts
                .iter()
                .map(|host| (host.name.clone(), host.connectors.get(connector).cloned()))
                .collect(),
            applications,
        })
        .collect()
}

/// This host as people read it: the machine's name and the process id.
pub fn this_host_name() -> String {
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".to_string());
    format!("{machine}:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Timestamp;

    fn host(engine: &str, connectors: &[(&str, &str)]) -> HostPresence {
        HostPresence {
            engine: engine.into(),
            name: format!("{engine}:1"),
            connectors: connectors
                .iter()
                .map(|(name, version)| (name.to_string(), version.to_string()))
                .collect(),
            seen: Timestamp::now(),
            until: Timestamp::now(),
        }
    }

    fn app(name: &str, connector: &str, state: AppState) -> AppRecord {
        AppRecord {
            id: format!("id-{name}"),
            name: name.into(),
            label: name.into(),
            connector: connector.into(),
            base_url: String::new(),
            manage_groups: false,
            state,
            settings: Vec::new(),
            capabilities: serde_json::Value::Null,
            pacing: Default::default(),
            state_reason: None,
            guard: Default::default(),
            version: 1,
            created: Timestamp::now(),
            modified: Timestamp::now(),
        }
    }

    #[test]
    fn the_newest_version_is_the_one_served() {
        let hosts = [
            host("a", &[("coda", "1.10.0"), ("cinode", "0.2.0")]),
            host("b", &[("coda", "1.9.0"), ("cinode", "0.2.0")]),
        ];
        let newest = newest_versions(&hosts);
        assert_eq!(newest["coda"], "1.10.0", "compared as versions, not text");
        assert!(serves(&hosts[0].connectors, "coda", &newest));
        assert!(!serves(&hosts[1].connectors, "coda", &newest));
        assert!(serves(&hosts[1].connectors, "cinode", &newest));
        assert!(!serves(&hosts[1].connectors, "scalekit", &newest));
    }

    #[test]
    fn the_turn_goes_to_the_host_that_serves_the_most() {
        let apps = [
            app("crm", "coda", AppState::Active),
            app("hr", "cinode", AppState::Quarantined),
            app("old", "scalekit", AppState::Inactive),
        ];
        let full = host("b", &[("coda", "1.0.0"), ("cinode", "0.2.0")]);
        let partial = host("a", &[("coda", "1.0.0")]);
        let hosts = [partial.clone(), full.clone()];
        assert_eq!(
            better_host("a", &partial.connectors, &hosts, &apps).map(|host| &host.engine),
            Some(&full.engine)
        );
        assert_eq!(better_host("b", &full.connectors, &hosts, &apps), None);
        // An inactive application's connector does not count.
        let with_scalekit = host("c", &[("coda", "1.0.0"), ("scalekit", "1.0.0")]);
        let hosts = [partial.clone(), with_scalekit.clone()];
        assert_eq!(
            better_host("a", &partial.connectors, &hosts, &apps),
            None,
            "a tie keeps the turn where it is"
        );
        // An older version counts as not served.
        let older = host("d", &[("coda", "0.9.0"), ("cinode", "0.2.0")]);
        let hosts = [older.clone(), full.clone()];
        assert_eq!(
            better_host("d", &older.connectors, &hosts, &apps).map(|host| &host.engine),
            Some(&full.engine)
        );
    }

    #[test]
    fn an_application_served_elsewhere_waits_for_its_host() {
        let crm = app("crm", "coda", AppState::Active);
        let here = host("a", &[("coda", "1.0.0")]);
        let there = host("b", &[("coda", "1.1.0")]);
        let hosts = [here.clone(), there.clone()];
        let elsewhere = served_elsewhere(&here.connectors, &crm, &hosts);
        assert_eq!(elsewhere, vec![&there]);
        let why = not_served_here(&here.connectors, &crm, &elsewhere);
        assert!(
            why.contains("b:1 (1.1.0)") && why.contains("serves version 1.0.0"),
            "{why}"
        );
        assert!(served_elsewhere(&there.connectors, &crm, &hosts).is_empty());
        // Served nowhere: not another host's work either.
        let lonely = app("hr", "cinode", AppState::Active);
        assert!(served_elsewhere(&here.connectors, &lonely, &hosts).is_empty());
    }

    #[test]
    fn mismatches_name_the_connector_its_hosts_and_its_applications() {
        let apps = [
            app("crm", "coda", AppState::Active),
            app("wiki", "coda", AppState::Quarantined),
            app("hr", "cinode", AppState::Active),
            app("old", "scalekit", AppState::Inactive),
        ];
        let hosts = [
            host("a", &[("coda", "1.0.0"), ("cinode", "0.2.0")]),
            host("b", &[("coda", "1.1.0"), ("cinode", "0.2.0")]),
        ];
        let found = mismatches(&hosts, &apps);
        assert_eq!(
            found,
            vec![Mismatch {
                connector: "coda".into(),
                newest: Some("1.1.0".into()),
                hosts: vec![
                    ("a:1".into(), Some("1.0.0".into())),
                    ("b:1".into(), Some("1.1.0".into())),
                ],
                applications: vec!["crm".into(), "wiki".into()],
            }]
        );
        assert!(
            mismatches(&hosts[..1], &apps).is_empty(),
            "one host agrees with itself"
        );
    }
}
