//! The application's side of an end-to-end test: scim2-server (PyPI) on a
//! loopback port with a tenant path and a bearer token, read and changed
//! through its own SCIM API, and the admin commands that connect a host to
//! it: the directory's people imported, the application `crm` added and a
//! group bound to it.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Host, Scim2Server, http_client_builder};

/// The bearer token the test applications accept.
pub const APP_TOKEN: &str = "crm-app-token-5f1e";
/// How long a test waits for the engine to reach the application.
pub const WITHIN: Duration = Duration::from_secs(20);

/// An application's SCIM API at a base URL, read and changed directly,
/// as its own administrator would.
pub struct Remote {
    base: String,
    http: reqwest::blocking::Client,
}

impl Remote {
    pub fn new(base: impl Into<String>) -> Remote {
        Remote {
            base: base.into(),
            http: http_client_builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request under the base URL; the JSON answer (Null if none).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(APP_TOKEN);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        let response = request.send().expect("the application answers");
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `GET` of a path under the base URL, as JSON.
    pub fn read(&self, path: &str) -> Value {
        self.call("GET", path, None).1
    }

    pub fn users_named(&self, user_name: &str) -> Vec<Value> {
        let body = self.read(&format!("/Users?filter=userName%20eq%20%22{user_name}%22"));
        body["Resources"].as_array().cloned().unwrap_or_default()
    }

    /// The id of `user_name`'s account.
    pub fn id_of(&self, user_name: &str) -> String {
        self.users_named(user_name)
            .first()
            .and_then(|account| account["id"].as_str())
            .unwrap_or_else(|| panic!("{user_name} has no account"))
            .to_string()
    }

    /// Creates an account; its id.
    pub fn create(&self, user: Value) -> String {
        let (status, body) = self.call("POST", "/Users", Some(&user));
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("an id").to_string()
    }

    /// How many accounts the application holds.
    pub fn total(&self) -> u64 {
        self.read("/Users?count=0")["totalResults"]
            .as_u64()
            .expect("a totalResults")
    }

    /// Every account's userName, page by page.
    pub fn user_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        loop {
            let body = self.read(&format!(
                "/Users?startIndex={}&count=500&attributes=userName",
                names.len() + 1
            ));
            let page = body["Resources"].as_array().cloned().unwrap_or_default();
            if page.is_empty() {
                return names;
            }
            names.extend(
                page.iter()
                    .map(|user| user["userName"].as_str().unwrap_or_default().to_string()),
            );
        }
    }

    /// PATCHes an account with `operations`, which must succeed.
    pub fn patch_user(&self, id: &str, operations: Value) {
        let body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": operations,
        });
        let (status, answer) = self.call("PATCH", &format!("/Users/{id}"), Some(&body));
        assert!(
            (200..300).contains(&status),
            "PATCH {id}: {status} {answer}"
        );
    }

    /// Deletes an account, which must succeed.
    pub fn delete_user(&self, id: &str) {
        let (status, answer) = self.call("DELETE", &format!("/Users/{id}"), None);
        assert!(
            (200..300).contains(&status),
            "DELETE {id}: {status} {answer}"
        );
    }

    pub fn groups_named(&self, display_name: &str) -> Vec<Value> {
        let filter = format!("displayName eq {}", Value::from(display_name));
        let body = self.read(&format!(
            "/Groups?filter={}",
            filter.replace(' ', "%20").replace('"', "%22")
        ));
        body["Resources"].as_array().cloned().unwrap_or_default()
    }

    /// Creates a group; its id.
    pub fn create_group(&self, group: Value) -> String {
        let (status, body) = self.call("POST", "/Groups", Some(&group));
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("an id").to_string()
    }

    /// The remote ids of a group's members, sorted.
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

    /// Waits until `display_name`'s single group satisfies `check`.
    pub fn eventually_group(
        &self,
        display_name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + WITHIN;
        loop {
            let groups = self.groups_named(display_name);
            assert!(
                groups.len() <= 1,
                "{display_name} exists {} times",
                groups.len()
            );
            if let Some(group) = groups.first()
                && check(group)
            {
                return group.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{display_name}: {what} never happened; now {groups:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `user_name`'s single account satisfies `check`.
    pub fn eventually(&self, user_name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WITHIN;
        loop {
            let accounts = self.users_named(user_name);
            assert!(
                accounts.len() <= 1,
                "{user_name} has {} accounts",
                accounts.len()
            );
            if let Some(account) = accounts.first()
                && check(account)
            {
                return account.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{user_name}: {what} never happened; now {accounts:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// scim2-server playing the application, with its SCIM API as a
/// [`Remote`].
pub struct Application {
    pub server: Scim2Server,
    pub tenant: String,
    remote: Remote,
}

impl Application {
    pub fn start() -> Application {
        Self::serving("acme")
    }

    /// An application whose SCIM API is at `/TENANT/v2`.
    pub fn serving(tenant: &str) -> Application {
        let server = Scim2Server::start(&[APP_TOKEN], tenant);
        let remote = Remote::new(format!("http://127.0.0.1:{}/{tenant}/v2", server.port));
        Application {
            server,
            tenant: tenant.to_string(),
            remote,
        }
    }
}

impl std::ops::Deref for Application {
    type Target = Remote;

    fn deref(&self) -> &Remote {
        &self.remote
    }
}

/// Runs an admin command that must succeed; its standard output.
pub fn run_ok(host: &Host, args: &[&str]) -> String {
    let output = host.cli(args);
    assert!(
        output.status.success(),
        "scimlink {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// Imports `people` (CSV) into the directory.
pub fn import_people(host: &Host, people: &str) {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let csv = folder.path().join("people.csv");
    std::fs::write(&csv, people).expect("the CSV is written");
    run_ok(
        host,
        &["directory", "import", csv.to_str().expect("a UTF-8 path")],
    );
}

/// Adds the application `name` with `connector`, reached on loopback
/// `port` under tenant `tenant` (paced for a local server), and binds
/// `group` to it.
pub fn add_app(host: &Host, name: &str, connector: &str, port: u16, tenant: &str, group: &str) {
    let template = format!("http://127.0.0.1:{port}/{{tenantId}}/v2");
    let tenant_setting = format!("tenantId={tenant}");
    add_app_at(host, name, connector, &template, &[&tenant_setting], group);
}

/// Adds the application `name` with `connector` at `base_url` with
/// `settings` (each `key=value`), paced for a local server, and binds
/// `group` to it.
pub fn add_app_at(
    host: &Host,
    name: &str,
    connector: &str,
    base_url: &str,
    settings: &[&str],
    group: &str,
) {
    let mut args = vec![
        "app",
        "add",
        name,
        "--connector",
        connector,
        "--base-url",
        base_url,
        "--token",
        APP_TOKEN,
    ];
    for setting in settings {
        args.extend(["--setting", setting]);
    }
    args.extend(["--requests-per-second", "1000"]);
    run_ok(host, &args);
    run_ok(host, &["app", "bind", name, group]);
}

/// The events of application `app` as JSON, newest first.
pub fn events_of(host: &Host, app: &str) -> Vec<Value> {
    let text = run_ok(host, &["events", "--app", app, "--format", "json"]);
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|events| events.as_array().cloned())
        .unwrap_or_default()
}

/// Imports `people` (CSV), adds the application `crm` (custom-scim) on
/// `application` (paced for a local server) and binds `group` to it.
pub fn connect(host: &Host, application: &Application, people: &str, group: &str) {
    connect_through(host, application.server.port, people, group);
}

/// [`connect`] with the application reached through `port` (a proxy).
pub fn connect_through(host: &Host, port: u16, people: &str, group: &str) {
    connect_with(host, port, "custom-scim", people, group);
}

/// [`connect`] through `port`, with `connector`.
pub fn connect_with(host: &Host, port: u16, connector: &str, people: &str, group: &str) {
    import_people(host, people);
    add_app(host, "crm", connector, port, "acme", group);
}

/// Waits until nothing waits in the outbox.
pub fn wait_until_idle(host: &Host, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let status = host.admin("GET", "/status", None).body;
        if status["pendingChanges"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "still pending: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `count` people (`user00`, `user01` …) in `group`, as CSV.
pub fn people(count: usize, group: &str) -> String {
    let mut rows = String::from("userName,email,givenName,familyName,groups\n");
    for index in 0..count {
        rows.push_str(&format!(
            "user{index:02},user{index:02}@example.com,User,{index},{group}\n"
        ));
    }
    rows
}

/// Waits until the application holds `count` accounts, every one once.
pub fn wait_for_accounts(application: &Application, count: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        // One page, so that accounts created meanwhile cannot shift it.
        let body = application.read("/Users?count=1000&attributes=userName");
        let mut names: Vec<String> = body["Resources"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|user| user["userName"].as_str().unwrap().to_string())
            .collect();
        let total = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), total, "an account was created twice");
        if total == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the application holds {total} accounts, not {count}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `ids` sorted, to compare with [`Remote::member_ids`].
pub fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}
