//! What the benches that run `scimlink` processes share: a host
//! (`scimlink serve`), the simulated application (`scimlink sandbox-sp`),
//! sizes from the environment.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const ADMIN_TOKEN: &str = "bench-admin-token";
pub const APP_TOKEN: &str = "bench-app-token";

pub fn count(variable: &str, default: usize) -> usize {
    std::env::var(variable)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

pub fn repository() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .parent()
        .expect("the repository")
        .to_path_buf()
}

/// A `scimlink serve` process; killed when dropped.
pub struct Served {
    child: Child,
    pub base: String,
}

impl Served {
    pub fn start(data: &Path, plugins: &Path) -> Served {
        Served::start_with(data, plugins, &[])
    }

    /// A host with more environment (`SCIMLINK_DATABASE_URL`, …). With
    /// `SCIMLINK_BENCH_LOGS` naming a folder, the host logs at `info` into
    /// a file there named after its data folder and the one holding it
    /// (`pg3-host0.log`), each line after the milliseconds since the epoch
    /// it was read at.
    pub fn start_with(data: &Path, plugins: &Path, env: &[(&str, &str)]) -> Served {
        let log = std::env::var_os("SCIMLINK_BENCH_LOGS").map(|folder| {
            let name = |path: Option<&Path>| {
                path.and_then(Path::file_name)
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            let file = format!("{}-{}.log", name(data.parent()), name(Some(data)));
            std::fs::File::create(Path::new(&folder).join(file)).expect("the host's log file")
        });
        let mut child = Command::new(env!("CARGO_BIN_EXE_scimlink"))
            .args(["serve", "--data"])
            .arg(data)
            .arg("--plugins")
            .arg(plugins)
            .args(["--listen", "127.0.0.1:0"])
            .env("SCIMLINK_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("SCIMLINK_SCIM_TOKEN", APP_TOKEN)
            .env("RUST_LOG", if log.is_some() { "info" } else { "warn" })
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("scimlink serve starts");
        let stdout = child.stdout.take().expect("its output");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("scimlink serve says where it listens")
                .expect("a line");
            if let Some(address) = line.strip_prefix("scimlink is listening on ") {
                break address.trim().to_string();
            }
        };
        // Keep draining its output so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut log = log;
            for line in lines.map_while(Result::ok) {
                if let Some(file) = log.as_mut() {
                    let read_at = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_millis();
                    let _ = writeln!(file, "{read_at} {line}");
                }
            }
        });
        Served { child, base }
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_scimlink"))
            .args(args)
            .args(["--host", &self.base])
            .env("SCIMLINK_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .expect("scimlink runs");
        assert!(
            output.status.success(),
            "scimlink {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory, from /proc.
    pub fn peak_memory_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

/// CPU time a process has used, user and system, from /proc (Linux counts
/// it in hundredths of a second there).
pub fn cpu_time(pid: u32) -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: count from after it.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index)?.parse::<u64>().ok();
    // utime and stime: fields 14 and 15 of the line; the state, field 3,
    // is the first after the name.
    Some(std::time::Duration::from_millis(
        (ticks(11)? + ticks(12)?) * 10,
    ))
}

/// The CPU time each thread of a process has used so far, by thread id,
/// with the thread's name; from `/proc/<pid>/task/*/schedstat`, whose first
/// field is the time on a core in nanoseconds (`/proc/<pid>/stat` counts
/// hundredths of a second, too coarse for a thread's share of a short run).
pub struct ThreadTimes(std::collections::HashMap<u32, (String, std::time::Duration)>);

impl ThreadTimes {
    pub fn of(pid: u32) -> ThreadTimes {
        let mut threads = std::collections::HashMap::new();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return ThreadTimes(threads);
        };
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|tid| tid.parse().ok()) else {
                continue;
            };
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let on_core = std::fs::read_to_string(task.path().join("schedstat"))
                .ok()
                .and_then(|text| text.split_whitespace().next()?.parse::<u64>().ok());
            if let Some(nanos) = on_core {
                let time = std::time::Duration::from_nanos(nanos);
                threads.insert(tid, (name.trim().to_string(), time));
            }
        }
        ThreadTimes(threads)
    }

    /// The CPU time spent since `before`, summed by thread name (the
    /// threads of one pool share theirs), most first. A thread that ended
    /// in between is not counted: its time went with it.
    pub fn since(&self, before: &ThreadTimes) -> Vec<(String, std::time::Duration)> {
        let mut by_name: std::collections::BTreeMap<&str, std::time::Duration> =
            std::collections::BTreeMap::new();
        for (tid, (name, time)) in &self.0 {
            let earlier = before.0.get(tid).map(|(_, time)| *time).unwrap_or_default();
            *by_name.entry(name).or_default() += time.saturating_sub(earlier);
        }
        let mut spent: Vec<(String, std::time::Duration)> = by_name
            .into_iter()
            .map(|(name, time)| (name.to_string(), time))
            .collect();
        spent.sort_by_key(|(_, time)| std::cmp::Reverse(*time));
        spent
    }
}

/// A `scimlink sandbox-sp` process: the application; killed when dropped.
pub struct Simulated {
    child: Child,
    pub base: String,
}

impl Simulated {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn start() -> Simulated {
        Simulated::start_with(&[])
    }

    /// The application with more quirks (`--rate-limit`, …).
    pub fn start_with(quirks: &[&str]) -> Simulated {
        let mut child = Command::new(env!("CARGO_BIN_EXE_scimlink"))
            .args(["sandbox-sp", "--listen", "127.0.0.1:0", "--log-limit", "0"])
            .args(["--token", APP_TOKEN])
            .args(quirks)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("scimlink sandbox-sp starts");
        let stdout = child.stdout.take().expect("its output");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("scimlink sandbox-sp says where it listens")
                .expect("a line");
            if let Some(address) = line.strip_prefix("sandbox SCIM application listening on ") {
                break address.trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Simulated { child, base }
    }
}

impl Drop for Simulated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
