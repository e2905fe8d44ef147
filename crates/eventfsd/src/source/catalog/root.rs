//! The root files of the tree and of each instance (`set_event`, `tracing_on`, `trace`,
//! `trace_pipe`, `trace_marker`, options ...), as tracefs has them at the top level and in each
//! `instances/<name>/`.

use eventfs_core::control::{slice_at, OpenFlags};
use eventfs_core::layout::{FileKind, RootFile, OPTIONS};
use eventfs_core::tree::{DirId, NodeRef, Tree};
use eventfs_core::FsError;

use super::dynamic::DynamicEvents;
use super::function_tracer;
use super::handles::{HandleKind, Handles};
use super::input::{parse_kb, written_text};
use super::recorder::{PipeReader, Recorder};
use super::snapshot;
use super::state::State;
use ftrace_text::probe::Via;

use std::sync::Arc;

/// The root files over the layers below them.
pub struct RootFiles<'a> {
    /// Shared state.
    pub state: &'a State,
    /// The data plane (`trace`, `trace_pipe`, `trace_marker`).
    pub recorder: &'a Recorder,
    /// Open handles.
    pub handles: &'a Handles,
    /// Dynamic events.
    pub dynamic: &'a DynamicEvents,
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

impl RootFiles<'_> {
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
    pub fn open(
        &self,
        tree: &Tree,
        node: NodeRef,
        kind: FileKind,
        flags: OpenFlags,
    ) -> Result<u64, FsError> {
        if flags.truncate {
            if kind == FileKind::EventTrigger {
                super::events::truncate_triggers(self.state, tree, node.dir);
            }
            let FileKind::Root(file) = kind else {
                return Ok(self.register_handle(tree, node, HandleKind::Plain));
            };
            match file {
                RootFile::SetEvent => {
                    if let Some(events) = tree.events_dir_of(tree.instance_of(node.dir)) {
                        self.state.set_enabled_below(tree, events, false);
                    }
                }
                RootFile::SetEventPid => self
                    .state
                    .instance(tree, node.dir, |i| i.event_pids.clear()),
                RootFile::SetEventNotracePid => self
                    .state
                    .instance(tree, node.dir, |i| i.notrace_pids.clear()),
                RootFile::ErrorLog => self.state.instance(tree, node.dir, |i| i.error_log.clear()),
                RootFile::Trace => self.state.instance(tree, node.dir, |i| i.ring.clear()),
                RootFile::SetFtraceFilter
                | RootFile::SetFtraceNotrace
                | RootFile::SetFtracePid
                | RootFile::SetFtraceNotracePid => {
                    function_tracer::truncate(self.state, tree, node.dir, file)
                }
                RootFile::UprobeEvents
                | RootFile::KprobeEvents
                | RootFile::SyntheticEvents
                | RootFile::DynamicEvents => {
                    self.dynamic
                        .clear(self.state, tree, self.recorder, probe_file(file))?
                }
                _ => {}
            }
        }
        let kind = match kind {
            FileKind::Root(RootFile::Trace) if flags.read => HandleKind::Snapshot(Arc::new(
                self.recorder.trace_text(self.state, tree, node.dir, None),
            )),
            // Built once per open, as the kernel's seq_file does: a `cat` of a large table
            // reads one consistent text over many reads.
            FileKind::EventHist if flags.read => HandleKind::Snapshot(Arc::new(
                super::events::read(self.state, tree, node, FileKind::EventHist)?,
            )),
            FileKind::Root(RootFile::Snapshot) if flags.read => {
                HandleKind::Snapshot(Arc::new(self.snapshot_text(tree, node)))
            }
            FileKind::Root(RootFile::TracePipe) => HandleKind::Pipe(Arc::new(PipeReader::new(
                self.state.instance(tree, node.dir, |i| i.ring.clone()),
                None,
            ))),
            // trace-cmd reads these twice (a size pass, then a copy): the content must not
            // change between the two, so it is fixed at open.
            FileKind::Root(RootFile::SavedCmdlines) if flags.read => {
                HandleKind::Snapshot(Arc::new(self.recorder.cmdlines().text().into_bytes()))
            }
            FileKind::Root(RootFile::SavedTgids) if flags.read => {
                HandleKind::Snapshot(Arc::new(self.recorder.cmdlines().tgids_text().into_bytes()))
            }
            _ => HandleKind::Plain,
        };
        Ok(self.register_handle(tree, node, kind))
    }

    /// `snapshot` of the instance of `node`.
    fn snapshot_text(&self, tree: &Tree, node: NodeRef) -> Vec<u8> {
        snapshot::text(self.state, tree, node.dir, None, |ring, cpu, tracer| {
            self.recorder.ring_text(tree, ring, cpu, tracer)
        })
    }

    fn register_handle(&self, tree: &Tree, node: NodeRef, kind: HandleKind) -> u64 {
        let instance = tree.instance_ino_of(node.dir);
        self.handles
            .open(self.state, instance, tree.option_defaults(), kind)
    }

    /// Reads a root file at `offset` (`trace` from the handle's snapshot, `trace_pipe`
    /// consuming).
    #[allow(clippy::too_many_arguments)]
    pub fn read(
        &self,
        tree: &Tree,
        node: NodeRef,
        file: RootFile,
        handle: u64,
        offset: u64,
        size: u32,
        nonblock: bool,
    ) -> Result<Vec<u8>, FsError> {
        let content: Vec<u8> = match file {
            // Immutable: the FUSE adapter serves them from the tree (see `advertised`).
            RootFile::Readme | RootFile::AvailableTracers => {
                return Err(FsError::Invalid(format!("{file:?} is served by the tree")))
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
                .filter(|(_, _, dir)| self.state.is_enabled(tree.dir_ino(*dir)))
                .map(|(s, e, _)| format!("{s}:{e}\n"))
                .collect::<String>()
                .into_bytes(),
            RootFile::BufferSizeKb => {
                // `X` when the CPUs' sizes differ, as the kernel prints it.
                match self
                    .state
                    .instance(tree, node.dir, |i| i.ring.buffer_size_kb())
                {
                    Some(kb) => format!("{kb}\n").into_bytes(),
                    None => b"X\n".to_vec(),
                }
            }
            RootFile::BufferTotalSizeKb => {
                let kb = self
                    .state
                    .instance(tree, node.dir, |i| i.ring.total_size_kb());
                format!("{kb}\n").into_bytes()
            }
            RootFile::SavedCmdlines | RootFile::SavedTgids => match self.handles.kind(handle) {
                Some(HandleKind::Snapshot(text)) => return Ok(slice_at(&text, offset, size)),
                _ => return Err(FsError::Os(libc::EBADF)),
            },
            RootFile::SavedCmdlinesSize => {
                format!("{}\n", self.recorder.cmdlines().size()).into_bytes()
            }
            // The simulated kernel has no trace_printk() call sites.
            RootFile::PrintkFormats => Vec::new(),
            RootFile::CurrentTracer => self
                .state
                .instance(tree, node.dir, |i| {
                    format!("{}\n", function_tracer::tracer_name(i))
                })
                .into_bytes(),
            RootFile::SetFtraceFilter
            | RootFile::SetFtraceNotrace
            | RootFile::SetFtracePid
            | RootFile::SetFtraceNotracePid => function_tracer::read(
                self.state,
                tree,
                node.dir,
                self.recorder.functions(tree),
                file,
            ),
            RootFile::ErrorLog => self
                .state
                .instance(tree, node.dir, |i| i.error_log.concat())
                .into_bytes(),
            RootFile::SetEventPid | RootFile::SetEventNotracePid => self
                .state
                .instance(tree, node.dir, |i| {
                    let pids = match file {
                        RootFile::SetEventPid => &i.event_pids,
                        _ => &i.notrace_pids,
                    };
                    pids.iter().map(|p| format!("{p}\n")).collect::<String>()
                })
                .into_bytes(),
            RootFile::TraceClock => {
                let text = tree.trace_clock();
                let names = clock_names(&text);
                let selected = self.state.instance(tree, node.dir, |i| i.clock);
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
                let values = self.state.instance(tree, node.dir, |i| i.options);
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
                format!("{:x}\n", self.state.instance(tree, node.dir, |i| i.cpumask)).into_bytes()
            }
            RootFile::TracingOn => {
                if self.state.instance(tree, node.dir, |i| i.tracing_on) {
                    b"1\n".to_vec()
                } else {
                    b"0\n".to_vec()
                }
            }
            RootFile::UprobeEvents
            | RootFile::KprobeEvents
            | RootFile::SyntheticEvents
            | RootFile::DynamicEvents => self.dynamic.listing(probe_file(file)).into_bytes(),
            RootFile::KprobeProfile => self.recorder.kprobes.profile_text().into_bytes(),
            // The snapshotted kernel's list (megabytes): sliced in place, never copied whole.
            RootFile::AvailableFilterFunctions => {
                return Ok(tree.with_functions(|list| slice_at(list, offset, size)))
            }
            RootFile::TraceMarker => {
                return Err(FsError::Invalid("trace_marker is write-only".into()))
            }
            RootFile::Trace => match self.handles.kind(handle) {
                Some(HandleKind::Snapshot(text)) => return Ok(slice_at(&text, offset, size)),
                _ => self.recorder.trace_text(self.state, tree, node.dir, None),
            },
            RootFile::Snapshot => match self.handles.kind(handle) {
                Some(HandleKind::Snapshot(text)) => return Ok(slice_at(&text, offset, size)),
                _ => self.snapshot_text(tree, node),
            },
            RootFile::TracePipe => match self.handles.kind(handle) {
                Some(HandleKind::Pipe(pipe)) => {
                    return self
                        .recorder
                        .read_pipe(self.state, tree, &pipe, size, nonblock)
                }
                _ => return Err(FsError::Os(libc::EBADF)),
            },
        };
        Ok(slice_at(&content, offset, size))
    }

    /// Applies one write to a root file.
    pub fn write(
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
                // Any number; not zero is on.
                let on = ftrace_text::kparse::kstrtoul_from_user(data)
                    .map_err(|_| FsError::Invalid(format!("tracing_on {value:?}")))?
                    != 0;
                self.state.instance(tree, node.dir, |i| i.tracing_on = on);
            }
            RootFile::BufferSizeKb => {
                let kb = parse_kb(value)?;
                self.state.instance(tree, node.dir, |i| {
                    i.ring.resize(kb);
                    // An allocated snapshot buffer keeps the main buffer's size.
                    if i.snapshot_allocated {
                        i.snapshot.resize(kb);
                    }
                });
            }
            RootFile::Snapshot => snapshot::write(self.state, tree, node.dir, None, data)?,
            RootFile::SavedCmdlinesSize => {
                let size: usize = value
                    .parse()
                    .map_err(|_| FsError::Invalid(format!("saved_cmdlines_size {value:?}")))?;
                if !self.recorder.cmdlines().resize(size) {
                    return Err(FsError::Invalid(format!(
                        "saved_cmdlines_size {size} is not in 1..={}",
                        super::cmdlines::MAX_SIZE
                    )));
                }
            }
            RootFile::CurrentTracer => function_tracer::set_tracer(
                self.state,
                tree,
                node.dir,
                self.recorder.functions(tree),
                value,
            )?,
            RootFile::SetFtraceFilter
            | RootFile::SetFtraceNotrace
            | RootFile::SetFtracePid
            | RootFile::SetFtraceNotracePid => function_tracer::write(
                self.state,
                tree,
                node.dir,
                self.recorder.functions(tree),
                file,
                data,
            )?,
            RootFile::ErrorLog => self.state.instance(tree, node.dir, |i| i.error_log.clear()),
            RootFile::SetEvent => self.write_set_event(tree, node.dir, text)?,
            // Appended to the list (an open with O_TRUNC emptied it first).
            RootFile::SetEventPid | RootFile::SetEventNotracePid => {
                let pids = ftrace_text::kparse::pids_of_write(data)
                    .map_err(|_| FsError::Invalid(format!("pids {value:?}")))?;
                self.state.instance(tree, node.dir, |i| match file {
                    RootFile::SetEventPid => i.event_pids.extend(pids),
                    _ => i.notrace_pids.extend(pids),
                });
            }
            RootFile::TraceClock => {
                let clocks = tree.trace_clock();
                let index = clock_names(&clocks)
                    .iter()
                    .position(|c| *c == value)
                    .ok_or_else(|| FsError::Invalid(format!("unknown clock {value:?}")))?;
                self.state.instance(tree, node.dir, |i| i.clock = index);
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
                self.state
                    .instance(tree, node.dir, |i| i.set_option(row as u8, on));
            }
            RootFile::TracingCpumask => {
                let mask = u64::from_str_radix(value.trim_start_matches("0x"), 16)
                    .map_err(|_| FsError::Invalid(format!("cpumask {value:?}")))?;
                self.state.instance(tree, node.dir, |i| i.cpumask = mask);
            }
            // Writing these clears them (`echo > trace`), which open with O_TRUNC already did.
            RootFile::Trace => {}
            RootFile::UprobeEvents
            | RootFile::KprobeEvents
            | RootFile::SyntheticEvents
            | RootFile::DynamicEvents => {
                self.dynamic
                    .write(self.state, tree, self.recorder, probe_file(file), text)?
            }
            RootFile::TraceMarker => self
                .recorder
                .write_marker(self.state, tree, node.dir, text)?,
            RootFile::TracePipe => return Err(FsError::Invalid("trace_pipe is read-only".into())),
            RootFile::Readme
            | RootFile::AvailableEvents
            | RootFile::AvailableTracers
            | RootFile::AvailableFilterFunctions
            | RootFile::BufferTotalSizeKb
            | RootFile::KprobeProfile
            | RootFile::PrintkFormats
            | RootFile::SavedCmdlines
            | RootFile::SavedTgids => {
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
                    self.state
                        .update(tree.dir_ino(*event_dir), |state| state.enabled = enable);
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
}

/// Which file a dynamic-event read or write goes through.
fn probe_file(file: RootFile) -> Via {
    match file {
        RootFile::KprobeEvents => Via::KprobeEvents,
        RootFile::UprobeEvents => Via::UprobeEvents,
        RootFile::SyntheticEvents => Via::SyntheticEvents,
        _ => Via::DynamicEvents,
    }
}
