//! [`HostControl`]: the host source's [`ControlFiles`], forwarding control files to a real
//! tracefs instance.
//!
//! Host file descriptors exist only per open guest handle, and only while it is open: a looked-up
//! node costs nothing here. Every host path is built from [`Tree::path_of`] (names from the
//! metadata), checked component by component, and opened with `openat2` beneath the instance
//! (or top-level) directory without following any symlink.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use eventfs_core::control::{slice_at, ControlFiles, OpenFlags};
use eventfs_core::layout::{CpuFile, DirKind, FileKind, RootFile};
use eventfs_core::tree::DirId;
use eventfs_core::{FsError, NodeKind, NodeRef, Tree};

use super::buffers::{self, InstanceBuffers};
use super::change_watch::ChangeWatch;
use super::event_set::EventSet;
use super::guard::{self, Decision, WriteContext};
use super::guest_instances::{GuestDir, GuestInstances};
pub use super::hostio::check_relative_path;
use super::hostio::{
    count_cpus, host_open_flags, open_beneath, open_dir, read_fd, read_full, read_to_end, write_fd,
    MAX_READ,
};
use super::limits::{Limit, Usage};
use super::own_instance::{instance_name, MakeWith, OwnInstance, OwnInstanceAt};
use super::per_cpu::{self, RawState};
use super::policy::Policy;
use super::scope::Scope;
use crate::stats::{FigureKind, SourceFigure};

/// Longest a blocking guest read of `trace_pipe_raw` waits before returning 0 (virtio-fs never
/// delivers INTERRUPT; trace-cmd retries after its sleep).
const RAW_WAIT: Duration = Duration::from_secs(1);

/// Largest single read forwarded to the host (the guest asks for at most 1 MiB with MAX_PAGES).
const PIPE_POLL_SLICE: Duration = Duration::from_millis(100);

/// What the host has, as far as the guest's visibility is concerned.
#[derive(Clone, Debug, Default)]
pub struct HostView {
    /// Every event of the host instance as (system, event), visible or not.
    pub events: EventSet,
    /// Host events the guest must not see or reach (policy-hidden, or dynamic events when the
    /// policy does not show them).
    pub hidden: EventSet,
}

impl HostView {
    fn system_has_hidden(&self, system: &str) -> bool {
        self.hidden.has_system(system)
    }
}

/// Tunables of the forwarding layer.
#[derive(Copy, Clone, Debug)]
pub struct ForwardLimits {
    /// Guest `trace_pipe` reads allowed to wait at the same time; more get EAGAIN. Keep it
    /// below the transport's worker count so waiting readers never starve other requests.
    pub max_blocked_readers: usize,
    /// Longest one guest `trace_pipe` read waits for data before it returns EINTR (readers
    /// retry; a reader the guest killed thereby releases its worker).
    pub pipe_wait: Duration,
}

impl Default for ForwardLimits {
    fn default() -> Self {
        ForwardLimits {
            max_blocked_readers: 3,
            pipe_wait: Duration::from_secs(2),
        }
    }
}

/// Which directory a forwarded path is relative to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Base {
    Instance,
    Top,
}

impl InstanceDir {
    /// The host instance's directory and ring buffers.
    fn host(&self) -> &GuestDir {
        match self {
            InstanceDir::Ours(dir) | InstanceDir::Guest(dir) => dir,
        }
    }
}

/// Which host instance a guest file belongs to.
#[derive(Clone)]
enum InstanceDir {
    /// Ours: the guest's top level.
    Ours(Arc<GuestDir>),
    /// A guest instance's own host instance.
    Guest(Arc<GuestDir>),
}

struct Handle {
    fd: Option<OwnedFd>,
    /// The host instance of the file (the base of every path the handle opens).
    instance_dir: InstanceDir,
    /// A `per_cpu/cpuN/` file: the host CPUs' files it stands for (see [`per_cpu`]).
    cpu_fds: Vec<OwnedFd>,
    /// A `trace_pipe_raw`'s state between reads.
    raw: Mutex<RawState>,
    kind: FileKind,
    dir: DirId,
    path: String,
    nonblock: bool,
    epoch: u64,
    closed: AtomicBool,
    /// Content computed by eventfsd rather than read from the host (filtered
    /// `available_events`, aggregated `enable` over visible events).
    content: Mutex<Option<Vec<u8>>>,
    /// Bytes of `content` counted against `max_trace_bytes`.
    trace_reserved: usize,
    /// A scoped `set_event_pid` opened to truncate: the kernel's clearing is done by the
    /// daemon, with the guest's pids or, if it writes none, the whole scope.
    truncate_pids: AtomicBool,
}

struct RateLimiter {
    tokens: f64,
    last: Instant,
    last_log: Option<Instant>,
}

/// Forwards control files of a tree built from a tracefs instance to that instance.
pub struct HostControl {
    /// Our instance (made on the guest's first open when the control was made lazily).
    own: OwnInstance,
    /// Its name, for log lines.
    own_name: String,
    top: OwnedFd,
    top_path: PathBuf,
    policy: Arc<Policy>,
    view: RwLock<HostView>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_handle: AtomicU64,
    /// Bumped by `reset`/`shutdown`: handles and waits of an older epoch are void.
    epoch: AtomicU64,
    shutting_down: AtomicBool,
    blocked_readers: AtomicUsize,
    limits: ForwardLimits,
    limiter: Mutex<RateLimiter>,
    /// The guest's own instances (host instances beside ours).
    guests: GuestInstances,
    /// CPUs of the host instance (`per_cpu/cpuN` directories).
    host_cpus: u32,
    pub(crate) dynamic_names: Mutex<BTreeSet<(String, String)>>,
    /// What the guest holds, and the refusals of the limits.
    usage: Usage,
    /// The process tree the instances are pinned to, if any.
    scope: std::sync::OnceLock<Scope>,
    /// Detects events added and removed on the host while the guest looks, if asked to.
    watch: std::sync::OnceLock<ChangeWatch<HostControl>>,
}

impl HostControl {
    /// Forwards to our instance (see [`OwnInstanceAt`]); global files go to `top_dir`.
    pub fn new(
        instance: OwnInstanceAt<'_>,
        top_dir: &Path,
        policy: Arc<Policy>,
        view: HostView,
        limits: ForwardLimits,
    ) -> io::Result<HostControl> {
        let (own, host_cpus) = match instance {
            OwnInstanceAt::Existing(dir) => {
                let fd = open_dir(dir)?;
                Self::prepare_instance(fd.as_fd())
                    .map_err(|e| io::Error::other(format!("{}: {e}", dir.display())))?;
                let host_cpus = count_cpus(dir);
                let buffers = InstanceBuffers::prepare(fd.as_fd(), &instance_name(dir), host_cpus);
                let own = OwnInstance::existing(dir, GuestDir { fd, buffers });
                (own, host_cpus)
            }
            // It will have a ring buffer on each CPU the top level has.
            OwnInstanceAt::FirstOpen(dir) => (OwnInstance::lazy(dir), count_cpus(top_dir)),
        };
        Self::build(own, host_cpus, top_dir, policy, view, limits)
    }

    fn build(
        own: OwnInstance,
        host_cpus: u32,
        top_dir: &Path,
        policy: Arc<Policy>,
        view: HostView,
        limits: ForwardLimits,
    ) -> io::Result<HostControl> {
        let prefix = instance_name(own.path());
        Ok(HostControl {
            guests: GuestInstances::new(
                open_dir(&top_dir.join("instances")).ok(),
                &prefix,
                policy.max_instances,
                host_cpus,
            ),
            own,
            own_name: prefix,
            top: open_dir(top_dir)?,
            top_path: top_dir.to_path_buf(),
            limiter: Mutex::new(RateLimiter {
                tokens: f64::from(policy.writes_per_second),
                last: Instant::now(),
                last_log: None,
            }),
            policy,
            view: RwLock::new(view),
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            epoch: AtomicU64::new(0),
            shutting_down: AtomicBool::new(false),
            blocked_readers: AtomicUsize::new(0),
            limits,
            host_cpus,
            dynamic_names: Mutex::new(BTreeSet::new()),
            usage: Usage::default(),
            scope: std::sync::OnceLock::new(),
            watch: std::sync::OnceLock::new(),
        })
    }

    /// Our instance, made now if the guest had not opened any of its files before.
    fn own_dir(&self) -> Result<&Arc<GuestDir>, FsError> {
        self.own.get_or_make(&MakeWith {
            name: &self.own_name,
            host_cpus: self.host_cpus,
            prepare: &Self::prepare_instance,
            scope: self.scope.get(),
        })
    }

    /// Removes our instance if this control made it ([`OwnInstanceAt::FirstOpen`]).
    pub fn remove_own_instance(&self) {
        self.own.remove();
    }

    /// Whether our instance exists on the host (always, unless made lazily and not used yet).
    pub fn own_instance_exists(&self) -> bool {
        self.own.get().is_some()
    }

    /// What every instance the guest reads through needs: `pause-on-trace`, so that a
    /// streamed `trace` read ends (the kernel stops recording into the instance while its
    /// `trace` is open; the guest sees the option set and cannot clear it).
    fn prepare_instance(dir: BorrowedFd<'_>) -> Result<(), FsError> {
        match open_beneath(dir, "options/pause-on-trace", libc::O_WRONLY) {
            Ok(fd) => write_fd(&fd, b"1\n").map(|_| ()),
            // A tracefs without the option (older kernels, test doubles) snapshots nothing
            // either: reading `trace` there follows the live buffer.
            Err(FsError::Os(libc::ENOENT)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// From now on, events added or removed on the host reach the tree while the guest looks
    /// at it, as `watch` paces the checks. Set once; a second watch is ignored.
    pub fn watch_changes(&self, watch: ChangeWatch<HostControl>) {
        let _ = self.watch.set(watch);
    }

    /// Pins our instance (and every instance the guest makes later) to `scope`.
    pub fn set_scope(&self, scope: Scope) -> Result<(), FsError> {
        // A lazy instance is pinned when it is made.
        if let Some(own) = self.own.get() {
            scope.apply(own.fd.as_fd())?;
        }
        log::info!(
            "scope: events of process tree {} only ({} tasks now)",
            scope.root,
            scope.initial.len()
        );
        let _ = self.scope.set(scope);
        Ok(())
    }

    /// The limits' counters and the usage they measure, for the stats file.
    pub fn figures(&self) -> Vec<SourceFigure> {
        let mut out = self.usage.figures();
        let guest_dirs = self.guests.dirs();
        // The host kernel memory this guest holds in ring buffers: what the kernel says its
        // instances' buffers take (all CPUs), ours and the guest's own.
        let host_kb = |dir: BorrowedFd<'_>| {
            open_beneath(dir, "buffer_total_size_kb", libc::O_RDONLY)
                .and_then(|fd| read_to_end(&fd, 64))
                .ok()
                .and_then(|text| buffers::parse_kb(&text))
                .unwrap_or(0)
        };
        let (mut ring_kb, mut requested_kb) = (0u64, 0u64);
        for (dir, buffers) in self
            .own
            .get()
            .into_iter()
            .chain(guest_dirs.iter())
            .map(|g| (g.fd.as_fd(), &g.buffers))
        {
            let host = host_kb(dir);
            ring_kb += host;
            // What the guest asked for: what the host holds while the guest traces.
            requested_kb += buffers.requested_kb().unwrap_or(host);
        }
        for (name, value) in [
            ("open_handles", self.lock_handles().len() as u64),
            ("guest_instances", guest_dirs.len() as u64),
            ("ring_buffer_bytes", ring_kb.saturating_mul(1024)),
            (
                "ring_buffer_requested_bytes",
                requested_kb.saturating_mul(1024),
            ),
        ] {
            out.push(SourceFigure {
                name,
                value,
                kind: FigureKind::Gauge,
            });
        }
        out
    }

    /// Our instance's directory (which exists once [`HostControl::own_instance_exists`]).
    pub fn instance_path(&self) -> &Path {
        self.own.path()
    }

    /// The top-level tracefs directory.
    pub fn top_path(&self) -> &Path {
        &self.top_path
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Replaces the view of the host's events (after a rescan).
    pub fn set_view(&self, view: HostView) {
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = view;
    }

    fn view(&self) -> std::sync::RwLockReadGuard<'_, HostView> {
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Host descriptors currently held for open guest handles.
    pub fn open_host_fds(&self) -> usize {
        self.lock_handles()
            .values()
            .filter(|h| h.fd.is_some())
            .count()
    }

    /// Wakes every blocked reader and closes every handle: the daemon is exiting, so the
    /// instance can be removed (open files keep it busy).
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.reset();
    }

    fn lock_handles(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Handle>>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handle(&self, handle: u64) -> Result<Arc<Handle>, FsError> {
        let h = self
            .lock_handles()
            .get(&handle)
            .cloned()
            .ok_or(FsError::Os(libc::EBADF))?;
        if h.epoch != self.epoch.load(Ordering::SeqCst) {
            return Err(FsError::Os(libc::EBADF));
        }
        Ok(h)
    }

    /// The host instance of directory `dir` of the tree, and the path prefix of that instance
    /// in the tree (`instances/NAME/` for a guest instance).
    fn instance_dir_of(&self, tree: &Tree, dir: DirId) -> Result<(InstanceDir, String), FsError> {
        if tree.instance_ino_of(dir) == eventfs_core::ROOT_INO {
            return Ok((InstanceDir::Ours(self.own_dir()?.clone()), String::new()));
        }
        let name = tree.dir_name(tree.instance_of(dir));
        let fd = self.guests.dir(&name).ok_or(FsError::Removed)?;
        Ok((InstanceDir::Guest(fd), format!("instances/{name}/")))
    }

    fn instance_fd<'a>(&'a self, dir: &'a InstanceDir) -> BorrowedFd<'a> {
        dir.host().fd.as_fd()
    }

    /// The ring buffers of a host instance, with its directory.
    fn buffers_of<'a>(&'a self, dir: &'a InstanceDir) -> (&'a InstanceBuffers, BorrowedFd<'a>) {
        let host = dir.host();
        (&host.buffers, host.fd.as_fd())
    }

    /// Shrinks each instance's ring buffer that the guest no longer uses (see [`buffers`]).
    fn settle_all(&self) {
        for g in self
            .own
            .get()
            .cloned()
            .into_iter()
            .chain(self.guests.dirs())
        {
            g.buffers.settle(g.fd.as_fd());
        }
    }

    /// Removes every instance the guest made (before our own instance goes).
    pub fn remove_guest_instances(&self) {
        self.guests.remove_all();
    }

    /// The top-level tracefs directory, where the global files are.
    fn top_fd(&self) -> BorrowedFd<'_> {
        self.top.as_fd()
    }

    /// Where the file of `kind` lives on the host.
    fn base_of(kind: FileKind) -> Base {
        match kind {
            FileKind::Root(r) if r.is_global_only() => Base::Top,
            _ => Base::Instance,
        }
    }

    fn spec_writable(node: NodeRef, tree: &Tree) -> bool {
        // The static tables carry tracefs's modes; a file without a write bit is read-only
        // whatever the policy says.
        let NodeKind::File(kind) = node.kind else {
            return false;
        };
        let dir_kind = tree.dir_kind(node.dir);
        dir_kind
            .files()
            .iter()
            .find(|f| f.kind == kind)
            .is_some_and(|f| f.mode & 0o222 != 0)
    }

    fn rate_limited(&self, path: &str) -> bool {
        let rate = self.policy.writes_per_second;
        if rate == 0 {
            return false;
        }
        let mut l = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let rate = f64::from(rate);
        l.tokens = (l.tokens + now.duration_since(l.last).as_secs_f64() * rate).min(rate);
        l.last = now;
        if l.tokens >= 1.0 {
            l.tokens -= 1.0;
            return false;
        }
        self.usage.refused(Limit::WriteRate);
        if l.last_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            l.last_log = Some(now);
            log::warn!(
                "policy: write to {path} refused with EAGAIN: over {} writes per second",
                self.policy.writes_per_second
            );
        }
        true
    }

    /// The system name of a system or event directory.
    fn system_of(tree: &Tree, dir: DirId, kind: FileKind) -> String {
        match kind {
            FileKind::SystemEnable | FileKind::SystemFilter => tree.dir_name(dir),
            _ => tree.dir_name(tree.parent_of(dir)),
        }
    }

    /// Whether an `enable` write or read of this handle must be spread over the visible events
    /// because a hidden event shares its scope.
    fn enable_scope_has_hidden(&self, tree: &Tree, h: &Handle) -> bool {
        let view = self.view();
        match h.kind {
            FileKind::EventsEnable => !view.hidden.is_empty(),
            FileKind::SystemEnable => view.system_has_hidden(&Self::system_of(tree, h.dir, h.kind)),
            _ => false,
        }
    }

    /// Writes `data` to the `enable` of each visible event below `h.dir` (a whole system at a
    /// time where it has no hidden events).
    fn fan_out_enable(&self, tree: &Tree, h: &Handle, data: &[u8]) -> Result<usize, FsError> {
        let view = self.view().clone();
        let mut targets = BTreeSet::new();
        for event in tree.events_below(h.dir) {
            if !tree.event_has_file(event, FileKind::EventEnable) {
                continue;
            }
            let system = tree.dir_name(tree.parent_of(event));
            if view.system_has_hidden(&system) {
                targets.insert(format!("events/{system}/{}/enable", tree.dir_name(event)));
            } else {
                targets.insert(format!("events/{system}/enable"));
            }
        }
        log::debug!(
            "{}: spreading an enable write over {} files",
            h.path,
            targets.len()
        );
        for path in targets {
            let fd = open_beneath(self.instance_fd(&h.instance_dir), &path, libc::O_WRONLY)?;
            write_fd(&fd, data)?;
        }
        Ok(data.len())
    }

    /// The `enable` state over the visible events below `h.dir`, as tracefs words it.
    fn aggregate_enable(&self, tree: &Tree, h: &Handle) -> Result<Vec<u8>, FsError> {
        let (mut on, mut off) = (false, false);
        for event in tree.events_below(h.dir) {
            if !tree.event_has_file(event, FileKind::EventEnable) {
                continue;
            }
            let path = format!(
                "events/{}/{}/enable",
                tree.dir_name(tree.parent_of(event)),
                tree.dir_name(event)
            );
            let fd = open_beneath(self.instance_fd(&h.instance_dir), &path, libc::O_RDONLY)?;
            match read_fd(&fd, 8, None)?.first() {
                Some(b'1') => on = true,
                _ => off = true,
            }
            if on && off {
                break;
            }
        }
        Ok(match (on, off) {
            (true, true) => b"X\n".to_vec(),
            (true, false) => b"1\n".to_vec(),
            (false, true) => b"0\n".to_vec(),
            (false, false) => b"?\n".to_vec(),
        })
    }

    /// The top level's `available_events`, restricted to the events the guest sees.
    fn filtered_available_events(&self, tree: &Tree) -> Result<Vec<u8>, FsError> {
        let fd = open_beneath(self.top_fd(), "available_events", libc::O_RDONLY)?;
        let mut all = Vec::new();
        loop {
            let chunk = read_fd(&fd, 1 << 16, None)?;
            if chunk.is_empty() {
                break;
            }
            all.extend_from_slice(&chunk);
        }
        let mut out = Vec::with_capacity(all.len());
        for line in String::from_utf8_lossy(&all).lines() {
            if let Some((sys, ev)) = line.split_once(':') {
                if tree.find_event(sys, ev).is_some() {
                    out.extend_from_slice(line.as_bytes());
                    out.push(b'\n');
                }
            }
        }
        Ok(out)
    }

    fn read_pipe(&self, h: &Handle, size: u32, nonblock: bool) -> Result<Vec<u8>, FsError> {
        let fd = h.fd.as_ref().ok_or(FsError::Os(libc::EBADF))?;
        match read_fd(fd, size, None) {
            Err(FsError::Os(libc::EAGAIN)) => {}
            other => return other,
        }
        if h.nonblock || nonblock {
            return Err(FsError::Os(libc::EAGAIN));
        }
        let blocked = self.blocked_readers.fetch_add(1, Ordering::SeqCst);
        let _slot = scopeguard(|| {
            self.blocked_readers.fetch_sub(1, Ordering::SeqCst);
        });
        if blocked >= self.limits.max_blocked_readers {
            log::warn!(
                "trace_pipe: {} readers already waiting (limit {}): EAGAIN",
                blocked,
                self.limits.max_blocked_readers
            );
            return Err(FsError::Os(libc::EAGAIN));
        }
        let deadline = Instant::now() + self.limits.pipe_wait;
        loop {
            if h.closed.load(Ordering::SeqCst)
                || h.epoch != self.epoch.load(Ordering::SeqCst)
                || self.shutting_down.load(Ordering::SeqCst)
                || Instant::now() >= deadline
            {
                // No INTERRUPT reaches us over virtio: give the worker back. Readers retry
                // EINTR (cat, Python, Go do), so a live reader just asks again.
                return Err(FsError::Os(libc::EINTR));
            }
            let mut pfd = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd. The result only shortens the wait: the read below
            // decides (trace_pipe's poll may wait for buffer_percent).
            unsafe { libc::poll(&mut pfd, 1, PIPE_POLL_SLICE.as_millis() as i32) };
            match read_fd(fd, size, None) {
                Err(FsError::Os(libc::EAGAIN)) => continue,
                other => return other,
            }
        }
    }
}

impl HostControl {
    /// Opens the host files a guest `per_cpu/cpuN/<file>` stands for.
    fn open_host_cpus(
        &self,
        tree: &Tree,
        node: NodeRef,
        file: CpuFile,
        flags: OpenFlags,
        instance_dir: &InstanceDir,
    ) -> Result<Vec<OwnedFd>, FsError> {
        let name = tree.path_of(node);
        let name = name.rsplit('/').next().unwrap_or_default().to_string();
        let mut oflags = host_open_flags(flags);
        if matches!(file, CpuFile::TracePipe | CpuFile::TracePipeRaw) {
            // We wait ourselves, in bounded slices.
            oflags |= libc::O_NONBLOCK;
        }
        per_cpu::host_cpus_of(tree.cpu_of(node.dir), tree.cpus(), self.host_cpus)
            .into_iter()
            .map(|cpu| {
                let rel = format!("per_cpu/cpu{cpu}/{name}");
                check_relative_path(&rel)?;
                open_beneath(self.instance_fd(instance_dir), &rel, oflags)
            })
            .collect()
    }

    /// True when a blocked read on `h` must give its worker back.
    fn read_must_end(&self, h: &Handle, deadline: Instant) -> bool {
        h.closed.load(Ordering::SeqCst)
            || h.epoch != self.epoch.load(Ordering::SeqCst)
            || self.shutting_down.load(Ordering::SeqCst)
            || Instant::now() >= deadline
    }

    /// Reads a `per_cpu/cpuN/` file over the host CPUs it stands for.
    fn read_per_cpu(
        &self,
        h: &Handle,
        file: CpuFile,
        offset: u64,
        size: u32,
        nonblock: bool,
    ) -> Result<Vec<u8>, FsError> {
        match file {
            CpuFile::Trace => {
                let content = h.content.lock().unwrap_or_else(|p| p.into_inner());
                match (content.as_deref(), h.cpu_fds.first()) {
                    (Some(text), _) => Ok(slice_at(text, offset, size)),
                    (None, Some(fd)) => read_full(fd, size, offset),
                    (None, None) => Ok(Vec::new()),
                }
            }
            CpuFile::Stats => {
                let texts = h
                    .cpu_fds
                    .iter()
                    .map(|fd| {
                        read_full(fd, MAX_READ, 0).map(|b| String::from_utf8_lossy(&b).into_owned())
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(slice_at(
                    per_cpu::merge_stats(&texts).as_bytes(),
                    offset,
                    size,
                ))
            }
            CpuFile::BufferSizeKb => match h.cpu_fds.first() {
                Some(fd) => read_full(fd, size, offset),
                None => Ok(Vec::new()),
            },
            // The host source serves no snapshot (its tree hides these files).
            CpuFile::Snapshot | CpuFile::SnapshotRaw => Err(FsError::Os(libc::ENOENT)),
            CpuFile::TracePipe | CpuFile::TracePipeRaw => {
                let read_now = || -> Result<Vec<u8>, FsError> {
                    if file == CpuFile::TracePipeRaw {
                        return per_cpu::read_raw_pages(&h.cpu_fds, &h.raw, size);
                    }
                    for fd in &h.cpu_fds {
                        match read_fd(fd, size, None) {
                            Ok(text) if !text.is_empty() => return Ok(text),
                            Ok(_) | Err(FsError::Os(libc::EAGAIN)) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(Vec::new())
                };
                let data = read_now()?;
                if !data.is_empty() {
                    return Ok(data);
                }
                if nonblock || h.nonblock {
                    return Err(FsError::Os(libc::EAGAIN));
                }
                let blocked = self.blocked_readers.fetch_add(1, Ordering::SeqCst);
                let _slot = scopeguard(|| {
                    self.blocked_readers.fetch_sub(1, Ordering::SeqCst);
                });
                if blocked >= self.limits.max_blocked_readers {
                    // Past the bound a blocking read returns 0 at once: a retry for
                    // trace-cmd, where EAGAIN would end its recording.
                    return Ok(Vec::new());
                }
                let deadline = Instant::now() + RAW_WAIT;
                while !self.read_must_end(h, deadline) {
                    per_cpu::poll_any(&h.cpu_fds, PIPE_POLL_SLICE.as_millis() as i32);
                    let data = read_now()?;
                    if !data.is_empty() {
                        return Ok(data);
                    }
                }
                Ok(Vec::new())
            }
        }
    }
}

#[path = "forward_write.rs"]
mod write_path;

#[path = "forward_buffers.rs"]
mod buffer_path;

/// Runs `f` when dropped.
fn scopeguard<F: FnMut()>(f: F) -> impl Drop {
    struct Guard<F: FnMut()>(F);
    impl<F: FnMut()> Drop for Guard<F> {
        fn drop(&mut self) {
            (self.0)();
        }
    }
    Guard(f)
}

impl ControlFiles for HostControl {
    fn observe(&self, tree: &Tree) {
        if let Some(watch) = self.watch.get() {
            watch.observe(tree, self);
        }
    }

    fn open(&self, tree: &Tree, node: NodeRef, flags: OpenFlags) -> Result<u64, FsError> {
        let NodeKind::File(kind) = node.kind else {
            return Err(FsError::IsDir);
        };
        let full_path = tree.path_of(node);
        check_relative_path(&full_path)?;
        // Paths below a guest instance are opened in that instance's host directory, and the
        // policy judges them as it judges the same file at the top level.
        let (instance_dir, prefix) = self.instance_dir_of(tree, node.dir)?;
        let path = full_path
            .strip_prefix(&prefix)
            .unwrap_or(&full_path)
            .to_string();
        if flags.write && !(Self::spec_writable(node, tree) && self.policy.file_writable(&path)) {
            log::warn!("policy: {full_path} is read-only for the guest (EACCES)");
            self.usage.refused(Limit::Policy);
            return Err(FsError::Os(libc::EACCES));
        }
        let max_handles = self.policy.max_open_handles;
        if max_handles > 0 && self.lock_handles().len() >= max_handles {
            log::warn!("policy: open of {full_path} refused: over max_open_handles {max_handles}");
            self.usage.refused(Limit::OpenHandles);
            return Err(FsError::Os(libc::EMFILE));
        }
        let mut flags = flags;
        let truncate_pids = kind == FileKind::Root(RootFile::SetEventPid)
            && flags.write
            && flags.truncate
            && self.scope.get().is_some();
        if truncate_pids {
            // Never cleared by the open: see write_pids.
            flags.truncate = false;
        }
        let mut trace_reserved = 0;
        let epoch = self.epoch.load(Ordering::SeqCst);
        let mut content = None;
        let mut cpu_fds = Vec::new();
        let fd = match kind {
            FileKind::PerCpu(file) => {
                cpu_fds = self.open_host_cpus(tree, node, file, flags, &instance_dir)?;
                if file == CpuFile::Trace && flags.read && cpu_fds.len() > 1 {
                    // Folded CPUs are merged in order, which needs all of their text; it is
                    // held within max_trace_bytes. One host CPU is streamed.
                    let max = self.policy.max_trace_bytes;
                    let cap = if max == 0 { usize::MAX } else { max + 1 };
                    let texts = cpu_fds
                        .iter()
                        .map(|fd| read_to_end(fd, cap))
                        .collect::<Result<Vec<_>, _>>()?;
                    let merged = per_cpu::merge_trace(&texts);
                    if !self.usage.reserve_trace(merged.len(), max) {
                        log::warn!(
                            "policy: {full_path}: {} bytes of text over max_trace_bytes {max}",
                            merged.len()
                        );
                        return Err(FsError::Os(libc::ENOMEM));
                    }
                    trace_reserved = merged.len();
                    content = Some(merged);
                }
                None
            }
            FileKind::Root(RootFile::AvailableEvents) => {
                if flags.write {
                    return Err(FsError::Os(libc::EACCES));
                }
                content = Some(self.filtered_available_events(tree)?);
                None
            }
            _ => {
                let mut oflags = host_open_flags(flags);
                if kind == FileKind::Root(RootFile::TracePipe) {
                    // We wait ourselves, in bounded slices (see read_pipe).
                    oflags |= libc::O_NONBLOCK;
                }
                Some(match Self::base_of(kind) {
                    // Global files live at the top level under their own name.
                    Base::Top => open_beneath(
                        self.top_fd(),
                        path.rsplit('/').next().unwrap_or(&path),
                        oflags,
                    )?,
                    Base::Instance => open_beneath(self.instance_fd(&instance_dir), &path, oflags)?,
                })
            }
        };
        // `trace` is streamed at the guest's offsets: the kernel pauses the buffer while it is
        // open (pause-on-trace, which the guest may not turn off), so a read ends.
        let id = self.next_handle.fetch_add(1, Ordering::SeqCst);
        let handle = Arc::new(Handle {
            fd,
            instance_dir,
            cpu_fds,
            raw: Mutex::default(),
            kind,
            dir: node.dir,
            path,
            nonblock: flags.nonblock,
            epoch,
            closed: AtomicBool::new(false),
            content: Mutex::new(content),
            trace_reserved,
            truncate_pids: AtomicBool::new(truncate_pids),
        });
        self.lock_handles().insert(id, handle.clone());
        if flags.write && flags.truncate && buffers::truncate_may_settle(kind) {
            // `echo > trace` emptied the buffer, or `> set_event` disabled every event.
            let (buffers, dir) = self.buffers_of(&handle.instance_dir);
            buffers.settle(dir);
        }
        Ok(id)
    }

    fn read(
        &self,
        tree: &Tree,
        _node: NodeRef,
        handle: u64,
        offset: u64,
        size: u32,
        nonblock: bool,
    ) -> Result<Vec<u8>, FsError> {
        let h = self.handle(handle)?;
        if h.kind == FileKind::Root(RootFile::TracePipe) {
            return self.read_pipe(&h, size, nonblock);
        }
        if let Some(text) = self.buffer_content(tree, &h) {
            return Ok(slice_at(&text, offset, size));
        }
        if let FileKind::PerCpu(file) = h.kind {
            return self.read_per_cpu(&h, file, offset, size, nonblock);
        }
        if h.kind == FileKind::Root(RootFile::AvailableEvents)
            || (matches!(h.kind, FileKind::SystemEnable | FileKind::EventsEnable)
                && self.enable_scope_has_hidden(tree, &h))
        {
            let mut content = h.content.lock().unwrap_or_else(|p| p.into_inner());
            // Aggregated enable state is recomputed at each read from the start, like a
            // fresh read of the kernel file; available_events was filled at open.
            if h.kind != FileKind::Root(RootFile::AvailableEvents)
                && (content.is_none() || offset == 0)
            {
                *content = Some(self.aggregate_enable(tree, &h)?);
            }
            return Ok(slice_at(content.as_deref().unwrap_or(&[]), offset, size));
        }
        let fd = h.fd.as_ref().ok_or(FsError::Os(libc::EBADF))?;
        read_full(fd, size, offset)
    }

    fn write(
        &self,
        tree: &Tree,
        _node: NodeRef,
        handle: u64,
        data: &[u8],
    ) -> Result<usize, FsError> {
        let h = self.handle(handle)?;
        if self.rate_limited(&h.path) {
            return Err(FsError::Os(libc::EAGAIN));
        }
        self.guarded_write(tree, &h, data)
    }

    fn mkdir(&self, tree: &Tree, parent: NodeRef, name: &str) -> Result<(), FsError> {
        if parent.kind != NodeKind::Dir(DirKind::Instances) {
            return Err(FsError::Os(libc::EPERM));
        }
        super::instance::check_instance_name(name).map_err(|e| FsError::Invalid(e.to_string()))?;
        self.guests.create(name)?;
        if let Some(dir) = self.guests.dir(name) {
            use std::os::fd::AsFd;
            let prepared =
                Self::prepare_instance(dir.fd.as_fd()).and_then(|()| match self.scope.get() {
                    Some(scope) => scope.apply(dir.fd.as_fd()),
                    None => Ok(()),
                });
            if let Err(e) = prepared {
                log::warn!("cannot prepare instance {name}: {e}");
                let _ = self.guests.remove(name);
                return Err(e);
            }
        }
        if let Err(e) = tree.add_instance(name) {
            let _ = self.guests.remove(name);
            return Err(e);
        }
        Ok(())
    }

    fn rmdir(&self, tree: &Tree, parent: NodeRef, name: &str) -> Result<(), FsError> {
        if parent.kind != NodeKind::Dir(DirKind::Instances) {
            return Err(FsError::Os(libc::EPERM));
        }
        // The host refuses (EBUSY) while a file of the instance is open (the FUSE adapter
        // gives RELEASEs in flight a moment and asks again).
        self.guests.remove(name)?;
        tree.remove_instance(name)
    }

    fn release(&self, handle: u64) {
        let removed = self.lock_handles().remove(&handle);
        if let Some(h) = removed {
            h.closed.store(true, Ordering::SeqCst);
            self.usage.release_trace(h.trace_reserved);
            self.finish_pid_truncate(&h);
            let instance_dir = h.instance_dir.clone();
            // Closes the host file (unless a request still uses it): a `trace` reader that
            // held up a growth may be gone.
            drop(h);
            let (buffers, dir) = self.buffers_of(&instance_dir);
            buffers.retry_growth(dir);
        }
    }

    fn reset(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let old: Vec<Arc<Handle>> = self.lock_handles().drain().map(|(_, h)| h).collect();
        for h in old {
            h.closed.store(true, Ordering::SeqCst);
            self.usage.release_trace(h.trace_reserved);
        }
        if !self.shutting_down.load(Ordering::SeqCst) {
            // A new session (a rebooted guest): what the old one left idle and empty goes
            // back to the minimum.
            self.settle_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths_are_plain_components() {
        assert!(check_relative_path("events/sched/enable").is_ok());
        for bad in [
            "",
            "/trace",
            "events/../x",
            "a//b",
            "./a",
            "a/\0b",
            &"x".repeat(256),
        ] {
            assert!(check_relative_path(bad).is_err(), "{bad:?}");
        }
    }
}
