//! Our own host instance, made when the guest first opens one of its files.
//!
//! Even with its ring buffers at the minimum, a host instance costs the host kernel about
//! 450 KiB of slab on a 6.18 host (a `trace_event_file` and its filter state for each of its
//! ~2,300 events), per guest. A guest that only lists the tree (a `find`) never needs it, since
//! the tree comes from the shared snapshot; so the instance is made on the first open, and
//! removed at exit only if it was made.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use eventfs_core::FsError;

use super::buffers::InstanceBuffers;
use super::guest_instances::GuestDir;
use super::hostio::open_dir;
use super::scope::Scope;

/// Where [`super::HostControl`] finds our instance.
#[derive(Debug, Clone, Copy)]
pub enum OwnInstanceAt<'a> {
    /// This directory, which exists (made, and removed, by the caller).
    Existing(&'a Path),
    /// This directory, made on the guest's first open of one of its files and removed by
    /// [`super::HostControl::remove_own_instance`] if it was.
    FirstOpen(&'a Path),
}

/// The last component of an instance's path: its name.
pub(crate) fn instance_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Our host instance: its path, and its directory and ring buffers once it exists.
pub(crate) struct OwnInstance {
    path: PathBuf,
    made: OnceLock<Arc<GuestDir>>,
    /// Serialises the making, so that concurrent first opens make it once.
    making: Mutex<()>,
    /// Made here, so removed here. An instance the caller made is the caller's to remove.
    removes: bool,
}

/// What making the instance needs from the forwarding layer.
pub(crate) struct MakeWith<'a> {
    /// The instance's name, for log lines.
    pub name: &'a str,
    /// CPUs of the host: the instance has a ring buffer on each.
    pub host_cpus: u32,
    /// What every instance the guest reads through needs (`pause-on-trace`).
    pub prepare: &'a dyn Fn(std::os::fd::BorrowedFd<'_>) -> Result<(), FsError>,
    /// The process tree to pin the instance to, if any.
    pub scope: Option<&'a Scope>,
}

impl OwnInstance {
    /// An instance that exists already (made, and removed, by the caller).
    pub(crate) fn existing(path: &Path, dir: GuestDir) -> OwnInstance {
        OwnInstance {
            path: path.to_path_buf(),
            made: OnceLock::from(Arc::new(dir)),
            making: Mutex::new(()),
            removes: false,
        }
    }

    /// An instance to make at `path` on first use, and to remove at exit.
    pub(crate) fn lazy(path: &Path) -> OwnInstance {
        OwnInstance {
            path: path.to_path_buf(),
            made: OnceLock::new(),
            making: Mutex::new(()),
            removes: true,
        }
    }

    /// `<tracefs>/instances/<name>`.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The instance, if it exists.
    pub(crate) fn get(&self) -> Option<&Arc<GuestDir>> {
        self.made.get()
    }

    /// The instance, made now if it does not exist yet.
    pub(crate) fn get_or_make(&self, with: &MakeWith<'_>) -> Result<&Arc<GuestDir>, FsError> {
        if let Some(dir) = self.made.get() {
            return Ok(dir);
        }
        let _making = self.making.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dir) = self.made.get() {
            return Ok(dir);
        }
        let dir = self.make(with)?;
        Ok(self.made.get_or_init(|| Arc::new(dir)))
    }

    fn make(&self, with: &MakeWith<'_>) -> Result<GuestDir, FsError> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            log::error!(
                "cannot {what} tracefs instance {}: {e}",
                self.path.display()
            );
            FsError::Os(libc::EIO)
        };
        if let Err(e) = std::fs::create_dir(&self.path) {
            // EEXIST: someone else took the name since start-up, which checked it was free.
            return Err(failed("create", &e));
        }
        let made = open_dir(&self.path)
            .map_err(|e| FsError::Os(e.raw_os_error().unwrap_or(libc::EIO)))
            .and_then(|fd| {
                (with.prepare)(fd.as_fd())?;
                if let Some(scope) = with.scope {
                    scope.apply(fd.as_fd())?;
                }
                let buffers = InstanceBuffers::prepare(fd.as_fd(), with.name, with.host_cpus);
                Ok(GuestDir { fd, buffers })
            });
        match made {
            Ok(dir) => {
                log::info!(
                    "created tracefs instance {} (the guest's first open)",
                    self.path.display()
                );
                Ok(dir)
            }
            Err(e) => {
                let _ = std::fs::remove_dir(&self.path);
                Err(failed("prepare", &e))
            }
        }
    }

    /// Removes the instance if it was made here (callers close their handles first: open
    /// files keep an instance busy).
    pub(crate) fn remove(&self) {
        if !self.removes || self.made.get().is_none() {
            return;
        }
        match super::instance::remove_instance_dir(&self.path) {
            Ok(()) => log::info!("removed tracefs instance {}", self.path.display()),
            Err(e) => log::error!(
                "cannot remove tracefs instance {}: {e}",
                self.path.display()
            ),
        }
    }
}
