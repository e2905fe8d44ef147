//! The /dev/fuse transport: serves the same filesystem on the host (`eventfsd --mount DIR`).

use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use fuse_backend_rs::abi::fuse_abi::InHeader;
use fuse_backend_rs::api::filesystem::FileSystem;
use fuse_backend_rs::api::server::Server;
use fuse_backend_rs::transport::FuseSession;

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
    /// `None` once stopped.
    session: Option<FuseSession>,
    workers: Vec<JoinHandle<()>>,
    /// Set before unmounting, so workers take the channel error that follows as the end.
    stopping: Arc<AtomicBool>,
    /// Whether stopping unmounts. A sandboxed daemon cannot see its mount point any more (and
    /// may not call umount2): its parent unmounts instead.
    unmount: bool,
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

    /// Serves `fs` with `threads` workers. With `unmount` false, stopping leaves the mount to
    /// someone else (the sandbox's parent).
    pub fn serve<F: FileSystem + Send + Sync + 'static>(
        self,
        fs: Arc<Server<F>>,
        stats: Arc<Stats>,
        threads: usize,
        unmount: bool,
    ) -> Result<FuseMount, FusedevError> {
        let mountpoint = self.session.mountpoint().to_path_buf();
        // Owned by the FuseMount from here, so that an error below drops it as stop() would.
        let mut mount = FuseMount {
            session: Some(self.session),
            workers: Vec::new(),
            stopping: Arc::new(AtomicBool::new(false)),
            unmount,
        };
        for i in 0..threads.max(1) {
            let mut channel = mount
                .session
                .as_ref()
                .expect("set above")
                .new_channel()
                .map_err(|e| mount_error(&mountpoint, e))?;
            let server = fs.clone();
            let hook = StatsHook(stats.clone());
            let stopping = mount.stopping.clone();
            let worker = std::thread::Builder::new()
                .name(format!("fuse-{i}"))
                .spawn(move || loop {
                    match channel.get_request() {
                        Ok(Some((reader, writer))) => {
                            let header = reader.clone().read_obj::<InHeader>().ok();
                            // /dev/fuse keeps the reply buffer to itself, so a request that
                            // failed without an answer can only be logged here.
                            if let Err(e) = reply::run(&server, reader, writer.into(), Some(&hook))
                            {
                                log::warn!(
                                    "fuse request failed ({}): {e}",
                                    reply::describe(header.as_ref())
                                );
                            }
                        }
                        // Unmounted or woken for shutdown.
                        Ok(None) => break,
                        Err(_) if stopping.load(Ordering::Relaxed) => break,
                        Err(e) => {
                            log::error!("fuse channel: {e}");
                            break;
                        }
                    }
                })
                .expect("spawning a fuse worker");
            mount.workers.push(worker);
        }
        log::info!(
            "serving on {} with {} threads",
            mountpoint.display(),
            mount.workers.len()
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
    /// Mounts `fs` on `mountpoint` and serves it with `threads` workers; stopping unmounts.
    pub fn start<F: FileSystem + Send + Sync + 'static>(
        fs: Arc<Server<F>>,
        stats: Arc<Stats>,
        mountpoint: &Path,
        threads: usize,
    ) -> Result<FuseMount, FusedevError> {
        FuseMounted::mount(mountpoint)?.serve(fs, stats, threads, true)
    }

    /// Unmounts (unless the mount is left to the sandbox's parent) and waits for the workers
    /// to finish.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        if let Some(session) = self.session.as_mut() {
            if self.unmount {
                // (The session's own umount, when it is dropped, then finds nothing to do.)
                unmount(session.mountpoint());
            }
            let _ = session.wake();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }

    /// True once every worker has exited (the filesystem was unmounted from outside).
    pub fn finished(&self) -> bool {
        self.workers.iter().all(JoinHandle::is_finished)
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        if !self.unmount {
            // FuseSession unmounts when dropped; here that is the parent's job.
            if let Some(session) = self.session.take() {
                std::mem::forget(session);
            }
        }
    }
}
