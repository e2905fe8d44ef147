//! The files of `per_cpu/cpuN/` (at the top level and in each instance): one CPU's view of
//! the instance's buffer, as `kernel/trace/trace.c` serves them.

use std::sync::Arc;

use eventfs_core::control::{slice_at, OpenFlags};
use eventfs_core::layout::CpuFile;
use eventfs_core::tree::{NodeRef, Tree};
use eventfs_core::FsError;
use ftrace_text::Ring;

use super::handles::{HandleKind, Handles};
use super::input::{parse_kb, written_text};
use super::raw::RawReader;
use super::recorder::{PipeReader, Recorder};
use super::snapshot;
use super::state::State;

/// The per-CPU files over the layers below them.
pub struct PerCpuFiles<'a> {
    /// Shared state.
    pub state: &'a State,
    /// The data plane.
    pub recorder: &'a Recorder,
    /// Open handles.
    pub handles: &'a Handles,
}

impl PerCpuFiles<'_> {
    fn ring(&self, tree: &Tree, node: NodeRef) -> Arc<Ring> {
        self.state.instance(tree, node.dir, |i| i.ring.clone())
    }

    /// Opens a per-CPU file: `O_TRUNC` on `trace` clears this CPU's records only.
    pub fn open(
        &self,
        tree: &Tree,
        node: NodeRef,
        file: CpuFile,
        flags: OpenFlags,
    ) -> Result<u64, FsError> {
        let cpu = tree.cpu_of(node.dir);
        let ring = self.ring(tree, node);
        if flags.truncate && file == CpuFile::Trace {
            ring.clear_cpus(Some(cpu));
        }
        let kind = match file {
            CpuFile::Trace if flags.read => HandleKind::Snapshot(Arc::new(
                self.recorder
                    .trace_text(self.state, tree, node.dir, Some(cpu)),
            )),
            CpuFile::TracePipe => HandleKind::Pipe(Arc::new(PipeReader::new(ring, Some(cpu)))),
            CpuFile::TracePipeRaw => HandleKind::Raw(Arc::new(RawReader::new(ring, cpu))),
            CpuFile::Snapshot if flags.read => {
                HandleKind::Snapshot(Arc::new(self.snapshot_text(tree, node, cpu)))
            }
            CpuFile::SnapshotRaw => {
                let ring = self.state.instance(tree, node.dir, |i| i.snapshot.clone());
                HandleKind::Raw(Arc::new(RawReader::new(ring, cpu)))
            }
            _ => HandleKind::Plain,
        };
        let instance = tree.instance_ino_of(node.dir);
        Ok(self
            .handles
            .open(self.state, instance, tree.option_defaults(), kind))
    }

    /// Reads a per-CPU file.
    #[allow(clippy::too_many_arguments)]
    pub fn read(
        &self,
        tree: &Tree,
        node: NodeRef,
        file: CpuFile,
        handle: u64,
        offset: u64,
        size: u32,
        nonblock: bool,
    ) -> Result<Vec<u8>, FsError> {
        let cpu = tree.cpu_of(node.dir);
        let content = match (file, self.handles.kind(handle)) {
            (CpuFile::TracePipeRaw | CpuFile::SnapshotRaw, Some(HandleKind::Raw(reader))) => {
                return self
                    .recorder
                    .read_raw(self.state, tree, &reader, size, nonblock)
            }
            (CpuFile::TracePipe, Some(HandleKind::Pipe(pipe))) => {
                return self
                    .recorder
                    .read_pipe(self.state, tree, &pipe, size, nonblock)
            }
            (CpuFile::TracePipe | CpuFile::TracePipeRaw | CpuFile::SnapshotRaw, _) => {
                return Err(FsError::Os(libc::EBADF))
            }
            (CpuFile::Snapshot, Some(HandleKind::Snapshot(text))) => {
                return Ok(slice_at(&text, offset, size))
            }
            (CpuFile::Snapshot, _) => self.snapshot_text(tree, node, cpu),
            (CpuFile::Trace, Some(HandleKind::Snapshot(text))) => {
                return Ok(slice_at(&text, offset, size))
            }
            (CpuFile::Trace, _) => self
                .recorder
                .trace_text(self.state, tree, node.dir, Some(cpu)),
            (CpuFile::BufferSizeKb, _) => {
                format!("{}\n", self.ring(tree, node).cpu_buffer_size_kb(cpu)).into_bytes()
            }
            (CpuFile::Stats, _) => self.stats_text(tree, node, cpu).into_bytes(),
        };
        Ok(slice_at(&content, offset, size))
    }

    /// This CPU's part of the snapshot buffer.
    fn snapshot_text(&self, tree: &Tree, node: NodeRef, cpu: u32) -> Vec<u8> {
        snapshot::text(
            self.state,
            tree,
            node.dir,
            Some(cpu),
            |ring, cpu, tracer| self.recorder.ring_text(tree, ring, cpu, tracer),
        )
    }

    /// `stats`, in the kernel's order and format.
    fn stats_text(&self, tree: &Tree, node: NodeRef, cpu: u32) -> String {
        let now = self.recorder.trace_now(self.state);
        self.ring(tree, node).cpu_stats(cpu).text(now)
    }

    /// Applies one write to a per-CPU file.
    pub fn write(
        &self,
        tree: &Tree,
        node: NodeRef,
        file: CpuFile,
        data: &[u8],
    ) -> Result<(), FsError> {
        let text = written_text(data)?;
        match file {
            CpuFile::BufferSizeKb => {
                let kb = parse_kb(text)?;
                let cpu = Some(tree.cpu_of(node.dir));
                self.state.instance(tree, node.dir, |i| {
                    i.ring.resize_cpus(cpu, kb);
                    if i.snapshot_allocated {
                        i.snapshot.resize_cpus(cpu, kb);
                    }
                });
                Ok(())
            }
            CpuFile::Snapshot => {
                let cpu = Some(tree.cpu_of(node.dir));
                snapshot::write(self.state, tree, node.dir, cpu, data)
            }
            // `echo > trace`: the open with O_TRUNC already cleared this CPU.
            CpuFile::Trace => Ok(()),
            CpuFile::Stats | CpuFile::TracePipe | CpuFile::TracePipeRaw | CpuFile::SnapshotRaw => {
                Err(FsError::Invalid(format!("{file:?} is read-only")))
            }
        }
    }
}
