//! Helpers for scimlink's end-to-end tests: the `scimlink` binary and the
//! built components, and a child process whose log lines can be awaited.

pub mod application;
pub mod database;
pub mod fault_proxy;
pub mod transport;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The repository root: from the environment cargo runs tests in, so that
/// a test built by another checkout sharing the target folder (whose
/// compile-time path may be gone) still finds this one.
pub fn repository() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("..")
}

/// The `scimlink` binary of this build: `SCIMLINK_BIN`, else the one cargo
/// built beside this test executable.
pub fn scimlink_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SCIMLINK_BIN") {
        return PathBuf::from(path);
    }
    let test_executable = std::env::current_exe().expect("the test executable's path");
    let profile_folder = test_executable
        .parent()
        .and_then(Path::parent)
        .expect("target/PROFILE/deps/TEST");
    let binary = profile_folder.join("scimlink");
    assert!(
        binary.is_file(),
        "{} is missing: run the tests with --workspace, or set SCIMLINK_BIN",
        binary.display()
    );
    binary
}

/// A bundled connector component, built by scripts/build-plugins.sh.
pub fn bundled_component(name: &str) -> PathBuf {
    let path = repository()
        .join("dist/plugins")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-plugins.sh first",
        path.display()
    );
    path
}

/// A test fixture component, built by scripts/build-plugins.sh --fixtures.
pub fn fixture_component(name: &str) -> PathBuf {
    let path = repository()
        .join("dist/test-plugins")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-plugins.sh --fixtures first",
        path.display()
    );
    path
}

/// A plugins folder of its own holding the bundled `connectors`, for a
/// test that takes one away or puts one back.
pub fn plugins_with(connectors: &[&str]) -> tempfile::TempDir {
    let folder = tempfile::tempdir().expect("a temporary folder");
    for connector in connectors {
        std::fs::copy(
            bundled_component(connector),
            folder.path().join(format!("{connector}.wasm")),
        )
        .expect("the bundled connector is copied");
    }
    folder
}

/// Deploys `component` into a watched `plugins` folder as `NAME.wasm`, as
/// an operator should: copied beside it under a dot-name the host ignores,
/// then renamed into place, so the host only ever reads a whole file.
pub fn deploy(component: &Path, plugins: &Path, name: &str) {
    std::fs::copy(component, plugins.join(".incoming")).expect("the component is copied");
    std::fs::rename(
        plugins.join(".incoming"),
        plugins.join(format!("{name}.wasm")),
    )
    .expect("the component is renamed into place");
}

/// Every bundled connector component.
pub fn bundled_components() -> Vec<PathBuf> {
    let folder = repository().join("dist/plugins");
    let mut components: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-plugins.sh", folder.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "wasm"))
        .collect();
    components.sort();
    components
}

/// A running `scimlink` process whose output lines can be awaited. It is
/// killed when dropped.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    pub fn start(args: &[&str], working_folder: &Path) -> Running {
        Self::start_with_env(args, working_folder, &[])
    }

    pub fn start_with_env(args: &[&str], working_folder: &Path, env: &[(&str, &str)]) -> Running {
        let mut child = Command::new(scimlink_binary())
            .args(args)
            .envs(env.iter().copied())
            .current_dir(working_folder)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("scimlink starts");
        let (sender, lines) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for an output line containing every one of `parts`.
    pub fn expect_line(&mut self, parts: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if parts.iter().all(|part| line.contains(part)) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {parts:?} within {within:?}; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Every line seen so far.
    pub fn output(&self) -> String {
        self.seen.join("\n")
    }

    /// Collects lines that arrived without waiting.
    pub fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the process `signal` (`STOP`, `CONT`, `KILL` …).
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} {}", self.child.id());
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The admin token the test hosts run with.
pub const ADMIN_TOKEN: &str = "admin-token-for-tests";
/// The inbound SCIM token the test hosts run with.
pub const SCIM_TOKEN: &str = "scim-token-for-tests";

/// A `scimlink serve` on a loopback port with its own data folder and the
/// bundled connectors, and a client for its HTTP interfaces.
pub struct Host {
    pub process: Running,
    pub base: String,
    pub data: PathBuf,
    _folder: Option<tempfile::TempDir>,
    http: reqwest::blocking::Client,
}

/// An HTTP answer: status and JSON body (Null when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Host {
    pub fn start() -> Host {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let data = folder.path().join("data");
        let mut host = Self::start_in(&data);
        host._folder = Some(folder);
        host
    }

    /// A host on `data`, with the test tokens.
    pub fn start_in(data: &Path) -> Host {
        Self::start_with(
            data,
            &[
                ("SCIMLINK_ADMIN_TOKEN", ADMIN_TOKEN),
                ("SCIMLINK_SCIM_TOKEN", SCIM_TOKEN),
            ],
        )
    }

    pub fn start_with(data: &Path, env: &[(&str, &str)]) -> Host {
        Self::start_serving(data, &repository().join("dist/plugins"), env)
    }

    /// A host on `data` serving the connectors of `plugins`.
    pub fn start_serving(data: &Path, plugins: &Path, env: &[(&str, &str)]) -> Host {
        let data_arg = data.display().to_string();
        let plugins_arg = plugins.display().to_string();
        let mut process = Running::start_with_env(
            &[
                "serve",
                "--data",
                &data_arg,
                "--plugins",
                &plugins_arg,
                "--listen",
                "127.0.0.1:0",
            ],
            &repository(),
            env,
        );
        let line = process.expect_line(&["scimlink is listening on"], Duration::from_secs(60));
        let base = line
            .rsplit(' ')
            .next()
            .expect("the listening address")
            .trim()
            .to_string();
        Host {
            process,
            base,
            data: data.to_path_buf(),
            _folder: None,
            http: http_client_builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
        }
    }

    /// A request with a token and an optional JSON body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().expect("the host answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().unwrap_or_default();
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
            headers,
        }
    }

    /// A request to the inbound SCIM server.
    pub fn scim(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> Answer {
        self.request(
            method,
            &format!("/scim/v2{path}"),
            Some(SCIM_TOKEN),
            body,
            &[],
        )
    }

    /// A request to the admin API.
    pub fn admin(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> Answer {
        self.request(
            method,
            &format!("/api/v1{path}"),
            Some(ADMIN_TOKEN),
            body,
            &[],
        )
    }

    /// Runs a `scimlink` admin command against this host.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(scimlink_binary())
            .args(args)
            .args(["--host", &self.base])
            .env("SCIMLINK_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("NO_COLOR", "1")
            .output()
            .expect("scimlink runs")
    }
}

/// The Python of the test peers' environment (scripts/test.sh installs it).
pub fn peer_python() -> PathBuf {
    let folder = std::env::var_os("SCIMLINK_PYTHON_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/scimlink-py"));
    let python = folder.join("bin/python");
    assert!(
        python.is_file(),
        "{} is missing: scripts/test.sh installs the SCIM test peers (tests/peers/requirements.txt)",
        python.display()
    );
    python
}

/// Stops a peer's accept loop on loopback `port`: the flag, then a
/// connection that wakes the loop so that it sees the flag.
pub fn stop_accepting(stop: &std::sync::atomic::AtomicBool, port: u16) {
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = std::net::TcpStream::connect(("127.0.0.1", port));
}

/// An HTTP client builder for the tests: a TLS provider is installed first,
/// as the workspace builds reqwest without one.
pub fn http_client_builder() -> reqwest::blocking::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
}

/// scim2-server (PyPI) on a loopback port: a real SCIM service provider
/// playing the application. Killed when dropped.
pub struct Scim2Server {
    child: Child,
    pub port: u16,
}

impl Scim2Server {
    /// Serves `/TENANT/v2`, accepting any of `tokens`.
    ///
    /// scim2-server is told its port, so the port is found by binding port
    /// 0 and letting it go, which leaves a moment in which another test's
    /// probe may be handed the same one: ports are therefore never handed
    /// to two servers of this process, and a server that exits before it
    /// answers (it lost its port to something else) is started again on
    /// another.
    pub fn start(tokens: &[&str], tenant: &str) -> Scim2Server {
        for _ in 0..5 {
            if let Some(started) = Self::try_start(tokens, tenant) {
                return started;
            }
        }
        panic!("scim2-server did not start on any of five ports");
    }

    fn try_start(tokens: &[&str], tenant: &str) -> Option<Scim2Server> {
        let python = peer_python();
        let server = python.with_file_name("scim2-server");
        let port = unclaimed_port();
        let mut command = Command::new(server);
        command.args([
            "--hostname",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--tenant",
            tenant,
        ]);
        for token in tokens {
            command.args(["--bearer-token", token]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("scim2-server starts");
        let mut started = Scim2Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if !matches!(started.child.try_wait(), Ok(None)) {
                return None;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "scim2-server did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(started)
    }
}

/// A loopback port free when probed and not handed out before in this
/// process.
fn unclaimed_port() -> u16 {
    static CLAIMED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut claimed = CLAIMED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = probe.local_addr().expect("its address").port();
        if !claimed.contains(&port) {
            claimed.push(port);
            return port;
        }
    }
}

impl Drop for Scim2Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
