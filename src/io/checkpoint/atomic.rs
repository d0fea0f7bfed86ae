//! Atomic file replacement: write a temporary file beside the target, sync it, rename it over
//! the target. Readers see the old file or the new one, never a mix.
//!
//! No litter: the temporary file (`.<name>.tmp-<pid>-<n>`) is removed on every error path (a
//! guard removes it on drop unless the rename happened); while it exists its path is in a
//! process-wide registry, which [`cleanup_temp_files_on_signal`]'s handler empties on SIGINT or
//! SIGTERM; and a save removes the stale temporary files of its own target left by a process
//! that was killed outright (SIGKILL, power loss): those whose process is gone, or that are older
//! than [`STALE_AFTER`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::error::{Error, Result};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary file this old is stale even if a process of its pid is alive (the pid may have
/// been reused): no save of a checkpoint takes an hour.
pub const STALE_AFTER: Duration = Duration::from_secs(60 * 60);

/// The temporary files being written now, and whether a signal handler has started to end the
/// process (then no new one is created).
struct InFlight {
    paths: Vec<PathBuf>,
    terminating: bool,
}

static IN_FLIGHT: Mutex<InFlight> = Mutex::new(InFlight {
    paths: Vec::new(),
    terminating: false,
});

fn in_flight() -> std::sync::MutexGuard<'static, InFlight> {
    // A panic while holding this lock leaves the list itself consistent.
    IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner())
}

/// A registered temporary file: removed from disk and from the registry on drop, unless
/// [`disarm`](Self::disarm)ed after the rename.
struct TempGuard {
    path: PathBuf,
    created: bool,
}

impl TempGuard {
    /// Registers `path` before it is created, so a signal between creation and registration
    /// cannot leave it behind.
    fn register(path: PathBuf) -> std::io::Result<Self> {
        let mut reg = in_flight();
        if reg.terminating {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "the process is being terminated by a signal",
            ));
        }
        reg.paths.push(path.clone());
        Ok(TempGuard {
            path,
            created: false,
        })
    }

    fn disarm(mut self) {
        self.created = false;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.created {
            let _ = std::fs::remove_file(&self.path);
        }
        let mut reg = in_flight();
        if let Some(i) = reg.paths.iter().position(|p| *p == self.path) {
            reg.paths.swap_remove(i);
        }
    }
}

/// The temporary files being written at this moment (for tests and diagnostics).
pub fn temp_files_in_flight() -> Vec<PathBuf> {
    in_flight().paths.clone()
}

/// Installs, once per process, a handler for SIGINT and SIGTERM (and SIGHUP) that removes every
/// checkpoint temporary file being written, then ends the process as the signal would have
/// (exit status 128 + signal number in a shell). Call it once at the start of `main`; later
/// calls do nothing. Without it, a save interrupted by a signal leaves its temporary file until
/// the next save of the same target removes it as stale.
///
/// # Errors
///
/// [`Error::Io`] when the handler cannot be installed (the first call's error is returned by
/// later calls too). On platforms without Unix signals it does nothing and returns `Ok`.
pub fn cleanup_temp_files_on_signal() -> Result<()> {
    static INSTALLED: std::sync::OnceLock<std::result::Result<(), String>> =
        std::sync::OnceLock::new();
    INSTALLED
        .get_or_init(|| install_handler().map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| Error::Io {
            path: "signal handler".into(),
            source: std::io::Error::other(e),
        })
}

#[cfg(unix)]
fn install_handler() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("mixprec-signal-cleanup".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                // Held until the process ends: no save registers a new temporary file after this.
                let mut reg = in_flight();
                reg.terminating = true;
                for p in reg.paths.drain(..) {
                    let _ = std::fs::remove_file(p);
                }
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        })?;
    Ok(())
}

#[cfg(not(unix))]
fn install_handler() -> std::io::Result<()> {
    Ok(())
}

/// The prefix of `name`'s temporary files: `.<name>.tmp-`.
fn temp_prefix(name: &str) -> String {
    format!(".{name}.tmp-")
}

/// Whether process `pid` is alive, when this platform can tell.
fn process_alive(pid: u32) -> Option<bool> {
    if cfg!(target_os = "linux") {
        Some(Path::new("/proc").join(pid.to_string()).exists())
    } else {
        None
    }
}

/// Removes `dir`'s temporary files for target `name` left by processes that are gone, or older
/// than [`STALE_AFTER`]; never those of this process. Returns the paths removed. Errors are
/// ignored: cleaning up is a courtesy, not part of the save.
pub(crate) fn remove_stale_temp_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let prefix = temp_prefix(name);
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        let Some((pid, n)) = rest.split_once('-') else {
            continue;
        };
        let (Ok(pid), true) = (pid.parse::<u32>(), n.bytes().all(|b| b.is_ascii_digit())) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old || process_alive(pid) == Some(false) {
            let path = entry.path();
            if std::fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
    }
    removed
}

/// Writes `bytes` to `path` through a synced temporary file in the same directory and a rename.
/// On any error the temporary file is removed and an existing `path` is untouched.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let name = path.file_name().ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path has no file name",
        ))
    })?;
    let name = name.to_string_lossy();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    remove_stale_temp_files(dir, &name);
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!("{}{}-{n}", temp_prefix(&name), std::process::id()));
    let mut guard = TempGuard::register(tmp).map_err(io)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&guard.path)
        .map_err(io)?;
    guard.created = true;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&guard.path, path).map_err(io)?;
    guard.disarm();
    // Make the rename itself durable; not every platform can sync a directory.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_no_temp_file_and_unregisters_it() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a directory: the rename fails after the temporary file was written.
        let target = dir.path().join("ckpt.safetensors");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep"), b"x").unwrap();
        let err = write_atomic(&target, b"data").unwrap_err();
        assert!(err.to_string().contains("ckpt.safetensors"), "{err}");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("ckpt.safetensors")]);
        assert!(temp_files_in_flight()
            .iter()
            .all(|p| !p.starts_with(dir.path())));
    }
}
