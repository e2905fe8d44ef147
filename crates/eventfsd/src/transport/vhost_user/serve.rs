//! The accept loop: one connection at a time, each served until it ends or shutdown.

use std::io::{self};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use fuse_backend_rs::api::filesystem::FileSystem;
use fuse_backend_rs::api::server::Server;
use log::{info, warn};
use vhost::vhost_user::{Error as VhostUserError, Listener};
use vhost_user_backend::VhostUserDaemon;
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};

use super::backend::VhostUserFsBackend;
use super::conn_fd::{accepted_sockets, find_new_connection};
use super::shutdown::{poll_fds, Shutdown};
use super::watch::Watch;
use super::{ServeOptions, TransportError};

/// How one connection ended.
pub(super) enum ConnectionEnd {
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
            wait_ready(&[listener.as_raw_fd(), shutdown.as_raw_fd()], &opts).map_err(|source| {
                TransportError::Io {
                    context: "waiting for a vhost-user connection",
                    source,
                }
            })?;
        if ready[1] {
            info!("vhost-user: shutdown requested");
            if let Some(on_shutdown) = &opts.on_shutdown {
                on_shutdown();
            }
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

pub(super) fn serve_connection<F>(
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
    // socket of our listener) so that a stop can end its blocking request loop with
    // shutdown(2). The vring thread watches for the stop (and paces the stats file), so this
    // thread only waits for the connection to end.
    let conn = find_new_connection(listen_fd, &before);
    let watch = Arc::new(
        Watch::new(
            conn,
            listen_fd,
            before,
            opts.on_shutdown.clone(),
            opts.tick.clone(),
        )
        .map_err(|source| TransportError::Io {
            context: "cannot create the stats file's timer",
            source,
        })?,
    );
    backend.set_watch(watch.clone());
    let handlers = daemon.get_epoll_handlers();
    for (fd, events, data) in watch.events(shutdown.as_raw_fd()) {
        let registered = match handlers.first() {
            Some(handler) => handler.register_listener(fd, events, data),
            None => Err(io::Error::from_raw_os_error(libc::ENOENT)),
        };
        if let Err(e) = registered {
            // Unwatched, the connection could not be stopped: end it now.
            warn!("vhost-user: cannot watch for a stop ({e}); closing the connection");
            watch.stop();
        }
    }
    drop(handlers);
    let result = daemon.wait();
    watch.release_connection();
    // Joins the vring worker (through the exit event).
    drop(daemon);
    backend.shutdown_workers(opts.drain_timeout);

    Ok(match result {
        Ok(()) => ConnectionEnd::Disconnected,
        Err(e) => classify_failure(e, &backend, watch.stopped()),
    })
}

/// Waits until one of `fds` is readable, calling `opts.tick` every period meanwhile.
fn wait_ready(fds: &[std::os::fd::RawFd], opts: &ServeOptions) -> io::Result<Vec<bool>> {
    let timeout_ms = opts.tick.as_ref().map_or(-1, |(period, _)| {
        period.as_millis().clamp(1, i32::MAX as u128) as i32
    });
    loop {
        let ready = poll_fds(fds, timeout_ms)?;
        if ready.iter().any(|&r| r) {
            return Ok(ready);
        }
        if let Some((_, tick)) = &opts.tick {
            tick();
        }
    }
}

pub(super) fn classify_failure<F: FileSystem + Send + Sync + 'static>(
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
        ) if backend.memory_regions() == 0 && backend.features_acked() => {
            return ConnectionEnd::Failed(TransportError::GuestMemoryNotShared {
                detail: "QEMU passed no fd-backed guest memory regions".to_string(),
            });
        }
        _ => {}
    }
    ConnectionEnd::Failed(TransportError::Connection(e.to_string()))
}
