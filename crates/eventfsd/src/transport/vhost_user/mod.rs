//! vhost-user virtio-fs transport.
//!
//! Serves any fuse-backend-rs [`FileSystem`] to a QEMU `vhost-user-fs-pci` device:
//!
//! * [`VhostUserFsBackend`] implements vhost-user-backend's [`VhostUserBackend`] for the two
//!   virtio-fs queues (0 = hiprio, 1 = requests). Requests are handed to a worker pool (which
//!   starts a thread when a request finds every worker busy, and lets one go after 30 s
//!   without work) so a blocking READ (trace_pipe) never stalls the other requests; FORGETs
//!   on the hiprio queue are handled inline.
//! * [`serve`] accepts QEMU connections one after the other on a [`Listener`] (built with
//!   [`listener_from_path`] or [`listener_from_fd`]) and serves them with the same filesystem
//!   until the [`Shutdown`] handle is triggered. While a connection lasts, its vring thread
//!   also watches the stop request and the stats pacing (`watch.rs`), so the serving thread
//!   only waits for the connection to end: a connection adds vhost-user-backend's two
//!   threads (request handler, vring) and pool workers while requests keep them busy.
//!
//! Invariants that keep guests from hanging (see the comments at each place):
//! * every popped descriptor chain is handed back with `add_used` + a notification, with a
//!   FUSE error reply when the request header is readable and the chain has room for it;
//! * the EVENT_IDX disable/drain/enable loop never exits with notifications disabled;
//! * `handle_event` never returns an error (that would kill the vring worker thread for good);
//! * completions that race with a ring stop/restart (guest reboot) are dropped instead of
//!   being written into the new ring.

mod backend;
mod conn_fd;
mod guest_ram;
mod listener;
mod pool;
mod serve;
mod shutdown;
mod vring;
mod watch;

pub use backend::VhostUserFsBackend;
pub use listener::{bind_socket, listener_from_fd, listener_from_path, resolve_group};
pub use serve::serve;
pub use shutdown::Shutdown;
pub use vring::FsVring;

pub use crate::stats::TransportStats;

use std::io::{self};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fuse_backend_rs::api::server::MetricsHook;
use virtio_queue::DescriptorChain;
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};

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

/// Guest memory as shared between vhost-user-backend and this transport.
pub(super) type GuestMem = GuestMemoryAtomic<GuestMemoryMmap>;
/// Chains hold an owned snapshot of guest memory so they can move to worker threads
/// (a `GuestMemoryLoadGuard` is not `Send`).
pub(super) type Chain = DescriptorChain<Arc<GuestMemoryMmap>>;

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
    /// Called once on a shutdown, before the connection is closed (on the vring thread while a
    /// connection lasts, else on the serving thread): wakes what holds a worker (blocked
    /// readers).
    pub on_shutdown: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Called every `.0` (the stats file's pacing): on the vring thread while a connection
    /// lasts, else on the serving thread. Without it, both sleep until there is something to
    /// do.
    pub tick: Option<(Duration, Arc<dyn Fn() + Send + Sync>)>,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("thread_pool_size", &self.thread_pool_size)
            .field("exit_on_disconnect", &self.exit_on_disconnect)
            .field("shutdown", &self.shutdown)
            .field("drain_timeout", &self.drain_timeout)
            .field("metrics", &self.metrics.is_some())
            .field("on_shutdown", &self.on_shutdown.is_some())
            .field("tick", &self.tick.as_ref().map(|(period, _)| period))
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
            on_shutdown: None,
            tick: None,
        }
    }
}

#[cfg(test)]
mod tests;
