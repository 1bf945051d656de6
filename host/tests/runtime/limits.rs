//! A connector cannot get more than its share: one component holds one
//! memory and a bounded number of tables and core instances, and no result
//! is copied into the host past the output cap, however it is built. Each
//! hostile component is refused (or its call fails) with a reason, and a
//! neighbour loaded in the same runtime keeps serving.

use std::path::Path;

use scimlink::runtime::{
    ComponentLimits, LoadedPlugin, Loader, PluginErrorKind, Runtime, RuntimeConfig,
};

use crate::support::{bundled, fixture, load, peak_allocation, runtime, user};

/// Most heap a call into a hostile connector may make the host hold: the
/// output cap (1 MiB by default) with room for the host's own work, far
/// below one copy of the fixture's 32 MiB buffer.
const HOST_COPY_BOUND: usize = 16 << 20;

/// Component section ids (component model binary format).
const CORE_MODULE_SECTION: u8 = 1;
const CORE_INSTANCE_SECTION: u8 = 2;

fn leb(mut value: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn read_leb(bytes: &[u8], at: &mut usize) -> usize {
    let mut value = 0;
    let mut shift = 0;
    loop {
        let byte = bytes[*at];
        *at += 1;
        value |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return value;
        }
        shift += 7;
    }
}

/// The ids of a component's top-level sections, in order.
fn section_ids(component: &[u8]) -> Vec<u8> {
    let mut ids = Vec::new();
    let mut at = 8;
    while at < component.len() {
        ids.push(component[at]);
        at += 1;
        let size = read_leb(component, &mut at);
        at += size;
    }
    ids
}

fn push_section(out: &mut Vec<u8>, id: u8, payload: &[u8]) {
    out.push(id);
    out.extend(leb(payload.len()));
    out.extend_from_slice(payload);
}

/// A working connector component with one more core module (`module_wat`,
/// which must import nothing) instantiated `times` times. Everything else
/// about the connector is unchanged, so only the extra instances can be
/// why it is refused.
fn with_extra_core_instances(component: &[u8], module_wat: &str, times: usize) -> Vec<u8> {
    // The new module's index: wit-component places every core module in
    // a top-level module section (none is imported or aliased).
    let modules = section_ids(component)
        .into_iter()
        .filter(|id| *id == CORE_MODULE_SECTION)
        .count();
    let mut out = component.to_vec();
    push_section(
        &mut out,
        CORE_MODULE_SECTION,
        &wat::parse_str(module_wat).expect("module"),
    );
    let mut instances = leb(times);
    for _ in 0..times {
        // 0x00: instantiate module `modules` with no arguments.
        instances.push(0x00);
        instances.extend(leb(modules));
        instances.extend(leb(0));
    }
    push_section(&mut out, CORE_INSTANCE_SECTION, &instances);
    out
}

fn minimal_bytes() -> Vec<u8> {
    std::fs::read(fixture("minimal")).expect("minimal fixture")
}

/// A second linear memory as large as the whole cap (64 MiB, 1024 pages).
const MEMORY_AT_CAP: &str = "(module (memory 1024))";
/// A module that holds nothing: only its instances count.
const EMPTY_MODULE: &str = "(module)";

fn assert_serves(neighbour: &LoadedPlugin, username: &str) {
    let document = neighbour
        .map_user(&user(username), &[])
        .unwrap_or_else(|e| panic!("the neighbour stopped serving: {e}"))
        .value
        .value();
    assert_eq!(document["userName"], username);
    // A fresh instance, not only the warm one: the pool is not exhausted.
    neighbour
        .instantiate_once()
        .unwrap_or_else(|e| panic!("the neighbour cannot instantiate: {e}"));
}

#[test]
fn a_component_with_a_second_memory_at_the_cap_is_refused_at_load() {
    let loader = Loader::new(runtime());
    let neighbour = load(&loader, &bundled("custom-scim"));
    let hostile = with_extra_core_instances(&minimal_bytes(), MEMORY_AT_CAP, 1);

    let error = loader
        .load_bytes(&hostile, Path::new("two-memories.wasm"))
        .err()
        .expect("a component with two memories must be refused");
    assert!(
        error.reason.contains("2 Wasm linear memories")
            && error.reason.contains("at most 1 linear memory"),
        "{error}"
    );
    assert_serves(&neighbour, "after-two-memories");

    // The same component is a working connector where two memories are
    // allowed: the second memory alone is why it was refused.
    let lenient = Loader::new(
        Runtime::new(RuntimeConfig {
            component_limits: ComponentLimits {
                memories: 2,
                ..ComponentLimits::default()
            },
            ..RuntimeConfig::default()
        })
        .expect("runtime"),
    );
    let (plugin, _) = lenient
        .load_bytes(&hostile, Path::new("two-memories.wasm"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(plugin.map_user(&user("two-memories"), &[]).is_ok());
}

#[test]
fn a_component_with_many_core_instances_is_refused_at_load() {
    let loader = Loader::new(runtime());
    let neighbour = load(&loader, &bundled("custom-scim"));
    let hostile = with_extra_core_instances(&minimal_bytes(), EMPTY_MODULE, 200);

    let error = loader
        .load_bytes(&hostile, Path::new("many-instances.wasm"))
        .err()
        .expect("a component with two hundred core instances must be refused");
    assert!(
        error.reason.contains("203 core module instances")
            && error.reason.contains("8 core instances per connector"),
        "{error}"
    );
    // Loaded again and again (as a watcher would on every change), it never
    // takes the pool's slots from the neighbour.
    for _ in 0..8 {
        assert!(
            loader
                .load_bytes(&hostile, Path::new("many-instances.wasm"))
                .is_err()
        );
    }
    assert_serves(&neighbour, "after-many-instances");
}

/// A runtime whose calls may take seconds: the aliasing fixture fills a
/// 32 MiB buffer before it answers, which on a busy machine can pass the
/// production deadline, and these tests are about the copy, not the CPU.
fn patient_runtime() -> std::sync::Arc<Runtime> {
    Runtime::new(RuntimeConfig {
        default_limits: scimlink::runtime::PluginLimits {
            call_deadline: std::time::Duration::from_secs(10),
            ..scimlink::runtime::PluginLimits::default()
        },
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

#[test]
fn a_describe_that_repeats_one_buffer_is_refused_before_it_is_copied() {
    let loader = Loader::new(patient_runtime());
    let neighbour = load(&loader, &bundled("custom-scim"));
    let path = fixture("aliasing-describe");

    let (result, peak) = peak_allocation(|| loader.load_path(&path));
    assert!(
        peak < HOST_COPY_BOUND,
        "loading made the host hold {} MiB",
        peak >> 20
    );
    let error = result
        .err()
        .expect("ten thousand aliases of 32 MiB must be refused");
    assert!(
        error.reason.contains("describe") && error.reason.contains("refused before"),
        "{error}"
    );
    assert_serves(&neighbour, "after-aliasing-describe");
}

#[test]
fn results_that_repeat_one_buffer_are_refused_before_they_are_copied() {
    let loader = Loader::new(patient_runtime());
    let neighbour = load(&loader, &bundled("custom-scim"));
    let aliasing = load(&loader, &fixture("aliasing"));
    let bomb = user("alias-bomb");

    let calls: [(&str, &dyn Fn() -> Option<PluginErrorKind>); 3] = [
        // One document: the whole 32 MiB buffer.
        ("map-user", &|| {
            aliasing.map_user(&bomb, &[]).err().map(|e| e.kind)
        }),
        // Ten thousand documents, each the whole buffer.
        ("map-users", &|| {
            aliasing
                .map_users(std::slice::from_ref(&bomb), &[])
                .err()
                .map(|e| e.kind)
        }),
        // Ten thousand filters, each the whole buffer.
        ("lookup-filters", &|| {
            aliasing.lookup_filters(&bomb, &[]).err().map(|e| e.kind)
        }),
    ];
    for (call, attempt) in calls {
        let (kind, peak) = peak_allocation(attempt);
        assert!(
            peak < HOST_COPY_BOUND,
            "{call} made the host hold {} MiB",
            peak >> 20
        );
        let kind = kind.unwrap_or_else(|| panic!("{call}: the result was accepted"));
        assert!(
            matches!(&kind, PluginErrorKind::InvalidOutput(e) if e.to_string().contains("refused before")),
            "{call}: {kind}"
        );
        // The connector serves its next call, and so does the neighbour.
        let document = aliasing
            .map_user(&user("after"), &[])
            .expect("the aliasing connector recovers")
            .value
            .value();
        assert_eq!(document["userName"], "after");
        assert_serves(&neighbour, call);
    }
}
