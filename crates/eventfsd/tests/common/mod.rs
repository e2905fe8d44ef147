//! The catalog source mounted on the host through /dev/fuse, shared by the integration tests.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use fuse_backend_rs::api::server::Server;

use eventfs_core::{Tree, TreeConfig};
use eventfsd::fs::{CachePolicy, EventFs};
use eventfsd::source::catalog::{CatalogOptions, CatalogSource, CatalogSourceOptions, RateProfile};
use eventfsd::source::Source;
use eventfsd::stats::Stats;
use eventfsd::transport::fusedev::FuseMount;

/// A mounted tree, unmounted (and its directory removed) on drop.
#[allow(dead_code)] // each test binary uses its own subset
pub struct Mounted {
    /// Mount point.
    pub dir: PathBuf,
    /// The served tree.
    pub tree: Arc<Tree>,
    /// The daemon's counters.
    pub stats: Arc<Stats>,
    mount: Option<FuseMount>,
    source: CatalogSource,
}

#[allow(dead_code)] // each test binary uses its own subset
impl Mounted {
    /// The catalog source as the daemon serves it: only the guest changes listings.
    pub fn new(name: &str) -> Option<Mounted> {
        Self::with_policy(name, CachePolicy::frozen_listings())
    }

    /// Mounts with a given cache policy; `None` (after saying why) without root or /dev/fuse.
    pub fn with_policy(name: &str, policy: CachePolicy) -> Option<Mounted> {
        Self::with_policy_and_cpus(name, policy, 1)
    }

    /// Mounts a tree with `cpus` per-CPU directories and simulated CPUs.
    pub fn with_cpus(name: &str, cpus: u32) -> Option<Mounted> {
        Self::with_policy_and_cpus(name, CachePolicy::frozen_listings(), cpus)
    }

    fn with_policy_and_cpus(name: &str, policy: CachePolicy, cpus: u32) -> Option<Mounted> {
        if !test_prereq::root_and_fuse(name) {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("eventfsd-test-{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let source = CatalogSource::start(&CatalogSourceOptions {
            control: CatalogOptions {
                profile: Arc::new(RateProfile::uniform(200.0)),
                nr_cpus: cpus,
                ..CatalogOptions::default()
            },
            config: TreeConfig {
                cpus,
                ..TreeConfig::default()
            },
            ..CatalogSourceOptions::default()
        })
        .expect("the embedded catalog");
        let tree = source.tree().clone();
        let stats = Arc::new(Stats::default());
        let fs = EventFs::new(tree.clone(), source.control(), stats.clone(), policy);
        let mount =
            FuseMount::start(Arc::new(Server::new(fs)), stats.clone(), &dir, 4).expect("mount");
        Some(Mounted {
            dir,
            tree,
            stats,
            mount: Some(mount),
            source,
        })
    }

    /// A path below the mount point.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.source.wake_readers();
        if let Some(mount) = self.mount.take() {
            mount.stop();
        }
        self.source.shutdown();
        let _ = fs::remove_dir(&self.dir);
    }
}
