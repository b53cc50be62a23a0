//! The devnet stack as separate OS processes (one `hashpool <role> -c <role>.toml` each), for
//! the crash harness and the soak bench: start, SIGKILL, SIGTERM, and read a role's memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// Errors managing role processes.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A process could not be started.
    #[error("cannot start {role}: {source}")]
    Spawn {
        /// Role.
        role: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A log file could not be opened.
    #[error("cannot open log {path}: {source}")]
    Log {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// `hashpool devnet init` failed.
    #[error("devnet init failed: {0}")]
    Init(String),
    /// A process ignored SIGTERM.
    #[error("{0} did not stop within 20 s of SIGTERM")]
    StopTimeout(String),
    /// No free range of ports for the stack.
    #[error("no free port range for the stack")]
    NoPorts,
}

/// Creates `dir` and finds a free port range for a stack in it (a different range per call).
pub fn prepare_stack_dir(dir: &Path) -> Result<u16, ProcessError> {
    std::fs::create_dir_all(dir).map_err(|source| ProcessError::Log {
        path: dir.to_path_buf(),
        source,
    })?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    free_port_base(seed).ok_or(ProcessError::NoPorts)
}

/// Running role processes of one stack directory (configs written by `devnet init`).
pub struct RoleProcesses {
    binary: PathBuf,
    dir: PathBuf,
    log_filter: String,
    children: HashMap<String, Child>,
}

impl RoleProcesses {
    /// Roles of `dir`, run with `binary` (the `hashpool` executable); logs go to `dir/<role>.log`.
    pub fn new(binary: &Path, dir: &Path, log_filter: &str) -> Self {
        Self {
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            log_filter: log_filter.to_string(),
            children: HashMap::new(),
        }
    }

    /// Writes a fast devnet into `dir` (`devnet init`: ports from `port_base`, 2 s blocks,
    /// 600 shares per minute) and starts all five roles, one after the other.
    pub async fn start_fast_devnet(
        binary: &Path,
        dir: &Path,
        port_base: u16,
        log_filter: &str,
    ) -> Result<Self, ProcessError> {
        let init = Command::new(binary)
            .args(["devnet", "init", "--data-dir"])
            .arg(dir)
            .args(["--port-base", &port_base.to_string()])
            .args(["--block-interval", "2", "--shares-per-minute", "600"])
            .output()
            .await
            .map_err(|e| ProcessError::Init(e.to_string()))?;
        if !init.status.success() {
            return Err(ProcessError::Init(
                String::from_utf8_lossy(&init.stderr).to_string(),
            ));
        }
        Self::start_fast_devnet_from_configs(binary, dir, log_filter).await
    }

    /// Starts all five roles from the configs already in `dir`, one after the other.
    pub async fn start_fast_devnet_from_configs(
        binary: &Path,
        dir: &Path,
        log_filter: &str,
    ) -> Result<Self, ProcessError> {
        let mut stack = Self::new(binary, dir, log_filter);
        stack
            .spawn_in_order(&["template-provider", "mint", "pool", "translator", "miner"])
            .await?;
        Ok(stack)
    }

    /// Starts `hashpool <role> -c dir/<role>.toml`.
    pub fn spawn(&mut self, role: &str) -> Result<(), ProcessError> {
        self.spawn_as(role, role)
    }

    /// Starts the roles one after the other, each once it logged that it started (or 300 ms
    /// apart when the log filter hides that), so each finds its peers up.
    pub async fn spawn_in_order(&mut self, roles: &[&str]) -> Result<(), ProcessError> {
        let named: Vec<(&str, &str)> = roles.iter().map(|r| (*r, *r)).collect();
        self.spawn_named_in_order(&named).await
    }

    /// [`Self::spawn_in_order`] for `(name, role)` pairs (a second pool, say).
    pub async fn spawn_named_in_order(
        &mut self,
        named: &[(&str, &str)],
    ) -> Result<(), ProcessError> {
        // Only a default level of info or finer shows every role's "started" line.
        let default_level = self.log_filter.split(',').find(|d| !d.contains('='));
        let logs_start = matches!(
            default_level.map(str::trim),
            Some("info" | "debug" | "trace")
        );
        for (name, role) in named {
            let log = self.dir.join(format!("{name}.log"));
            let before = std::fs::metadata(&log).map_or(0, |m| m.len());
            self.spawn_as(name, role)?;
            if logs_start {
                wait_for_start(&log, before).await;
            } else {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        Ok(())
    }

    /// Starts `hashpool <role> -c dir/<name>.toml` under `name` (a second pool, say), logging
    /// to `dir/<name>.log`.
    pub fn spawn_as(&mut self, name: &str, role: &str) -> Result<(), ProcessError> {
        let path = self.dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| ProcessError::Log {
                path: path.clone(),
                source,
            })?;
        let err_log = log.try_clone().map_err(|source| ProcessError::Log {
            path: path.clone(),
            source,
        })?;
        let child = Command::new(&self.binary)
            .arg(role)
            .arg("-c")
            .arg(self.dir.join(format!("{name}.toml")))
            .env("RUST_LOG", &self.log_filter)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                role: role.to_string(),
                source,
            })?;
        self.children.insert(name.to_string(), child);
        Ok(())
    }

    /// SIGKILL, and wait for the process to be gone.
    pub async fn kill(&mut self, role: &str) {
        if let Some(mut c) = self.children.remove(role) {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }

    /// SIGTERM, the way a service manager stops a role, and wait up to 20 s.
    pub async fn stop(&mut self, role: &str) -> Result<(), ProcessError> {
        let Some(mut c) = self.children.remove(role) else {
            return Ok(());
        };
        if let Some(pid) = c.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        match tokio::time::timeout(Duration::from_secs(20), c.wait()).await {
            Ok(_) => Ok(()),
            Err(_) => {
                let _ = c.start_kill();
                Err(ProcessError::StopTimeout(role.to_string()))
            }
        }
    }

    /// Stops every role still running (SIGTERM), in reverse start order of the stack.
    pub async fn stop_all(&mut self) -> Result<(), ProcessError> {
        for role in ["miner", "translator", "pool", "mint", "template-provider"] {
            self.stop(role).await?;
        }
        let rest: Vec<String> = self.children.keys().cloned().collect();
        for role in rest {
            self.stop(&role).await?;
        }
        Ok(())
    }

    /// Resident memory of a role in KiB (Linux `/proc`), if it runs.
    pub fn rss_kib(&self, role: &str) -> Option<u64> {
        let pid = self.children.get(role)?.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}

/// First of six consecutive loopback ports that are free now.
pub fn free_port_base(seed: u64) -> Option<u16> {
    let mut x = seed | 1;
    for _ in 0..1000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let base = 20_000 + (x % 40_000) as u16;
        use crate::stack_configs::DevnetPorts;
        if (0..DevnetPorts::COUNT + DevnetPorts::SPARE)
            .all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return Some(base);
        }
    }
    None
}

/// What each role logs once it serves (CDK logs other "... started" lines before).
const ROLE_STARTED: [&str; 7] = [
    "mint started",
    "pool started",
    "template provider started",
    "translator started",
    "miner started",
    "jd-server started",
    "jd-client started",
];

/// Waits (20 s at most) until `log` has a role's "started" line after byte `from`.
async fn wait_for_start(log: &Path, from: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        let started = std::fs::read(log).ok().is_some_and(|bytes| {
            let new = bytes
                .get(usize::try_from(from).unwrap_or(0)..)
                .unwrap_or(&[]);
            let text = String::from_utf8_lossy(new);
            ROLE_STARTED.iter().any(|line| text.contains(line))
        });
        if started {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
