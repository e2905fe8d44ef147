//! The static file tables of the tree.
//!
//! Like the kernel's `event_entries[]` in `fs/tracefs/event_inode.c`, every directory of one kind
//! shares one table of `{name, mode, kind}`; a directory only stores a bitmask of which rows it
//! has. Files therefore cost no memory until they are looked up.

/// What a file is, independent of which directory it sits in. Sources decide what reads and
/// writes of each kind do.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `events/<sys>/<event>/enable`
    EventEnable,
    /// `events/<sys>/<event>/filter`
    EventFilter,
    /// `events/<sys>/<event>/trigger`
    EventTrigger,
    /// `events/<sys>/<event>/format` (immutable)
    EventFormat,
    /// `events/<sys>/<event>/id` (immutable)
    EventId,
    /// `events/<sys>/<event>/hist`
    EventHist,
    /// `events/<sys>/<event>/hist_debug`
    EventHistDebug,
    /// `events/<sys>/<event>/inject`
    EventInject,
    /// `events/<sys>/enable`
    SystemEnable,
    /// `events/<sys>/filter`
    SystemFilter,
    /// `events/enable`
    EventsEnable,
    /// `events/header_page` (immutable)
    HeaderPage,
    /// `events/header_event` (immutable)
    HeaderEvent,
    /// A file at the tracefs root or an instance root.
    Root(RootFile),
    /// `options/<name>`: the option's row in [`OPTIONS`].
    TraceOption(u8),
    /// A file of `per_cpu/cpuN/`; the CPU is the directory's (see `Tree::cpu_of`).
    PerCpu(CpuFile),
}

/// The files of `per_cpu/cpuN/` (at the root and in every instance).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum CpuFile {
    /// `buffer_size_kb`: this CPU's ring size.
    BufferSizeKb,
    /// `stats`: this CPU's ring counters.
    Stats,
    /// `trace`: this CPU's records as text, not consumed.
    Trace,
    /// `trace_pipe`: this CPU's records as text, consumed.
    TracePipe,
    /// `trace_pipe_raw`: this CPU's ring-buffer pages, consumed.
    TracePipeRaw,
    /// `snapshot`: this CPU's part of the snapshot buffer as text (with `snapshot` at the
    /// top level).
    Snapshot,
    /// `snapshot_raw`: this CPU's snapshot pages, consumed.
    SnapshotRaw,
}

/// The files of the tracefs root (and, minus the global-only ones, of every instance).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum RootFile {
    /// `README` (global only).
    Readme,
    /// `available_events` (global only).
    AvailableEvents,
    /// `available_filter_functions` (global only).
    AvailableFilterFunctions,
    /// `available_tracers`.
    AvailableTracers,
    /// `buffer_size_kb`.
    BufferSizeKb,
    /// `buffer_total_size_kb`.
    BufferTotalSizeKb,
    /// `current_tracer`.
    CurrentTracer,
    /// `dynamic_events` (global only).
    DynamicEvents,
    /// `error_log`.
    ErrorLog,
    /// `kprobe_events` (global only).
    KprobeEvents,
    /// `kprobe_profile` (global only): each kprobe's hits and misses.
    KprobeProfile,
    /// `printk_formats` (global only).
    PrintkFormats,
    /// `saved_cmdlines` (global only).
    SavedCmdlines,
    /// `saved_cmdlines_size` (global only).
    SavedCmdlinesSize,
    /// `saved_tgids` (global only).
    SavedTgids,
    /// `set_event`.
    SetEvent,
    /// `set_event_pid`.
    SetEventPid,
    /// `synthetic_events` (global only).
    SyntheticEvents,
    /// `trace`.
    Trace,
    /// `trace_clock`.
    TraceClock,
    /// `trace_marker`.
    TraceMarker,
    /// `trace_options`.
    TraceOptions,
    /// `trace_pipe`.
    TracePipe,
    /// `tracing_cpumask`.
    TracingCpumask,
    /// `tracing_on`.
    TracingOn,
    /// `uprobe_events` (global only).
    UprobeEvents,
    /// `set_event_notrace_pid`.
    SetEventNotracePid,
    /// `snapshot` (kernels built with `CONFIG_TRACER_SNAPSHOT`).
    Snapshot,
    /// `set_ftrace_filter` (kernels with the function tracer).
    SetFtraceFilter,
    /// `set_ftrace_notrace`.
    SetFtraceNotrace,
    /// `set_ftrace_notrace_pid`.
    SetFtraceNotracePid,
    /// `set_ftrace_pid`.
    SetFtracePid,
}

impl RootFile {
    /// Files that exist only at the top level, not in instances (the kernel's global files).
    pub fn is_global_only(self) -> bool {
        matches!(
            self,
            RootFile::Readme
                | RootFile::AvailableEvents
                | RootFile::AvailableFilterFunctions
                | RootFile::DynamicEvents
                | RootFile::KprobeEvents
                | RootFile::KprobeProfile
                | RootFile::PrintkFormats
                | RootFile::SavedCmdlines
                | RootFile::SavedCmdlinesSize
                | RootFile::SavedTgids
                | RootFile::SyntheticEvents
                | RootFile::UprobeEvents
        )
    }
}

impl FileKind {
    /// True for the text pipes (`trace_pipe`, `per_cpu/cpuN/trace_pipe`): consumed by reading,
    /// with no offsets. (`trace_pipe_raw` is consumed too but keeps an ordinary position:
    /// trace-cmd splices it, and the guest tests prove that path as it is.)
    pub fn is_text_pipe(self) -> bool {
        matches!(
            self,
            FileKind::Root(RootFile::TracePipe) | FileKind::PerCpu(CpuFile::TracePipe)
        )
    }

    /// True for files whose content never changes while the node lives: they may be cached by the
    /// guest and are served straight from the metadata.
    pub fn is_immutable(self) -> bool {
        matches!(
            self,
            FileKind::EventFormat
                | FileKind::EventId
                | FileKind::HeaderPage
                | FileKind::HeaderEvent
                | FileKind::Root(RootFile::Readme)
                | FileKind::Root(RootFile::AvailableTracers)
        )
    }
}

/// One row of a static file table.
#[derive(Copy, Clone, Debug)]
pub struct FileSpec {
    /// File name inside its directory.
    pub name: &'static str,
    /// Permission bits as tracefs reports them.
    pub mode: u16,
    /// What the file does.
    pub kind: FileKind,
}

const fn spec(name: &'static str, mode: u16, kind: FileKind) -> FileSpec {
    FileSpec { name, mode, kind }
}

/// Files of an event directory, in kernel order. The catalog stores a bitmask over this table.
pub const EVENT_FILES: &[FileSpec] = &[
    spec("enable", 0o640, FileKind::EventEnable),
    spec("filter", 0o640, FileKind::EventFilter),
    spec("trigger", 0o640, FileKind::EventTrigger),
    spec("format", 0o440, FileKind::EventFormat),
    spec("id", 0o440, FileKind::EventId),
    spec("hist", 0o440, FileKind::EventHist),
    spec("hist_debug", 0o440, FileKind::EventHistDebug),
    spec("inject", 0o200, FileKind::EventInject),
];

/// Files of a system directory (`events/<sys>/`). The `ftrace` system has none.
pub const SYSTEM_FILES: &[FileSpec] = &[
    spec("enable", 0o640, FileKind::SystemEnable),
    spec("filter", 0o640, FileKind::SystemFilter),
];

/// Files of the `events/` directory itself.
pub const EVENTS_ROOT_FILES: &[FileSpec] = &[
    spec("enable", 0o640, FileKind::EventsEnable),
    spec("header_page", 0o440, FileKind::HeaderPage),
    spec("header_event", 0o440, FileKind::HeaderEvent),
];

const fn root(name: &'static str, mode: u16, file: RootFile) -> FileSpec {
    spec(name, mode, FileKind::Root(file))
}

/// Files of the tracefs root, in `ls` order, with the modes tracefs gives them.
pub const ROOT_FILES: &[FileSpec] = &[
    root("README", 0o440, RootFile::Readme),
    root("available_events", 0o440, RootFile::AvailableEvents),
    root(
        "available_filter_functions",
        0o440,
        RootFile::AvailableFilterFunctions,
    ),
    root("available_tracers", 0o440, RootFile::AvailableTracers),
    root("buffer_size_kb", 0o640, RootFile::BufferSizeKb),
    root("buffer_total_size_kb", 0o440, RootFile::BufferTotalSizeKb),
    root("current_tracer", 0o640, RootFile::CurrentTracer),
    root("dynamic_events", 0o640, RootFile::DynamicEvents),
    root("error_log", 0o640, RootFile::ErrorLog),
    root("kprobe_events", 0o640, RootFile::KprobeEvents),
    root("kprobe_profile", 0o440, RootFile::KprobeProfile),
    root("printk_formats", 0o440, RootFile::PrintkFormats),
    root("saved_cmdlines", 0o440, RootFile::SavedCmdlines),
    root("saved_cmdlines_size", 0o640, RootFile::SavedCmdlinesSize),
    root("saved_tgids", 0o440, RootFile::SavedTgids),
    root("set_event", 0o640, RootFile::SetEvent),
    root("set_event_notrace_pid", 0o640, RootFile::SetEventNotracePid),
    root("set_event_pid", 0o640, RootFile::SetEventPid),
    root("set_ftrace_filter", 0o640, RootFile::SetFtraceFilter),
    root("set_ftrace_notrace", 0o640, RootFile::SetFtraceNotrace),
    root(
        "set_ftrace_notrace_pid",
        0o640,
        RootFile::SetFtraceNotracePid,
    ),
    root("set_ftrace_pid", 0o640, RootFile::SetFtracePid),
    root("snapshot", 0o640, RootFile::Snapshot),
    root("synthetic_events", 0o640, RootFile::SyntheticEvents),
    root("trace", 0o640, RootFile::Trace),
    root("trace_clock", 0o640, RootFile::TraceClock),
    root("trace_marker", 0o220, RootFile::TraceMarker),
    root("trace_options", 0o640, RootFile::TraceOptions),
    root("trace_pipe", 0o440, RootFile::TracePipe),
    root("tracing_cpumask", 0o640, RootFile::TracingCpumask),
    root("tracing_on", 0o640, RootFile::TracingOn),
    root("uprobe_events", 0o640, RootFile::UprobeEvents),
];

/// Presence mask of [`ROOT_FILES`] in an instance (the global-only files are missing).
pub fn instance_files_mask() -> u64 {
    ROOT_FILES
        .iter()
        .enumerate()
        .filter(|(_, f)| !matches!(f.kind, FileKind::Root(r) if r.is_global_only()))
        .fold(0, |mask, (slot, _)| mask | 1 << slot)
}

/// Presence mask of [`CPU_FILES`] in `per_cpu/cpuN/` under a top level whose files are
/// `root_files` (a mask of [`ROOT_FILES`]): the snapshot files go with the top-level `snapshot`.
pub fn cpu_files_mask(root_files: u64) -> u64 {
    let has_snapshot = ROOT_FILES
        .iter()
        .position(|f| f.kind == FileKind::Root(RootFile::Snapshot))
        .is_some_and(|row| root_files & 1 << row != 0);
    CPU_FILES
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            has_snapshot
                || !matches!(
                    f.kind,
                    FileKind::PerCpu(CpuFile::Snapshot | CpuFile::SnapshotRaw)
                )
        })
        .fold(0, |mask, (slot, _)| mask | 1 << slot)
}

const fn cpu(name: &'static str, mode: u16, file: CpuFile) -> FileSpec {
    spec(name, mode, FileKind::PerCpu(file))
}

/// Files of `per_cpu/cpuN/`, in `ls` order, with tracefs's modes.
pub const CPU_FILES: &[FileSpec] = &[
    cpu("buffer_size_kb", 0o640, CpuFile::BufferSizeKb),
    cpu("snapshot", 0o640, CpuFile::Snapshot),
    cpu("snapshot_raw", 0o440, CpuFile::SnapshotRaw),
    cpu("stats", 0o440, CpuFile::Stats),
    cpu("trace", 0o640, CpuFile::Trace),
    cpu("trace_pipe", 0o440, CpuFile::TracePipe),
    cpu("trace_pipe_raw", 0o440, CpuFile::TracePipeRaw),
];

/// Most CPUs a tree can have `per_cpu/cpuN/` directories for (QEMU's x86 limit).
pub const MAX_CPUS: u32 = 1024;

const fn opt(name: &'static str, row: u8) -> FileSpec {
    spec(name, 0o640, FileKind::TraceOption(row))
}

/// Trace options (`options/<name>`), the union of what kernels offer; a catalog records which
/// exist on its kernel and their defaults.
pub const OPTIONS: &[FileSpec] = &[
    opt("annotate", 0),
    opt("bin", 1),
    opt("blk_cgname", 2),
    opt("blk_cgroup", 3),
    opt("blk_classic", 4),
    opt("block", 5),
    opt("context-info", 6),
    opt("copy_trace_marker", 7),
    opt("disable_on_free", 8),
    opt("display-graph", 9),
    opt("event-fork", 10),
    opt("fields", 11),
    opt("func-no-repeats", 12),
    opt("func_stack_trace", 13),
    opt("function-fork", 14),
    opt("function-trace", 15),
    opt("hash-ptr", 16),
    opt("hex", 17),
    opt("irq-info", 18),
    opt("latency-format", 19),
    opt("markers", 20),
    opt("overwrite", 21),
    opt("pause-on-trace", 22),
    opt("print-parent", 23),
    opt("printk-msg-only", 24),
    opt("raw", 25),
    opt("record-cmd", 26),
    opt("record-tgid", 27),
    opt("stacktrace", 28),
    opt("sym-addr", 29),
    opt("sym-offset", 30),
    opt("sym-userobj", 31),
    opt("test_nop_accept", 32),
    opt("test_nop_refuse", 33),
    opt("trace_printk", 34),
    opt("trace_printk_dest", 35),
    opt("userstacktrace", 36),
    opt("verbose", 37),
];

/// Mode of directories under `events/` (eventfs uses 0755).
pub const DIR_MODE: u16 = 0o755;
/// Mode of the tracefs root (tracefs defaults to 0700).
pub const ROOT_MODE: u16 = 0o700;
/// Mode of tracefs's other directories (`instances/`, `options/`, instance roots).
pub const TRACEFS_DIR_MODE: u16 = 0o750;

/// The kinds of directory in the tree; each has one static file table.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DirKind {
    /// The tracefs root.
    Root,
    /// `events/`.
    EventsRoot,
    /// `events/<sys>/`.
    System,
    /// `events/<sys>/<event>/`.
    Event,
    /// `options/` (at the root and in each instance).
    Options,
    /// `instances/`.
    Instances,
    /// `instances/<name>/`.
    InstanceRoot,
    /// `per_cpu/` (at the root and in each instance).
    PerCpu,
    /// `per_cpu/cpuN/`.
    Cpu,
}

impl DirKind {
    /// The static file table shared by every directory of this kind.
    pub fn files(self) -> &'static [FileSpec] {
        match self {
            DirKind::Root | DirKind::InstanceRoot => ROOT_FILES,
            DirKind::EventsRoot => EVENTS_ROOT_FILES,
            DirKind::System => SYSTEM_FILES,
            DirKind::Event => EVENT_FILES,
            DirKind::Options => OPTIONS,
            DirKind::Cpu => CPU_FILES,
            DirKind::Instances | DirKind::PerCpu => &[],
        }
    }

    /// Permission bits of directories of this kind.
    pub fn mode(self) -> u16 {
        match self {
            DirKind::Root => ROOT_MODE,
            DirKind::EventsRoot | DirKind::System | DirKind::Event => DIR_MODE,
            DirKind::Options
            | DirKind::Instances
            | DirKind::InstanceRoot
            | DirKind::PerCpu
            | DirKind::Cpu => TRACEFS_DIR_MODE,
        }
    }

    /// Whether a directory of this kind with presence bitmask `mask` has the file in `slot`.
    pub fn has_file(self, mask: u64, slot: usize) -> bool {
        slot < self.files().len() && mask & (1 << slot) != 0
    }

    /// Finds a file row by name; returns its slot index in [`DirKind::files`].
    pub fn file_slot(self, name: &[u8]) -> Option<usize> {
        self.files().iter().position(|f| f.name.as_bytes() == name)
    }
}

/// Bitmask with every row of `table` present.
pub fn all_files(table: &[FileSpec]) -> u64 {
    if table.len() >= 64 {
        u64::MAX
    } else {
        (1u64 << table.len()) - 1
    }
}

/// Upper bound on the number of rows in any file table; readdir cookies reserve this many slots.
pub const MAX_FILES_PER_DIR: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_fit_in_masks_and_cookie_space() {
        for kind in [
            DirKind::Root,
            DirKind::EventsRoot,
            DirKind::System,
            DirKind::Event,
            DirKind::Cpu,
        ] {
            assert!(kind.files().len() <= MAX_FILES_PER_DIR);
        }
        assert_eq!(all_files(EVENT_FILES), 0xff);
        assert_eq!(DirKind::Event.file_slot(b"format"), Some(3));
        assert_eq!(DirKind::Event.file_slot(b"nope"), None);
        for (row, spec) in OPTIONS.iter().enumerate() {
            assert_eq!(spec.kind, FileKind::TraceOption(row as u8), "{}", spec.name);
        }
        let names: Vec<&str> = ROOT_FILES.iter().map(|f| f.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted, "root files are listed in ls order");
        assert_eq!(instance_files_mask().count_ones(), 20);
        let all = all_files(ROOT_FILES);
        assert_eq!(cpu_files_mask(all), all_files(CPU_FILES));
        let snapshot_row = ROOT_FILES
            .iter()
            .position(|f| f.name == "snapshot")
            .unwrap();
        assert_eq!(cpu_files_mask(all & !(1 << snapshot_row)).count_ones(), 5);
        let cpu_names: Vec<&str> = CPU_FILES.iter().map(|f| f.name).collect();
        let mut sorted = cpu_names.clone();
        sorted.sort_unstable();
        assert_eq!(cpu_names, sorted, "per-CPU files are listed in ls order");
    }
}
