//! The catalog source's emulation of tracefs control files.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::recorder::{EventRender, Producer, RecorderStats};
use super::root::{InstanceState, OpenHandle};
use super::MAX_CONTROL_WRITE;
use super::{filter, format, slice_at, trigger, ControlFiles, OpenFlags, ERROR_LOG_ENTRIES};
use crate::error::FsError;
use crate::layout::FileKind;
use crate::tree::{DirId, Ino, NodeKind, NodeRef, Tree};

/// What an event's `filter` file holds.
#[derive(Default)]
pub(super) enum FilterSlot {
    /// No filter: reads `none`.
    #[default]
    Unset,
    /// A working filter.
    Active(filter::Filter),
    /// The last write failed: like the kernel, the event is unfiltered and the file shows the
    /// error (this text).
    Failed(String),
}

/// State of one event that differs from the default (disabled, no filter, no triggers).
#[derive(Default)]
pub(super) struct EventState {
    pub(super) enabled: bool,
    pub(super) filter: FilterSlot,
    pub(super) triggers: trigger::TriggerSet,
}

impl EventState {
    fn is_default(&self) -> bool {
        !self.enabled && matches!(self.filter, FilterSlot::Unset) && self.triggers.is_empty()
    }
}

/// Emulated tracefs control state for the catalog source. Only events whose state differs from
/// the default have an entry, so an idle tree costs nothing here.
pub struct CatalogControl {
    /// Keyed by the event directory's inode number, which includes its generation: state of a
    /// removed event can never leak into a new event of the same name.
    pub(super) events: Mutex<HashMap<Ino, EventState>>,
    /// Per-instance state (buffer, tracing_on, options ...), keyed by the instance directory's
    /// inode (the root directory for the top level). Created on first use.
    pub(super) instances: Mutex<HashMap<Ino, InstanceState>>,
    /// Per-open state of root files.
    pub(super) handles: Mutex<HashMap<u64, OpenHandle>>,
    pub(super) next_handle: AtomicU64,
    /// Zero of timestamps (error log, records): the kernel counts from boot.
    pub(super) started: Instant,
    pub(super) options: CatalogOptions,
    /// Compiled print fmts by event id.
    pub(super) renders: Mutex<HashMap<u32, Arc<EventRender>>>,
    pub(super) producer: Mutex<Producer>,
    pub(super) recorder: RecorderStats,
}

/// Tunables of the catalog source.
#[derive(Copy, Clone, Debug)]
pub struct CatalogOptions {
    /// Records per second produced per enabled event while tracing is on.
    pub rate: u32,
    /// Seed of the synthetic record generator (same seed, same records).
    pub seed: u64,
    /// Number of simulated CPUs.
    pub nr_cpus: u32,
    /// Default `buffer_size_kb` of a new instance.
    pub buffer_kb: u32,
    /// Readers that may wait in `trace_pipe` at once; more get EAGAIN. Keep it below the
    /// transport's worker count so blocked readers never take every worker.
    pub max_blocked_readers: usize,
}

impl Default for CatalogOptions {
    fn default() -> Self {
        CatalogOptions {
            rate: 10,
            seed: 1,
            nr_cpus: 1,
            buffer_kb: 1408,
            max_blocked_readers: 2,
        }
    }
}

impl Default for CatalogControl {
    fn default() -> Self {
        CatalogControl::with_options(CatalogOptions::default())
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Control state is updated by whole-value replacement; a poisoned lock still holds a
    // consistent value, so keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Parses an `enable` write: `0` or `1` with optional surrounding whitespace.
pub(super) fn parse_enable(data: &[u8]) -> Result<bool, FsError> {
    match std::str::from_utf8(data).map(str::trim) {
        Ok("0") => Ok(false),
        Ok("1") => Ok(true),
        _ => Err(FsError::Invalid(format!(
            "enable accepts 0 or 1, got {:?}",
            String::from_utf8_lossy(data)
        ))),
    }
}

/// A write as text; the kernel refuses a page or more.
pub(super) fn written_text(data: &[u8]) -> Result<&str, FsError> {
    if data.len() > MAX_CONTROL_WRITE {
        return Err(FsError::Invalid(format!(
            "write of {} bytes exceeds the {MAX_CONTROL_WRITE}-byte limit",
            data.len()
        )));
    }
    std::str::from_utf8(data).map_err(|_| FsError::Invalid("not UTF-8".into()))
}

impl CatalogControl {
    /// Creates an empty control state (everything disabled).
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates an empty control state with the given tunables.
    pub fn with_options(options: CatalogOptions) -> Self {
        CatalogControl {
            events: Mutex::default(),
            instances: Mutex::default(),
            handles: Mutex::default(),
            next_handle: AtomicU64::new(1),
            started: Instant::now(),
            renders: Mutex::default(),
            producer: Mutex::new(Producer::new(options.seed, options.nr_cpus)),
            recorder: RecorderStats::default(),
            options,
        }
    }

    /// Whether an event is enabled.
    pub fn is_enabled(&self, tree: &Tree, event: DirId) -> bool {
        lock(&self.events)
            .get(&tree.dir_ino(event))
            .is_some_and(|s| s.enabled)
    }

    pub(super) fn update(&self, tree: &Tree, event: DirId, f: impl FnOnce(&mut EventState)) {
        let key = tree.dir_ino(event);
        let mut events = lock(&self.events);
        let state = events.entry(key).or_default();
        f(state);
        if state.is_default() {
            events.remove(&key);
        }
    }

    /// Enables or disables every enable-able event below `dir`.
    fn set_enabled_below(&self, tree: &Tree, dir: DirId, on: bool) {
        for event in tree.events_below(dir) {
            if tree.event_has_file(event, FileKind::EventEnable) {
                self.update(tree, event, |s| s.enabled = on);
            }
        }
    }

    /// The `0`/`1`/`X`/`?` summary of a system or top-level `enable`.
    fn summary_below(&self, tree: &Tree, dir: DirId) -> &'static [u8] {
        let (mut on, mut off) = (false, false);
        let events = lock(&self.events);
        for event in tree.events_below(dir) {
            if !tree.event_has_file(event, FileKind::EventEnable) {
                continue;
            }
            if events.get(&tree.dir_ino(event)).is_some_and(|s| s.enabled) {
                on = true;
            } else {
                off = true;
            }
        }
        match (on, off) {
            (true, true) => b"X\n",
            (true, false) => b"1\n",
            (false, true) => b"0\n",
            (false, false) => b"?\n",
        }
    }

    /// Appends a kernel-style entry to the error log of the instance `dir` belongs to (oldest
    /// dropped past the bound).
    pub(super) fn log_error(&self, tree: &Tree, dir: DirId, entry: Option<String>) {
        let Some(entry) = entry else { return };
        let t = self.started.elapsed();
        let entry = format!("[{:>5}.{:06}] {entry}", t.as_secs(), t.subsec_micros());
        self.instance(tree, dir, |i| {
            if i.error_log.len() == ERROR_LOG_ENTRIES {
                i.error_log.remove(0);
            }
            i.error_log.push(entry);
        });
    }

    /// Drops state of events that no longer exist (after the tree removed them).
    pub fn prune(&self, tree: &Tree) {
        lock(&self.events).retain(|&ino, _| tree.node(ino).is_ok());
    }

    fn write_event_filter(&self, tree: &Tree, event: DirId, text: &str) -> Result<(), FsError> {
        let parsed = tree.with_format(event, |fmt| {
            let fields: Vec<format::Field<'_>> = format::fields(fmt).collect();
            filter::parse(text, &fields)
        });
        match parsed {
            Ok(f) if f.is_none() => self.update(tree, event, |s| s.filter = FilterSlot::Unset),
            Ok(f) => self.update(tree, event, |s| s.filter = FilterSlot::Active(f)),
            Err(e) => {
                self.log_error(tree, event, e.error_log_entry());
                if let Some(shown) = e.filter_file_text() {
                    self.update(tree, event, |s| s.filter = FilterSlot::Failed(shown));
                }
                return Err(filter_errno(&e));
            }
        }
        Ok(())
    }

    /// Like the kernel: every event of the system gets the filter where it parses and the
    /// subsystem error where it does not; the write itself succeeds if the system has events.
    fn write_system_filter(&self, tree: &Tree, system: DirId, text: &str) -> Result<(), FsError> {
        let events = tree.events_below(system);
        if events.is_empty() {
            return Err(FsError::NotFound);
        }
        for event in events {
            let parsed = tree.with_format(event, |fmt| {
                let fields: Vec<format::Field<'_>> = format::fields(fmt).collect();
                filter::parse_for_system(text, &fields)
            });
            match parsed {
                Ok(f) if f.is_none() => self.update(tree, event, |s| s.filter = FilterSlot::Unset),
                Ok(f) => self.update(tree, event, |s| s.filter = FilterSlot::Active(f)),
                Err(e) => {
                    if !e.replaces_filter() {
                        return Err(filter_errno(&e));
                    }
                    self.log_error(tree, event, e.error_log_entry());
                    let shown = e.filter_file_text().unwrap_or_default();
                    self.update(tree, event, |s| s.filter = FilterSlot::Failed(shown));
                }
            }
        }
        Ok(())
    }

    fn write_trigger(&self, tree: &Tree, event: DirId, text: &str) -> Result<(), FsError> {
        if text.trim().is_empty() {
            return Ok(());
        }
        let events_dir = tree.events_dir_of(tree.instance_of(event));
        let exists = |system: &str, name: &str| {
            events_dir.is_some_and(|dir| tree.find_event_in(dir, system, name).is_some())
        };
        let parsed = tree.with_format(event, |fmt| {
            let fields: Vec<format::Field<'_>> = format::fields(fmt).collect();
            trigger::parse(text, &fields, &exists)
        });
        let log = |e: &trigger::TriggerError| {
            let system = tree.dir_name(tree.parent_of(event));
            self.log_error(
                tree,
                event,
                e.error_log_entry(&system, &tree.dir_name(event)),
            );
            trigger_errno(e)
        };
        let command = parsed.map_err(|e| log(&e))?;
        let mut result = Ok(());
        self.update(tree, event, |s| result = s.triggers.apply(command));
        result.map_err(|e| log(&e))
    }

    /// Whether `event` runs in soft mode: it has triggers, or another event's
    /// `enable_event`/`disable_event` trigger targets it (`enable` then shows `*`).
    fn soft_mode(&self, tree: &Tree, event: DirId) -> bool {
        let events = lock(&self.events);
        if events
            .get(&tree.dir_ino(event))
            .is_some_and(|s| !s.triggers.is_empty())
        {
            return true;
        }
        let (system, name) = (tree.dir_name(tree.parent_of(event)), tree.dir_name(event));
        events
            .values()
            .flat_map(|s| s.triggers.triggers())
            .any(|t| match &t.action {
                trigger::Action::EnableEvent {
                    system: s,
                    event: e,
                }
                | trigger::Action::DisableEvent {
                    system: s,
                    event: e,
                } => *s == system && *e == name,
                _ => false,
            })
    }
}

fn filter_errno(e: &filter::FilterError) -> FsError {
    match e.errno() {
        libc::EINVAL => FsError::Invalid(e.to_string()),
        other => FsError::Os(other),
    }
}

fn trigger_errno(e: &trigger::TriggerError) -> FsError {
    match e.errno() {
        libc::EINVAL => FsError::Invalid(e.to_string()),
        libc::EEXIST => FsError::Exists,
        libc::ENOENT => FsError::NotFound,
        other => FsError::Os(other),
    }
}

impl CatalogControl {
    /// Content of a file of `events/` (event, system and top-level files).
    fn read_events_file(
        &self,
        tree: &Tree,
        node: NodeRef,
        kind: FileKind,
    ) -> Result<Vec<u8>, FsError> {
        let key = tree.dir_ino(node.dir);
        Ok(match kind {
            FileKind::EventEnable => {
                let on = if self.is_enabled(tree, node.dir) {
                    "1"
                } else {
                    "0"
                };
                let soft = if self.soft_mode(tree, node.dir) {
                    "*"
                } else {
                    ""
                };
                format!("{on}{soft}\n").into_bytes()
            }
            FileKind::SystemEnable | FileKind::EventsEnable => {
                self.summary_below(tree, node.dir).to_vec()
            }
            FileKind::EventFilter => match lock(&self.events).get(&key).map(|s| &s.filter) {
                Some(FilterSlot::Active(f)) => f.filter_file_text().into_bytes(),
                Some(FilterSlot::Failed(shown)) => shown.clone().into_bytes(),
                Some(FilterSlot::Unset) | None => b"none\n".to_vec(),
            },
            FileKind::SystemFilter => filter::SYSTEM_FILTER_TEXT.as_bytes().to_vec(),
            FileKind::EventTrigger => {
                let help = if tree.event_has_file(node.dir, FileKind::EventHist) {
                    trigger::HELP_TEXT
                } else {
                    trigger::HELP_TEXT_NO_HIST_SNAPSHOT
                };
                match lock(&self.events).get(&key) {
                    Some(s) => s.triggers.render_with_help(help).into_bytes(),
                    None => help.as_bytes().to_vec(),
                }
            }
            // No histogram data without recorded events: the kernel prints only its header.
            FileKind::EventHist | FileKind::EventHistDebug => Vec::new(),
            FileKind::EventInject => return Err(FsError::Invalid("inject is write-only".into())),
            _ => return tree.with_static_content(node.ino, <[u8]>::to_vec),
        })
    }

    /// Applies a write to a file of `events/`.
    fn write_events_file(
        &self,
        tree: &Tree,
        node: NodeRef,
        kind: FileKind,
        data: &[u8],
    ) -> Result<(), FsError> {
        let text = written_text(data)?;
        match kind {
            FileKind::EventEnable => {
                let on = parse_enable(data)?;
                self.update(tree, node.dir, |s| s.enabled = on);
            }
            FileKind::SystemEnable | FileKind::EventsEnable => {
                self.set_enabled_below(tree, node.dir, parse_enable(data)?)
            }
            FileKind::EventFilter => self.write_event_filter(tree, node.dir, text)?,
            FileKind::SystemFilter => self.write_system_filter(tree, node.dir, text)?,
            FileKind::EventTrigger => self.write_trigger(tree, node.dir, text)?,
            _ => return Err(FsError::Invalid(format!("{kind:?} is not writable"))),
        }
        Ok(())
    }
}

impl ControlFiles for CatalogControl {
    fn open(&self, tree: &Tree, node: NodeRef, flags: OpenFlags) -> Result<u64, FsError> {
        match node.kind {
            NodeKind::File(kind) => self.open_file(tree, node, kind, flags),
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
    ) -> Result<Vec<u8>, FsError> {
        match node.kind {
            NodeKind::File(FileKind::Root(file)) => {
                self.read_root_file(tree, node, file, handle, offset, size)
            }
            NodeKind::File(FileKind::TraceOption(row)) => {
                let on = self.instance(tree, node.dir, |i| i.options & (1 << row) != 0);
                Ok(slice_at(if on { b"1\n" } else { b"0\n" }, offset, size))
            }
            NodeKind::File(kind) => Ok(slice_at(
                &self.read_events_file(tree, node, kind)?,
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
                self.write_root_file(tree, node, file, handle, data)?
            }
            NodeKind::File(FileKind::TraceOption(row)) => {
                let on = parse_enable(data)?;
                self.instance(tree, node.dir, |i| i.set_option(row, on));
            }
            NodeKind::File(kind) => self.write_events_file(tree, node, kind, data)?,
            NodeKind::Dir(_) => return Err(FsError::IsDir),
        }
        Ok(data.len())
    }

    fn release(&self, handle: u64) {
        self.close_handle(handle);
    }

    fn mkdir(&self, tree: &Tree, parent: NodeRef, name: &str) -> Result<(), FsError> {
        self.make_instance(tree, parent, name)
    }

    fn rmdir(&self, tree: &Tree, parent: NodeRef, name: &str) -> Result<(), FsError> {
        self.remove_instance(tree, parent, name)
    }

    fn reset(&self) {
        self.drop_handles();
    }
}
