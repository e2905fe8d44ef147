//! The /dev/fuse transport: serves the same filesystem on the host (`eventfsd --mount DIR`).

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

/// A mounted filesystem and the threads serving it.
pub struct FuseMount {
    session: FuseSession,
    workers: Vec<JoinHandle<()>>,
    /// Set before unmounting, so workers take the channel error that follows as the end.
    stopping: Arc<AtomicBool>,
}

impl FuseMount {
    /// Mounts `fs` on `mountpoint` and serves it with `threads` workers.
    pub fn start<F: FileSystem + Send + Sync + 'static>(
        fs: Arc<Server<F>>,
        stats: Arc<Stats>,
        mountpoint: &Path,
        threads: usize,
    ) -> Result<FuseMount, FusedevError> {
        if !mountpoint.is_dir() {
            return Err(FusedevError::MountPoint(mountpoint.display().to_string()));
        }
        let mount_err = |e: fuse_backend_rs::transport::Error| FusedevError::Mount {
            path: mountpoint.display().to_string(),
            reason: e.to_string(),
        };
        let mut session =
            FuseSession::new(mountpoint, "tracefs", "eventfsd", false).map_err(mount_err)?;
        session.set_allow_other(true);
        session.mount().map_err(mount_err)?;
        let mut workers = Vec::new();
        let stopping = Arc::new(AtomicBool::new(false));
        for i in 0..threads.max(1) {
            let mut channel = session.new_channel().map_err(mount_err)?;
            let server = fs.clone();
            let hook = StatsHook(stats.clone());
            let stopping = stopping.clone();
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
            workers.push(worker);
        }
        log::info!(
            "serving on {} with {} threads",
            mountpoint.display(),
            workers.len()
        );
        Ok(FuseMount {
            session,
            workers,
            stopping,
        })
    }

    /// Unmounts and waits for the workers to finish.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        if let Err(e) = self.session.umount() {
            log::warn!("unmount {}: {e}", self.session.mountpoint().display());
        }
        let _ = self.session.wake();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }

    /// True once every worker has exited (the filesystem was unmounted from outside).
    pub fn finished(&self) -> bool {
        self.workers.iter().all(JoinHandle::is_finished)
    }
}
