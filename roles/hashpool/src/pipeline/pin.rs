//! `--pin`: each of the mint's signing threads gets a core of its own, and every other thread
//! of the process (pool, mint link and committers, clients) shares the cores left over, so
//! "one signing core" is exactly that and nothing else runs on it.

use std::io;

/// Which cores the run used.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pinning {
    /// Core of each signing thread.
    pub signing_cores: Vec<usize>,
    /// Cores every other thread may use.
    pub other_cores: Vec<usize>,
}

/// The first core `pin_threads` gives a signing thread, if the core count is known.
pub fn signing_cores(sign_threads: u32) -> Option<usize> {
    let cores = std::thread::available_parallelism().ok()?.get();
    Some(cores - (sign_threads.max(1) as usize).min(cores))
}

/// The calling thread pinned to one core until dropped, then free to use every core again.
pub struct PinnedHere {
    every_core: Vec<usize>,
}

impl PinnedHere {
    /// Pins the calling thread to `core`.
    pub fn to(core: usize) -> io::Result<Self> {
        let cores = std::thread::available_parallelism()?.get();
        set_affinity(0, &[core])?;
        Ok(Self {
            every_core: (0..cores).collect(),
        })
    }
}

impl Drop for PinnedHere {
    fn drop(&mut self) {
        if let Err(e) = set_affinity(0, &self.every_core) {
            tracing::warn!(error = %e, "cannot unpin a thread");
        }
    }
}

/// Pins the threads of this process: `mint-sign-*` threads to the last `sign_threads` cores,
/// the rest to the cores before them. With no core left over the rest is not restricted.
pub fn pin_threads(sign_threads: u32) -> io::Result<Pinning> {
    let cores = std::thread::available_parallelism()?.get();
    let signing = (sign_threads.max(1) as usize).min(cores);
    let signing_cores: Vec<usize> = (cores - signing..cores).collect();
    let other_cores: Vec<usize> = if signing < cores {
        (0..cores - signing).collect()
    } else {
        (0..cores).collect()
    };
    let mut next_signer = 0usize;
    for entry in std::fs::read_dir("/proc/self/task")? {
        let entry = entry?;
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if name.trim_end().starts_with("mint-sign-") {
            let core = signing_cores[next_signer % signing_cores.len()];
            next_signer += 1;
            set_affinity(tid, &[core])?;
        } else {
            set_affinity(tid, &other_cores)?;
        }
    }
    Ok(Pinning {
        signing_cores,
        other_cores,
    })
}

fn set_affinity(tid: libc::pid_t, cores: &[usize]) -> io::Result<()> {
    // SAFETY: `cpu_set_t` is plain data whose all-zero value is the empty set; CPU_SET only
    // writes inside it for cores below CPU_SETSIZE (checked); sched_setaffinity reads exactly
    // size_of::<cpu_set_t>() bytes from a valid reference.
    let result = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &core in cores {
            if core < libc::CPU_SETSIZE as usize {
                libc::CPU_SET(core, &mut set);
            }
        }
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
