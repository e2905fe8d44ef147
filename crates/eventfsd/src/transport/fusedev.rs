//! The /dev/fuse transport: serves the same filesystem on the host (`eventfsd --mount DIR`).

use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use fuse_backend_rs::abi::fuse_abi::InHeader;
use fuse_backend_rs::api::filesystem::FileSystem;
use fuse_backend_rs::api::server::Server;
use fuse_backend_rs::transport::{FuseChannel, FuseDevWriter, FuseSession};

use super::reply;
use crate::stats::{Stats, StatsHook};

/// Errors of the /dev/fuse transport.
#[derive(Debug, thiserror::Error)]
pub enum FusedevError {
    /// The mount point does not exist or is not a directory.
    #[error("mount point {0} does not exist or is not a directory")]
    MountPoint(String),
    /// Mounting failed (no /dev/fuse, not root, ...).
    #[error("cannot mount on {path}: {reason}")]
    Mount {
        /// Mount point.
        path: String,
        /// What fuse-backend-rs reported.
        reason: String,
    },
}

/// A /dev/fuse mount nobody serves yet: made before the sandbox (mounting needs the host's
/// mount namespace and privileges), served after it.
pub struct FuseMounted {
    session: FuseSession,
}

/// A mounted filesystem and the threads serving it.
pub struct FuseMount {
    /// Shared with the workers (each makes its channel from it); `None` once stopped.
    crew: Option<Arc<Crew>>,
    /// Whether stopping unmounts. A sandboxed daemon cannot see its mount point any more (and
    /// may not call umount2): its parent unmounts instead.
    unmount: bool,
}

/// The workers of one mount. One waits for the next request; when it takes one that may block
/// ([`reply::may_block`]: a READ) and no other is waiting, it starts another (up to `max`), so
/// that a blocking read (`trace_pipe`) never stalls the rest. A guest that walks the tree is so
/// served by one thread, a tracing one by at most `max`; workers stay once started. (libfuse's
/// multi-threaded loop grows the same way, on every request.)
struct Crew {
    session: FuseSession,
    /// Serves one request: the file system behind fuse-backend-rs's protocol server.
    serve: Box<dyn Fn(fuse_backend_rs::transport::Reader, FuseDevWriter) + Send + Sync>,
    max: usize,
    state: Mutex<CrewState>,
    /// Called once, by the last worker to leave (the file system was unmounted or stopped).
    on_end: Box<dyn Fn() + Send + Sync>,
}

#[derive(Default)]
struct CrewState {
    /// Workers started and not yet exited.
    live: usize,
    /// Workers waiting in `get_request`.
    waiting: usize,
    /// Set before unmounting, so workers take the channel error that follows as the end and
    /// start no others.
    stopping: bool,
    handles: Vec<JoinHandle<()>>,
}

impl Crew {
    fn state(&self) -> std::sync::MutexGuard<'_, CrewState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a worker. Called with the state locked, so that a stop that follows wakes its
    /// channel and joins its thread.
    fn start_worker(self: &Arc<Self>, state: &mut CrewState) -> Result<(), String> {
        let channel = self.session.new_channel().map_err(|e| e.to_string())?;
        let crew = self.clone();
        let index = state.live;
        let handle = std::thread::Builder::new()
            .name(format!("fuse-{index}"))
            .spawn(move || crew.work(channel))
            .map_err(|e| e.to_string())?;
        state.live += 1;
        state.handles.push(handle);
        Ok(())
    }

    fn work(self: Arc<Self>, mut channel: FuseChannel) {
        loop {
            self.state().waiting += 1;
            let request = channel.get_request();
            {
                let mut state = self.state();
                state.waiting -= 1;
                let may_block = match &request {
                    Ok(Some((reader, _))) => reader
                        .clone()
                        .read_obj::<InHeader>()
                        .is_ok_and(|h| reply::may_block(h.opcode)),
                    _ => false,
                };
                if may_block && state.waiting == 0 && state.live < self.max && !state.stopping {
                    if let Err(e) = self.start_worker(&mut state) {
                        log::warn!("cannot start another fuse worker: {e}");
                    }
                }
            }
            match request {
                Ok(Some((reader, writer))) => (self.serve)(reader, writer),
                // Unmounted or woken for shutdown.
                Ok(None) => break,
                Err(_) if self.state().stopping => break,
                Err(e) => {
                    log::error!("fuse channel: {e}");
                    break;
                }
            }
        }
        let last = {
            let mut state = self.state();
            state.live -= 1;
            state.live == 0
        };
        if last {
            (self.on_end)();
        }
    }
}

impl FuseMounted {
    /// Mounts the file system on `mountpoint` (root: fuse-backend-rs mounts it itself).
    pub fn mount(mountpoint: &Path) -> Result<FuseMounted, FusedevError> {
        if !mountpoint.is_dir() {
            return Err(FusedevError::MountPoint(mountpoint.display().to_string()));
        }
        let mut session = FuseSession::new(mountpoint, "tracefs", "eventfsd", false)
            .map_err(|e| mount_error(mountpoint, e))?;
        session.set_allow_other(true);
        session.mount().map_err(|e| mount_error(mountpoint, e))?;
        Ok(FuseMounted { session })
    }

    /// Closes this process's /dev/fuse descriptor and leaves the mount in place: the sandbox's
    /// parent, after the fork, while the confined child serves it.
    pub fn close_without_unmount(self) {
        if let Some(fd) = self.session.get_fuse_file().map(AsRawFd::as_raw_fd) {
            // Dropping the session would unmount; forgetting it leaks only its small heap, and
            // the descriptor is closed by hand.
            std::mem::forget(self.session);
            // SAFETY: the session owned this fd and is forgotten, so nothing closes it again.
            unsafe { libc::close(fd) };
        }
    }

    /// Serves `fs` with up to `threads` workers (one to begin with; see [`Crew`]). With
    /// `unmount` false, stopping leaves the mount to someone else (the sandbox's parent).
    /// `on_end` is called once every worker has left (unmounted from outside, or stopped).
    pub fn serve<F: FileSystem + Send + Sync + 'static>(
        self,
        fs: Arc<Server<F>>,
        stats: Arc<Stats>,
        threads: usize,
        unmount: bool,
        on_end: impl Fn() + Send + Sync + 'static,
    ) -> Result<FuseMount, FusedevError> {
        let mountpoint = self.session.mountpoint().to_path_buf();
        let hook = StatsHook(stats);
        let crew = Arc::new(Crew {
            session: self.session,
            serve: Box::new(move |reader, writer| {
                let header = reader.clone().read_obj::<InHeader>().ok();
                // /dev/fuse keeps the reply buffer to itself, so a request that failed
                // without an answer can only be logged here.
                if let Err(e) = reply::run(&fs, reader, writer.into(), Some(&hook)) {
                    log::warn!(
                        "fuse request failed ({}): {e}",
                        reply::describe(header.as_ref())
                    );
                }
            }),
            max: threads.max(1),
            state: Mutex::new(CrewState::default()),
            on_end: Box::new(on_end),
        });
        // Owned by the FuseMount from here, so that an error below drops it as stop() would.
        let mount = FuseMount {
            crew: Some(crew.clone()),
            unmount,
        };
        crew.start_worker(&mut crew.state())
            .map_err(|reason| FusedevError::Mount {
                path: mountpoint.display().to_string(),
                reason,
            })?;
        log::info!(
            "serving on {} with up to {} threads",
            mountpoint.display(),
            crew.max
        );
        Ok(mount)
    }
}

/// Unmounts `dir`; when it is busy (a process has its working directory or a file in it, or
/// another mount namespace holds a copy), detaches it lazily instead, so that stopping never
/// waits for its users: the mount disappears once the last of them lets go.
pub fn unmount(dir: &Path) {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return;
    };
    // SAFETY: a valid C string. A plain unmount first: FUSE sends no request on unmount (only
    // fuseblk and virtio-fs do), so it cannot wait on our own workers.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        log::info!("unmounted {}", dir.display());
        return;
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        // Unmounted from outside already, which is how a --mount daemon may end.
        Some(libc::EINVAL) => log::debug!("{} was no longer mounted", dir.display()),
        Some(libc::EBUSY) => {
            // SAFETY: as above.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
                log::info!(
                    "{} is busy: detached lazily (it disappears when its last user leaves)",
                    dir.display()
                );
            } else {
                let e = std::io::Error::last_os_error();
                log::warn!("cannot detach {}: {e}", dir.display());
            }
        }
        _ => log::warn!("cannot unmount {}: {error}", dir.display()),
    }
}

fn mount_error(mountpoint: &Path, e: fuse_backend_rs::transport::Error) -> FusedevError {
    FusedevError::Mount {
        path: mountpoint.display().to_string(),
        reason: e.to_string(),
    }
}

impl FuseMount {
    /// Mounts `fs` on `mountpoint` and serves it with up to `threads` workers; stopping
    /// unmounts.
    pub fn start<F: FileSystem + Send + Sync + 'static>(
        fs: Arc<Server<F>>,
        stats: Arc<Stats>,
        mountpoint: &Path,
        threads: usize,
    ) -> Result<FuseMount, FusedevError> {
        FuseMounted::mount(mountpoint)?.serve(fs, stats, threads, true, || {})
    }

    /// Unmounts (unless the mount is left to the sandbox's parent) and waits for the workers
    /// to finish.
    pub fn stop(mut self) {
        let Some(crew) = self.crew.take() else {
            return;
        };
        let handles = {
            let mut state = crew.state();
            state.stopping = true;
            std::mem::take(&mut state.handles)
        };
        if self.unmount {
            // (The session's own umount, when it is dropped, then finds nothing to do.)
            unmount(crew.session.mountpoint());
        }
        let _ = crew.session.wake();
        for worker in handles {
            let _ = worker.join();
        }
        self.release(crew);
    }

    /// True once every worker has exited (the filesystem was unmounted from outside).
    pub fn finished(&self) -> bool {
        self.crew.as_ref().is_none_or(|crew| crew.state().live == 0)
    }

    /// Drops the session (which unmounts), or forgets it when the mount is the parent's.
    fn release(&self, crew: Arc<Crew>) {
        if !self.unmount {
            // FuseSession unmounts when dropped; here that is the parent's job.
            std::mem::forget(crew);
        }
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        if let Some(crew) = self.crew.take() {
            self.release(crew);
        }
    }
}
