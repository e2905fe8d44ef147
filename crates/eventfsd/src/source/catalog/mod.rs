//! The catalog source: a simulated kernel behind a snapshot of a real kernel's event catalog.
//!
//! Layers, imports pointing down only:
//! - [`state`]: per-event and per-instance state (the bottom; knows no file);
//! - [`recorder`]: synthetic records, filters, triggers and pid filtering applied to them,
//!   rendering of `trace`/`trace_pipe`;
//! - [`cmdlines`]: the comms of recorded tasks (`saved_cmdlines`);
//! - [`raw`]: `trace_pipe_raw`'s binary pages, over the recorder;
//! - [`handles`]: what each open file carries;
//! - [`events`], [`root`], [`per_cpu`], [`instances`]: what a read or write of each file does;
//! - this module: [`CatalogControl`], which dispatches [`ControlFiles`] calls to those, and
//!   [`CatalogSource`], the running source (tree, control, producer thread).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::stats::{FigureKind, SourceFigure};
use eventfs_core::catalog;
use eventfs_core::control::{slice_at, ControlFiles, OpenFlags};
use eventfs_core::layout::FileKind;
use eventfs_core::tree::{Image, NodeKind, NodeRef, Tree, TreeConfig};
use eventfs_core::FsError;

use super::Source;

pub mod cmdlines;
pub mod events;
pub mod handles;
pub mod input;
pub mod instances;
pub mod per_cpu;
pub mod raw;
pub mod recorder;
pub mod root;
pub mod state;

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
        CatalogControl {
            recorder: Recorder::new(options.seed, options.nr_cpus),
            state: State::new(options),
            handles: Handles::default(),
        }
    }

    fn root(&self) -> RootFiles<'_> {
        RootFiles {
            state: &self.state,
            recorder: &self.recorder,
            handles: &self.handles,
        }
    }

    fn per_cpu(&self) -> PerCpuFiles<'_> {
        PerCpuFiles {
            state: &self.state,
            recorder: &self.recorder,
            handles: &self.handles,
        }
    }

    /// Produces the records owed for `elapsed` time.
    pub fn produce(&self, tree: &Tree, elapsed: Duration) {
        self.recorder.produce(&self.state, tree, elapsed);
    }

    /// Records written so far, records dropped by filters, and lines rendered in the
    /// `field=value` fallback style.
    pub fn data_plane_counters(&self) -> (u64, u64, u64) {
        self.recorder.data_plane_counters()
    }

    /// Starts the producer thread for `tree`. It ends when the returned [`Producer`] is
    /// dropped, or when the control state or the tree is.
    #[must_use = "dropping the Producer stops the thread"]
    pub fn start_recording(self: &Arc<Self>, tree: &Arc<Tree>) -> Producer {
        let control: Weak<CatalogControl> = Arc::downgrade(self);
        let tree: Weak<Tree> = Arc::downgrade(tree);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("catalog-records".into())
            .spawn(move || loop {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                let Some(idle) = control.upgrade().map(|c| c.state.recording_idle()) else {
                    return;
                };
                if idle {
                    // Nothing to record: sleep until an event's state changes (or Drop), so
                    // that an idle daemon costs no CPU. A change made before this park has
                    // left its wake-up token, so none is missed.
                    std::thread::park();
                    continue;
                }
                std::thread::sleep(recorder::TICK);
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                let (Some(control), Some(tree)) = (control.upgrade(), tree.upgrade()) else {
                    return;
                };
                control.produce(&tree, recorder::TICK);
            })
            .expect("spawning the record producer");
        self.state.set_producer(thread.thread().clone());
        Producer {
            stop,
            thread: Some(thread),
        }
    }

    /// Wakes every blocked `trace_pipe` reader and forgets every handle.
    fn close_all(&self) {
        self.handles.close_all(&self.state);
    }
}

/// The running producer thread; dropping it stops the thread.
pub struct Producer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl ControlFiles for CatalogControl {
    fn open(&self, tree: &Tree, node: NodeRef, flags: OpenFlags) -> Result<u64, FsError> {
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
        instances::make(&self.state, tree, parent, name)
    }

    fn rmdir(&self, tree: &Tree, parent: NodeRef, name: &str) -> Result<(), FsError> {
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
    producer: std::sync::Mutex<Option<Producer>>,
}

impl CatalogSource {
    /// Loads the catalog and starts the simulation.
    pub fn start(options: &CatalogSourceOptions) -> Result<CatalogSource, String> {
        let mut embedded_copy = false;
        let tree = match &options.catalog {
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
        let tree = Arc::new(tree);
        let control = Arc::new(CatalogControl::with_options(options.control));
        let producer = control.start_recording(&tree);
        let origin = match (&options.catalog, embedded_copy) {
            (None, _) => "embedded".to_string(),
            (Some(path), true) => format!("{}, the embedded one", path.display()),
            (Some(path), false) => path.display().to_string(),
        };
        Ok(CatalogSource {
            tree,
            control,
            origin,
            producer: std::sync::Mutex::new(Some(producer)),
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
        // Listings change only through the guest's own mkdir/rmdir.
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
        state::lock(&self.producer).take();
    }
}

#[cfg(test)]
mod tests;
