//! The world an engine test runs in: a directory in a SQLite store in a
//! temporary folder, applications served by the simulated SCIM application
//! (`scimlink::sandbox::sp`) on loopback, and the connectors the tests load.
//!
//! Every use of the store's API is in this module, so that the tests read
//! as what they do and a change to the store is adapted in one place.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scimlink::engine::groups::directory_group;
use scimlink::engine::provision::Target;
use scimlink::runtime::contract::DirectoryGroup;
use scimlink::runtime::{LoadedPlugin, Loader, PluginRegistry};
use scimlink::sandbox::sp::{Quirks, SandboxSp};
use scimlink::scim_client::{ClientSettings, ScimClient, ScimRequest, percent_encode};
use scimlink::store::prelude::*;
use scimlink::store::{
    AppRecord, AppState, AppUpdate, AppWrite, ChangeProgress, DeadLetter, Event, EventQuery,
    GroupWrite, Member, MemberKind, Pacing, Page, Secret, SqliteStore, StoreHandle, TokenCipher,
    UserWrite,
};
use serde_json::{Map, Value, json};

use crate::support;

/// The bearer token every simulated application is given.
const APP_TOKEN: &str = "app-token";

/// How long a test waits for the engine to reach a state it must reach.
pub const WITHIN: Duration = Duration::from_secs(20);

/// A directory, and a simulated application whose tenants are the
/// applications' SCIM APIs.
pub struct World {
    pub store: Arc<dyn Store>,
    /// The same store as the engine's functions hold it.
    pub handle: StoreHandle,
    /// The application simulator; each application is a tenant of it,
    /// named as the application is.
    pub sp: SandboxSp,
    loader: Loader,
    folder: tempfile::TempDir,
}

impl World {
    pub async fn new() -> World {
        World::with_quirks(Quirks::default()).await
    }

    /// A world whose simulated application behaves as `quirks` say.
    pub async fn with_quirks(quirks: Quirks) -> World {
        let folder = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open_in(folder.path(), World::cipher()).unwrap());
        World {
            handle: StoreHandle::new(Arc::clone(&store)),
            store,
            sp: simulator(quirks).await,
            loader: Loader::new(support::runtime()),
            folder,
        }
    }

    /// The data folder the world's SQLite database is in.
    pub fn data(&self) -> &std::path::Path {
        self.folder.path()
    }

    /// The key the world's store seals tokens with.
    pub fn cipher() -> TokenCipher {
        TokenCipher::from_key(&[7; 32])
    }

    /// A folder of the world's own, for what a test needs on disk.
    pub fn folder(&self, name: &str) -> PathBuf {
        let folder = self.folder.path().join(name);
        std::fs::create_dir_all(&folder).unwrap();
        folder
    }

    // ---- the directory --------------------------------------------------

    /// A new directory user; their id.
    pub fn user(&self, name: &str) -> String {
        let mut attributes = Map::new();
        attributes.insert("userName".into(), json!(name));
        attributes.insert(
            "emails".into(),
            json!([{ "value": format!("{name}@example.com"), "primary": true }]),
        );
        let user = UserWrite {
            password: None,
            user_name: name.into(),
            external_id: None,
            active: true,
            attributes,
        };
        self.store.create_user(user).unwrap().id
    }

    /// A new directory group of the users `members` (ids); its id.
    pub fn group(&self, name: &str, members: &[&str]) -> String {
        let mut attributes = Map::new();
        attributes.insert("displayName".into(), json!(name));
        let group = GroupWrite {
            display_name: name.into(),
            external_id: None,
            attributes,
            members: Some(members.iter().map(|id| user_member(id)).collect()),
        };
        self.store.create_group(group).unwrap().id
    }

    pub fn add_member(&self, group: &str, user: &str) {
        self.store
            .change_members(group, &[user_member(user)], &[])
            .unwrap();
    }

    pub fn remove_members(&self, group: &str, users: &[&str]) {
        let users: Vec<String> = users.iter().map(|id| id.to_string()).collect();
        self.store.change_members(group, &[], &users).unwrap();
    }

    pub fn delete_group(&self, group: &str) {
        self.store.delete_group(group, None).unwrap();
    }

    /// The group as the connector contract describes it.
    pub fn directory_group(&self, group: &str) -> DirectoryGroup {
        directory_group(&self.store.get_group(group).unwrap().unwrap())
    }

    // ---- applications ---------------------------------------------------

    /// A new inactive application `name` with `connector`, at its tenant of
    /// the simulator (or at `base_url`), with `groups` bound to it.
    pub fn app(&self, name: &str, connector: &str, groups: &[&str]) -> AppRecord {
        self.app_at(name, connector, &self.sp.base_url(name), groups)
    }

    /// [`World::app`] at `base_url`.
    pub fn app_at(
        &self,
        name: &str,
        connector: &str,
        base_url: &str,
        groups: &[&str],
    ) -> AppRecord {
        let app = self
            .store
            .create_app(AppWrite {
                name: name.into(),
                label: name.into(),
                connector: connector.into(),
                base_url: base_url.into(),
                token: Secret::new(APP_TOKEN.to_string()),
                manage_groups: false,
                settings: vec![],
                pacing: Pacing {
                    // Paced for loopback.
                    requests_per_second: 1000.0,
                    ..Pacing::default()
                },
                guard: Default::default(),
                passwords: Default::default(),
            })
            .unwrap();
        for group in groups {
            self.bind(&app.id, group);
        }
        app
    }

    pub fn bind(&self, app: &str, group: &str) {
        self.store.bind(app, group).unwrap();
    }

    pub fn unbind(&self, app: &str, group: &str) {
        self.store.unbind(app, group).unwrap();
    }

    pub fn assign(&self, app: &str, user: &str) {
        self.store.assign(app, user).unwrap();
    }

    pub fn activate(&self, app: &str) -> AppRecord {
        self.update_app(
            app,
            AppUpdate {
                state: Some(AppState::Active),
                ..AppUpdate::default()
            },
        )
    }

    /// Turns "manage groups and group membership" on or off.
    pub fn manage_groups(&self, app: &str, on: bool) -> AppRecord {
        self.update_app(
            app,
            AppUpdate {
                manage_groups: Some(on),
                ..AppUpdate::default()
            },
        )
    }

    /// Sends each request once, and quarantines the application only after
    /// many failures in a row: a failing application then costs a test one
    /// request per attempt of the engine.
    pub fn fail_fast(&self, app: &str) -> AppRecord {
        let pacing = Pacing {
            max_attempts: 1,
            quarantine_after: 1000,
            ..self.app_record(app).pacing
        };
        self.update_app(
            app,
            AppUpdate {
                pacing: Some(pacing),
                ..AppUpdate::default()
            },
        )
    }

    fn update_app(&self, app: &str, update: AppUpdate) -> AppRecord {
        self.store.update_app(app, update).unwrap()
    }

    pub fn app_record(&self, app: &str) -> AppRecord {
        self.store.get_app(app).unwrap().unwrap()
    }

    /// `app` with its connector and a client of its own, as the engine's
    /// functions take it.
    pub fn connect(&self, app: AppRecord, plugin: LoadedPlugin) -> Connected {
        let client = ScimClient::new(
            &app.base_url,
            &Secret::new(APP_TOKEN.to_string()),
            ClientSettings::paced(&app.pacing),
        )
        .unwrap();
        Connected {
            app,
            plugin,
            client,
        }
    }

    // ---- connectors -----------------------------------------------------

    /// A registry serving the bundled `connectors`, as a host serves its
    /// connectors folder.
    pub fn serving(&self, connectors: &[&str]) -> Arc<PluginRegistry> {
        let plugins = self.folder("plugins");
        for name in connectors {
            std::fs::copy(support::bundled(name), plugins.join(format!("{name}.wasm"))).unwrap();
        }
        let registry = Arc::new(PluginRegistry::new(
            Loader::new(support::runtime()),
            &plugins,
        ));
        registry.sync();
        for name in connectors {
            assert!(registry.get(name).is_some(), "{name} is not served");
        }
        registry
    }

    /// A bundled connector (`plugins/NAME`), loaded.
    pub fn bundled(&self, name: &str) -> LoadedPlugin {
        support::load(&self.loader, &support::bundled(name))
    }

    /// A test fixture connector (`plugins/testing/NAME`), loaded.
    pub fn fixture(&self, name: &str) -> LoadedPlugin {
        support::load(&self.loader, &support::fixture(name))
    }

    // ---- what the engine recorded ---------------------------------------

    /// The remote id the ledger links `object` (a `user` or a `group`) to
    /// in `app`.
    pub fn remote_id(&self, app: &str, kind: &str, object: &str) -> Option<String> {
        self.store
            .ledger_entry(app, kind, object)
            .unwrap()
            .map(|entry| entry.remote_id)
    }

    /// Whether the ledger still holds the account as deactivated.
    pub fn is_deactivated(&self, app: &str, user: &str) -> bool {
        self.store
            .ledger_entry(app, "user", user)
            .unwrap()
            .is_some_and(|entry| entry.doc_hash == "deactivated")
    }

    /// The events of `app`, newest first (those of one millisecond in no
    /// particular order).
    pub fn events(&self, app: &str) -> Vec<Event> {
        let query = EventQuery {
            app_id: Some(app.to_string()),
            ..EventQuery::default()
        };
        let page = Page {
            offset: 0,
            limit: 10_000,
        };
        self.store.events(&query, page).unwrap().items
    }

    /// The events of `app` about `object` with `operation`.
    pub fn events_of(&self, app: &str, object: &str, operation: &str) -> Vec<Event> {
        self.events(app)
            .into_iter()
            .filter(|event| {
                event.object_id.as_deref() == Some(object) && event.operation == operation
            })
            .collect()
    }

    pub fn dead_letters(&self, app: &str) -> Vec<DeadLetter> {
        self.store.dead_letters(app).unwrap()
    }

    /// Where every open change stands for each application it concerns
    /// (a completed change's progress is forgotten).
    pub fn progress(&self) -> Vec<ChangeProgress> {
        // A new store numbers its changes from 1; no test makes this many.
        let every_change: Vec<i64> = (1..=1000).collect();
        self.store.change_progress(&every_change).unwrap()
    }

    /// Changes in the outbox not yet done with.
    pub fn pending_changes(&self) -> u64 {
        self.store.pending_changes().unwrap()
    }
}

/// A new member of a group, a user.
fn user_member(id: &str) -> Member {
    Member {
        id: id.into(),
        kind: MemberKind::User,
    }
}

/// The application simulator on a loopback port.
pub async fn simulator(quirks: Quirks) -> SandboxSp {
    SandboxSp::start("127.0.0.1:0".parse().unwrap(), quirks)
        .await
        .unwrap()
}

/// An application, its connector and a client to it: what the engine's
/// functions are given.
pub struct Connected {
    pub app: AppRecord,
    pub plugin: LoadedPlugin,
    pub client: Arc<ScimClient>,
}

impl Connected {
    pub fn target<'a>(&'a self, world: &'a World) -> Target<'a> {
        Target {
            store: &world.handle,
            app: &self.app,
            plugin: &self.plugin,
            client: &self.client,
            turn: None,
        }
    }
}

/// One application's SCIM API in the simulator, read and changed as its
/// own administrator would: with a client of its own, not the engine's.
pub struct Remote {
    client: Arc<ScimClient>,
}

impl Remote {
    /// The tenant `app` (an application's name) of `sp`.
    pub fn of(sp: &SandboxSp, app: &str) -> Remote {
        let client = ScimClient::new(
            &sp.base_url(app),
            &Secret::new(APP_TOKEN.to_string()),
            ClientSettings {
                max_attempts: 1,
                ..ClientSettings::default()
            },
        )
        .unwrap();
        Remote { client }
    }

    async fn get(&self, path: String) -> Option<Value> {
        match self.client.send(&ScimRequest::get(path)).await {
            Ok(answer) => Some(answer.into_body()),
            Err(error) if error.status() == Some(404) => None,
            Err(error) => panic!("the application answered {error}"),
        }
    }

    /// The account `remote_id`, if the application holds it.
    pub async fn user(&self, remote_id: &str) -> Option<Value> {
        self.get(format!("/Users/{remote_id}")).await
    }

    /// The accounts of `user_name`.
    pub async fn users_named(&self, user_name: &str) -> Vec<Value> {
        let filter = format!("userName eq {}", json!(user_name));
        let listed = self
            .get(format!("/Users?filter={}", percent_encode(&filter)))
            .await
            .unwrap_or_default();
        resources(&listed)
    }

    /// The group `remote_id`, if the application holds it.
    pub async fn group(&self, remote_id: &str) -> Option<Value> {
        self.get(format!("/Groups/{remote_id}")).await
    }

    /// The groups called `display_name`.
    pub async fn groups_named(&self, display_name: &str) -> Vec<Value> {
        let filter = format!("displayName eq {}", json!(display_name));
        let listed = self
            .get(format!("/Groups?filter={}", percent_encode(&filter)))
            .await
            .unwrap_or_default();
        resources(&listed)
    }

    /// Creates a resource at `path` (`/Users`, `/Groups`); its id.
    pub async fn create(&self, path: &str, resource: Value) -> String {
        let request = ScimRequest::with_body(reqwest::Method::POST, path, resource);
        let answer = self.client.send(&request).await.unwrap();
        answer.body()["id"].as_str().unwrap().to_string()
    }
}

fn resources(listed: &Value) -> Vec<Value> {
    listed["Resources"].as_array().cloned().unwrap_or_default()
}

/// The remote ids of a SCIM group's members, sorted.
pub fn member_ids(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|member| member["value"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// `ids` sorted, to compare with [`member_ids`].
pub fn sorted<S: ToString>(ids: &[S]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    ids.sort();
    ids
}

/// The requests the simulator received after the `since`th, as `METHOD
/// path`.
pub fn sent_since(sp: &SandboxSp, since: u64) -> Vec<String> {
    sp.requests()
        .into_iter()
        .filter(|request| request.seq >= since)
        .map(|request| format!("{} {}", request.method, request.path))
        .collect()
}

/// Where the simulator's request log stands: what [`sent_since`] counts
/// from.
pub fn log_mark(sp: &SandboxSp) -> u64 {
    sp.requests().last().map_or(0, |request| request.seq + 1)
}

/// Waits, yielding to the simulator and the engine, until `done` holds.
pub async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WITHIN;
    while !done().await {
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
