//! Counters a user or a test can read without a debugger, exported as a JSON stats file.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fuse_backend_rs::abi::fuse_abi::{InHeader, Opcode, OutHeader};
use fuse_backend_rs::api::server::MetricsHook;
use serde_json::json;

use eventfs_core::Tree;

/// Counters of the vhost-user transport, owned here so that every layer reports into one place.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Descriptor chains handed back to the guest (all queues).
    pub chains_processed: AtomicU64,
    /// Chains answered with an error reply written by the transport itself (EIO).
    pub error_replies: AtomicU64,
    /// Chains handed back with length 0 because not even an error reply could be written.
    pub chains_unanswerable: AtomicU64,
    /// Completions dropped because the ring was stopped or restarted meanwhile.
    pub stale_completions: AtomicU64,
    /// vhost-user connections accepted.
    pub connections: AtomicU64,
}

/// Number of FUSE opcodes we count individually (FUSE_REMOVEMAPPING is 49).
const OPCODES: usize = 50;

/// Daemon-wide counters. Cheap relaxed atomics: they are statistics, not synchronisation.
pub struct Stats {
    requests: [AtomicU64; OPCODES],
    unknown_requests: AtomicU64,
    /// Requests the filesystem answered with an error (any errno).
    pub errors: AtomicU64,
    /// Files currently open (open minus release).
    pub open_handles: AtomicU64,
    /// Bytes returned by READ.
    pub bytes_read: AtomicU64,
    /// Bytes accepted by WRITE.
    pub bytes_written: AtomicU64,
    /// FUSE sessions started (INIT), including guest reboots.
    pub sessions: AtomicU64,
    /// FORGETs for more references than were handed out (a confused or hostile client).
    pub over_forgets: AtomicU64,
    /// Counters of the vhost-user transport (descriptor chains, error replies, connections).
    pub transport: Arc<TransportStats>,
    /// Counters of the event source, as (name, value) pairs.
    pub source: OnceLock<SourceCounters>,
}

/// A source's counters, read when the stats are written.
pub type SourceCounters = Box<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>;

impl Default for Stats {
    fn default() -> Self {
        Stats {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            unknown_requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            open_handles: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            over_forgets: AtomicU64::new(0),
            transport: Arc::default(),
            source: OnceLock::new(),
        }
    }
}

/// Name of a FUSE opcode for the stats output.
fn opcode_name(op: u32) -> String {
    // `Opcode::from` transmutes, so it must only see numbers the enum defines: the gaps
    // (0, 7 and 19) and anything past the last one are named by number.
    if (op as usize) < OPCODES && !matches!(op, 0 | 7 | 19) {
        format!("{:?}", Opcode::from(op)).to_lowercase()
    } else {
        format!("op{op}")
    }
}

impl Stats {
    /// Counts one request of opcode `op`.
    pub fn count_request(&self, op: u32) {
        match self.requests.get(op as usize) {
            Some(counter) => counter.fetch_add(1, Relaxed),
            None => self.unknown_requests.fetch_add(1, Relaxed),
        };
    }

    /// Requests seen for opcode `op`.
    pub fn requests(&self, op: u32) -> u64 {
        self.requests
            .get(op as usize)
            .map_or(0, |c| c.load(Relaxed))
    }

    /// Decrements the open-handle count without wrapping on a bogus RELEASE.
    pub fn closed(&self) {
        let _ = self
            .open_handles
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
    }

    /// The stats as a JSON object.
    pub fn to_json(&self, tree: &Tree) -> serde_json::Value {
        let by_op: BTreeMap<String, u64> = self
            .requests
            .iter()
            .enumerate()
            .map(|(op, counter)| (op as u32, counter.load(Relaxed)))
            .filter(|&(_, n)| n > 0)
            .map(|(op, n)| (opcode_name(op), n))
            .collect();
        let source: serde_json::Map<String, serde_json::Value> = self
            .source
            .get()
            .map(|counters| {
                counters()
                    .into_iter()
                    .map(|(name, value)| (name.to_string(), value.into()))
                    .collect()
            })
            .unwrap_or_default();
        let total: u64 = self.requests.iter().map(|c| c.load(Relaxed)).sum::<u64>()
            + self.unknown_requests.load(Relaxed);
        let transport = &self.transport;
        json!({
            "materialised_nodes": tree.materialised(),
            "open_handles": self.open_handles.load(Relaxed),
            "requests": total,
            "errors": self.errors.load(Relaxed),
            "bytes_read": self.bytes_read.load(Relaxed),
            "bytes_written": self.bytes_written.load(Relaxed),
            "sessions": self.sessions.load(Relaxed),
            "over_forgets": self.over_forgets.load(Relaxed),
            "unknown_opcodes": self.unknown_requests.load(Relaxed),
            "requests_by_opcode": by_op,
            "vhost_user": {
                "connections": transport.connections.load(Relaxed),
                "chains": transport.chains_processed.load(Relaxed),
                "error_replies": transport.error_replies.load(Relaxed),
                "unanswerable_chains": transport.chains_unanswerable.load(Relaxed),
                "stale_completions": transport.stale_completions.load(Relaxed),
            },
            "source": source,
        })
    }
}

/// Feeds per-request counters from fuse-backend-rs's server loop. (The server calls
/// `release` without the reply header, so errors are counted by the filesystem instead.)
pub struct StatsHook(pub Arc<Stats>);

impl MetricsHook for StatsHook {
    fn collect(&self, ih: &InHeader) {
        self.0.count_request(ih.opcode);
    }

    fn release(&self, _oh: Option<&OutHeader>) {}
}

/// The stats file's directory, opened once (before the sandbox, which hides every host path),
/// and the file's name in it.
pub struct StatsFile {
    dir: OwnedFd,
    name: CString,
    tmp: CString,
    /// The path as given, for messages.
    path: PathBuf,
}

impl StatsFile {
    /// Opens the directory of `path`. The file itself is written by [`StatsFile::write`].
    pub fn open(path: &Path) -> std::io::Result<StatsFile> {
        let name = path
            .file_name()
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EISDIR))?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let dir = std::fs::File::open(dir)?;
        if !dir.metadata()?.is_dir() {
            return Err(std::io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        let mut tmp = name.as_bytes().to_vec();
        tmp.extend_from_slice(b".tmp");
        let c = |bytes: Vec<u8>| {
            CString::new(bytes).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
        };
        Ok(StatsFile {
            dir: dir.into(),
            name: c(name.as_bytes().to_vec())?,
            tmp: c(tmp)?,
            path: path.to_owned(),
        })
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the stats atomically (`NAME.tmp`, then a rename over `NAME`) so readers never
    /// see half a file. Nothing follows a symlink: the temp file is opened `O_NOFOLLOW` (a
    /// symlink planted at its name fails the write instead of redirecting it), and both names
    /// are resolved in the directory opened at start-up.
    pub fn write(&self, stats: &Stats, tree: &Tree) -> std::io::Result<()> {
        // SAFETY: a valid dirfd and C string; the result is checked before it is owned.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                self.tmp.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o644 as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh fd nobody else owns.
        let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
        let mut text = stats.to_json(tree).to_string();
        text.push('\n');
        file.write_all(text.as_bytes())?;
        drop(file);
        let dir = self.dir.as_raw_fd();
        // SAFETY: valid dirfds and C strings.
        if unsafe { libc::renameat(dir, self.tmp.as_ptr(), dir, self.name.as_ptr()) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Starts a thread that rewrites the stats file every `period` until the process exits.
pub fn spawn_stats_writer(
    file: Arc<StatsFile>,
    stats: Arc<Stats>,
    tree: Arc<Tree>,
    period: Duration,
) {
    std::thread::Builder::new()
        .name("stats".into())
        .spawn(move || loop {
            if let Err(e) = file.write(&stats, &tree) {
                log::warn!("stats file {}: {e}", file.path().display());
            }
            std::thread::sleep(period);
        })
        .expect("spawning the stats thread");
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventfs_core::TreeConfig;

    #[test]
    fn json_has_the_counters() {
        let stats = Stats::default();
        stats.count_request(Opcode::Lookup as u32);
        stats.count_request(Opcode::Lookup as u32);
        stats.count_request(999);
        // A guest may send the numbers the protocol leaves unused.
        for gap in [0, 7, 19] {
            stats.count_request(gap);
        }
        let _ = stats.source.set(Box::new(|| vec![("records", 7)]));
        let tree = Tree::embedded(TreeConfig::default());
        let json = stats.to_json(&tree);
        assert_eq!(json["requests"], 6);
        assert_eq!(json["requests_by_opcode"]["op7"], 1);
        assert_eq!(json["requests_by_opcode"]["op0"], 1);
        assert_eq!(json["unknown_opcodes"], 1);
        assert_eq!(json["requests_by_opcode"]["lookup"], 2);
        assert_eq!(json["source"]["records"], 7);
        assert_eq!(json["materialised_nodes"], 0);
        assert_eq!(json["vhost_user"]["connections"], 0);
    }

    #[test]
    fn stats_file_never_follows_a_symlink() {
        let dir = std::env::temp_dir().join(format!("eventfsd-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stats.json");
        let victim = dir.join("victim");
        std::fs::write(&victim, b"untouched").unwrap();
        let stats = Stats::default();
        let tree = Tree::embedded(TreeConfig::default());
        let file = StatsFile::open(&path).unwrap();
        file.write(&stats, &tree).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(json["requests"], 0);

        // A symlink planted at the temp name: the write fails and the target is untouched.
        std::os::unix::fs::symlink(&victim, dir.join("stats.json.tmp")).unwrap();
        let err = file.write(&stats, &tree).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
        std::fs::remove_file(dir.join("stats.json.tmp")).unwrap();

        // The directory is held open: the file is written there even after a rename of its
        // path (as a sandboxed daemon, which sees no host path, does).
        let moved =
            std::env::temp_dir().join(format!("eventfsd-stats-moved-{}", std::process::id()));
        std::fs::rename(&dir, &moved).unwrap();
        file.write(&stats, &tree).unwrap();
        assert!(moved.join("stats.json").exists());
        assert!(!moved.join("stats.json.tmp").exists());
        std::fs::remove_dir_all(&moved).unwrap();
    }
}
