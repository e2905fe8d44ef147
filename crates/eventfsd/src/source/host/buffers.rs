//! Lazy host ring buffers: a host instance holds the smallest buffer the kernel allows while
//! its guest traces nothing into it, and the size the guest asked for while it does.
//!
//! A new tracefs instance gets the kernel's default per-CPU buffer (1410 KiB on x86_64, on every
//! host CPU: about 90 MB on a 64-CPU host), and one daemon runs per VM. So each instance is
//! shrunk to the minimum at once (a write of `1` to `buffer_size_kb`: the kernel keeps two
//! sub-buffers per CPU, 7 KiB with 4 KiB pages), and the guest's view is virtual:
//! `buffer_size_kb`, `buffer_total_size_kb` and `per_cpu/cpuN/buffer_size_kb` read what the guest
//! asked for (at first, the default the instance had before the shrink), and a write (within
//! the policy's `max_buffer_size_kb`, checked by the guard as before) sets the request.
//!
//! - **Idle → active** ([`InstanceBuffers::recording`]): before a write that may put records
//!   into the instance is forwarded ([`may_record`]: enabling an event, a trigger, a tracer, a
//!   `trace_marker` line), the host instance is resized to the request. Such writes run under
//!   the state's read lock, so a shrink (write lock) never overlaps one. While active, a
//!   `buffer_size_kb` write resizes the host as it would natively.
//! - **Active → idle** ([`InstanceBuffers::settle`]): when nothing is enabled (`set_event` empty,
//!   `current_tracer` nop) and every host CPU's buffer is empty (`entries: 0` in its `stats`),
//!   checked after the guest clears `trace`, disables something, or starts a new session. The
//!   kernel drops the oldest pages when it shrinks a buffer, so an empty buffer is the only time
//!   a shrink loses nothing the guest could still read. With nothing enabled, only a
//!   `trace_marker` write could add a record, and that runs under the read lock.
//! - **Deferred growth**: the kernel refuses a resize (EBUSY) while an instance's `trace` is open
//!   for reading. The daemon sets `pause-on-trace` in its instances, so nothing is recorded while
//!   it is open; the growth is retried when the guest closes a file of the instance.
//!
//! The guest reads the size it wrote, not the kernel's rounding of it to whole sub-buffers (4096
//! reads 4096, where the host instance reads 4099), idle or active alike.

use std::os::fd::BorrowedFd;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use eventfs_core::layout::{CpuFile, FileKind, RootFile};
use eventfs_core::FsError;

use super::hostio::{open_beneath, read_to_end, write_fd};

/// How often, and how far apart, a resize refused with EBUSY is tried again before it is
/// deferred to the next close of a guest file.
const BUSY_RETRIES: u32 = 3;
const BUSY_PAUSE: Duration = Duration::from_millis(10);

/// What a `buffer_size_kb` write or read of the guest is about.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// The instance's own `buffer_size_kb`: every host CPU.
    All,
    /// A guest `per_cpu/cpuN/buffer_size_kb`: the host CPUs it stands for.
    Cpus(&'a [u32]),
}

/// The buffer state of one host instance (ours, or one the guest made).
pub struct InstanceBuffers {
    /// The instance's name, for log lines.
    name: String,
    /// `None`: the instance has no buffer files this module understands (a test double); the
    /// guest's buffer files are then forwarded as they are.
    state: Option<RwLock<State>>,
}

struct State {
    /// KiB per host CPU the guest asked for.
    requested: Vec<u64>,
    /// The kernel's default for a new instance, read before the shrink.
    default_kb: u64,
    /// The guest may be tracing into the instance: the host must hold `requested`.
    active: bool,
    /// The host holds `requested` (false while idle, or active with the growth deferred).
    grown: bool,
}

/// The first word of a size file (`1410`, `7 (expanded: 1408)` at a top level) as KiB.
pub fn parse_kb(text: &[u8]) -> Option<u64> {
    String::from_utf8_lossy(text)
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn read_file(dir: BorrowedFd<'_>, path: &str) -> Result<Vec<u8>, FsError> {
    read_to_end(&open_beneath(dir, path, libc::O_RDONLY)?, 1 << 16)
}

fn write_file(dir: BorrowedFd<'_>, path: &str, text: &str) -> Result<(), FsError> {
    write_fd(&open_beneath(dir, path, libc::O_WRONLY)?, text.as_bytes()).map(|_| ())
}

/// The size all of `sizes` share, if they do.
fn common(sizes: &[u64]) -> Option<u64> {
    let first = *sizes.first()?;
    sizes.iter().all(|&s| s == first).then_some(first)
}

/// Whether the canonical `writes` to a file of `kind` may put records into its instance (so
/// the host buffer must have its real size first). Enabling through `enable` files is the
/// caller's [`crate::source::host::guard::Decision::Enable`]. Conservative: any trigger (it
/// soft-enables its event, and `enable_event` enables another), any tracer but nop, any
/// `set_event` token that enables. Not `tracing_on`: an idle instance has nothing enabled and
/// a nop tracer, so turning it on records nothing. Options that route host data into the
/// instance (`trace_printk_dest`, `copy_trace_marker`) are the host's records, and off the
/// default policy's list.
pub fn may_record(kind: FileKind, writes: &[Vec<u8>]) -> bool {
    match kind {
        FileKind::Root(RootFile::TraceMarker) => true,
        FileKind::Root(RootFile::SetEvent) | FileKind::EventTrigger => {
            writes.iter().any(|w| !w.starts_with(b"!"))
        }
        FileKind::Root(RootFile::CurrentTracer) => writes.iter().any(|w| w != b"nop\n"),
        _ => false,
    }
}

/// Whether the canonical `writes` to a file of `kind` may have stopped the last source of
/// records (then [`InstanceBuffers::settle`] checks whether the buffer can shrink).
pub fn may_stop(kind: FileKind, writes: &[Vec<u8>]) -> bool {
    match kind {
        FileKind::Root(RootFile::SetEvent) | FileKind::EventTrigger => {
            writes.iter().any(|w| w.starts_with(b"!"))
        }
        FileKind::Root(RootFile::CurrentTracer) => writes.iter().any(|w| w == b"nop\n"),
        _ => false,
    }
}

/// Whether a guest open of a file of `kind` with O_TRUNC empties something (`trace`, a CPU's
/// `trace`) or disables every event (`set_event`).
pub fn truncate_may_settle(kind: FileKind) -> bool {
    matches!(
        kind,
        FileKind::Root(RootFile::Trace | RootFile::SetEvent) | FileKind::PerCpu(CpuFile::Trace)
    )
}

impl InstanceBuffers {
    /// Buffers forwarded as they are (an instance without the files).
    pub fn unmanaged(name: &str) -> InstanceBuffers {
        InstanceBuffers {
            name: name.to_string(),
            state: None,
        }
    }

    /// Takes over the buffers of the new instance at `dir` with `host_cpus` CPUs: reads its
    /// default size, then shrinks it to the smallest the kernel keeps.
    pub fn prepare(dir: BorrowedFd<'_>, name: &str, host_cpus: u32) -> InstanceBuffers {
        let default_kb = read_file(dir, "buffer_size_kb")
            .ok()
            .and_then(|t| parse_kb(&t));
        let Some(default_kb) = default_kb.filter(|_| host_cpus > 0) else {
            log::debug!("{name}: no buffer_size_kb or per_cpu: buffer sizes are forwarded");
            return Self::unmanaged(name);
        };
        let mut state = State {
            requested: vec![default_kb; host_cpus as usize],
            default_kb,
            active: false,
            grown: false,
        };
        match write_file(dir, "buffer_size_kb", "1\n") {
            Ok(()) => {
                let idle = read_file(dir, "buffer_size_kb")
                    .ok()
                    .and_then(|t| parse_kb(&t))
                    .unwrap_or(0);
                log::info!(
                    "{name}: ring buffer idle at {idle} KiB per CPU ({host_cpus} CPUs) until the guest traces; the guest sees {default_kb}"
                );
            }
            Err(e) => {
                // The host keeps its default, which is what the guest asked for so far.
                log::warn!("{name}: cannot shrink the idle ring buffer: {e}");
                state.active = true;
                state.grown = true;
            }
        }
        InstanceBuffers {
            name: name.to_string(),
            state: Some(RwLock::new(state)),
        }
    }

    fn read_state(&self) -> Option<RwLockReadGuard<'_, State>> {
        Some(
            self.state
                .as_ref()?
                .read()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    fn write_state(&self) -> Option<RwLockWriteGuard<'_, State>> {
        Some(
            self.state
                .as_ref()?
                .write()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// What the guest reads in its `buffer_size_kb` (of `target`) or, with `total`,
    /// `buffer_total_size_kb`, as the kernel words it; `None` when forwarded.
    pub fn content(&self, target: Target<'_>, total: bool) -> Option<Vec<u8>> {
        let st = self.read_state()?;
        let text = match (target, total) {
            (_, true) => format!("{}\n", st.requested.iter().sum::<u64>()),
            (Target::All, false) => match common(&st.requested) {
                Some(kb) => format!("{kb}\n"),
                // The kernel's answer when its CPUs differ.
                None => "X\n".to_string(),
            },
            (Target::Cpus(cpus), false) => {
                let kb = match cpus.first() {
                    Some(&cpu) => st.requested.get(cpu as usize).copied(),
                    // A guest CPU with no host CPU behind it: the instance's size.
                    None => common(&st.requested),
                };
                format!("{}\n", kb.unwrap_or(st.default_kb))
            }
        };
        Some(text.into_bytes())
    }

    /// KiB over every host CPU that the guest asked for; `None` when forwarded.
    pub fn requested_kb(&self) -> Option<u64> {
        Some(self.read_state()?.requested.iter().sum())
    }

    /// A guest write of `kb` to the `buffer_size_kb` of `target`: the new request, given to
    /// the host at once if it is active. `None` when forwarded (the caller writes the host).
    pub fn request(
        &self,
        dir: BorrowedFd<'_>,
        target: Target<'_>,
        kb: u64,
    ) -> Option<Result<(), FsError>> {
        let mut st = self.write_state()?;
        let before = st.requested.clone();
        match target {
            Target::All => st.requested.iter_mut().for_each(|s| *s = kb),
            Target::Cpus(cpus) => {
                for &cpu in cpus {
                    if let Some(s) = st.requested.get_mut(cpu as usize) {
                        *s = kb;
                    }
                }
            }
        }
        if !st.grown {
            // Idle (or growth deferred): the request is all there is to change.
            return Some(Ok(()));
        }
        let text = format!("{kb}\n");
        let written = match target {
            Target::All => write_file(dir, "buffer_size_kb", &text),
            Target::Cpus(cpus) => cpus.iter().try_for_each(|cpu| {
                write_file(dir, &format!("per_cpu/cpu{cpu}/buffer_size_kb"), &text)
            }),
        };
        if let Err(e) = &written {
            log::warn!("{}: buffer_size_kb {kb}: {e}", self.name);
            st.requested = before;
        }
        Some(written)
    }

    /// Gives the host the requested sizes: every CPU at once when they agree.
    fn write_requested(&self, dir: BorrowedFd<'_>, st: &State) -> Result<(), FsError> {
        match common(&st.requested) {
            Some(kb) => write_file(dir, "buffer_size_kb", &format!("{kb}\n")),
            None => st.requested.iter().enumerate().try_for_each(|(cpu, kb)| {
                write_file(
                    dir,
                    &format!("per_cpu/cpu{cpu}/buffer_size_kb"),
                    &format!("{kb}\n"),
                )
            }),
        }
    }

    /// Resizes the host to the request. EBUSY (a `trace` reader, while which nothing records)
    /// defers it; another error is the guest's (ENOMEM for a size the host cannot give).
    fn grow(&self, dir: BorrowedFd<'_>, st: &mut State) -> Result<(), FsError> {
        let mut tries = 0;
        loop {
            match self.write_requested(dir, st) {
                Ok(()) => {
                    st.grown = true;
                    log::info!(
                        "{}: the guest traces: ring buffer grown to {} KiB",
                        self.name,
                        st.requested.iter().sum::<u64>()
                    );
                    return Ok(());
                }
                Err(FsError::Os(libc::EBUSY)) if tries < BUSY_RETRIES => {
                    tries += 1;
                    std::thread::sleep(BUSY_PAUSE);
                }
                Err(FsError::Os(libc::EBUSY)) => {
                    log::info!(
                        "{}: ring buffer growth deferred: its trace is open (EBUSY), and nothing records meanwhile (pause-on-trace)",
                        self.name
                    );
                    return Ok(());
                }
                Err(e) => {
                    log::warn!("{}: cannot grow the ring buffer: {e}", self.name);
                    return Err(e);
                }
            }
        }
    }

    /// Runs `f`, a forwarded write that may put records into the instance, once the host holds
    /// the requested size; a shrink waits until it is done.
    pub fn recording<T>(
        &self,
        dir: BorrowedFd<'_>,
        f: impl FnOnce() -> Result<T, FsError>,
    ) -> Result<T, FsError> {
        let Some(lock) = &self.state else {
            return f();
        };
        let _active = loop {
            let st = lock.read().unwrap_or_else(|p| p.into_inner());
            if st.active {
                break st;
            }
            drop(st);
            let mut st = lock.write().unwrap_or_else(|p| p.into_inner());
            if !st.active {
                self.grow(dir, &mut st)?;
                st.active = true;
            }
            // A settle may slip in before the read lock: check again.
        };
        f()
    }

    /// Retries a deferred growth (a guest file of the instance was closed).
    pub fn retry_growth(&self, dir: BorrowedFd<'_>) {
        if !self.read_state().is_some_and(|st| st.active && !st.grown) {
            return;
        }
        if let Some(mut st) = self.write_state() {
            if st.active && !st.grown {
                // Errors are logged; the next close tries again.
                let _ = self.grow(dir, &mut st);
            }
        }
    }

    /// Shrinks the host instance back to the minimum if the guest has stopped tracing into it
    /// and nothing is left to read (see the module's documentation).
    pub fn settle(&self, dir: BorrowedFd<'_>) {
        if !self.read_state().is_some_and(|st| st.active) {
            return;
        }
        let Some(mut st) = self.write_state() else {
            return;
        };
        if !st.active {
            return;
        }
        match quiet(dir, st.requested.len()) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                log::debug!("{}: cannot tell whether the buffer is idle: {e}", self.name);
                return;
            }
        }
        match write_file(dir, "buffer_size_kb", "1\n") {
            Ok(()) => {
                st.active = false;
                st.grown = false;
                log::info!(
                    "{}: the guest stopped tracing and the buffer is empty: ring buffer idle again",
                    self.name
                );
            }
            // A `trace` reader: the next clear or disable tries again.
            Err(FsError::Os(libc::EBUSY)) => {
                log::debug!("{}: shrink refused (EBUSY)", self.name)
            }
            Err(e) => log::warn!("{}: cannot shrink the ring buffer: {e}", self.name),
        }
    }
}

/// True when nothing is enabled in the instance at `dir`, its tracer is nop and the buffers
/// of its `cpus` CPUs hold no record.
fn quiet(dir: BorrowedFd<'_>, cpus: usize) -> Result<bool, FsError> {
    // Soft-enabled events (those with triggers) are listed too.
    if read_file(dir, "set_event")?
        .iter()
        .any(|b| !b.is_ascii_whitespace())
    {
        return Ok(false);
    }
    if read_file(dir, "current_tracer")?.trim_ascii() != b"nop" {
        return Ok(false);
    }
    for cpu in 0..cpus {
        let stats = read_file(dir, &format!("per_cpu/cpu{cpu}/stats"))?;
        let entries = String::from_utf8_lossy(&stats)
            .lines()
            .find_map(|l| l.strip_prefix("entries:"))
            .and_then(|v| v.trim().parse::<u64>().ok());
        match entries {
            Some(0) => {}
            Some(_) => return Ok(false),
            None => return Err(FsError::Os(libc::EIO)),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_or_without_the_expanded_note() {
        assert_eq!(parse_kb(b"1410\n"), Some(1410));
        assert_eq!(parse_kb(b"7 (expanded: 1408)\n"), Some(7));
        assert_eq!(parse_kb(b"X\n"), None);
        assert_eq!(parse_kb(b""), None);
    }

    #[test]
    fn record_and_stop_writes_are_told_apart() {
        let set_event = FileKind::Root(RootFile::SetEvent);
        let w = |s: &str| vec![s.as_bytes().to_vec()];
        assert!(may_record(set_event, &w("sched:sched_switch\n")));
        assert!(!may_record(set_event, &w("!sched:sched_switch\n")));
        assert!(may_stop(set_event, &w("!sched:sched_switch\n")));
        let tracer = FileKind::Root(RootFile::CurrentTracer);
        assert!(may_record(tracer, &w("function\n")));
        assert!(!may_record(tracer, &w("nop\n")));
        assert!(may_stop(tracer, &w("nop\n")));
        assert!(may_record(FileKind::EventTrigger, &w("traceoff\n")));
        assert!(may_stop(FileKind::EventTrigger, &w("!traceoff\n")));
        assert!(may_record(FileKind::Root(RootFile::TraceMarker), &w("x")));
        assert!(!may_record(FileKind::Root(RootFile::TracingOn), &w("1\n")));
        assert!(!may_record(FileKind::EventFilter, &w("pid == 1\n")));
    }

    #[test]
    fn unmanaged_buffers_leave_everything_to_the_host() {
        let b = InstanceBuffers::unmanaged("x");
        assert!(b.content(Target::All, false).is_none());
        assert!(b.requested_kb().is_none());
    }

    #[test]
    fn the_guest_reads_what_it_asked_for() {
        let b = InstanceBuffers {
            name: "x".into(),
            state: Some(RwLock::new(State {
                requested: vec![1410; 4],
                default_kb: 1410,
                active: false,
                grown: false,
            })),
        };
        let text = |t, total| String::from_utf8(b.content(t, total).unwrap()).unwrap();
        assert_eq!(text(Target::All, false), "1410\n");
        assert_eq!(text(Target::All, true), "5640\n");
        // Idle: nothing reaches the host (the fd is never used).
        let dev_null = std::fs::File::open("/dev/null").unwrap();
        use std::os::fd::AsFd;
        assert_eq!(
            b.request(dev_null.as_fd(), Target::Cpus(&[1, 3]), 64),
            Some(Ok(()))
        );
        assert_eq!(text(Target::All, false), "X\n");
        assert_eq!(text(Target::Cpus(&[1, 3]), false), "64\n");
        assert_eq!(text(Target::Cpus(&[0, 2]), false), "1410\n");
        assert_eq!(text(Target::Cpus(&[]), false), "1410\n");
        assert_eq!(text(Target::All, true), "2948\n");
        assert_eq!(b.request(dev_null.as_fd(), Target::All, 4096), Some(Ok(())));
        assert_eq!(text(Target::All, false), "4096\n");
        assert_eq!(text(Target::Cpus(&[]), false), "4096\n");
        assert_eq!(b.requested_kb(), Some(4 * 4096));
    }
}
