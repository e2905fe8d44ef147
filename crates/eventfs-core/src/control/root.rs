//! The catalog source's root files (`set_event`, `tracing_on`, `trace`, `instances/` ...), per
//! instance, as tracefs has them at the top level and in each `instances/<name>/`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::catalog::{lock, parse_enable, written_text, CatalogControl};
use super::recorder::PipeReader;
use super::trace::Ring;
use super::{slice_at, OpenFlags};
use crate::error::FsError;
use crate::layout::{DirKind, FileKind, RootFile, OPTIONS};
use crate::tree::{DirId, Ino, NodeKind, NodeRef, Tree};

/// The state tracefs keeps per instance.
pub(crate) struct InstanceState {
    pub tracing_on: bool,
    /// The instance's trace buffer (its size is `buffer_size_kb`).
    pub ring: Arc<Ring>,
    /// Index of the selected clock in the catalog's `trace_clock` list.
    pub clock: usize,
    /// Trace option values, one bit per row of [`OPTIONS`].
    pub options: u64,
    pub event_pids: BTreeSet<u32>,
    pub cpumask: u64,
    pub error_log: Vec<String>,
    /// Open handles on files of this instance (rmdir is EBUSY while any is open).
    pub open_handles: usize,
}

impl InstanceState {
    fn new(control: &CatalogControl, tree: &Tree) -> Self {
        let nr_cpus = control.options.nr_cpus.clamp(1, 64);
        InstanceState {
            tracing_on: true,
            ring: Arc::new(Ring::new(nr_cpus, control.options.buffer_kb as usize)),
            clock: 0,
            options: tree.options().1,
            event_pids: BTreeSet::new(),
            cpumask: if nr_cpus == 64 {
                u64::MAX
            } else {
                (1 << nr_cpus) - 1
            },
            error_log: Vec::new(),
            open_handles: 0,
        }
    }

    pub fn set_option(&mut self, row: u8, on: bool) {
        if on {
            self.options |= 1 << row;
        } else {
            self.options &= !(1 << row);
        }
    }
}

/// Per-open state of a control file.
pub(crate) struct OpenHandle {
    /// The instance the file belongs to.
    pub instance: Ino,
    pub kind: HandleKind,
}

/// What an open handle carries beyond its instance.
pub(crate) enum HandleKind {
    /// Nothing: the file is rendered afresh on each read.
    Plain,
    /// `trace`: the text as of open, so reads at growing offsets see one consistent buffer.
    Snapshot(Arc<Vec<u8>>),
    /// `trace_pipe`: a consuming reader.
    Pipe(Arc<PipeReader>),
}

/// A handle's kind, cloned out of the handle table so reads do not hold its lock.
enum HandleKindRef {
    Plain,
    Snapshot(Arc<Vec<u8>>),
    Pipe(Arc<PipeReader>),
}

/// The clock names of a `trace_clock` text (`[local] global counter ...`).
fn clock_names(text: &str) -> Vec<&str> {
    text.split_whitespace()
        .map(|w| w.trim_start_matches('[').trim_end_matches(']'))
        .collect()
}

/// Parses one `set_event` token (`sys:ev`, `sys:*`, `*:ev`, `sys:`, `ev`, `*:*`) into a
/// (system, event) glob pair.
fn set_event_target(token: &str) -> (&str, &str) {
    match token.split_once(':') {
        Some((system, "")) => (system, "*"),
        Some((system, event)) => (system, event),
        None => ("*", token),
    }
}

fn matches_glob(pattern: &str, name: &str) -> bool {
    pattern == "*" || pattern == name
}

impl CatalogControl {
    /// Runs `f` on the state of the instance `dir` belongs to, creating it on first use.
    pub(super) fn instance<R>(
        &self,
        tree: &Tree,
        dir: DirId,
        f: impl FnOnce(&mut InstanceState) -> R,
    ) -> R {
        let key = tree.dir_ino(tree.instance_of(dir));
        let mut instances = lock(&self.instances);
        let state = instances
            .entry(key)
            .or_insert_with(|| InstanceState::new(self, tree));
        f(state)
    }

    /// Events of the instance `dir` belongs to, as (system, event, directory).
    fn instance_events(&self, tree: &Tree, dir: DirId) -> Vec<(String, String, DirId)> {
        let Some(events_dir) = tree.events_dir_of(tree.instance_of(dir)) else {
            return Vec::new();
        };
        tree.events_below(events_dir)
            .into_iter()
            .map(|event| {
                let system = tree.dir_name(tree.parent_of(event));
                (system, tree.dir_name(event), event)
            })
            .collect()
    }

    /// Opens a control file: applies O_TRUNC effects and counts the handle against its
    /// instance (rmdir of an instance with open files is EBUSY).
    pub(super) fn open_file(
        &self,
        tree: &Tree,
        node: NodeRef,
        kind: FileKind,
        flags: OpenFlags,
    ) -> Result<u64, FsError> {
        if flags.truncate {
            let FileKind::Root(file) = kind else {
                return self.register_handle(tree, node, HandleKind::Plain);
            };
            match file {
                RootFile::SetEvent => {
                    if let Some(events) = tree.events_dir_of(tree.instance_of(node.dir)) {
                        for event in tree.events_below(events) {
                            self.update(tree, event, |s| s.enabled = false);
                        }
                    }
                }
                RootFile::SetEventPid => self.instance(tree, node.dir, |i| i.event_pids.clear()),
                RootFile::ErrorLog => self.instance(tree, node.dir, |i| i.error_log.clear()),
                RootFile::Trace => self.instance(tree, node.dir, |i| i.ring.clear()),
                _ => {}
            }
        }
        let kind = match kind {
            FileKind::Root(RootFile::Trace) if flags.read => {
                HandleKind::Snapshot(Arc::new(self.trace_text(tree, node.dir)))
            }
            FileKind::Root(RootFile::TracePipe) => HandleKind::Pipe(Arc::new(PipeReader {
                ring: self.instance(tree, node.dir, |i| i.ring.clone()),
                pending: Default::default(),
                closed: AtomicBool::new(false),
                nonblock: flags.nonblock,
            })),
            _ => HandleKind::Plain,
        };
        self.register_handle(tree, node, kind)
    }

    fn register_handle(
        &self,
        tree: &Tree,
        node: NodeRef,
        kind: HandleKind,
    ) -> Result<u64, FsError> {
        let instance = tree.dir_ino(tree.instance_of(node.dir));
        self.instance(tree, node.dir, |i| i.open_handles += 1);
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(handle, OpenHandle { instance, kind });
        Ok(handle)
    }

    pub(super) fn close_handle(&self, handle: u64) {
        let Some(open) = lock(&self.handles).remove(&handle) else {
            return;
        };
        if let HandleKind::Pipe(pipe) = &open.kind {
            // A reader blocked on this handle must notice and return.
            pipe.closed.store(true, Ordering::Relaxed);
            pipe.ring.wake_all();
        }
        if let Some(state) = lock(&self.instances).get_mut(&open.instance) {
            state.open_handles = state.open_handles.saturating_sub(1);
        }
    }

    pub(super) fn drop_handles(&self) {
        let handles: Vec<u64> = lock(&self.handles).keys().copied().collect();
        for handle in handles {
            self.close_handle(handle);
        }
    }

    fn handle_kind(&self, handle: u64) -> Option<HandleKindRef> {
        lock(&self.handles).get(&handle).map(|h| match &h.kind {
            HandleKind::Plain => HandleKindRef::Plain,
            HandleKind::Snapshot(text) => HandleKindRef::Snapshot(text.clone()),
            HandleKind::Pipe(pipe) => HandleKindRef::Pipe(pipe.clone()),
        })
    }

    pub(super) fn read_root_file(
        &self,
        tree: &Tree,
        node: NodeRef,
        file: RootFile,
        handle: u64,
        offset: u64,
        size: u32,
    ) -> Result<Vec<u8>, FsError> {
        let content: Vec<u8> = match file {
            RootFile::Readme | RootFile::AvailableTracers => {
                return tree.with_static_content(node.ino, |b| slice_at(b, offset, size))
            }
            RootFile::AvailableEvents => self
                .instance_events(tree, node.dir)
                .iter()
                .map(|(s, e, _)| format!("{s}:{e}\n"))
                .collect::<String>()
                .into_bytes(),
            RootFile::SetEvent => self
                .instance_events(tree, node.dir)
                .iter()
                .filter(|(_, _, dir)| self.is_enabled(tree, *dir))
                .map(|(s, e, _)| format!("{s}:{e}\n"))
                .collect::<String>()
                .into_bytes(),
            RootFile::BufferSizeKb => {
                let kb = self.instance(tree, node.dir, |i| i.ring.buffer_size_kb());
                format!("{kb}\n").into_bytes()
            }
            RootFile::BufferTotalSizeKb => {
                let (kb, cpus) = self.instance(tree, node.dir, |i| {
                    (i.ring.buffer_size_kb(), i.ring.nr_cpus())
                });
                format!("{}\n", kb as u64 * u64::from(cpus)).into_bytes()
            }
            RootFile::CurrentTracer => b"nop\n".to_vec(),
            RootFile::ErrorLog => self
                .instance(tree, node.dir, |i| i.error_log.concat())
                .into_bytes(),
            RootFile::SetEventPid => self
                .instance(tree, node.dir, |i| {
                    i.event_pids
                        .iter()
                        .map(|p| format!("{p}\n"))
                        .collect::<String>()
                })
                .into_bytes(),
            RootFile::TraceClock => {
                let text = tree.trace_clock();
                let names = clock_names(&text);
                let selected = self.instance(tree, node.dir, |i| i.clock);
                let mut out = names
                    .iter()
                    .enumerate()
                    .map(|(n, name)| {
                        if n == selected {
                            format!("[{name}]")
                        } else {
                            name.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                out.push('\n');
                out.into_bytes()
            }
            RootFile::TraceOptions => {
                let (present, _) = tree.options();
                let values = self.instance(tree, node.dir, |i| i.options);
                OPTIONS
                    .iter()
                    .enumerate()
                    .filter(|(row, _)| present & (1 << row) != 0)
                    .map(|(row, o)| {
                        let prefix = if values & (1 << row) != 0 { "" } else { "no" };
                        format!("{prefix}{}\n", o.name)
                    })
                    .collect::<String>()
                    .into_bytes()
            }
            RootFile::TracingCpumask => {
                format!("{:x}\n", self.instance(tree, node.dir, |i| i.cpumask)).into_bytes()
            }
            RootFile::TracingOn => {
                if self.instance(tree, node.dir, |i| i.tracing_on) {
                    b"1\n".to_vec()
                } else {
                    b"0\n".to_vec()
                }
            }
            // The catalog has no kernel symbols and no dynamic events defined yet.
            RootFile::AvailableFilterFunctions
            | RootFile::DynamicEvents
            | RootFile::KprobeEvents
            | RootFile::UprobeEvents
            | RootFile::SyntheticEvents => Vec::new(),
            RootFile::TraceMarker => {
                return Err(FsError::Invalid("trace_marker is write-only".into()))
            }
            RootFile::Trace => match self.handle_kind(handle) {
                Some(HandleKindRef::Snapshot(text)) => return Ok(slice_at(&text, offset, size)),
                _ => self.trace_text(tree, node.dir),
            },
            RootFile::TracePipe => match self.handle_kind(handle) {
                Some(HandleKindRef::Pipe(pipe)) => return self.read_pipe(tree, &pipe, size),
                _ => return Err(FsError::Os(libc::EBADF)),
            },
        };
        Ok(slice_at(&content, offset, size))
    }

    pub(super) fn write_root_file(
        &self,
        tree: &Tree,
        node: NodeRef,
        file: RootFile,
        _handle: u64,
        data: &[u8],
    ) -> Result<(), FsError> {
        let text = written_text(data)?;
        let value = text.trim();
        match file {
            RootFile::TracingOn => {
                let on = parse_enable(data)?;
                self.instance(tree, node.dir, |i| i.tracing_on = on);
            }
            RootFile::BufferSizeKb => {
                let kb: u32 = value
                    .parse()
                    .ok()
                    .filter(|&kb| kb > 0 && kb <= 1 << 20)
                    .ok_or_else(|| FsError::Invalid(format!("buffer_size_kb {value:?}")))?;
                self.instance(tree, node.dir, |i| i.ring.resize(kb as usize));
            }
            RootFile::CurrentTracer => {
                // Only the event tracer (nop) is emulated: the catalog has no functions to trace.
                if value != "nop" {
                    return Err(FsError::Invalid(format!(
                        "tracer {value:?} is not emulated"
                    )));
                }
            }
            RootFile::ErrorLog => self.instance(tree, node.dir, |i| i.error_log.clear()),
            RootFile::SetEvent => self.write_set_event(tree, node.dir, text)?,
            RootFile::SetEventPid => {
                let pids = text
                    .split_whitespace()
                    .map(|p| {
                        p.parse::<u32>()
                            .map_err(|_| FsError::Invalid(format!("pid {p:?}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                self.instance(tree, node.dir, |i| i.event_pids.extend(pids));
            }
            RootFile::TraceClock => {
                let clocks = tree.trace_clock();
                let index = clock_names(&clocks)
                    .iter()
                    .position(|c| *c == value)
                    .ok_or_else(|| FsError::Invalid(format!("unknown clock {value:?}")))?;
                self.instance(tree, node.dir, |i| i.clock = index);
            }
            RootFile::TraceOptions => {
                let (name, on) = match value.strip_prefix("no") {
                    Some(name) if OPTIONS.iter().any(|o| o.name == name) => (name, false),
                    _ => (value, true),
                };
                let (present, _) = tree.options();
                let row = OPTIONS
                    .iter()
                    .position(|o| o.name == name)
                    .filter(|&row| present & (1 << row) != 0)
                    .ok_or_else(|| FsError::Invalid(format!("unknown option {value:?}")))?;
                self.instance(tree, node.dir, |i| i.set_option(row as u8, on));
            }
            RootFile::TracingCpumask => {
                let mask = u64::from_str_radix(value.trim_start_matches("0x"), 16)
                    .map_err(|_| FsError::Invalid(format!("cpumask {value:?}")))?;
                self.instance(tree, node.dir, |i| i.cpumask = mask);
            }
            // Writing these clears them (`echo > trace`), which open with O_TRUNC already did.
            RootFile::Trace => {}
            RootFile::DynamicEvents
            | RootFile::KprobeEvents
            | RootFile::UprobeEvents
            | RootFile::SyntheticEvents => {
                if !value.is_empty() {
                    return Err(FsError::Invalid(format!(
                        "{file:?}: the catalog source cannot probe kernel code"
                    )));
                }
            }
            RootFile::TraceMarker => self.write_marker(tree, node.dir, text)?,
            RootFile::TracePipe => return Err(FsError::Invalid("trace_pipe is read-only".into())),
            RootFile::Readme
            | RootFile::AvailableEvents
            | RootFile::AvailableTracers
            | RootFile::AvailableFilterFunctions
            | RootFile::BufferTotalSizeKb => {
                return Err(FsError::Invalid(format!("{file:?} is read-only")))
            }
        }
        Ok(())
    }

    /// `set_event`: one token per line or word; `!` disables; unknown events are EINVAL.
    fn write_set_event(&self, tree: &Tree, dir: DirId, text: &str) -> Result<(), FsError> {
        let events = self.instance_events(tree, dir);
        for token in text.split_whitespace() {
            let (enable, token) = match token.strip_prefix('!') {
                Some(rest) => (false, rest),
                None => (true, token),
            };
            let (system, event) = set_event_target(token);
            let mut matched = false;
            for (s, e, event_dir) in &events {
                if matches_glob(system, s)
                    && matches_glob(event, e)
                    && tree.event_has_file(*event_dir, FileKind::EventEnable)
                {
                    self.update(tree, *event_dir, |state| state.enabled = enable);
                    matched = true;
                }
            }
            if !matched {
                return Err(FsError::Invalid(format!(
                    "set_event: no event matches {token:?}"
                )));
            }
        }
        Ok(())
    }

    /// `mkdir instances/<name>`: a new instance with its own events state and buffer.
    pub(super) fn make_instance(
        &self,
        tree: &Tree,
        parent: NodeRef,
        name: &str,
    ) -> Result<(), FsError> {
        if parent.kind != NodeKind::Dir(DirKind::Instances) {
            return Err(FsError::Os(libc::EPERM));
        }
        let dir = tree.add_instance(name)?;
        self.instance(tree, dir, |_| ());
        Ok(())
    }

    /// `rmdir instances/<name>`: EBUSY while a file of the instance is open, like tracefs.
    pub(super) fn remove_instance(
        &self,
        tree: &Tree,
        parent: NodeRef,
        name: &str,
    ) -> Result<(), FsError> {
        if parent.kind != NodeKind::Dir(DirKind::Instances) {
            return Err(FsError::Os(libc::EPERM));
        }
        let (dir, _) = tree
            .instances()
            .into_iter()
            .find(|(_, n)| n == name)
            .ok_or(FsError::NotFound)?;
        let key = tree.dir_ino(dir);
        {
            let mut instances = lock(&self.instances);
            if instances.get(&key).is_some_and(|i| i.open_handles > 0) {
                return Err(FsError::Busy);
            }
            if let Some(state) = instances.remove(&key) {
                state.ring.shutdown();
            }
        }
        tree.remove_instance(name)?;
        self.prune(tree);
        Ok(())
    }
}
