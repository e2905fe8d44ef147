//! Control-file semantics: what reads and writes of `enable`, `filter`, `trigger` do.
//!
//! [`ControlFiles`] is the seam between the tree and an event source: the catalog source
//! emulates tracefs in [`CatalogControl`]; the host source forwards to a real tracefs instance.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::error::FsError;
use crate::layout::FileKind;
use crate::tree::{DirId, Ino, NodeKind, NodeRef, Tree};

pub mod filter;
pub mod format;
pub mod trigger;

/// Longest write the kernel accepts into a control file (it refuses `cnt >= PAGE_SIZE`).
pub const MAX_CONTROL_WRITE: usize = filter::MAX_FILTER_WRITE;
/// Entries kept in the error log (the kernel keeps the last 8).
pub const ERROR_LOG_ENTRIES: usize = 8;

/// Semantics of the non-static files of a tree, provided by an event source.
pub trait ControlFiles: Send + Sync {
    /// Called when the file is opened; `truncate` is true for `O_TRUNC`.
    fn open(&self, tree: &Tree, node: NodeRef, truncate: bool) -> Result<(), FsError> {
        let _ = (tree, node, truncate);
        Ok(())
    }
    /// The whole current content of the file.
    fn read(&self, tree: &Tree, node: NodeRef) -> Result<Vec<u8>, FsError>;
    /// Applies one write (one `echo`); returns the number of bytes consumed.
    fn write(&self, tree: &Tree, node: NodeRef, data: &[u8]) -> Result<usize, FsError>;
}

/// What an event's `filter` file holds.
#[derive(Default)]
enum FilterSlot {
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
struct EventState {
    enabled: bool,
    filter: FilterSlot,
    triggers: trigger::TriggerSet,
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
    events: Mutex<HashMap<Ino, EventState>>,
    error_log: Mutex<Vec<String>>,
    /// Zero of the error log's timestamps (the kernel prints seconds since boot).
    started: Instant,
}

impl Default for CatalogControl {
    fn default() -> Self {
        CatalogControl {
            events: Mutex::default(),
            error_log: Mutex::default(),
            started: Instant::now(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Control state is updated by whole-value replacement; a poisoned lock still holds a
    // consistent value, so keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Parses an `enable` write: `0` or `1` with optional surrounding whitespace.
fn parse_enable(data: &[u8]) -> Result<bool, FsError> {
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
fn written_text(data: &[u8]) -> Result<&str, FsError> {
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

    /// Whether an event is enabled.
    pub fn is_enabled(&self, tree: &Tree, event: DirId) -> bool {
        lock(&self.events)
            .get(&tree.dir_ino(event))
            .is_some_and(|s| s.enabled)
    }

    fn update(&self, tree: &Tree, event: DirId, f: impl FnOnce(&mut EventState)) {
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

    /// Appends a kernel-style entry to the error log (oldest dropped past the bound).
    fn log_error(&self, entry: Option<String>) {
        let Some(entry) = entry else { return };
        let t = self.started.elapsed();
        let entry = format!("[{:>5}.{:06}] {entry}", t.as_secs(), t.subsec_micros());
        let mut log = lock(&self.error_log);
        if log.len() == ERROR_LOG_ENTRIES {
            log.remove(0);
        }
        log.push(entry);
    }

    /// Content of the error log (what `error_log` reads).
    pub fn error_log(&self) -> String {
        lock(&self.error_log).concat()
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
                self.log_error(e.error_log_entry());
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
                    self.log_error(e.error_log_entry());
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
        let exists = |system: &str, name: &str| tree.find_event(system, name).is_some();
        let parsed = tree.with_format(event, |fmt| {
            let fields: Vec<format::Field<'_>> = format::fields(fmt).collect();
            trigger::parse(text, &fields, &exists)
        });
        let log = |e: &trigger::TriggerError| {
            let system = tree.dir_name(tree.parent_of(event));
            self.log_error(e.error_log_entry(&system, &tree.dir_name(event)));
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

impl ControlFiles for CatalogControl {
    fn read(&self, tree: &Tree, node: NodeRef) -> Result<Vec<u8>, FsError> {
        let NodeKind::File(kind) = node.kind else {
            return Err(FsError::IsDir);
        };
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
            FileKind::EventFormat
            | FileKind::EventId
            | FileKind::HeaderPage
            | FileKind::HeaderEvent => return tree.with_static_content(node.ino, <[u8]>::to_vec),
        })
    }

    fn write(&self, tree: &Tree, node: NodeRef, data: &[u8]) -> Result<usize, FsError> {
        let NodeKind::File(kind) = node.kind else {
            return Err(FsError::IsDir);
        };
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
        Ok(data.len())
    }
}
