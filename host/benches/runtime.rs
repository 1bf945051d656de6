//! What a connector call costs: one user mapped through the WebAssembly
//! connector against the same mapping compiled natively, a batch, and a
//! fresh instance from the `InstancePre`.
//!
//! Needs the components: `scripts/build-plugins.sh` first.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use scimlink::runtime::contract as host;
use scimlink::runtime::validate::{self, ResourceKind};
use scimlink::runtime::{Loader, Runtime, RuntimeConfig};
use scimlink_sdk::Connector;

/// The SDK's sample user, as the host's contract type.
fn host_user(user: &scimlink_sdk::DirectoryUser) -> host::DirectoryUser {
    host::DirectoryUser {
        id: user.id.clone(),
        username: user.username.clone(),
        password_expired: user.password_expired,
        suspended: user.suspended,
        first_name: user.first_name.clone(),
        middle_name: user.middle_name.clone(),
        last_name: user.last_name.clone(),
        display_name: user.display_name.clone(),
        emails: user
            .emails
            .iter()
            .map(|e| host::Email {
                value: e.value.clone(),
                kind: e.kind.clone(),
                primary: e.primary,
            })
            .collect(),
        addresses: user
            .addresses
            .iter()
            .map(|a| host::Address {
                kind: a.kind.clone(),
                street_address: a.street_address.clone(),
                locality: a.locality.clone(),
                region: a.region.clone(),
                postal_code: a.postal_code.clone(),
                country: a.country.clone(),
                primary: a.primary,
            })
            .collect(),
        phones: user
            .phones
            .iter()
            .map(|p| host::Phone {
                kind: p.kind.clone(),
                number: p.number.clone(),
                primary: p.primary,
            })
            .collect(),
        employee_identifier: user.employee_identifier.clone(),
        department: user.department.clone(),
        company: user.company.clone(),
        job_title: user.job_title.clone(),
        location: user.location.clone(),
        custom_attributes: Vec::new(),
    }
}

/// The host crate's folder, as cargo gives it when it runs the bench.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf())
}

fn runtime_benchmarks(c: &mut Criterion) {
    let component = manifest_dir().join("../dist/plugins/custom-scim.wasm");
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let (plugin, _) = Loader::new(runtime)
        .load_path(&component)
        .unwrap_or_else(|e| panic!("{e} (run scripts/build-plugins.sh first)"));
    let sdk_user = scimlink_sdk::defaults::sample_user();
    let user = host_user(&sdk_user);
    let settings = scimlink_sdk::Settings::default();
    let cap = plugin.limits().output_bytes;

    let mut group = c.benchmark_group("map_user");
    group.bench_function("wasm", |b| {
        b.iter(|| plugin.map_user(black_box(&user), &[]).expect("maps"))
    });
    // The same work natively: map, serialize, and the host's check of the
    // document, so the difference is what the sandbox costs.
    group.bench_function("native", |b| {
        b.iter(|| {
            let document = custom_scim::CustomScim::map_user(black_box(&sdk_user), &settings)
                .expect("maps")
                .into_text();
            validate::scim_document(document, ResourceKind::User, cap).expect("valid")
        })
    });
    group.finish();
    let batch: Vec<host::DirectoryUser> = (0..100)
        .map(|i| {
            let mut user = user.clone();
            user.username = format!("user{i}");
            user
        })
        .collect();
    c.bench_function("map_users/wasm_batch_of_100", |b| {
        b.iter(|| plugin.map_users(black_box(&batch), &[]).expect("maps"))
    });

    c.bench_function("instantiate/pooled_instance_pre", |b| {
        b.iter(|| plugin.instantiate_once().expect("instantiates"))
    });
}

criterion_group!(benches, runtime_benchmarks);
criterion_main!(benches);
