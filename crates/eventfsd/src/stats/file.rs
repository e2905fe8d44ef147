//! The stats file: rewritten in place (atomically) for a user, a test or a metrics collector.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use eventfs_core::Tree;

use super::{prometheus, ProcessFigures, Stats};

/// The stats file's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsFormat {
    /// One JSON object.
    Json,
    /// The Prometheus text exposition format (node_exporter's textfile collector reads it),
    /// every sample labelled `vm="<this>"`.
    Prometheus {
        /// The `vm` label's value.
        vm: String,
    },
}

/// The stats file's directory, opened once (before the sandbox, which hides every host path),
/// and the file's name in it.
pub struct StatsFile {
    dir: OwnedFd,
    format: StatsFormat,
    name: CString,
    tmp: CString,
    /// The path as given, for messages.
    path: PathBuf,
}

impl StatsFile {
    /// Opens the directory of `path`. The file itself is written by [`StatsFile::write`].
    pub fn open(path: &Path, format: StatsFormat) -> std::io::Result<StatsFile> {
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
            format,
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
        let process = ProcessFigures::read();
        let text = match &self.format {
            StatsFormat::Json => format!("{}\n", stats.to_json(tree, &process)),
            StatsFormat::Prometheus { vm } => prometheus::render(stats, tree, &process, vm),
        };
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

/// Longest an idle daemon leaves its stats file unwritten (its CPU and memory figures still
/// move a little): one write per scrape interval of a typical collector.
const IDLE_REWRITE: Duration = Duration::from_secs(15);

/// Keeps a stats file up to date from the main thread's wake-ups (every `period` while the
/// daemon serves): rewritten when the guest was active since the last write, and every
/// [`IDLE_REWRITE`] otherwise (figures that move without a guest request, such as the catalog's
/// record count, may lag that long), so that an idle daemon (one per guest on a host) does not
/// spend its CPU rewriting an unchanged file.
pub struct StatsPacer {
    file: Arc<StatsFile>,
    stats: Arc<Stats>,
    tree: Arc<Tree>,
    /// The activity count and time of the last write.
    written: Option<(u64, std::time::Instant)>,
}

impl StatsPacer {
    /// How often the owner should call [`StatsPacer::tick`].
    pub const PERIOD: Duration = Duration::from_millis(500);

    /// A pacer for `file`; the first [`StatsPacer::tick`] writes.
    pub fn new(file: Arc<StatsFile>, stats: Arc<Stats>, tree: Arc<Tree>) -> StatsPacer {
        StatsPacer {
            file,
            stats,
            tree,
            written: None,
        }
    }

    /// Rewrites the file if it is due (a failure is logged: the figures are not worth
    /// stopping a guest's file system for).
    pub fn tick(&mut self) {
        let activity = self.stats.activity();
        let due = self
            .written
            .is_none_or(|(seen, at)| seen != activity || at.elapsed() >= IDLE_REWRITE);
        if due {
            if let Err(e) = self.file.write(&self.stats, &self.tree) {
                log::warn!("stats file {}: {e}", self.file.path().display());
            }
            self.written = Some((activity, std::time::Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventfs_core::TreeConfig;

    #[test]
    fn stats_file_never_follows_a_symlink() {
        let dir = std::env::temp_dir().join(format!("eventfsd-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stats.json");
        let victim = dir.join("victim");
        std::fs::write(&victim, b"untouched").unwrap();
        let stats = Stats::default();
        let tree = Tree::embedded(TreeConfig::default());
        let file = StatsFile::open(&path, StatsFormat::Json).unwrap();
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
