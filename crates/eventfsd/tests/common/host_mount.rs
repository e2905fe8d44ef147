//! A host source over a private tracefs, mounted through /dev/fuse, for the integration tests
//! of the host source.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuse_backend_rs::api::server::Server;

use eventfs_core::TreeConfig;
use eventfsd::fs::{CachePolicy, EventFs};
use eventfsd::source::host::{ForwardLimits, HostOptions, HostSource};
use eventfsd::source::Source;
use eventfsd::stats::Stats;
use eventfsd::transport::fusedev::FuseMount;
use test_prereq::PrivateTracefs;

/// A private tracefs for a test that also mounts the tree through /dev/fuse: each test mounts
/// its own, so that no test depends on a mount another test may undo.
pub fn can_run(name: &str) -> Option<PrivateTracefs> {
    if !test_prereq::root_and_fuse(name) {
        return None;
    }
    PrivateTracefs::mount(name)
}

/// A host source mounted through /dev/fuse; drop unmounts and removes the instance, and
/// checks that it is gone.
pub struct HostMount {
    /// Mount point.
    pub dir: PathBuf,
    /// The host instance.
    pub instance: PathBuf,
    /// The running source.
    pub source: Option<HostSource>,
    mount: Option<FuseMount>,
    /// The daemon's counters (requests by opcode ...).
    pub stats: Arc<Stats>,
    /// Declared last: dropped after the instance is gone.
    pub tracefs: PrivateTracefs,
}

impl HostMount {
    /// Mounts a host source with `policy` (TOML text) and forwarding `limits`.
    pub fn new(name: &str, policy: Option<&str>, limits: ForwardLimits) -> Option<HostMount> {
        Self::with(name, policy, |o| o.limits = limits)
    }

    /// Mounts a host source with `policy`, after `adjust` has changed its options.
    pub fn with(
        name: &str,
        policy: Option<&str>,
        adjust: impl FnOnce(&mut HostOptions),
    ) -> Option<HostMount> {
        let tracefs = can_run(name)?;
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("eventfsd-host-{name}-{pid}"));
        fs::create_dir_all(&dir).unwrap();
        let policy_path = policy.map(|text| {
            let p = std::env::temp_dir().join(format!("eventfsd-host-{name}-{pid}.toml"));
            fs::write(&p, text).unwrap();
            p
        });
        let mut options = HostOptions {
            tracefs: Some(tracefs.to_path_buf()),
            instance: Some(format!("evtest-{name}-{pid}")),
            policy: policy_path.clone(),
            ..HostOptions::default()
        };
        adjust(&mut options);
        let source = HostSource::start(&options, TreeConfig::default()).expect("host source");
        if let Some(p) = policy_path {
            let _ = fs::remove_file(p);
        }
        let instance = source.instance_dir().to_path_buf();
        let stats = Arc::new(Stats::default());
        let fs = EventFs::new(
            source.tree().clone(),
            source.control(),
            stats.clone(),
            CachePolicy::default(),
        );
        let mount =
            FuseMount::start(Arc::new(Server::new(fs)), stats.clone(), &dir, 4).expect("mount");
        Some(HostMount {
            dir,
            instance,
            source: Some(source),
            mount: Some(mount),
            stats,
            tracefs,
        })
    }

    /// A path in the mounted tree.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// A path in the host instance.
    pub fn host(&self, rel: &str) -> PathBuf {
        self.instance.join(rel)
    }

    /// The host instance behind the guest's `instances/NAME`: `<ours>.NAME`, beside ours.
    pub fn guest_instance_dir(&self, name: &str) -> PathBuf {
        let ours = self.instance.file_name().unwrap().to_string_lossy();
        self.instance.with_file_name(format!("{ours}.{name}"))
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        if let Some(s) = &self.source {
            s.wake_readers();
        }
        if let Some(m) = self.mount.take() {
            m.stop();
        }
        if let Some(s) = self.source.take() {
            s.shutdown();
        }
        let _ = fs::remove_dir(&self.dir);
        if !std::thread::panicking() {
            assert!(!self.instance.exists(), "instance left behind");
        }
    }
}

/// The whole file as text (panics on error).
pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Writes `data` as `echo data > path` does; returns the errno of open or write, if any.
pub fn echo(path: &Path, data: &str) -> Option<i32> {
    let mut f = match fs::OpenOptions::new().write(true).truncate(true).open(path) {
        Ok(f) => f,
        Err(e) => return e.raw_os_error(),
    };
    f.write_all(data.as_bytes())
        .err()
        .and_then(|e| e.raw_os_error())
}

/// The errno of a failed call.
pub fn errno_of(r: std::io::Result<impl Sized>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

/// The names in a directory.
pub fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Writes raw bytes in one `write` after a truncating open; the errno of open or write, if
/// any, else the count the write reported.
pub fn echo_bytes(path: &Path, data: &[u8]) -> Result<usize, i32> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| e.raw_os_error().unwrap_or(0))?;
    f.write(data).map_err(|e| e.raw_os_error().unwrap_or(0))
}
