//! The hosts whose engines share a store: which one runs each
//! application, and where each application's connector is served.
//!
//! Connectors are loaded per host, from each host's own folder, so the
//! hosts sharing a database may serve different connectors, or other
//! versions of one. An application's connector counts as *served* by a host
//! that has it at the newest version any present host has: an older copy
//! elsewhere is a host not yet upgraded, and what it would send is not what
//! the newest connector sends.
//!
//! Rules:
//! - each application is run by one host among the present hosts that
//!   serve its connector ([`runner`]), chosen by rendezvous hashing: every
//!   host reaches the same choice from the same list, the applications
//!   spread evenly, and a host that comes or goes moves only its own share;
//! - an application whose connector another present host serves but this
//!   one does not is not this host's to send to: its work waits for a host
//!   that serves it, and is neither failed nor quarantined;
//! - an application whose connector no present host serves is run by one of
//!   all the present hosts, which quarantines it, as a single host does;
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

/// The present host that runs `app`: of the hosts that serve its
/// connector (all of them, when none does), the one whose hash with the
/// application ranks highest. `None` only when no host is present.
pub fn runner<'a>(app: &AppRecord, hosts: &'a [HostPresence]) -> Option<&'a HostPresence> {
    let newest = newest_versions(hosts);
    let serving: Vec<&HostPresence> = hosts
        .iter()
        .filter(|host| serves(&host.connectors, &app.connector, &newest))
        .collect();
    let candidates = if serving.is_empty() {
        hosts.iter().collect()
    } else {
        serving
    };
    candidates
        .into_iter()
        .max_by_key(|host| (rank(&app.id, &host.engine), host.engine.clone()))
}

/// The rendezvous rank of `engine` for `app_id`: the first eight bytes of
/// the SHA-256 of both, the same on every host and every build.
fn rank(app_id: &str, engine: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(app_id.as_bytes());
    hasher.update([0]);
    hasher.update(engine.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
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
            passwords: Default::default(),
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
    fn each_application_is_run_by_one_host_that_serves_it() {
        let full = host("b", &[("coda", "1.0.0"), ("cinode", "0.2.0")]);
        let partial = host("a", &[("coda", "1.0.0")]);
        let older = host("c", &[("coda", "0.9.0"), ("cinode", "0.2.0")]);
        let hosts = [partial.clone(), full.clone(), older.clone()];
        let hr = app("hr", "cinode", AppState::Active);
        let chosen = runner(&hr, &hosts).unwrap();
        assert!(
            ["b", "c"].contains(&chosen.engine.as_str()),
            "only b and c serve cinode: {}",
            chosen.engine
        );
        // Whoever runs it serves its connector, and every host agrees.
        for index in 0..50 {
            let crm = app(&format!("crm-{index}"), "coda", AppState::Active);
            let chosen = runner(&crm, &hosts).unwrap();
            assert_ne!(chosen.engine, "c", "c serves an older coda");
            let reordered = [older.clone(), full.clone(), partial.clone()];
            assert_eq!(runner(&crm, &reordered).unwrap().engine, chosen.engine);
        }
        // Served by no one: still run, by some host, which quarantines it.
        let lonely = app("lonely", "scalekit", AppState::Active);
        assert!(runner(&lonely, &hosts).is_some());
        assert_eq!(runner(&lonely, &[]), None);
    }

    #[test]
    fn applications_spread_over_the_hosts_and_a_new_host_moves_only_its_share() {
        let two = [
            host("a", &[("coda", "1.0.0")]),
            host("b", &[("coda", "1.0.0")]),
        ];
        let three = [
            two[0].clone(),
            two[1].clone(),
            host("c", &[("coda", "1.0.0")]),
        ];
        let apps: Vec<AppRecord> = (0..300)
            .map(|index| app(&format!("app-{index}"), "coda", AppState::Active))
            .collect();
        let mut counts = BTreeMap::new();
        let mut moved = 0;
        for app in &apps {
            let before = runner(app, &two).unwrap().engine.clone();
            let after = runner(app, &three).unwrap().engine.clone();
            *counts.entry(after.clone()).or_insert(0) += 1;
            if before != after {
                assert_eq!(after, "c", "an application moves only to the new host");
                moved += 1;
            }
        }
        for (engine, count) in &counts {
            assert!((60..=140).contains(count), "{engine} runs {count} of 300");
        }
        assert_eq!(moved, counts["c"]);
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
