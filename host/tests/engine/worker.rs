//! The outbox consumer ([`scimlink::engine::worker`]) on its own thread, as
//! `scimlink serve` runs it, against applications in the simulated SCIM
//! application: it claims each change, applies it in every active
//! application it concerns, records where each (change, application) pair
//! stands while the change stays open, retries a failing application
//! without holding up the others, and completes a change once every
//! application is done with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use scimlink::auth::BearerToken;
use scimlink::engine::reconcile::RECONCILE;
use scimlink::engine::worker::{EngineSettings, GAVE_UP, QUARANTINE, reconciled_key};
use scimlink::host::HostBuilder;
use scimlink::runtime::PluginRegistry;
use scimlink::sandbox::sp::{Quirks, SandboxSp};
use scimlink::store::{AppState, Store};

use crate::world::{Remote, World, eventually, member_ids, simulator, sorted};

/// The engine's thread, stopped when the test ends.
pub struct RunningEngine {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningEngine {
    /// Starts the engine on `world`'s store, serving the bundled
    /// `connectors`, and waits until it is done with the changes so far:
    /// the test's setup, made while every application is inactive, so that
    /// what the engine does next is the test's own doing.
    async fn start(world: &World, connectors: &[&str], settings: EngineSettings) -> RunningEngine {
        let engine = RunningEngine::on(
            Arc::clone(&world.store),
            world.serving(connectors),
            settings,
        )
        .await;
        drained(world).await;
        engine
    }

    /// Starts the engine on `store`, serving `registry`.
    pub async fn on(
        store: Arc<dyn Store>,
        registry: Arc<PluginRegistry>,
        settings: EngineSettings,
    ) -> RunningEngine {
        let stop = Arc::new(AtomicBool::new(false));
        // The test serves no HTTP: the host's router and its tokens go
        // unused. Starting the engine calls the store: on the blocking pool.
        let engine_stop = Arc::clone(&stop);
        let mut host = tokio::task::spawn_blocking(move || {
            HostBuilder::new(
                store,
                BearerToken::from_plain("unused-admin-token"),
                BearerToken::from_plain("unused-scim-token"),
            )
            .connectors(registry)
            .engine_until(settings, engine_stop)
            .build()
        })
        .await
        .unwrap()
        .unwrap();
        let thread = host.take_engine_thread().unwrap();
        RunningEngine {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the engine after the batch in hand, serving the simulated
    /// applications meanwhile (they run on the test's runtime).
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for RunningEngine {
    fn drop(&mut self) {
        // A test that failed: the engine ends by itself after its batch.
        self.stop.store(true, Ordering::Release);
    }
}

/// Settings for a test: failed pairs retried at once, nothing on a timer
/// of its own (no probe, no reconcile) while a test runs.
pub fn settings() -> EngineSettings {
    EngineSettings {
        quarantine_probe: Duration::from_secs(3600),
        reconcile_every: Duration::from_secs(86_400),
        retry_backoff: Duration::from_millis(10),
        retry_attempts: 1000,
        ..EngineSettings::default()
    }
}

/// Waits until the engine is done with every change in the outbox.
async fn drained(world: &World) {
    eventually("the outbox drained", async || world.pending_changes() == 0).await;
}

/// The accounts the simulator's tenant `app` holds, as their userNames.
async fn accounts(sp: &SandboxSp, app: &str, users: &[&str]) -> Vec<String> {
    let remote = Remote::of(sp, app);
    let mut held = Vec::new();
    for user in users {
        for account in remote.users_named(user).await {
            held.push(account["userName"].as_str().unwrap().to_string());
        }
    }
    held
}

/// The requests `sp` received whose path starts with `prefix`, as `METHOD
/// path`.
fn sent_under(sp: &SandboxSp, prefix: &str) -> Vec<String> {
    sp.requests()
        .into_iter()
        .filter(|request| request.path.starts_with(prefix))
        .map(|request| format!("{} {}", request.method, request.path))
        .collect()
}

#[tokio::test]
async fn every_active_application_gets_each_change_and_the_outbox_drains() {
    let world = World::new().await;
    let ada = world.user("ada");
    let everyone = world.group("Everyone", &[&ada]);
    let crm = world.app("crm", "custom-scim", &[&everyone]);
    world.manage_groups(&crm.id, true);
    let erp = world.app("erp", "custom-scim", &[&everyone]);
    // Bound like the others, never activated.
    world.app("hr", "custom-scim", &[&everyone]);
    let engine = RunningEngine::start(&world, &["custom-scim"], settings()).await;

    world.activate(&crm.id);
    world.activate(&erp.id);
    drained(&world).await;
    for app in ["crm", "erp"] {
        assert_eq!(accounts(&world.sp, app, &["ada"]).await, ["ada"], "{app}");
    }
    let adas = world.remote_id(&crm.id, "user", &ada).unwrap();
    let pushed = Remote::of(&world.sp, "crm").groups_named("Everyone").await;
    assert_eq!(member_ids(&pushed[0]), [adas.as_str()]);
    // Group management is off in erp.
    assert!(
        Remote::of(&world.sp, "erp")
            .groups_named("Everyone")
            .await
            .is_empty()
    );

    // One change, applied in both.
    let grace = world.user("grace");
    world.add_member(&everyone, &grace);
    drained(&world).await;
    for app in ["crm", "erp"] {
        let held = accounts(&world.sp, app, &["ada", "grace"]).await;
        assert_eq!(held, ["ada", "grace"], "{app}");
    }
    let graces = world.remote_id(&crm.id, "user", &grace).unwrap();
    let pushed = Remote::of(&world.sp, "crm").groups_named("Everyone").await;
    assert_eq!(member_ids(&pushed[0]), sorted(&[&adas, &graces]));

    assert_eq!(sent_under(&world.sp, "/hr/"), Vec::<String>::new());
    let progress = world.progress();
    assert!(
        progress.is_empty(),
        "a done change keeps no progress: {progress:?}"
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_long_first_sync_in_one_application_holds_no_other_back() {
    let world = World::new().await;
    // Every answer of this application takes 100 ms: 60 users, two requests
    // each, four at a time, take three seconds.
    let slow = simulator(Quirks {
        latency: Duration::from_millis(100),
        ..Quirks::default()
    })
    .await;
    let names: Vec<String> = (0..60).map(|index| format!("user{index:02}")).collect();
    let users: Vec<String> = names.iter().map(|name| world.user(name)).collect();
    let everyone = world.group(
        "Everyone",
        &users.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let ada = world.user("ada");
    let few = world.group("Few", &[&ada]);
    let crm = world.app_at("crm", "custom-scim", &slow.base_url("crm"), &[&everyone]);
    let chat = world.app("chat", "custom-scim", &[&few]);
    let engine = RunningEngine::start(&world, &["custom-scim"], settings()).await;
    world.activate(&chat.id);
    drained(&world).await;

    world.activate(&crm.id);
    eventually("crm's first sync under way", async || {
        !world
            .store
            .ledger_entries(&crm.id, "user")
            .unwrap()
            .is_empty()
    })
    .await;
    let grace = world.user("grace");
    world.add_member(&few, &grace);
    eventually("grace's account in chat", async || {
        world.remote_id(&chat.id, "user", &grace).is_some()
    })
    .await;
    let linked = world.store.ledger_entries(&crm.id, "user").unwrap().len();
    assert!(
        linked < users.len(),
        "chat's change waited for crm's whole first sync ({linked} of {} linked)",
        users.len()
    );

    drained(&world).await;
    assert_eq!(
        world.store.ledger_entries(&crm.id, "user").unwrap().len(),
        users.len()
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_failing_application_is_retried_while_another_proceeds() {
    let world = World::new().await;
    let failing = simulator(Quirks {
        server_error_rate: 1.0,
        ..Quirks::default()
    })
    .await;
    let ada = world.user("ada");
    let everyone = world.group("Everyone", &[&ada]);
    let crm = world.app("crm", "custom-scim", &[&everyone]);
    let erp = world.app_at("erp", "custom-scim", &failing.base_url("erp"), &[&everyone]);
    world.fail_fast(&erp.id);
    let engine = RunningEngine::start(&world, &["custom-scim"], settings()).await;
    world.activate(&crm.id);
    world.activate(&erp.id);
    eventually("ada's account in crm", async || {
        world.remote_id(&crm.id, "user", &ada).is_some()
    })
    .await;

    // A change that concerns both: crm is done with it, erp's share fails
    // and is tried again.
    let grace = world.user("grace");
    world.add_member(&everyone, &grace);
    eventually("erp's share of grace's change tried again", async || {
        let progress = world.progress();
        progress.iter().any(|crm_pair| {
            crm_pair.app_id == crm.id
                && progress.iter().any(|erp_pair| {
                    erp_pair.seq == crm_pair.seq
                        && erp_pair.app_id == erp.id
                        && erp_pair.attempts >= 2
                })
        })
    })
    .await;
    let progress = world.progress();
    let crm_pair = progress.iter().find(|pair| pair.app_id == crm.id).unwrap();
    assert!(crm_pair.done, "{crm_pair:?}");
    assert_eq!(crm_pair.attempts, 0, "{crm_pair:?}");
    let erp_pair = progress
        .iter()
        .find(|pair| pair.seq == crm_pair.seq && pair.app_id == erp.id)
        .unwrap();
    assert!(!erp_pair.done, "{erp_pair:?}");
    assert!(erp_pair.retry_at.is_some(), "{erp_pair:?}");
    assert!(
        erp_pair
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("503"),
        "{erp_pair:?}"
    );
    assert_eq!(accounts(&world.sp, "crm", &["grace"]).await, ["grace"]);
    assert!(
        sent_under(&failing, "/erp/")
            .iter()
            .all(|request| request.starts_with("GET")),
        "erp refused every lookup: nothing was created there"
    );

    // erp answers again: its retries catch up, and crm is sent nothing
    // twice.
    failing.set_quirks(Quirks::default()).unwrap();
    drained(&world).await;
    assert_eq!(
        accounts(&failing, "erp", &["ada", "grace"]).await,
        ["ada", "grace"]
    );
    let progress = world.progress();
    assert!(progress.is_empty(), "{progress:?}");
    let created: Vec<String> = sent_under(&world.sp, "/crm/")
        .into_iter()
        .filter(|request| request.starts_with("POST"))
        .collect();
    assert_eq!(created, ["POST /crm/Users", "POST /crm/Users"]);
    engine.stop().await;
}

#[tokio::test]
async fn an_object_still_failing_after_the_last_attempt_is_dead_lettered_and_its_change_done() {
    let world = World::new().await;
    let failing = simulator(Quirks {
        server_error_rate: 1.0,
        ..Quirks::default()
    })
    .await;
    let ada = world.user("ada");
    let everyone = world.group("Everyone", &[&ada]);
    let erp = world.app_at("erp", "custom-scim", &failing.base_url("erp"), &[&everyone]);
    world.fail_fast(&erp.id);
    let settings = EngineSettings {
        retry_attempts: 3,
        ..settings()
    };
    let engine = RunningEngine::start(&world, &["custom-scim"], settings).await;

    world.activate(&erp.id);
    drained(&world).await;
    // One lookup per attempt, then the engine gave up.
    assert_eq!(sent_under(&failing, "/erp/").len(), 3);
    let letters = world.dead_letters(&erp.id);
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].object_id, ada);
    assert_eq!(letters[0].operation, GAVE_UP);
    assert!(
        letters[0].reason.starts_with("gave up after 3 attempts"),
        "{}",
        letters[0].reason
    );
    assert_eq!(world.events_of(&erp.id, &ada, GAVE_UP).len(), 1);
    let progress = world.progress();
    assert!(progress.is_empty(), "{progress:?}");
    engine.stop().await;
}

#[tokio::test]
async fn an_application_that_cannot_be_served_is_quarantined_and_holds_up_no_other() {
    let world = World::new().await;
    let ada = world.user("ada");
    let everyone = world.group("Everyone", &[&ada]);
    let crm = world.app("crm", "custom-scim", &[&everyone]);
    let ghost = world.app("ghost", "not-installed", &[&everyone]);
    let engine = RunningEngine::start(&world, &["custom-scim"], settings()).await;
    world.activate(&crm.id);
    world.activate(&ghost.id);
    drained(&world).await;

    let grace = world.user("grace");
    world.add_member(&everyone, &grace);
    drained(&world).await;
    assert_eq!(
        accounts(&world.sp, "crm", &["ada", "grace"]).await,
        ["ada", "grace"]
    );
    let ghost = world.app_record(&ghost.id);
    assert_eq!(ghost.state, AppState::Quarantined);
    let reason = ghost.state_reason.unwrap_or_default();
    assert!(reason.contains("not-installed"), "{reason}");
    let quarantined = world
        .events(&ghost.id)
        .into_iter()
        .filter(|event| event.operation == QUARANTINE)
        .count();
    assert!(quarantined >= 1);
    assert_eq!(sent_under(&world.sp, "/ghost/"), Vec::<String>::new());
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_lost_an_applications_lease_sends_nothing_and_records_nothing() {
    use scimlink::engine::provision::{SyncError, Synced, sync_user};
    use scimlink::engine::turn::Turn;
    use scimlink::scim_client::ScimClientError;

    let world = World::new().await;
    let ada = world.user("ada");
    let staff = world.group("staff", &[&ada]);
    let crm = world.app("crm", "custom-scim", &[&staff]);
    let connected = world.connect(world.activate(&crm.id), world.bundled("custom-scim"));
    let mark = crate::world::log_mark(&world.sp);

    // Paused past its lease: the lease this process last renewed ran out.
    let turn = Turn::new();
    turn.renewed(std::time::Instant::now(), Duration::from_millis(1));
    let mut target = connected.target(&world);
    target.turn = Some(&turn);
    let refused = sync_user(&target, &ada).await;
    assert!(
        matches!(
            refused,
            Err(SyncError::Application(ScimClientError::NotSent(_)))
        ),
        "{refused:?}"
    );
    assert!(crate::world::sent_since(&world.sp, mark).is_empty());
    assert!(
        world.events(&crm.id).is_empty(),
        "{:?}",
        world.events(&crm.id)
    );
    assert!(world.dead_letters(&crm.id).is_empty());
    assert_eq!(world.remote_id(&crm.id, "user", &ada), None);

    // Renewed: the same sync goes out.
    turn.renewed(std::time::Instant::now(), Duration::from_secs(20));
    assert_eq!(sync_user(&target, &ada).await.unwrap(), Synced::Created);
}

/// An engine taking over (a restart, another host) reconciles each
/// application when its interval is up counted from the last reconcile any
/// engine made, which the store keeps: neither at once nor a whole interval
/// later.
#[tokio::test]
async fn reconcile_is_due_from_the_last_one_whichever_engine_made_it() {
    let world = World::new().await;
    let ada = world.user("ada");
    let everyone = world.group("Everyone", &[&ada]);
    let crm = world.app("crm", "custom-scim", &[&everyone]);
    let erp = world.app("erp", "custom-scim", &[&everyone]);
    world.activate(&crm.id);
    world.activate(&erp.id);
    let every = Duration::from_secs(120);
    let now = scimlink::store::Timestamp::now();
    // crm was last reconciled by another engine almost an interval ago,
    // erp just now.
    world
        .store
        .set_meta(
            &reconciled_key(&crm.id),
            &now.minus(every - Duration::from_secs(2)).to_string(),
        )
        .unwrap();
    world
        .store
        .set_meta(&reconciled_key(&erp.id), &now.to_string())
        .unwrap();
    let engine = RunningEngine::start(
        &world,
        &["custom-scim"],
        EngineSettings {
            reconcile_every: every,
            ..settings()
        },
    )
    .await;

    let reconciled = |app: &str| world.events_of(app, app, RECONCILE).len();
    eventually("crm is reconciled when its interval is up", async || {
        reconciled(&crm.id) == 1
    })
    .await;
    let recorded: scimlink::store::Timestamp = world
        .store
        .meta(&reconciled_key(&crm.id))
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        recorded > now,
        "the new reconcile is recorded for the next engine"
    );
    engine.stop().await;
    assert_eq!(reconciled(&erp.id), 0, "erp's interval is not up");
    assert_eq!(reconciled(&crm.id), 1, "once per interval");
}
