//! vhost-user virtio-fs transport.
//!
//! Serves any fuse-backend-rs [`FileSystem`] to a QEMU `vhost-user-fs-pci` device:
//!
//! * [`VhostUserFsBackend`] implements vhost-user-backend's [`VhostUserBackend`] for the two
//!   virtio-fs queues (0 = hiprio, 1 = requests). Requests are handed to a worker pool so a
//!   blocking FUSE READ (trace_pipe) never stalls the other requests; FORGETs on the hiprio
//!   queue are handled inline.
//! * [`serve`] accepts QEMU connections one after the other on a [`Listener`] (built with
//!   [`listener_from_path`] or [`listener_from_fd`]) and serves them with the same filesystem
//!   until the [`Shutdown`] handle is triggered.
//!
//! Invariants that keep guests from hanging (see the comments at each place):
//! * every popped descriptor chain is handed back with `add_used` + a notification, with a
//!   FUSE error reply when the request header is readable and the chain has room for it;
//! * the EVENT_IDX disable/drain/enable loop never exits with notifications disabled;
//! * `handle_event` never returns an error (that would kill the vring worker thread for good);
//! * completions that race with a ring stop/restart (guest reboot) are dropped instead of
//!   being written into the new ring.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use fuse_backend_rs::abi::fuse_abi::{InHeader, Opcode, OutHeader};
use fuse_backend_rs::api::filesystem::FileSystem;
use fuse_backend_rs::api::server::{MetricsHook, Server};
use fuse_backend_rs::transport::{Reader, VirtioFsWriter, Writer};
use log::{debug, info, warn};
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::vhost_user::{Error as VhostUserError, Listener};
use vhost_user_backend::{
    VhostUserBackend, VhostUserDaemon, VringMutex, VringState, VringStateGuard, VringStateMutGuard,
    VringT,
};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use virtio_queue::{DescriptorChain, Error as VirtQueueError, QueueOwnedT, QueueT};
use vm_memory::{
    ByteValued, Bytes, GuestAddressSpace, GuestMemory, GuestMemoryAtomic, GuestMemoryMmap,
};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};
use vmm_sys_util::eventfd::{EventFd, EFD_CLOEXEC, EFD_NONBLOCK};

/// Index of the high-priority queue (the guest sends single FORGETs there).
pub const HIPRIO_QUEUE: u16 = 0;
/// Index of the (single) request queue.
pub const REQUEST_QUEUE: u16 = 1;
/// Number of virtqueues served: hiprio + one request queue, as Linux guests use.
pub const NUM_QUEUES: usize = 2;
/// Largest queue size accepted from the frontend (QEMU `queue-size=1024`).
pub const MAX_QUEUE_SIZE: usize = 1024;
/// Default number of request worker threads.
pub const DEFAULT_THREAD_POOL_SIZE: usize = 4;

const OUT_HEADER_LEN: usize = std::mem::size_of::<OutHeader>();
const IN_HEADER_LEN: usize = std::mem::size_of::<InHeader>();

/// Guest memory as shared between vhost-user-backend and this transport.
type GuestMem = GuestMemoryAtomic<GuestMemoryMmap>;
/// Chains hold an owned snapshot of guest memory so they can move to worker threads
/// (a `GuestMemoryLoadGuard` is not `Send`).
type Chain = DescriptorChain<Arc<GuestMemoryMmap>>;

/// Errors returned by the transport, phrased for the daemon's user.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The directory that should hold the socket does not exist.
    #[error("socket directory {} does not exist: create it or fix --socket-path", dir.display())]
    SocketDirMissing {
        /// Directory part of `--socket-path`.
        dir: PathBuf,
    },
    /// Another process is listening on the socket path.
    #[error("socket {} is in use by another running vhost-user daemon: stop it or choose another --socket-path", path.display())]
    SocketInUse {
        /// The socket path.
        path: PathBuf,
    },
    /// The socket path exists and is not a socket; it is left alone.
    #[error("{} exists and is not a socket: refusing to replace it", path.display())]
    NotASocket {
        /// The socket path.
        path: PathBuf,
    },
    /// Binding the socket failed for another reason.
    #[error("cannot create vhost-user socket {}: {source}", path.display())]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The fd given with `--fd` is not a listening unix socket.
    #[error("--fd {fd} is not usable as the vhost-user listening socket: {reason}")]
    BadListenFd {
        /// The fd number.
        fd: RawFd,
        /// What is wrong with it.
        reason: String,
    },
    /// QEMU's guest RAM cannot be accessed by the daemon.
    #[error("guest memory is not shared with the daemon ({detail}): start QEMU with -object memory-backend-memfd,id=mem,size=<same as -m>,share=on -numa node,memdev=mem")]
    GuestMemoryNotShared {
        /// What was observed.
        detail: String,
    },
    /// A vhost-user connection ended with a protocol error.
    #[error("vhost-user connection failed: {0}")]
    Connection(String),
    /// Setting up the vhost-user daemon for a connection failed.
    #[error("cannot set up the vhost-user device: {0}")]
    Setup(String),
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        source: io::Error,
    },
}

/// Transport counters, shared with the daemon's own statistics.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Descriptor chains handed back to the guest (all queues).
    pub chains_processed: AtomicU64,
    /// Chains answered with an error reply written by the transport itself (EIO).
    pub error_replies: AtomicU64,
    /// Chains handed back with length 0 because not even an error reply could be written.
    pub chains_unanswerable: AtomicU64,
    /// Completions dropped because the ring was stopped or restarted meanwhile.
    pub stale_completions: AtomicU64,
    /// vhost-user connections accepted.
    pub connections: AtomicU64,
}

/// A cloneable stop request for [`serve`], safe to trigger from any thread.
///
/// It is an eventfd that is written once and never read, so every poller sees it readable
/// from then on. [`Shutdown::as_raw_fd`] exposes it for an async-signal-safe `write(2)`.
#[derive(Clone)]
pub struct Shutdown {
    efd: Arc<EventFd>,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("fd", &self.efd.as_raw_fd())
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

impl Shutdown {
    /// Create an untriggered shutdown handle.
    pub fn new() -> io::Result<Self> {
        Ok(Shutdown {
            efd: Arc::new(EventFd::new(EFD_NONBLOCK | EFD_CLOEXEC)?),
        })
    }

    /// Ask [`serve`] to stop: it returns after closing the current connection (if any).
    pub fn trigger(&self) {
        // The counter only saturates after 2^64-2 writes; an EAGAIN then still leaves it readable.
        let _ = self.efd.write(1);
    }

    /// Whether [`Shutdown::trigger`] (or a raw write to the fd) has happened.
    pub fn is_triggered(&self) -> bool {
        matches!(poll_fds(&[self.efd.as_raw_fd()], 0), Ok(r) if r[0])
    }

    /// The eventfd; writing an 8-byte non-zero value to it triggers the shutdown. This is
    /// async-signal-safe, so a signal handler may do it.
    pub fn as_raw_fd(&self) -> RawFd {
        self.efd.as_raw_fd()
    }
}

/// Per-request metrics callback (fuse-backend-rs's hook), shared by every worker.
pub type Metrics = Arc<dyn MetricsHook + Send + Sync>;

/// Options for [`serve`].
#[derive(Clone)]
pub struct ServeOptions {
    /// Number of request worker threads per connection (at least 1 is used).
    pub thread_pool_size: usize,
    /// Return after the first connection ends instead of accepting the next one.
    pub exit_on_disconnect: bool,
    /// Stop request; when `None` the server runs until an error (or the first disconnect).
    pub shutdown: Option<Shutdown>,
    /// Counters updated by the transport.
    pub stats: Arc<TransportStats>,
    /// How long to wait, after a disconnect, for requests still running in the filesystem
    /// before their worker threads are detached (a blocked trace_pipe read may never return).
    pub drain_timeout: Duration,
    /// Called before and after every FUSE request (request and error counters).
    pub metrics: Option<Metrics>,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("thread_pool_size", &self.thread_pool_size)
            .field("exit_on_disconnect", &self.exit_on_disconnect)
            .field("shutdown", &self.shutdown)
            .field("drain_timeout", &self.drain_timeout)
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            thread_pool_size: DEFAULT_THREAD_POOL_SIZE,
            exit_on_disconnect: false,
            shutdown: None,
            stats: Arc::new(TransportStats::default()),
            drain_timeout: Duration::from_secs(5),
            metrics: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Listener construction

/// Create the vhost-user listening socket at `path` (QEMU connects to it as a client).
///
/// A stale socket file left by a dead daemon is replaced; a socket another process is still
/// listening on is not (it is detected through `/proc/net/unix`, without connecting to it,
/// because a probing connection would make a single-connection daemon such as virtiofsd exit).
pub fn listener_from_path(path: &Path) -> Result<Listener, TransportError> {
    let path = std::path::absolute(path).map_err(|source| TransportError::Bind {
        path: path.to_owned(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new("/")).to_owned();
    match fs::metadata(&dir) {
        Ok(md) if md.is_dir() => {}
        Ok(_) => {
            return Err(TransportError::Bind {
                path,
                source: io::Error::from_raw_os_error(libc::ENOTDIR),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(TransportError::SocketDirMissing { dir })
        }
        Err(source) => return Err(TransportError::Bind { path, source }),
    }
    match fs::symlink_metadata(&path) {
        Ok(md) if md.file_type().is_socket() => {
            if unix_socket_is_listening(&path) {
                return Err(TransportError::SocketInUse { path });
            }
            // Stale socket from a previous run: Listener::new(.., true) removes it.
        }
        Ok(_) => return Err(TransportError::NotASocket { path }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(TransportError::Bind { path, source }),
    }
    Listener::new(&path, true).map_err(|e| match e {
        VhostUserError::SocketError(source) => match source.raw_os_error() {
            Some(libc::EADDRINUSE) => TransportError::SocketInUse { path },
            Some(libc::ENOENT) => TransportError::SocketDirMissing { dir },
            _ => TransportError::Bind { path, source },
        },
        other => TransportError::Bind {
            path,
            source: io::Error::other(other.to_string()),
        },
    })
}

/// Whether `/proc/net/unix` lists a listening socket bound to `path`.
fn unix_socket_is_listening(path: &Path) -> bool {
    // Flags column 00010000 is __SO_ACCEPTCON; the path is the last column.
    let Ok(table) = fs::read("/proc/net/unix") else {
        return false;
    };
    let want = path.as_os_str().as_bytes();
    table.split(|&b| b == b'\n').skip(1).any(|line| {
        let cols: Vec<&[u8]> = line
            .split(|&b| b == b' ')
            .filter(|c| !c.is_empty())
            .collect();
        cols.len() >= 8 && cols[3] == b"00010000" && cols[7] == want
    })
}

/// Adopt an inherited listening socket (`--fd N`, the vhost-user backend program convention).
///
/// Takes ownership of `fd`: call it once, early, with a descriptor nothing else owns. The fd
/// must be a bound, listening `AF_UNIX` stream socket; it is made close-on-exec and blocking.
pub fn listener_from_fd(fd: RawFd) -> Result<Listener, TransportError> {
    let bad = |reason: String| TransportError::BadListenFd { fd, reason };
    // SAFETY: fstat only writes into the zeroed stat buffer we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above; an invalid fd yields EBADF.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(bad(io::Error::last_os_error().to_string()));
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(bad("not a socket".into()));
    }
    if sockopt_int(fd, libc::SO_DOMAIN).map_err(|e| bad(e.to_string()))? != libc::AF_UNIX {
        return Err(bad("not an AF_UNIX socket".into()));
    }
    if sockopt_int(fd, libc::SO_TYPE).map_err(|e| bad(e.to_string()))? != libc::SOCK_STREAM {
        return Err(bad("not a SOCK_STREAM socket".into()));
    }
    if sockopt_int(fd, libc::SO_ACCEPTCONN).map_err(|e| bad(e.to_string()))? == 0 {
        return Err(bad(
            "socket is not listening (a connected socket cannot be accepted from)".into(),
        ));
    }
    // SAFETY: plain fcntl on an fd validated above.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: the caller hands us ownership of this fd (documented contract).
    let listener = unsafe { UnixListener::from_raw_fd(fd) };
    listener
        .set_nonblocking(false)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Listener::from(listener))
}

fn sockopt_int(fd: RawFd, opt: libc::c_int) -> io::Result<libc::c_int> {
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: val/len are valid for writes of the given size.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            &mut val as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(val)
    }
}

// ---------------------------------------------------------------------------------------------
// Vring wrapper with a generation counter

/// The vring type used by [`VhostUserFsBackend`]: a [`VringMutex`] plus a generation counter
/// bumped whenever the frontend stops, resizes or re-addresses the ring.
///
/// A request popped before such a change (e.g. a trace_pipe read blocked across a guest
/// reboot) must not be completed into the new ring: the head index would belong to some
/// other request of the new driver instance and Linux marks the virtqueue broken.
#[derive(Clone)]
pub struct FsVring {
    inner: VringMutex<GuestMem>,
    generation: Arc<AtomicU64>,
}

impl FsVring {
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

impl<'a> VringStateGuard<'a, GuestMem> for FsVring {
    type G = MutexGuard<'a, VringState<GuestMem>>;
}

impl<'a> VringStateMutGuard<'a, GuestMem> for FsVring {
    type G = MutexGuard<'a, VringState<GuestMem>>;
}

impl VringT<GuestMem> for FsVring {
    fn new(mem: GuestMem, max_queue_size: u16) -> Result<Self, VirtQueueError> {
        Ok(FsVring {
            inner: VringMutex::new(mem, max_queue_size)?,
            generation: Arc::new(AtomicU64::new(0)),
        })
    }
    fn get_ref(&self) -> MutexGuard<'_, VringState<GuestMem>> {
        self.inner.get_ref()
    }
    fn get_mut(&self) -> MutexGuard<'_, VringState<GuestMem>> {
        self.inner.get_mut()
    }
    fn add_used(&self, desc_index: u16, len: u32) -> Result<(), VirtQueueError> {
        self.inner.add_used(desc_index, len)
    }
    fn signal_used_queue(&self) -> io::Result<()> {
        self.inner.signal_used_queue()
    }
    fn enable_notification(&self) -> Result<bool, VirtQueueError> {
        self.inner.enable_notification()
    }
    fn disable_notification(&self) -> Result<(), VirtQueueError> {
        self.inner.disable_notification()
    }
    fn needs_notification(&self) -> Result<bool, VirtQueueError> {
        self.inner.needs_notification()
    }
    fn set_enabled(&self, enabled: bool) {
        // Disabled-but-started rings may still complete requests (vhost-user spec), so no bump.
        self.inner.set_enabled(enabled)
    }
    fn set_queue_info(
        &self,
        desc_table: u64,
        avail_ring: u64,
        used_ring: u64,
    ) -> Result<(), VirtQueueError> {
        // Bump before the change: a completion that sees the old generation under the state
        // lock ran entirely before the change.
        self.bump();
        self.inner.set_queue_info(desc_table, avail_ring, used_ring)
    }
    fn queue_next_avail(&self) -> u16 {
        self.inner.queue_next_avail()
    }
    fn set_queue_next_avail(&self, base: u16) {
        self.bump();
        self.inner.set_queue_next_avail(base)
    }
    fn set_queue_next_used(&self, idx: u16) {
        self.bump();
        self.inner.set_queue_next_used(idx)
    }
    fn queue_used_idx(&self) -> Result<u16, VirtQueueError> {
        self.inner.queue_used_idx()
    }
    fn set_queue_size(&self, num: u16) {
        self.bump();
        self.inner.set_queue_size(num)
    }
    fn set_queue_event_idx(&self, enabled: bool) {
        self.inner.set_queue_event_idx(enabled)
    }
    fn set_queue_ready(&self, ready: bool) {
        self.bump();
        self.inner.set_queue_ready(ready)
    }
    fn set_kick(&self, file: Option<fs::File>) {
        self.inner.set_kick(file)
    }
    fn read_kick(&self) -> io::Result<bool> {
        self.inner.read_kick()
    }
    fn set_call(&self, file: Option<fs::File>) {
        self.inner.set_call(file)
    }
    fn set_err(&self, file: Option<fs::File>) {
        self.inner.set_err(file)
    }
}

// ---------------------------------------------------------------------------------------------
// Worker pool

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Fixed-size pool of request threads fed through one channel.
struct WorkerPool {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    handles: Mutex<Vec<JoinHandle<()>>>,
    /// Number of worker threads still running, to wait for them with a timeout.
    live: Arc<(Mutex<usize>, Condvar)>,
}

/// Decrements the live count when a worker exits, even by unwinding.
struct LiveGuard(Arc<(Mutex<usize>, Condvar)>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let (count, cvar) = &*self.0;
        *lock(count) -= 1;
        cvar.notify_all();
    }
}

impl WorkerPool {
    fn new(size: usize) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let live = Arc::new((Mutex::new(0usize), Condvar::new()));
        let pool = WorkerPool {
            tx: Mutex::new(Some(tx)),
            handles: Mutex::new(Vec::new()),
            live: live.clone(),
        };
        for i in 0..size.max(1) {
            let rx = rx.clone();
            *lock(&live.0) += 1;
            let guard = LiveGuard(live.clone());
            let spawned = thread::Builder::new()
                .name(format!("vfs-worker-{i}"))
                .spawn(move || {
                    let _guard = guard;
                    loop {
                        // Hold the receiver lock only while waiting, not while working.
                        let job = lock(&rx).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => break, // sender dropped: pool shut down
                        }
                    }
                });
            match spawned {
                Ok(handle) => lock(&pool.handles).push(handle),
                Err(e) => {
                    pool.shutdown(Duration::from_secs(1));
                    return Err(e);
                }
            }
        }
        Ok(pool)
    }

    /// Queue a job; gives it back if the pool is shut down.
    fn submit(&self, job: Job) -> Result<(), Job> {
        match lock(&self.tx).as_ref() {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }

    /// Stop accepting jobs, let queued ones finish, and join the workers if they all exit
    /// within `timeout`; otherwise detach them (their completions stay memory-safe because
    /// each job owns its guest-memory snapshot and vring handle).
    fn shutdown(&self, timeout: Duration) -> bool {
        lock(&self.tx).take();
        let deadline = Instant::now() + timeout;
        let (count, cvar) = &*self.live;
        let mut live = lock(count);
        while *live > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            live = cvar
                .wait_timeout(live, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let stuck = *live;
        drop(live);
        let handles = std::mem::take(&mut *lock(&self.handles));
        if stuck == 0 {
            for h in handles {
                let _ = h.join();
            }
            true
        } else {
            warn!(
                "vhost-user: {stuck} request worker(s) still busy in the filesystem {timeout:?} after disconnect; detaching them"
            );
            false
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the transport down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// The backend

/// vhost-user-backend implementation serving one vhost-user connection of virtio-fs.
///
/// Uses interior mutability ([`VhostUserBackend`], not the `Mut` variant) so the vring worker
/// thread and the request pool can use it concurrently. Create one per connection; the
/// [`Server`] (and so the filesystem) is shared between connections.
pub struct VhostUserFsBackend<F: FileSystem + Sync> {
    server: Arc<Server<F>>,
    stats: Arc<TransportStats>,
    metrics: Option<Metrics>,
    event_idx: AtomicBool,
    mem: Mutex<Option<GuestMem>>,
    mem_regions: AtomicUsize,
    features_acked: AtomicBool,
    pool: WorkerPool,
    /// Read ends of the exit eventfds handed to vhost-user-backend, which registers them in
    /// its epoll with `into_raw_fd` and never closes them; closed in `Drop`.
    leaked_exit_fds: Mutex<Vec<RawFd>>,
    empty_kick_warned: AtomicBool,
    chains_seen: AtomicU64,
}

impl<F: FileSystem + Send + Sync + 'static> VhostUserFsBackend<F> {
    /// Create a backend with `thread_pool_size` request workers (at least one).
    pub fn new(
        server: Arc<Server<F>>,
        thread_pool_size: usize,
        stats: Arc<TransportStats>,
        metrics: Option<Metrics>,
    ) -> io::Result<Self> {
        Ok(VhostUserFsBackend {
            server,
            stats,
            metrics,
            event_idx: AtomicBool::new(false),
            mem: Mutex::new(None),
            mem_regions: AtomicUsize::new(0),
            features_acked: AtomicBool::new(false),
            pool: WorkerPool::new(thread_pool_size)?,
            leaked_exit_fds: Mutex::new(Vec::new()),
            empty_kick_warned: AtomicBool::new(false),
            chains_seen: AtomicU64::new(0),
        })
    }

    /// Number of guest memory regions currently mapped.
    pub fn memory_regions(&self) -> usize {
        self.mem_regions.load(Ordering::Acquire)
    }

    /// Stop the request workers (see [`ServeOptions::drain_timeout`]); true if all were joined.
    pub fn shutdown_workers(&self, timeout: Duration) -> bool {
        self.pool.shutdown(timeout)
    }

    /// Pop every available chain of `vring` and pass it to `sink`, following the EVENT_IDX
    /// protocol. Never returns early with notifications disabled.
    fn drain_queue(&self, queue: u16, vring: &FsVring, mut sink: impl FnMut(Chain, u64)) {
        let Some(mem) = lock(&self.mem).clone() else {
            warn!("vhost-user: kick on queue {queue} before any guest memory was mapped");
            return;
        };
        let event_idx = self.event_idx.load(Ordering::Acquire);
        loop {
            let (chains, generation, avail_error) = {
                let mut state = vring.get_mut();
                if event_idx {
                    if let Err(e) = state.disable_notification() {
                        warn!("vhost-user: queue {queue}: cannot disable notifications: {e}");
                    }
                }
                let generation = vring.generation();
                let snapshot = mem.memory().into_inner();
                match state.get_queue_mut().iter(snapshot) {
                    Ok(iter) => (iter.collect::<Vec<_>>(), generation, false),
                    Err(e) => {
                        warn!("vhost-user: queue {queue}: cannot read the available ring: {e}");
                        (Vec::new(), generation, true)
                    }
                }
            };
            let popped = chains.len();
            if popped == 0 && !avail_error {
                self.note_empty_kick(queue);
            }
            self.chains_seen.fetch_add(popped as u64, Ordering::Relaxed);
            for chain in chains {
                sink(chain, generation);
            }
            if !event_idx {
                break;
            }
            match vring.enable_notification() {
                // More chains arrived while notifications were off: go round again, unless
                // this round made no progress (a broken avail ring would loop forever).
                Ok(true) if popped > 0 => continue,
                Ok(_) => break,
                Err(e) => {
                    warn!("vhost-user: queue {queue}: cannot re-enable notifications: {e}");
                    break;
                }
            }
        }
    }

    /// A kick that finds an empty ring before any chain was ever seen is what a guest whose
    /// RAM is mapped privately (memfd/file backend without share=on) looks like from here:
    /// its writes never reach the pages we map.
    fn note_empty_kick(&self, queue: u16) {
        if self.chains_seen.load(Ordering::Relaxed) == 0
            && !self.empty_kick_warned.swap(true, Ordering::Relaxed)
        {
            warn!(
                "vhost-user: queue {queue} was kicked but its available ring is empty; if the guest hangs on mount, its memory is probably not shared (QEMU memory backend needs share=on)"
            );
        }
    }
}

impl<F: FileSystem + Sync> Drop for VhostUserFsBackend<F> {
    fn drop(&mut self) {
        // Runs after vhost-user-backend dropped every VringEpollHandler (they hold clones of
        // the Arc'd backend), so the epoll instances using these fds are gone.
        for fd in lock(&self.leaked_exit_fds).drain(..) {
            // SAFETY: the fd was leaked by vhost-user-backend (into_raw_fd) and is owned by
            // nobody else; closing it exactly once here.
            unsafe { libc::close(fd) };
        }
    }
}

impl<F: FileSystem + Send + Sync + 'static> VhostUserBackend for VhostUserFsBackend<F> {
    type Bitmap = ();
    type Vring = FsVring;

    fn num_queues(&self) -> usize {
        NUM_QUEUES
    }

    fn max_queue_size(&self) -> usize {
        MAX_QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        (1 << VIRTIO_F_VERSION_1)
            | (1 << VIRTIO_RING_F_INDIRECT_DESC)
            | (1 << VIRTIO_RING_F_EVENT_IDX)
            | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn acked_features(&self, _features: u64) {
        self.features_acked.store(true, Ordering::Release);
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        // Never CONFIG (QEMU 7.1-8.0 crash on it) and never packed rings (split only).
        VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS
            | VhostUserProtocolFeatures::RESET_DEVICE
    }

    fn reset_device(&self) {
        self.event_idx.store(false, Ordering::Release);
        self.features_acked.store(false, Ordering::Release);
    }

    fn set_event_idx(&self, enabled: bool) {
        self.event_idx.store(enabled, Ordering::Release);
    }

    fn update_memory(&self, mem: GuestMem) -> io::Result<()> {
        let regions = mem.memory().num_regions();
        self.mem_regions.store(regions, Ordering::Release);
        if regions == 0 {
            warn!(
                "vhost-user: frontend mapped no guest memory (QEMU memory backend needs share=on)"
            );
        } else {
            debug!("vhost-user: {regions} guest memory region(s) mapped");
        }
        *lock(&self.mem) = Some(mem);
        Ok(())
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        // Without an exit event, dropping the VhostUserDaemon would join a vring worker that
        // never returns. A new pair per call: each connection gets fresh epoll handlers.
        match new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC) {
            Ok((consumer, notifier)) => {
                lock(&self.leaked_exit_fds).push(consumer.as_raw_fd());
                Some((consumer, notifier))
            }
            Err(e) => {
                warn!("vhost-user: cannot create vring worker exit event: {e}");
                None
            }
        }
    }

    fn handle_event(
        &self,
        device_event: u16,
        evset: EventSet,
        vrings: &[FsVring],
        _thread_id: usize,
    ) -> io::Result<()> {
        // Errors are logged, never returned: an Err here ends the vring worker thread for the
        // rest of the connection and the guest hangs.
        if evset != EventSet::IN {
            warn!("vhost-user: unexpected event set {evset:?} for event {device_event}");
            return Ok(());
        }
        let Some(vring) = vrings.get(device_event as usize) else {
            warn!("vhost-user: event for unknown queue {device_event}");
            return Ok(());
        };
        match device_event {
            HIPRIO_QUEUE => {
                // FORGETs are quick and must not queue behind blocked reads: inline.
                self.drain_queue(device_event, vring, |chain, generation| {
                    let head = chain.head_index();
                    let len =
                        process_chain(&self.server, &chain, &self.stats, self.metrics.as_deref());
                    complete(vring, head, len, generation, &self.stats);
                });
            }
            REQUEST_QUEUE => {
                self.drain_queue(device_event, vring, |chain, generation| {
                    let server = self.server.clone();
                    let stats = self.stats.clone();
                    let metrics = self.metrics.clone();
                    let vring2 = vring.clone();
                    let job: Job = Box::new(move || {
                        let head = chain.head_index();
                        let len = process_chain(&server, &chain, &stats, metrics.as_deref());
                        complete(&vring2, head, len, generation, &stats);
                    });
                    if let Err(job) = self.pool.submit(job) {
                        // Pool already stopped (disconnect in progress): still answer.
                        job();
                    }
                });
            }
            _ => warn!("vhost-user: event for unexpected queue {device_event}"),
        }
        Ok(())
    }
}

/// Hand a chain back: add_used + notify when the EVENT_IDX rules (or their absence) say so.
fn complete(vring: &FsVring, head: u16, len: u32, generation: u64, stats: &TransportStats) {
    let mut state = vring.get_mut();
    if vring.generation() != generation || !state.get_queue().ready() {
        stats.stale_completions.fetch_add(1, Ordering::Relaxed);
        debug!("vhost-user: dropping completion of chain {head}: ring was stopped or reset");
        return;
    }
    if let Err(e) = state.add_used(head, len) {
        warn!("vhost-user: cannot return chain {head} (len {len}) to the used ring: {e}");
        return;
    }
    stats.chains_processed.fetch_add(1, Ordering::Relaxed);
    // When unsure, notify: a spurious interrupt is harmless, a missing one hangs the guest.
    let notify = state.needs_notification().unwrap_or_else(|e| {
        warn!("vhost-user: cannot read used_event: {e}");
        true
    });
    if notify {
        if let Err(e) = state.signal_used_queue() {
            warn!("vhost-user: cannot signal the guest: {e}");
        }
    }
}

/// Run one FUSE request and return the used length to report for the chain.
fn process_chain<F: FileSystem + Sync>(
    server: &Server<F>,
    chain: &Chain,
    stats: &TransportStats,
    metrics: Option<&(dyn MetricsHook + Send + Sync)>,
) -> u32 {
    let mem: &GuestMemoryMmap = chain.memory();
    let header = peek_in_header(mem, chain);
    let reader = Reader::from_descriptor_chain(mem, chain.clone());
    let writer = VirtioFsWriter::new(mem, chain.clone());
    let (reader, writer) = match (reader, writer) {
        (Ok(r), Ok(w)) => (r, w),
        (r, w) => {
            warn!(
                "vhost-user: malformed descriptor chain {} ({}): reader: {}, writer: {}",
                chain.head_index(),
                describe(header.as_ref()),
                r.err().map_or("ok".to_string(), |e| e.to_string()),
                w.as_ref().err().map_or("ok".to_string(), |e| e.to_string())
            );
            return match (header, w) {
                (Some(h), Ok(w)) if expects_reply(h.opcode) => {
                    error_reply(w, h.unique, libc::EIO, stats)
                }
                _ => unanswerable(stats),
            };
        }
    };

    // A request whose success reply hands the guest a reference (a lookup count) must have
    // room for that reply: otherwise the filesystem counts a reference the guest never
    // receives and so never forgets. Refuse it before it runs.
    if let Some(h) = header {
        if let Some(need) = reference_reply_len(h.opcode) {
            if writer.available_bytes() < need {
                warn!(
                    "vhost-user: chain {} ({}) has {} writable bytes, its reply needs {need}",
                    chain.head_index(),
                    describe(Some(&h)),
                    writer.available_bytes()
                );
                return error_reply(writer, h.unique, libc::EIO, stats);
            }
        }
    }

    if header.is_some_and(|h| expects_reply(h.opcode)) {
        // Clear the reply header so that, if handle_message fails, we can tell from guest
        // memory whether it already wrote an error reply.
        let _ = writer.clone().write_all(&[0u8; OUT_HEADER_LEN]);
    }
    let spare = writer.clone();
    let result = catch_unwind(AssertUnwindSafe(|| {
        server.handle_message(
            reader,
            Writer::VirtioFs(writer),
            None,
            metrics.map(|m| m as &dyn MetricsHook),
        )
    }));
    let err = match result {
        Ok(Ok(len)) => {
            return match header {
                // fuse-backend-rs answers DESTROY with nothing; the guest waits for a header.
                Some(h) if len == 0 && h.opcode == Opcode::Destroy as u32 => {
                    ok_reply(spare, h.unique)
                }
                _ => len as u32,
            };
        }
        Ok(Err(e)) => e.to_string(),
        Err(panic) => format!(
            "filesystem panicked: {}",
            panic
                .downcast_ref::<&str>()
                .copied()
                .or(panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("?")
        ),
    };
    warn!(
        "vhost-user: request failed on chain {} ({}): {err}",
        chain.head_index(),
        describe(header.as_ref())
    );
    match header {
        Some(h) if expects_reply(h.opcode) => {
            // Keep an error reply the server already wrote (e.g. EINVAL for a bad name).
            if let Some(out) = peek_out_header(mem, chain) {
                if out.unique == h.unique && out.error < 0 && out.len as usize == OUT_HEADER_LEN {
                    return OUT_HEADER_LEN as u32;
                }
            }
            error_reply(spare, h.unique, libc::EIO, stats)
        }
        _ => unanswerable(stats),
    }
}

fn describe(h: Option<&InHeader>) -> String {
    match h {
        Some(h) => format!(
            "opcode {} unique {} nodeid {}",
            h.opcode, h.unique, h.nodeid
        ),
        None => "no readable request header".to_string(),
    }
}

/// Size of the success reply of requests that hand out an inode reference (LOOKUP and the
/// creating operations). READDIRPLUS needs no check here: the server refuses a buffer smaller
/// than the request's size before the filesystem runs, and entries that do not fit are undone.
fn reference_reply_len(opcode: u32) -> Option<usize> {
    use fuse_backend_rs::abi::fuse_abi::{EntryOut, OpenOut};
    const LOOKUP: u32 = Opcode::Lookup as u32;
    const MKNOD: u32 = Opcode::Mknod as u32;
    const MKDIR: u32 = Opcode::Mkdir as u32;
    const SYMLINK: u32 = Opcode::Symlink as u32;
    const LINK: u32 = Opcode::Link as u32;
    const CREATE: u32 = Opcode::Create as u32;
    let entry = OUT_HEADER_LEN + std::mem::size_of::<EntryOut>();
    match opcode {
        LOOKUP | MKNOD | MKDIR | SYMLINK | LINK => Some(entry),
        CREATE => Some(entry + std::mem::size_of::<OpenOut>()),
        _ => None,
    }
}

/// FORGET, BATCH_FORGET and INTERRUPT get no reply; everything else waits for one.
fn expects_reply(opcode: u32) -> bool {
    opcode != Opcode::Forget as u32
        && opcode != Opcode::BatchForget as u32
        && opcode != Opcode::Interrupt as u32
}

fn unanswerable(stats: &TransportStats) -> u32 {
    stats.chains_unanswerable.fetch_add(1, Ordering::Relaxed);
    0
}

fn error_reply(
    mut w: VirtioFsWriter<'_, ()>,
    unique: u64,
    errno: i32,
    stats: &TransportStats,
) -> u32 {
    let out = OutHeader {
        len: OUT_HEADER_LEN as u32,
        error: -errno,
        unique,
    };
    match w.write_all(out.as_slice()) {
        Ok(()) => {
            stats.error_replies.fetch_add(1, Ordering::Relaxed);
            OUT_HEADER_LEN as u32
        }
        Err(e) => {
            warn!("vhost-user: no room for an error reply to unique {unique}: {e}");
            unanswerable(stats)
        }
    }
}

fn ok_reply(mut w: VirtioFsWriter<'_, ()>, unique: u64) -> u32 {
    let out = OutHeader {
        len: OUT_HEADER_LEN as u32,
        error: 0,
        unique,
    };
    match w.write_all(out.as_slice()) {
        Ok(()) => OUT_HEADER_LEN as u32,
        Err(_) => 0,
    }
}

/// Read the first `N` bytes of the readable (or writable) part of a chain, if all of it is
/// inside guest memory.
fn read_chain_prefix<const N: usize>(
    mem: &GuestMemoryMmap,
    chain: &Chain,
    writable: bool,
) -> Option<[u8; N]> {
    let mut buf = [0u8; N];
    let mut filled = 0;
    let descs = if writable {
        chain.clone().writable()
    } else {
        chain.clone().readable()
    };
    for desc in descs {
        let take = (desc.len() as usize).min(N - filled);
        mem.read_slice(&mut buf[filled..filled + take], desc.addr())
            .ok()?;
        filled += take;
        if filled == N {
            return Some(buf);
        }
    }
    None
}

fn peek_in_header(mem: &GuestMemoryMmap, chain: &Chain) -> Option<InHeader> {
    let bytes = read_chain_prefix::<IN_HEADER_LEN>(mem, chain, false)?;
    // Copy instead of ByteValued::from_slice, which rejects the byte array's alignment.
    let mut header = InHeader::default();
    header.as_mut_slice().copy_from_slice(&bytes);
    Some(header)
}

fn peek_out_header(mem: &GuestMemoryMmap, chain: &Chain) -> Option<OutHeader> {
    let bytes = read_chain_prefix::<OUT_HEADER_LEN>(mem, chain, true)?;
    let mut header = OutHeader::default();
    header.as_mut_slice().copy_from_slice(&bytes);
    Some(header)
}

// ---------------------------------------------------------------------------------------------
// Connection lifecycle

/// How one connection ended.
enum ConnectionEnd {
    /// The frontend closed the socket (or we did, on shutdown).
    Disconnected,
    /// The connection failed; the error says why.
    Failed(TransportError),
}

/// Serve QEMU connections on `listener` with the filesystem `fs` until shutdown.
///
/// Connections are served one at a time; after a disconnect the next one is accepted with
/// the same filesystem (the guest's new FUSE INIT resets it), unless
/// [`ServeOptions::exit_on_disconnect`]. Returns `Ok(())` on shutdown or, with
/// `exit_on_disconnect`, after a clean disconnect. A connection that fails because guest
/// memory is not shared is fatal ([`TransportError::GuestMemoryNotShared`]); other protocol
/// failures are logged and the next connection is accepted.
pub fn serve<F>(
    fs: Arc<F>,
    mut listener: Listener,
    opts: ServeOptions,
) -> Result<(), TransportError>
where
    F: FileSystem + Send + Sync + 'static,
{
    let session_fs = fs.clone();
    let server = Arc::new(Server::new(fs));
    let shutdown = match opts.shutdown.clone() {
        Some(s) => s,
        None => Shutdown::new().map_err(|source| TransportError::Io {
            context: "cannot create shutdown eventfd",
            source,
        })?,
    };
    // Blocking accept: we only call it once poll() says a connection is pending.
    listener
        .set_nonblocking(false)
        .map_err(|e| TransportError::Io {
            context: "cannot configure the vhost-user socket",
            source: io::Error::other(e.to_string()),
        })?;
    loop {
        let ready =
            poll_fds(&[listener.as_raw_fd(), shutdown.as_raw_fd()], -1).map_err(|source| {
                TransportError::Io {
                    context: "waiting for a vhost-user connection",
                    source,
                }
            })?;
        if ready[1] {
            info!("vhost-user: shutdown requested");
            return Ok(());
        }
        let end = serve_connection(&server, &mut listener, &opts, &shutdown)?;
        // The guest is gone (QEMU quit, crashed or was killed): it will never FORGET what it
        // looked up, so end its FUSE session here rather than at the next guest's INIT.
        session_fs.destroy();
        match end {
            ConnectionEnd::Disconnected => info!("vhost-user: frontend disconnected"),
            ConnectionEnd::Failed(e @ TransportError::GuestMemoryNotShared { .. }) => {
                return Err(e)
            }
            ConnectionEnd::Failed(e) if opts.exit_on_disconnect => return Err(e),
            ConnectionEnd::Failed(e) => warn!("vhost-user: {e}; waiting for the next connection"),
        }
        if opts.exit_on_disconnect || shutdown.is_triggered() {
            return Ok(());
        }
    }
}

fn serve_connection<F>(
    server: &Arc<Server<Arc<F>>>,
    listener: &mut Listener,
    opts: &ServeOptions,
    shutdown: &Shutdown,
) -> Result<ConnectionEnd, TransportError>
where
    F: FileSystem + Send + Sync + 'static,
{
    let setup = |e: String| TransportError::Setup(e);
    let backend = Arc::new(
        VhostUserFsBackend::new(
            server.clone(),
            opts.thread_pool_size,
            opts.stats.clone(),
            opts.metrics.clone(),
        )
        .map_err(|e| setup(format!("cannot start request workers: {e}")))?,
    );
    let mem = GuestMemoryAtomic::new(GuestMemoryMmap::new());
    let mut daemon = VhostUserDaemon::new("vfs-vhost-user".to_string(), backend.clone(), mem)
        .map_err(|e| setup(e.to_string()))?;

    let listen_fd = listener.as_raw_fd();
    let before = accepted_sockets(listen_fd);
    if let Err(e) = daemon.start(listener) {
        drop(daemon);
        backend.shutdown_workers(opts.drain_timeout);
        return Ok(ConnectionEnd::Failed(TransportError::Connection(format!(
            "accepting the connection: {e}"
        ))));
    }
    opts.stats.connections.fetch_add(1, Ordering::Relaxed);
    info!("vhost-user: frontend connected");

    // vhost-user-backend keeps the connection socket private; find it (the one new accepted
    // socket of our listener) so a shutdown can interrupt the blocking request loop with
    // shutdown(2). Holding a dup keeps the socket open, so the helper drops it as soon as
    // the request loop ends.
    let conn: Arc<Mutex<Option<OwnedFd>>> =
        Arc::new(Mutex::new(find_new_connection(listen_fd, &before)));
    let conn_found = lock(&conn).is_some();
    let done = EventFd::new(EFD_NONBLOCK | EFD_CLOEXEC).map_err(|source| TransportError::Io {
        context: "cannot create eventfd",
        source,
    })?;
    let done_fd = done.as_raw_fd();
    let conn2 = conn.clone();
    let waiter = thread::Builder::new()
        .name("vfs-conn-wait".to_string())
        .spawn(move || {
            let result = daemon.wait();
            lock(&conn2).take();
            // Joins the vring worker (through the exit event) and closes the connection.
            drop(daemon);
            let _ = done.write(1);
            (result, done)
        })
        .map_err(|source| TransportError::Io {
            context: "cannot spawn connection thread",
            source,
        })?;

    let mut interrupted = false;
    loop {
        let ready = poll_fds(&[done_fd, shutdown.as_raw_fd()], -1).map_err(|source| {
            TransportError::Io {
                context: "waiting for the vhost-user connection",
                source,
            }
        })?;
        if ready[0] {
            break;
        }
        if ready[1] && !interrupted {
            interrupted = true;
            if let Some(fd) = lock(&conn).as_ref() {
                info!("vhost-user: shutdown requested, closing the connection");
                // SAFETY: shutdown(2) on a socket fd we own (a dup).
                unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
            } else if !conn_found {
                // Cannot interrupt vhost-user-backend's blocking read: leave its threads to
                // the process exit.
                warn!("vhost-user: shutdown requested but the connection socket was not found; not waiting for it");
                backend.shutdown_workers(opts.drain_timeout.min(Duration::from_secs(1)));
                return Ok(ConnectionEnd::Disconnected);
            }
            // else: the connection already ended; `done` is about to fire.
        }
    }
    let (result, _done) = waiter
        .join()
        .map_err(|_| setup("connection thread panicked".to_string()))?;
    backend.shutdown_workers(opts.drain_timeout);

    Ok(match result {
        Ok(()) => ConnectionEnd::Disconnected,
        Err(e) => classify_failure(e, &backend, interrupted),
    })
}

fn classify_failure<F: FileSystem + Send + Sync + 'static>(
    e: vhost_user_backend::Error,
    backend: &VhostUserFsBackend<F>,
    interrupted: bool,
) -> ConnectionEnd {
    use vhost_user_backend::Error as DaemonError;
    match &e {
        DaemonError::HandleRequest(
            VhostUserError::Disconnected
            | VhostUserError::PartialMessage
            | VhostUserError::SocketBroken(_),
        ) => return ConnectionEnd::Disconnected,
        _ if interrupted => return ConnectionEnd::Disconnected,
        // SET_MEM_TABLE / ADD_MEM_REG: mmap of the region fd failed.
        DaemonError::HandleRequest(VhostUserError::ReqHandlerError(io)) => {
            if let Some(me) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<vm_memory::mmap::MmapRegionError>())
            {
                return ConnectionEnd::Failed(TransportError::GuestMemoryNotShared {
                    detail: format!("cannot map a guest memory region: {me}"),
                });
            }
        }
        // With CONFIGURE_MEM_SLOTS, QEMU sends no ADD_MEM_REG for RAM that has no fd (no
        // share=on memory backend); vhost-user-backend then rejects SET_VRING_ADDR with
        // InvalidParam because no region maps the ring address. An empty SET_MEM_TABLE is
        // InvalidMessage.
        DaemonError::HandleRequest(
            VhostUserError::InvalidParam | VhostUserError::InvalidMessage,
        ) if backend.memory_regions() == 0 && backend.features_acked.load(Ordering::Acquire) => {
            return ConnectionEnd::Failed(TransportError::GuestMemoryNotShared {
                detail: "QEMU passed no fd-backed guest memory regions".to_string(),
            });
        }
        _ => {}
    }
    ConnectionEnd::Failed(TransportError::Connection(e.to_string()))
}

/// poll(2) on `fds` for readability (EINTR retried); returns which ones are ready.
fn poll_fds(fds: &[RawFd], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: pfds is a valid array of pollfd of the given length.
        let ret = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
        if ret >= 0 {
            return Ok(pfds.iter().map(|p| p.revents != 0).collect());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// The socket address a unix socket is bound to, as raw bytes.
fn sock_name(fd: RawFd) -> Option<Vec<u8>> {
    // SAFETY: sockaddr_un is plain data; getsockname writes at most `len` bytes.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: addr/len are valid for writes.
    let ret =
        unsafe { libc::getsockname(fd, &mut addr as *mut _ as *mut libc::sockaddr, &mut len) };
    if ret < 0 {
        return None;
    }
    // SAFETY: getsockname filled `len` bytes of addr.
    let bytes = unsafe { std::slice::from_raw_parts(&addr as *const _ as *const u8, len as usize) };
    Some(bytes.to_vec())
}

/// (fd, inode) of the sockets in this process that were accepted from `listen_fd`'s address.
fn accepted_sockets(listen_fd: RawFd) -> HashSet<(RawFd, u64)> {
    let mut out = HashSet::new();
    let Some(name) = sock_name(listen_fd) else {
        return out;
    };
    let Ok(dir) = fs::read_dir("/proc/self/fd") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
        else {
            continue;
        };
        if fd == listen_fd {
            continue;
        }
        // SAFETY: fstat into a zeroed buffer we own; a closed fd just fails.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstat(fd, &mut st) } < 0 || st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            continue;
        }
        if sockopt_int(fd, libc::SO_ACCEPTCONN).ok() != Some(0) {
            continue;
        }
        if sock_name(fd).as_deref() == Some(name.as_slice()) {
            out.insert((fd, st.st_ino));
        }
    }
    out
}

/// A dup of the one connection accepted since `before` was taken, if it is unambiguous.
fn find_new_connection(listen_fd: RawFd, before: &HashSet<(RawFd, u64)>) -> Option<OwnedFd> {
    let new: Vec<_> = accepted_sockets(listen_fd)
        .difference(before)
        .copied()
        .collect();
    match new.as_slice() {
        [(fd, _)] => {
            // SAFETY: F_DUPFD_CLOEXEC on a live fd returns a new fd that we own.
            let dup = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 0) };
            if dup < 0 {
                None
            } else {
                // SAFETY: dup is a fresh fd owned by nobody else.
                Some(unsafe { OwnedFd::from_raw_fd(dup) })
            }
        }
        _ => {
            debug!(
                "vhost-user: {} candidate connection sockets; shutdown cannot interrupt this connection",
                new.len()
            );
            None
        }
    }
}

#[cfg(test)]
#[path = "vhost_user_tests.rs"]
mod tests;
