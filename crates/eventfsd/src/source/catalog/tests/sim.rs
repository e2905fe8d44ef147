//! [`Sim`]: a catalog tree and its control files, driven by path as a guest's shell would.

use std::time::Duration;

use eventfs_core::control::{ControlFiles, OpenFlags};
use eventfs_core::tree::{Image, NodeKind, NodeRef, Tree, TreeConfig, ROOT_INO};
use eventfs_core::FsError;

use std::sync::Arc;

use super::super::{CatalogControl, CatalogOptions, RateProfile, SimClock};

/// A tree, its control files and path-based helpers, as a guest's shell would use them.
pub(super) struct Sim {
    pub(super) tree: Tree,
    pub(super) control: CatalogControl,
}

pub(super) const READ: OpenFlags = OpenFlags {
    read: true,
    write: false,
    truncate: false,
    nonblock: false,
};
pub(super) const WRITE: OpenFlags = OpenFlags {
    read: false,
    write: true,
    truncate: true,
    nonblock: false,
};

impl Sim {
    pub(super) fn new() -> Sim {
        Sim::with_cpus(1)
    }

    pub(super) fn with_cpus(cpus: u32) -> Sim {
        Sim::with(cpus, RateProfile::uniform(1000.0))
    }

    /// The built-in rate profile (busy scheduler, rare module events), 10/s elsewhere.
    pub(super) fn with_built_in_profile() -> Sim {
        Sim::with(1, RateProfile::built_in(10.0))
    }

    pub(super) fn with(cpus: u32, profile: RateProfile) -> Sim {
        let tree = Tree::embedded(TreeConfig {
            cpus,
            ..TreeConfig::default()
        });
        Sim::on(tree, cpus, profile)
    }

    /// The guest kernel's catalog (Debian's 6.1, with histograms), on one CPU.
    pub(super) fn debian_6_1(profile: RateProfile) -> Sim {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../eventfs-core/catalog/debian-6.1.evcat"
        );
        let bytes = std::fs::read(path).expect("the 6.1 catalog");
        let tree = Tree::from_image(Image::Owned(bytes.into()), TreeConfig::default())
            .expect("a valid catalog");
        Sim::on(tree, 1, profile)
    }

    /// The 6.1 catalog where only the events `rates` names fire (`system:event per_second`
    /// lines), on one CPU.
    pub(super) fn debian_6_1_firing(rates: &str) -> Sim {
        let profile = RateProfile::uniform(0.0)
            .with_overrides(rates)
            .expect("valid rates");
        Sim::debian_6_1(profile)
    }

    fn on(mut tree: Tree, cpus: u32, profile: RateProfile) -> Sim {
        super::super::advertised::prepare_tree(&mut tree);
        Sim {
            tree,
            control: CatalogControl::with_clock(
                CatalogOptions {
                    profile: Arc::new(profile),
                    nr_cpus: cpus,
                    ..CatalogOptions::default()
                },
                SimClock::manual(),
            ),
        }
    }

    /// Every page a non-blocking reader of `per_cpu/cpuN/trace_pipe_raw` gets until EAGAIN.
    pub(super) fn drain_raw(&self, cpu: u32) -> Vec<Vec<u8>> {
        let node = self.node(&format!("per_cpu/cpu{cpu}/trace_pipe_raw"));
        let handle = self.control.open(&self.tree, node, READ).unwrap();
        let mut pages = Vec::new();
        loop {
            match self.control.read(&self.tree, node, handle, 0, 4096, true) {
                Ok(page) => {
                    assert_eq!(page.len(), 4096, "whole pages only");
                    pages.push(page);
                }
                Err(FsError::Os(libc::EAGAIN)) => break,
                Err(e) => panic!("cpu{cpu}: {e:?}"),
            }
        }
        self.control.release(handle);
        pages
    }

    /// A counter of `per_cpu/cpuN/stats`.
    pub(super) fn stat(&self, cpu: u32, key: &str) -> u64 {
        let text = self.read(&format!("per_cpu/cpu{cpu}/stats"));
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
            .unwrap_or_else(|| panic!("{key} in {text}"))
            .parse()
            .unwrap()
    }

    pub(super) fn node(&self, path: &str) -> NodeRef {
        self.try_node(path)
            .unwrap_or_else(|e| panic!("{path}: {e:?}"))
    }

    pub(super) fn try_node(&self, path: &str) -> Result<NodeRef, FsError> {
        let mut ino = ROOT_INO;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            ino = self.tree.find(ino, part.as_bytes())?.node.ino;
        }
        self.tree.node(ino)
    }

    pub(super) fn read(&self, path: &str) -> String {
        let node = self.node(path);
        // Immutable files never reach the control side: the FUSE adapter serves them from
        // the tree (as fs.rs does).
        if matches!(node.kind, NodeKind::File(kind) if kind.is_immutable()) {
            let bytes = self.tree.with_static_content(node.ino, |b| b.to_vec());
            return String::from_utf8(bytes.unwrap()).unwrap();
        }
        let handle = self.control.open(&self.tree, node, READ).unwrap();
        let data = self
            .control
            .read(&self.tree, node, handle, 0, 1 << 20, false);
        self.control.release(handle);
        String::from_utf8(data.unwrap()).unwrap()
    }

    /// The record lines of a `trace`-like file (its `#` header left out).
    pub(super) fn records(&self, path: &str) -> Vec<String> {
        self.read(path)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(String::from)
            .collect()
    }

    /// `echo text > path`: open with O_TRUNC, one write.
    pub(super) fn write(&self, path: &str, text: &str) -> Result<usize, FsError> {
        self.write_with(path, text, WRITE)
    }

    /// `echo text >> path`: open without O_TRUNC, one write.
    pub(super) fn append(&self, path: &str, text: &str) -> Result<usize, FsError> {
        self.write_with(
            path,
            text,
            OpenFlags {
                truncate: false,
                ..WRITE
            },
        )
    }

    pub(super) fn write_with(
        &self,
        path: &str,
        text: &str,
        flags: OpenFlags,
    ) -> Result<usize, FsError> {
        let node = self.node(path);
        let handle = self.control.open(&self.tree, node, flags)?;
        let result = self
            .control
            .write(&self.tree, node, handle, text.as_bytes());
        self.control.release(handle);
        result
    }

    /// Lets `ms` milliseconds of simulated time pass (the next operation catches up).
    pub(super) fn run_for(&self, ms: u64) {
        self.control.clock().advance(Duration::from_millis(ms));
    }
}
