//! Helpers for scimlink's end-to-end tests: the `scimlink` binary and the
//! built components, and a child process whose log lines can be awaited.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
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
        let mut child = Command::new(scimlink_binary())
            .args(args)
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
