//! Instances the guest makes (`mkdir instances/NAME`, as `trace-cmd record -B NAME` does):
//! each is a host instance of its own, `<our instance>.NAME`, next to ours, with a ring buffer
//! on every host CPU. The policy bounds how many a guest may hold (`limits.max_instances`);
//! they go when the guest removes them, and all of them when the daemon stops (a dead daemon's
//! are reclaimed with its own instance: same pid in the name).

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use eventfs_core::FsError;

use super::buffers::InstanceBuffers;

/// One live guest instance: its host directory and the state of its ring buffers.
pub struct GuestDir {
    /// The host instance directory.
    pub fd: OwnedFd,
    /// Its ring buffers (idle at the minimum until the guest traces into it).
    pub buffers: InstanceBuffers,
}

/// The guest's instances of one host source.
pub struct GuestInstances {
    /// `<tracefs>/instances` (none when the tracefs has no such directory: no guest instances).
    instances_dir: Option<OwnedFd>,
    /// Our own instance's name: guest instances are `<prefix>.NAME`.
    prefix: String,
    /// Most instances the guest may hold at once.
    max: usize,
    /// CPUs of the host (each instance has a buffer on every one).
    host_cpus: u32,
    /// Guest name → the host instance.
    live: Mutex<HashMap<String, Arc<GuestDir>>>,
}

fn errno() -> FsError {
    FsError::Os(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

impl GuestInstances {
    /// Guest instances beside our instance `prefix` in the directory `instances_dir`, on a
    /// host of `host_cpus` CPUs.
    pub fn new(
        instances_dir: Option<OwnedFd>,
        prefix: &str,
        max: usize,
        host_cpus: u32,
    ) -> GuestInstances {
        GuestInstances {
            instances_dir,
            prefix: prefix.to_string(),
            max,
            host_cpus,
            live: Mutex::default(),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<GuestDir>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The host name of the guest instance `name`.
    pub fn host_name(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    fn c_name(&self, name: &str) -> Result<CString, FsError> {
        CString::new(self.host_name(name)).map_err(|_| FsError::Os(libc::EINVAL))
    }

    /// Creates the host instance for guest instance `name` (a single path component, checked
    /// by the tree), its ring buffers idle at once. EEXIST if the guest has it; EPERM over the
    /// policy's bound.
    pub fn create(&self, name: &str) -> Result<(), FsError> {
        let mut live = self.live();
        if live.contains_key(name) {
            return Err(FsError::Exists);
        }
        if live.len() >= self.max {
            log::warn!(
                "policy: mkdir instances/{name} refused: the guest holds {} instances (limits.max_instances {})",
                live.len(),
                self.max
            );
            return Err(FsError::Os(libc::EPERM));
        }
        let Some(dir) = &self.instances_dir else {
            return Err(FsError::Os(libc::EPERM));
        };
        let c_name = self.c_name(name)?;
        // SAFETY: valid directory fd and C string.
        if unsafe { libc::mkdirat(dir.as_raw_fd(), c_name.as_ptr(), 0o750) } != 0 {
            return Err(errno());
        }
        // SAFETY: valid directory fd and C string; the result is checked.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                c_name.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = errno();
            // SAFETY: as above.
            unsafe { libc::unlinkat(dir.as_raw_fd(), c_name.as_ptr(), libc::AT_REMOVEDIR) };
            return Err(e);
        }
        // SAFETY: fd was just opened and is owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let buffers = InstanceBuffers::prepare(fd.as_fd(), &self.host_name(name), self.host_cpus);
        live.insert(name.to_string(), Arc::new(GuestDir { fd, buffers }));
        log::info!(
            "created tracefs instance {} for the guest",
            self.host_name(name)
        );
        Ok(())
    }

    /// Removes guest instance `name` (EBUSY from the host while one of its files is open).
    pub fn remove(&self, name: &str) -> Result<(), FsError> {
        let mut live = self.live();
        if !live.contains_key(name) {
            return Err(FsError::NotFound);
        }
        let Some(dir) = &self.instances_dir else {
            return Err(FsError::NotFound);
        };
        let c_name = self.c_name(name)?;
        // SAFETY: valid directory fd and C string.
        if unsafe { libc::unlinkat(dir.as_raw_fd(), c_name.as_ptr(), libc::AT_REMOVEDIR) } != 0 {
            return Err(errno());
        }
        live.remove(name);
        log::info!("removed tracefs instance {}", self.host_name(name));
        Ok(())
    }

    /// The host instance of guest instance `name`.
    pub fn dir(&self, name: &str) -> Option<Arc<GuestDir>> {
        self.live().get(name).cloned()
    }

    /// Every live guest instance.
    pub fn dirs(&self) -> Vec<Arc<GuestDir>> {
        self.live().values().cloned().collect()
    }

    /// Number of live guest instances.
    pub fn len(&self) -> usize {
        self.live().len()
    }

    /// True when the guest holds no instance.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every guest instance (daemon shutdown; handles are closed by then). Returns
    /// the names that could not be removed.
    pub fn remove_all(&self) -> Vec<String> {
        let names: Vec<String> = self.live().keys().cloned().collect();
        let mut left = Vec::new();
        for name in names {
            let mut tries = 0;
            loop {
                match self.remove(&name) {
                    Ok(()) => break,
                    // Handles released concurrently may still hold it for a moment.
                    Err(FsError::Os(libc::EBUSY)) if tries < 20 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    Err(e) => {
                        log::error!(
                            "cannot remove tracefs instance {}: {e}",
                            self.host_name(&name)
                        );
                        left.push(name);
                        break;
                    }
                }
            }
        }
        left
    }
}
