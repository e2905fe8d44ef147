//! The catalog source: a simulated kernel behind a snapshot of a real kernel's event catalog.
//!
//! Layers, imports pointing down only:
//! - [`clock`], [`profile`], [`timeline`]: simulated time, how often each event fires, and
//!   the occurrences of an interval in time order (the bottom, with [`state`]);
//! - [`state`]: per-event and per-instance state (knows no file);
//! - [`recorder`]: catches the simulation up before every request (records, filters,
//!   triggers in the kernel's order, pid lists), rendering of `trace`/`trace_pipe`;
//! - [`cmdlines`]: the comms of recorded tasks (`saved_cmdlines`);
//! - [`raw`]: `trace_pipe_raw`'s binary pages, over the recorder;
//! - [`handles`]: what each open file carries;
//! - [`dynamic`]: `uprobe_events` and `dynamic_events` (probe events made at run time);
//! - [`advertised`]: the snapshotted kernel's README, tracer list and optional root files,
//!   cut to what the simulation does;
//! - [`events`], [`root`], [`per_cpu`], [`instances`]: what a read or write of each file does;
//! - this module: [`CatalogControl`], which catches the simulation up and dispatches
//!   [`ControlFiles`] calls to those, and [`CatalogSource`], the running source (tree and
//!   control; no thread: nothing happens between requests that a request would not see).

use std::path::PathBuf;
use std::sync::Arc;

use crate::stats::{FigureKind, SourceFigure};
use eventfs_core::catalog;
use eventfs_core::control::{slice_at, ControlFiles, OpenFlags};
use eventfs_core::layout::FileKind;
use eventfs_core::tree::{Image, NodeKind, NodeRef, Tree, TreeConfig};
use eventfs_core::FsError;

use super::Source;

pub mod advertised;
pub mod clock;
pub mod cmdlines;
mod derived_records;
pub mod dynamic;
pub mod events;
pub mod function_tracer;
pub mod handles;
mod hist;
mod hist_refs;
pub mod input;
pub mod instances;
pub mod kprobes;
mod occurrence;
pub mod per_cpu;
pub mod profile;
pub mod raw;
pub mod recorder;
pub mod root;
pub mod snapshot;
pub mod state;
pub mod timeline;

pub use clock::SimClock;
pub use profile::RateProfile;
pub use state::CatalogOptions;

use handles::Handles;
use per_cpu::PerCpuFiles;
use recorder::Recorder;
use root::RootFiles;
use state::State;

/// The catalog source's [`ControlFiles`]: tracefs's semantics over a simulated kernel.
pub struct CatalogControl {
    state: State,
    recorder: Recorder,
    handles: Handles,
    dynamic: dynamic::DynamicEvents,
}

impl Default for CatalogControl {
    fn default() -> Self {
        CatalogControl::with_options(CatalogOptions::default())
    }
}

impl CatalogControl {
    /// Everything disabled, default tunables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything disabled, with the given tunables.
    pub fn with_options(options: CatalogOptions) -> Self {
        CatalogControl::with_clock(options, SimClock::default())
    }

    /// Everything disabled, with the given tunables, its time from `clock`.
    pub fn with_clock(options: CatalogOptions, clock: SimClock) -> Self {
        CatalogControl {
            recorder: Recorder::new(options.seed, options.nr_cpus),
            state: State::with_clock(options, clock),
            handles: Handles::default(),
            dynamic: dynamic::DynamicEvents::default(),
        }
    }

    /// The simulation's clock (tests move a manual one).
    pub fn clock(&self) -> &SimClock {
        &self.state.clock
    }

    fn root(&self) -> RootFiles<'_> {
        RootFiles {
            state: &self.state,
            recorder: &self.recorder,
            handles: &self.handles,
            dynamic: &self.dynamic,
        }
    }

    fn per_cpu(&self) -> PerCpuFiles<'_> {
        PerCpuFiles {
            state: &self.state,
            recorder: &self.recorder,
            handles: &self.handles,
        }
    }

    /// Advances the simulation to now (done before every file operation; public for
    /// callers that drive the clock themselves).
    pub fn catch_up(&self, tree: &Tree) {
        self.recorder.catch_up(&self.state, tree);
    }

    /// Records written so far, records dropped by filters, and lines rendered in the
    /// `field=value` fallback style.
    pub fn data_plane_counters(&self) -> (u64, u64, u64) {
        self.recorder.data_plane_counters()
    }

    /// Wakes every blocked `trace_pipe` reader and forgets every handle.
    fn close_all(&self) {
        self.handles.close_all(&self.state);
    }
}

impl ControlFiles for CatalogControl {
    fn open(&self, tree: &Tree, node: NodeRef, flags: OpenFlags) -> Result<u64, FsError> {
        self.catch_up(tree);
        match node.kind {
            NodeKind::File(FileKind::PerCpu(file)) => self.per_cpu().open(tree, node, file, flags),
            NodeKind::File(kind) => self.root().open(tree, node, kind, flags),
            NodeKind::Dir(_) => Err(FsError::IsDir),
        }
    }

    fn read(
        &self,
        tree: &Tree,
        node: NodeRef,
        handle: u64,
        offset: u64,
        size: u32,
        nonblock: bool,
    ) -> Result<Vec<u8>, FsError> {
        self.catch_up(tree);
        match node.kind {
            NodeKind::File(FileKind::Root(file)) => self
                .root()
                .read(tree, node, file, handle, offset, size, nonblock),
            NodeKind::File(FileKind::PerCpu(file)) => self
                .per_cpu()
                .read(tree, node, file, handle, offset, size, nonblock),
            NodeKind::File(FileKind::TraceOption(row)) => {
                let on = self
                    .state
                    .instance(tree, node.dir, |i| i.options & (1 << row) != 0);
                Ok(slice_at(if on { b"1\n" } else { b"0\n" }, offset, size))
            }
            NodeKind::File(FileKind::EventHist) => match self.handles.kind(handle) {
                Some(handles::HandleKind::Snapshot(text)) => Ok(slice_at(&text, offset, size)),
                _ => Ok(slice_at(
                    &events::read(&self.state, tree, node, FileKind::EventHist)?,
                    offset,
                    size,
                )),
            },
            NodeKind::File(kind) => Ok(slice_at(
                &events::read(&self.state, tree, node, kind)?,
                offset,
                size,
            )),
            NodeKind::Dir(_) => Err(FsError::IsDir),
        }
    }

    fn write(
        &self,
        tree: &Tree,
        node: NodeRef,
        handle: u64,
        data: &[u8],
    ) -> Result<usize, FsError> {
        self.catch_up(tree);
        match node.kind {
            NodeKind::File(FileKind::Root(file)) => {
                self.root().write(tree, node, file, handle, data)?
            }
            NodeKind::File(FileKind::PerCpu(file)) => {
                self.per_cpu().write(tree, node, file, data)?
            }
            NodeKind::File(FileKind::TraceOption(row)) => {
                let on = input::parse_enable(data)?;
                self.state
                    .instance(tree, node.dir, |i| i.set_option(row, on));
            }
            NodeKind::File(kind) => events::write(&self.state, tree, node, kind, data)?,
            NodeKind::Dir(_) => return Err(FsError::IsDir),
        }
        Ok(data.len())
    }

    fn release(&self, handle: u64) {
        self.handles.close(&self.state, handle);
    }

    fn mkdir(&self, tree: &Tree, parent: NodeRef, name: &str) -> Result<(), FsError> {
        self.catch_up(tree);
        instances::make(&self.state, tree, parent, name)
    }

    fn rmdir(&self, tree: &Tree, parent: NodeRef, name: &str) -> Result<(), FsError> {
        self.catch_up(tree);
        instances::remove(&self.state, tree, parent, name)
    }

    fn reset(&self) {
        self.close_all();
    }
}

/// Where the catalog comes from and how the simulation runs.
#[derive(Clone, Debug, Default)]
pub struct CatalogSourceOptions {
    /// A catalog file; `None` for the embedded one.
    pub catalog: Option<PathBuf>,
    /// The catalog file's bytes, read before the sandbox hid its path (`catalog` then only
    /// names it).
    pub loaded: Option<Vec<u8>>,
    /// Ownership of every node.
    pub config: TreeConfig,
    /// The simulation's tunables.
    pub control: CatalogOptions,
}

/// A running catalog source.
pub struct CatalogSource {
    tree: Arc<Tree>,
    control: Arc<CatalogControl>,
    origin: String,
}

impl CatalogSource {
    /// Loads the catalog and starts the simulation.
    pub fn start(options: &CatalogSourceOptions) -> Result<CatalogSource, String> {
        let mut embedded_copy = false;
        let mut tree = match &options.catalog {
            None => Tree::embedded(options.config),
            Some(path) => {
                let bytes = match &options.loaded {
                    Some(bytes) => bytes.clone(),
                    None => catalog::load_file(path).map_err(|e| e.to_string())?,
                };
                embedded_copy = bytes == catalog::EMBEDDED;
                if embedded_copy {
                    // The installed copy of the embedded catalog (what libvirt's <source dir>
                    // names): served from the binary's pages, which every daemon shares.
                    Tree::embedded(options.config)
                } else {
                    Tree::from_image(Image::Owned(bytes.into()), options.config)
                        .map_err(|e| format!("catalog {}: {e}", path.display()))?
                }
            }
        };
        advertised::prepare_tree(&mut tree);
        let tree = Arc::new(tree);
        let control = Arc::new(CatalogControl::with_options(options.control.clone()));
        let origin = match (&options.catalog, embedded_copy) {
            (None, _) => "embedded".to_string(),
            (Some(path), true) => format!("{}, the embedded one", path.display()),
            (Some(path), false) => path.display().to_string(),
        };
        Ok(CatalogSource {
            tree,
            control,
            origin,
        })
    }
}

impl Source for CatalogSource {
    fn tree(&self) -> &Arc<Tree> {
        &self.tree
    }

    fn control(&self) -> Arc<dyn ControlFiles> {
        self.control.clone()
    }

    fn figures(&self) -> Vec<SourceFigure> {
        let (records, filtered, fallbacks) = self.control.data_plane_counters();
        [
            ("records", records),
            ("records_filtered", filtered),
            ("render_fallbacks", fallbacks),
        ]
        .into_iter()
        .map(|(name, value)| SourceFigure {
            name,
            value,
            kind: FigureKind::Counter,
        })
        .collect()
    }

    fn listings_are_frozen(&self) -> bool {
        // Listings change only through the guest's own writes: mkdir/rmdir of instances, and
        // dynamic events (the cache policy gives `events/` a short timeout for those).
        true
    }

    fn describe(&self) -> String {
        let (systems, events, dirs, files) = self.tree.counts();
        format!(
            "catalog: {systems} systems, {events} events, {dirs} directories, {files} files ({})",
            self.origin
        )
    }

    fn wake_readers(&self) {
        self.control.close_all();
    }

    fn shutdown(&self) {
        self.control.close_all();
    }
}

#[cfg(test)]
mod tests;
