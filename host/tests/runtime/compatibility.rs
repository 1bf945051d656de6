//! Contract versions: older minor versions keep loading, an incompatible
//! major version is refused with both versions named.

use scimlink::runtime::Loader;
use scimlink::runtime::contract::{
    AccountAction, DirectoryGroup, GroupAction, GroupEvent, GroupEventFacts, MemberFacts,
    Offboarding, UpdateMethod,
};

use crate::support::{fixture, load, runtime, user};

#[test]
fn a_connector_built_against_the_previous_minor_version_loads_and_serves() {
    let loader = Loader::new(runtime());
    let old = load(&loader, &fixture("contract-v0-1"));
    assert_eq!(old.identity().contract, "0.1.0");
    assert_eq!(old.manifest().contract_version, "0.1.0");

    let document = old.map_user(&user("legacy"), &[]).unwrap().value.value();
    assert_eq!(document["userName"], "legacy");
    // 0.1.0 has no batch call: the host serves it with one call per user.
    let users = [user("a"), user("b"), user("c")];
    let batch = old.map_users(&users, &[]).unwrap().value;
    let names: Vec<String> = batch
        .into_iter()
        .map(|d| d.unwrap().value()["userName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    // Its output is checked like any other's.
    let error = old.map_user(&user("invalid-json"), &[]).unwrap_err();
    assert!(error.to_string().contains("not JSON"), "{error}");
}

#[test]
fn every_call_of_a_previous_minor_version_speaks_the_host_types() {
    let loader = Loader::new(runtime());
    let old = load(&loader, &fixture("contract-v0-1"));
    let capabilities = &old.manifest().capabilities;
    assert!(capabilities.groups && capabilities.direct_assignment);
    assert_eq!(capabilities.offboarding, Offboarding::Deactivate);
    assert_eq!(capabilities.update_method, UpdateMethod::Patch);
    assert_eq!(capabilities.max_members_per_patch, 50);
    assert_eq!(capabilities.required_attributes, ["username"]);

    let group = DirectoryGroup {
        id: "g-1".to_owned(),
        name: "Engineers".to_owned(),
        description: None,
    };
    let document = old.map_group(&group, &[]).unwrap().value.value();
    assert_eq!(document["displayName"], "Engineers");

    let filters = old.lookup_filters(&user("legacy"), &[]).unwrap().value;
    assert_eq!(filters, [r#"userName eq "legacy""#]);

    let facts = GroupEventFacts {
        event: GroupEvent::GroupUnbound,
        group,
        members: ["u-1", "u-2"]
            .map(|id| MemberFacts {
                user_id: id.to_owned(),
                other_managed_groups: Vec::new(),
                directly_assigned: false,
            })
            .into(),
        group_management: true,
    };
    let decision = old.on_group_event(&facts, &[]).unwrap().value;
    assert_eq!(decision.group, GroupAction::LeaveAsIs);
    assert_eq!(decision.rule, "keep");
    let members: Vec<(&str, AccountAction)> = decision
        .members
        .iter()
        .map(|m| (m.user_id.as_str(), m.action))
        .collect();
    assert_eq!(
        members,
        [("u-1", AccountAction::Keep), ("u-2", AccountAction::Keep)]
    );

    // A refusal crosses as the host's refusal, not as a fault.
    let error = old.read_user("{}", &[]).unwrap_err();
    assert!(!error.is_plugin_fault(), "{error}");
    assert!(
        error.to_string().contains("import is not supported"),
        "{error}"
    );
}

#[test]
fn connectors_built_before_passwords_came_take_no_passwords() {
    let loader = Loader::new(runtime());
    for (name, version) in [("contract-v0-1", "0.1.0"), ("contract-v0-2", "0.2.0")] {
        let old = load(&loader, &fixture(name));
        assert_eq!(old.identity().contract, version);
        let passwords = &old.manifest().capabilities.passwords;
        assert!(!passwords.on_create, "{name}");
        assert_eq!(passwords.on_change, None, "{name}");
    }
}

#[test]
fn a_connector_of_contract_0_2_serves_its_batch_call_in_the_host_types() {
    let loader = Loader::new(runtime());
    let old = load(&loader, &fixture("contract-v0-2"));
    assert_eq!(old.manifest().contract_version, "0.2.0");
    assert_eq!(old.manifest().capabilities.max_members_per_patch, 50);
    let users = [user("a"), user("b")];
    let names: Vec<String> = old
        .map_users(&users, &[])
        .unwrap()
        .value
        .into_iter()
        .map(|d| d.unwrap().value()["userName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["a", "b"]);
    let group = DirectoryGroup {
        id: "g-1".to_owned(),
        name: "Engineers".to_owned(),
        description: None,
    };
    assert_eq!(
        old.map_group(&group, &[]).unwrap().value.value()["displayName"],
        "Engineers"
    );
    let error = old.read_user("{}", &[]).unwrap_err();
    assert!(!error.is_plugin_fault(), "{error}");
}

#[test]
fn an_incompatible_major_version_is_refused_naming_both_versions() {
    let loader = Loader::new(runtime());
    let error = loader
        .load_path(&fixture("incompatible-major"))
        .err()
        .expect("refused");
    let message = error.to_string();
    assert!(message.contains("incompatible-major.wasm"), "{message}");
    assert!(message.contains("1.0.0"), "{message}");
    assert!(message.contains("0.3.0"), "{message}");
}

#[test]
fn a_missing_export_is_refused_naming_the_function() {
    let loader = Loader::new(runtime());
    let error = loader
        .load_path(&fixture("missing-export"))
        .err()
        .expect("refused");
    let message = error.to_string();
    assert!(message.contains("read-user"), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}
