//! Change detection paced by the guest: whether the host's events changed, decided from a
//! cheap signature (the list of systems and the content of `dynamic_events`), checked only
//! while the guest looks at the tree. What a change then runs (the diff) is the caller's.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use eventfs_core::catalog::{fnv1a64, valid_name};
use eventfs_core::snapshot::read_whole;
use eventfs_core::Tree;

/// The diff a changed signature runs against the tree, given the control `C` it keeps in step.
pub type Rescan<C> = fn(&Tree, &C) -> io::Result<RescanReport>;

/// What one rescan changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RescanReport {
    /// Events added to the tree.
    pub added: Vec<(String, String)>,
    /// Events removed from the tree.
    pub removed: Vec<(String, String)>,
}

/// The valid names of the directories and regular files in `dir` (d_type only, no stat).
pub fn list_dirs(dir: &Path) -> io::Result<(Vec<String>, Vec<String>)> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !valid_name(name.as_bytes()) {
            continue;
        }
        // d_type from getdents: no stat, no symlink followed.
        let ft = entry.file_type()?;
        if ft.is_dir() {
            dirs.push(name);
        } else if ft.is_file() {
            files.push(name);
        }
    }
    Ok((dirs, files))
}

/// What changes when events come or go, cheap to read every second: the names of the
/// systems (one directory listing) and the dynamic event definitions (a short file).
pub fn change_signature(top: &Path) -> u64 {
    let mut key = Vec::new();
    if let Ok((systems, _)) = list_dirs(&top.join("events")) {
        let mut systems = systems;
        systems.sort();
        for name in systems {
            key.extend_from_slice(name.as_bytes());
            key.push(b'\n');
        }
    }
    key.push(0);
    if let Ok(text) = read_whole(&top.join("dynamic_events")) {
        key.extend_from_slice(&text);
    }
    fnv1a64(&key)
}

/// How often a check diffs everything even when the cheap signature saw no change: a module
/// may add events to a system that exists already.
const FULL_RESCAN: Duration = Duration::from_secs(30);

/// Change detection paced by the guest: a guest that looks at nothing costs nothing (no
/// thread, no timer). When the guest looks at the tree and the last check is older than the
/// interval, the request that noticed runs the check before it is answered, so what the
/// guest then sees is at most one interval old. Concurrent requests do not wait for it.
pub struct ChangeWatch<C> {
    /// The host tracefs's top level, whose signature is checked.
    top: PathBuf,
    /// The rescan a changed signature runs.
    rescan: Rescan<C>,
    interval_ms: u64,
    epoch: Instant,
    /// When the last check started, in ms since `epoch`.
    last_check_ms: AtomicU64,
    state: Mutex<WatchState>,
}

/// What the checks remember between runs.
struct WatchState {
    signature: u64,
    last_full: Instant,
    last_error: String,
}

impl<C> ChangeWatch<C> {
    /// Watches the host at `top` (whose state the tree already reflects), checking at most
    /// once per `interval`.
    pub fn new(top: &Path, interval: Duration, rescan: Rescan<C>) -> ChangeWatch<C> {
        ChangeWatch {
            top: top.to_path_buf(),
            rescan,
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            epoch: Instant::now(),
            last_check_ms: AtomicU64::new(0),
            state: Mutex::new(WatchState {
                signature: change_signature(top),
                last_full: Instant::now(),
                last_error: String::new(),
            }),
        }
    }

    /// The guest is looking: checks for changes if the last check is older than the interval
    /// and no other request is checking.
    pub fn observe(&self, tree: &Tree, control: &C) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_check_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < self.interval_ms
            || self
                .last_check_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let Ok(mut state) = self.state.try_lock() else {
            return;
        };
        state.check(&self.top, || (self.rescan)(tree, control));
    }
}

impl WatchState {
    /// Rescans when the signature changed, or when the last full rescan is old.
    fn check(&mut self, top: &Path, rescan: impl FnOnce() -> io::Result<RescanReport>) {
        let now = change_signature(top);
        if now == self.signature && self.last_full.elapsed() < FULL_RESCAN {
            return;
        }
        self.signature = now;
        self.last_full = Instant::now();
        match rescan() {
            Ok(report) => {
                crate::heap::give_back_free_pages();
                self.last_error.clear();
                for (s, e) in &report.added {
                    log::info!("dynamic event {s}/{e} appeared on the host");
                }
                for (s, e) in &report.removed {
                    log::info!("event {s}/{e} is gone from the host");
                }
            }
            Err(e) => {
                // Log each distinct failure once, not at every check.
                let text = e.to_string();
                if text != self.last_error {
                    log::warn!("rescan of the host events failed: {text}");
                    self.last_error = text;
                }
            }
        }
    }
}
