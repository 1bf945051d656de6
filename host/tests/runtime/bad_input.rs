//! Files that are not connectors, and plugins folders that cannot be read:
//! one clear line naming the file and the reason, and the host keeps
//! serving what it has.

use std::path::Path;

use scimlink::runtime::{Loader, PluginRegistry, RuntimeEvent};

use crate::support::{bundled, fixture, runtime};

fn refusal(bytes: &[u8], name: &str) -> String {
    let loader = Loader::new(runtime());
    let error = loader
        .load_bytes(bytes, Path::new(name))
        .err()
        .expect("refused");
    let message = error.to_string();
    assert!(message.starts_with(&format!("{name}: ")), "{message}");
    assert_eq!(message.lines().count(), 1, "not one line: {message}");
    message
}

#[test]
fn files_that_are_not_components_are_refused_with_the_reason() {
    assert!(refusal(b"", "empty.wasm").contains("empty"));
    assert!(refusal(b"#!/bin/sh\necho hi\n", "script.wasm").contains("not a WebAssembly file"));
    let core_module = wat::parse_str("(module)").unwrap();
    assert!(refusal(&core_module, "module.wasm").contains("core WebAssembly module"));
    let component = std::fs::read(bundled("custom-scim")).unwrap();
    let truncated = &component[..component.len() / 2];
    assert!(refusal(truncated, "truncated.wasm").contains("does not compile"));
}

#[test]
fn a_component_of_another_world_is_refused() {
    let other_world = wat::parse_str(
        r#"(component
            (core module $m (func (export "run")))
            (core instance $i (instantiate $m))
            (func (export "run") (canon lift (core func $i "run"))))"#,
    )
    .unwrap();
    let message = refusal(&other_world, "other.wasm");
    assert!(
        message.contains("does not export scimlink:connector/connector"),
        "{message}"
    );
    assert!(message.contains("run"), "{message}");
}

#[test]
fn a_broken_file_beside_good_ones_costs_only_itself() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::copy(
        bundled("custom-scim"),
        folder.path().join("custom-scim.wasm"),
    )
    .unwrap();
    std::fs::write(folder.path().join("junk.wasm"), b"junk").unwrap();
    std::fs::copy(
        fixture("missing-export"),
        folder.path().join("missing-export.wasm"),
    )
    .unwrap();
    std::fs::write(folder.path().join("notes.txt"), b"ignored").unwrap();

    let registry = PluginRegistry::new(Loader::new(runtime()), folder.path());
    let mut events = registry.events().subscribe();
    let report = registry.sync();
    assert_eq!(report.loaded, ["custom-scim@0.1.0"]);
    assert_eq!(report.rejected.len(), 2, "{:?}", report.rejected);
    assert!(registry.get("custom-scim").is_some());

    let mut rejected = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let RuntimeEvent::PluginRejected { file, .. } = event {
            rejected.push(
                Path::new(&file)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    rejected.sort();
    assert_eq!(rejected, ["junk.wasm", "missing-export.wasm"]);

    // An unchanged folder is not reported again.
    assert_eq!(registry.sync(), Default::default());
}

#[test]
fn a_missing_or_unreadable_folder_is_reported_and_what_serves_keeps_serving() {
    let folder = tempfile::tempdir().unwrap();
    let plugins = folder.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(bundled("custom-scim"), plugins.join("custom-scim.wasm")).unwrap();
    let registry = PluginRegistry::new(Loader::new(runtime()), &plugins);
    registry.sync();
    let mut events = registry.events().subscribe();

    // The folder disappears: reported, nothing unloaded.
    std::fs::rename(&plugins, folder.path().join("elsewhere")).unwrap();
    let report = registry.sync();
    assert!(report.loaded.is_empty() && report.removed.is_empty());
    assert!(registry.get("custom-scim").is_some());
    match events.try_recv() {
        Ok(RuntimeEvent::PluginsFolderUnreadable { folder, reason }) => {
            assert!(folder.ends_with("plugins"));
            assert!(
                reason.contains("cannot open the plugins folder"),
                "{reason}"
            );
        }
        other => panic!("expected an unreadable-folder event, got {other:?}"),
    }

    // A file where the folder should be.
    std::fs::write(&plugins, b"not a folder").unwrap();
    registry.sync();
    assert!(matches!(
        events.try_recv(),
        Ok(RuntimeEvent::PluginsFolderUnreadable { .. })
    ));
    assert!(registry.get("custom-scim").is_some());
}

#[test]
fn renaming_a_file_keeps_its_connector_serving() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::copy(
        bundled("custom-scim"),
        folder.path().join("custom-scim.wasm"),
    )
    .unwrap();
    let registry = PluginRegistry::new(Loader::new(runtime()), folder.path());
    registry.sync();
    std::fs::rename(
        folder.path().join("custom-scim.wasm"),
        folder.path().join("renamed.wasm"),
    )
    .unwrap();
    let report = registry.sync();
    assert_eq!(report.loaded, ["custom-scim@0.1.0"]);
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert!(report.removed.is_empty(), "{:?}", report.removed);
    let serving = registry.get("custom-scim").expect("still serving");
    assert!(
        serving
            .identity()
            .file
            .as_ref()
            .unwrap()
            .ends_with("renamed.wasm")
    );

    // A second file claiming the same connector is refused while the first exists.
    std::fs::copy(bundled("custom-scim"), folder.path().join("copy.wasm")).unwrap();
    let report = registry.sync();
    assert_eq!(report.rejected.len(), 1);
    assert!(
        report.rejected[0].contains("already served from"),
        "{:?}",
        report.rejected
    );
}
