//! When the engine wipes a password ([`scimlink::engine::passwords::sweep`]):
//! once every application owed it has it, once it waited past its
//! retention (with an event for each application that never got it), not
//! while an application this host cannot judge may still be owed it, and
//! not in the minutes after it was set while no application is owed it
//! yet. And what a password that no longer opens does to a sync: it fails
//! its own user, not the users read beside it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use scimlink::engine::passwords::{PASSWORD, sweep};
use scimlink::runtime::PluginRegistry;
use scimlink::store::{
    AppRecord, HostPresence, LedgerChange, LedgerEntry, Page, PasswordSent, Secret, Timestamp,
};

use crate::world::World;

const A_WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

fn delivered(app_id: &str, user_id: &str, generation: &str, world: &World) {
    let entry = LedgerEntry {
        app_id: app_id.into(),
        object_kind: "user".into(),
        object_id: user_id.into(),
        remote_id: format!("r-{user_id}"),
        doc_hash: "h".into(),
        document: None,
        updated: Timestamp::now(),
    };
    let event = scimlink::store::Event {
        id: String::new(),
        at: Timestamp::now(),
        app_id: Some(app_id.into()),
        app_name: None,
        object_kind: Some("user".into()),
        object_id: Some(user_id.into()),
        operation: PASSWORD.into(),
        outcome: scimlink::store::Outcome::Success,
        rule: None,
        http_status: Some(200),
        summary: "sent".into(),
    };
    world
        .store
        .record_with_ledger(
            LedgerChange::PutWithPassword(&entry, PasswordSent::Own { generation }),
            event,
        )
        .unwrap();
}

fn generation(world: &World, user_id: &str) -> Option<String> {
    world
        .store
        .user_password(user_id)
        .unwrap()
        .map(|password| password.generation)
}

/// Another host, serving `connector` at `version`.
fn host_serving(connector: &str, version: &str) -> HostPresence {
    HostPresence {
        engine: "other".into(),
        name: "other".into(),
        connectors: BTreeMap::from([(connector.to_owned(), version.to_owned())]),
        seen: Timestamp::now(),
        until: Timestamp::now().plus(Duration::from_secs(30)),
    }
}

/// Ada, in the Staff group bound to `crm` (custom-scim, which takes
/// passwords) and `docs` (Coda, which does not), both active.
struct Staff {
    ada: String,
    crm: AppRecord,
    docs: AppRecord,
    plugins: Arc<PluginRegistry>,
}

impl Staff {
    fn in_crm_and_docs(world: &World) -> Staff {
        let ada = world.user("ada");
        let staff = world.group("staff", &[&ada]);
        let crm = world.app("crm", "custom-scim", &[&staff]);
        let docs = world.app("docs", "coda", &[&staff]);
        world.activate(&crm.id);
        world.activate(&docs.id);
        Staff {
            ada,
            crm,
            docs,
            plugins: world.serving(&["custom-scim", "coda"]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_is_wiped_once_every_application_owed_it_has_it() {
    let world = World::new().await;
    let Staff {
        ada, crm, plugins, ..
    } = Staff::in_crm_and_docs(&world);
    let apps = || {
        world
            .store
            .list_apps(Page {
                offset: 0,
                limit: 100,
            })
            .unwrap()
            .items
    };

    world
        .store
        .set_password(&ada, &Secret::new("Lovelace-1815"))
        .unwrap();
    let first = generation(&world, &ada).unwrap();
    // Owed to crm (custom-scim takes passwords), not to docs (Coda does not).
    sweep(&world.handle, &plugins, &[], &apps(), A_WEEK)
        .await
        .unwrap();
    assert_eq!(generation(&world, &ada), Some(first.clone()));

    // A host serving a newer Coda may owe docs the password: this host
    // cannot judge, so it keeps it even once crm has it.
    delivered(&crm.id, &ada, &first, &world);
    let newer_coda = [host_serving("coda", "99.0.0")];
    sweep(&world.handle, &plugins, &newer_coda, &apps(), A_WEEK)
        .await
        .unwrap();
    assert_eq!(generation(&world, &ada), Some(first));

    // Among hosts that agree, crm was the only one owed it: wiped.
    sweep(&world.handle, &plugins, &[], &apps(), A_WEEK)
        .await
        .unwrap();
    assert_eq!(generation(&world, &ada), None);
    assert!(
        world
            .events_of(&crm.id, &ada, PASSWORD)
            .iter()
            .all(|e| e.rule.as_deref() != Some("expired"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_nobody_is_owed_yet_is_kept_for_a_while() {
    let world = World::new().await;
    let grace = world.user("grace");
    let crm = world.app("crm", "custom-scim", &[]);
    world.activate(&crm.id);
    let plugins = world.serving(&["custom-scim"]);
    let apps = world
        .store
        .list_apps(Page {
            offset: 0,
            limit: 100,
        })
        .unwrap()
        .items;

    // Created first, put in a group after, as identity providers do.
    world
        .store
        .set_password(&grace, &Secret::new("Cobol-1959!"))
        .unwrap();
    sweep(&world.handle, &plugins, &[], &apps, A_WEEK)
        .await
        .unwrap();
    assert!(generation(&world, &grace).is_some());

    // Past its retention it goes, with nobody to tell. Times are kept to
    // the millisecond: a sweep in the same one as the password is not
    // past it yet.
    tokio::time::sleep(Duration::from_millis(5)).await;
    sweep(&world.handle, &plugins, &[], &apps, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(generation(&world, &grace), None);
    assert!(world.events_of(&crm.id, &grace, PASSWORD).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_that_waited_too_long_is_wiped_with_an_event_per_application_owed() {
    let world = World::new().await;
    let Staff {
        ada,
        crm,
        docs,
        plugins,
    } = Staff::in_crm_and_docs(&world);
    let apps = world
        .store
        .list_apps(Page {
            offset: 0,
            limit: 100,
        })
        .unwrap()
        .items;

    world
        .store
        .set_password(&ada, &Secret::new("Lovelace-1815"))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    sweep(
        &world.handle,
        &plugins,
        &[],
        &apps,
        Duration::from_millis(10),
    )
    .await
    .unwrap();
    assert_eq!(generation(&world, &ada), None);
    let expired = world.events_of(&crm.id, &ada, PASSWORD);
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0].rule.as_deref(), Some("expired"));
    assert!(!expired[0].summary.contains("Lovelace"));
    assert!(world.events_of(&docs.id, &ada, PASSWORD).is_empty());
}

/// Users synced together are read together (one store call for a chunk),
/// yet each read stands alone: a password that no longer opens (sealed
/// under another host key) fails its own user's sync, and the users read
/// beside it are provisioned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_that_no_longer_opens_fails_only_its_own_user() {
    use scimlink::engine::provision::{Synced, sync_users};
    use scimlink::store::{PasswordStore, SqliteStore, TokenCipher};

    let world = World::new().await;
    let (ada, bob, cy) = (world.user("ada"), world.user("bob"), world.user("cy"));
    let staff = world.group("staff", &[&ada, &bob, &cy]);
    let crm = world.app("crm", "custom-scim", &[&staff]);
    let connected = world.connect(world.activate(&crm.id), world.bundled("custom-scim"));
    SqliteStore::open_in(world.data(), TokenCipher::from_key(&[9; 32]))
        .unwrap()
        .set_password(&bob, &Secret::new("Sealed-elsewhere-1"))
        .unwrap();

    let users = [ada.clone(), bob.clone(), cy.clone()];
    let synced: BTreeMap<String, String> = sync_users(&connected.target(&world), &users, 8)
        .await
        .into_iter()
        .map(|(user, result)| (user.clone(), format!("{result:?}")))
        .collect();
    assert_eq!(synced.len(), 3, "{synced:?}");
    assert_eq!(synced[&ada], format!("{:?}", Ok::<_, ()>(Synced::Created)));
    assert_eq!(synced[&cy], format!("{:?}", Ok::<_, ()>(Synced::Created)));
    assert!(
        synced[&bob].starts_with("Err(Store(Secret(")
            && synced[&bob].contains("does not open under this host key"),
        "{synced:?}"
    );
    assert!(world.remote_id(&crm.id, "user", &ada).is_some());
    assert!(world.remote_id(&crm.id, "user", &cy).is_some());
    assert_eq!(world.remote_id(&crm.id, "user", &bob), None);
    // The password is never sent, nor shown in what is recorded.
    assert!(
        world
            .events(&crm.id)
            .iter()
            .all(|event| !event.summary.contains("Sealed-elsewhere"))
    );
}
