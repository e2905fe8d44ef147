//! The ring-buffer side of [`HostControl`]: the guest's `buffer_size_kb`,
//! `buffer_total_size_kb` and `per_cpu/cpuN/buffer_size_kb` read and written through the
//! instance's [`InstanceBuffers`] (see [`crate::source::host::buffers`]).

use eventfs_core::layout::{CpuFile, FileKind, RootFile};
use eventfs_core::{FsError, Tree};

use super::{Handle, HostControl};
use crate::source::host::buffers::{self, Target};
use crate::source::host::per_cpu;

impl HostControl {
    /// The host CPUs a handle's guest `per_cpu/cpuN` directory stands for.
    fn host_cpus_of_handle(&self, tree: &Tree, h: &Handle) -> Vec<u32> {
        per_cpu::host_cpus_of(tree.cpu_of(h.dir), tree.cpus(), self.host_cpus)
    }

    /// What the guest reads in a buffer size file of `h`: the size it asked for. `None` for
    /// other files, and when the instance's buffers are forwarded as they are.
    pub(super) fn buffer_content(&self, tree: &Tree, h: &Handle) -> Option<Vec<u8>> {
        let (buffers, _) = self.buffers_of(&h.instance_dir);
        match h.kind {
            FileKind::Root(RootFile::BufferSizeKb) => buffers.content(Target::All, false),
            FileKind::Root(RootFile::BufferTotalSizeKb) => buffers.content(Target::All, true),
            FileKind::PerCpu(CpuFile::BufferSizeKb) => {
                let cpus = self.host_cpus_of_handle(tree, h);
                buffers.content(Target::Cpus(&cpus), false)
            }
            _ => None,
        }
    }

    /// A guest write to a buffer size file (`writes` is the guard's canonical number): the
    /// instance's new request, resizing the host only while the guest traces. `None` for other
    /// files, and when the instance's buffers are forwarded as they are.
    pub(super) fn write_buffer_size(
        &self,
        tree: &Tree,
        h: &Handle,
        writes: &[Vec<u8>],
    ) -> Option<Result<(), FsError>> {
        let cpus = match h.kind {
            FileKind::Root(RootFile::BufferSizeKb) => None,
            FileKind::PerCpu(CpuFile::BufferSizeKb) => Some(self.host_cpus_of_handle(tree, h)),
            _ => return None,
        };
        let [text] = writes else {
            return None;
        };
        let Some(kb) = buffers::parse_kb(text) else {
            log::error!("{}: the guard passed {text:?} as a size", h.path);
            return Some(Err(FsError::Os(libc::EINVAL)));
        };
        let target = cpus.as_deref().map_or(Target::All, Target::Cpus);
        let (buffers, dir) = self.buffers_of(&h.instance_dir);
        buffers.request(dir, target, kb)
    }
}
