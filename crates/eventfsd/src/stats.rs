//! Counters a user or a test can read without a debugger, exported as a JSON stats file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fuse_backend_rs::abi::fuse_abi::{InHeader, Opcode, OutHeader};
use fuse_backend_rs::api::server::MetricsHook;

use eventfs_core::Tree;

use crate::vhost_user::TransportStats;

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
    if (op as usize) < OPCODES {
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
    pub fn to_json(&self, tree: &Tree) -> String {
        let mut by_op = String::new();
        for (op, counter) in self.requests.iter().enumerate() {
            let n = counter.load(Relaxed);
            if n > 0 {
                if !by_op.is_empty() {
                    by_op.push_str(", ");
                }
                by_op.push_str(&format!("\"{}\": {n}", opcode_name(op as u32)));
            }
        }
        let source = self
            .source
            .get()
            .map(|counters| {
                counters()
                    .iter()
                    .map(|(name, value)| format!("\"{name}\": {value}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let total: u64 = self.requests.iter().map(|c| c.load(Relaxed)).sum::<u64>()
            + self.unknown_requests.load(Relaxed);
        format!(
            "{{\"materialised_nodes\": {}, \"open_handles\": {}, \"requests\": {total}, \
             \"errors\": {}, \"bytes_read\": {}, \"bytes_written\": {}, \"sessions\": {}, \
             \"over_forgets\": {}, \"unknown_opcodes\": {}, \"requests_by_opcode\": {{{by_op}}}, \
             \"vhost_user\": {{\"connections\": {}, \"chains\": {}, \"error_replies\": {}, \
             \"unanswerable_chains\": {}, \"stale_completions\": {}}}, \"source\": {{{source}}}}}\n",
            tree.materialised(),
            self.open_handles.load(Relaxed),
            self.errors.load(Relaxed),
            self.bytes_read.load(Relaxed),
            self.bytes_written.load(Relaxed),
            self.sessions.load(Relaxed),
            self.over_forgets.load(Relaxed),
            self.unknown_requests.load(Relaxed),
            self.transport.connections.load(Relaxed),
            self.transport.chains_processed.load(Relaxed),
            self.transport.error_replies.load(Relaxed),
            self.transport.chains_unanswerable.load(Relaxed),
            self.transport.stale_completions.load(Relaxed),
        )
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

/// Writes the stats file atomically (temp file + rename) so readers never see half a file.
pub fn write_stats_file(path: &Path, stats: &Stats, tree: &Tree) -> std::io::Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(stats.to_json(tree).as_bytes())?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// Starts a thread that rewrites the stats file every `period` until the process exits.
pub fn spawn_stats_writer(path: PathBuf, stats: Arc<Stats>, tree: Arc<Tree>, period: Duration) {
    std::thread::Builder::new()
        .name("stats".into())
        .spawn(move || loop {
            if let Err(e) = write_stats_file(&path, &stats, &tree) {
                log::warn!("stats file {}: {e}", path.display());
            }
            std::thread::sleep(period);
        })
        .expect("spawning the stats thread");
}
