//! Finding (or privately mounting) the host tracefs and owning one tracefs instance in it.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::HostError;

/// `f_type` of a tracefs superblock (`TRACEFS_MAGIC` in include/uapi/linux/magic.h).
const TRACEFS_MAGIC: i64 = 0x7472_6163;

/// Prefix of default instance names; `eventfsd-<pid>` lets a later daemon recognise leftovers.
pub const INSTANCE_PREFIX: &str = "eventfsd-";

/// The host tracefs in use; unmounts it on drop if we mounted it.
#[derive(Debug)]
pub struct Tracefs {
    /// Where it is mounted.
    pub root: PathBuf,
    /// Set when eventfsd mounted it itself (no tracefs was mounted).
    private: Option<PathBuf>,
}

fn is_tracefs(dir: &Path) -> io::Result<bool> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: statfs is plain old data; `c` is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64 == TRACEFS_MAGIC)
}

/// The first tracefs mount point listed in `/proc/mounts` (octal escapes decoded).
fn mounted_tracefs() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split(' ');
        let (_dev, dir, fstype) = (fields.next()?, fields.next()?, fields.next()?);
        (fstype == "tracefs").then(|| PathBuf::from(unescape_mount_field(dir)))
    })
}

fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4].iter().all(u8::is_ascii_digit)
        {
            let code = u8::from_str_radix(&field[i + 1..i + 4], 8).unwrap_or(b'?');
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Tracefs {
    /// Whether eventfsd mounted this tracefs itself, and unmounts it when dropped.
    pub fn is_private_mount(&self) -> bool {
        self.private.is_some()
    }

    /// Uses `explicit` (which must be a tracefs), else the first tracefs in `/proc/mounts`, else
    /// mounts one under a runtime directory of our own (unmounted again on drop).
    pub fn find(explicit: Option<&Path>) -> Result<Tracefs, HostError> {
        if let Some(dir) = explicit {
            return match is_tracefs(dir) {
                Ok(true) => Ok(Tracefs {
                    root: dir.to_path_buf(),
                    private: None,
                }),
                Ok(false) => Err(HostError::NotTracefs(dir.display().to_string())),
                Err(source) => Err(HostError::Io {
                    what: format!("tracefs {}", dir.display()),
                    source,
                }),
            };
        }
        if let Some(dir) = mounted_tracefs() {
            if is_tracefs(&dir).unwrap_or(false) {
                return Ok(Tracefs {
                    root: dir,
                    private: None,
                });
            }
        }
        Self::mount_private()
    }

    fn mount_private() -> Result<Tracefs, HostError> {
        let base = if Path::new("/run").is_dir() {
            PathBuf::from("/run")
        } else {
            std::env::temp_dir()
        };
        let runtime = base.join(format!("eventfsd-{}", std::process::id()));
        let dir = runtime.join("tracefs");
        std::fs::create_dir_all(&dir).map_err(|source| HostError::Io {
            what: format!(
                "no tracefs is mounted and {} cannot be created to mount one (the host source needs root)",
                dir.display()
            ),
            source,
        })?;
        let target = CString::new(dir.as_os_str().as_bytes()).expect("no NUL in our own path");
        // SAFETY: all pointers are valid C strings; no mount data.
        let rc = unsafe {
            libc::mount(
                c"nodev".as_ptr(),
                target.as_ptr(),
                c"tracefs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            let source = io::Error::last_os_error();
            let _ = std::fs::remove_dir(&dir);
            let _ = std::fs::remove_dir(&runtime);
            return Err(HostError::Io {
                what: format!(
                    "no tracefs is mounted and mounting one on {} failed (the host source needs root)",
                    dir.display()
                ),
                source,
            });
        }
        log::info!("no tracefs was mounted: mounted one on {}", dir.display());
        Ok(Tracefs {
            root: dir,
            private: Some(runtime),
        })
    }

    /// Names of instances that look like leftovers of a daemon that died: `eventfsd-<pid>`
    /// whose pid no longer runs.
    pub fn stale_instances(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.root.join("instances")) else {
            return Vec::new();
        };
        let mut stale: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| {
                // `eventfsd-<pid>`, and the guest's `eventfsd-<pid>.<name>` beside it.
                name.strip_prefix(INSTANCE_PREFIX)
                    .and_then(|rest| rest.split('.').next())
                    .and_then(|pid| pid.parse::<i32>().ok())
                    .is_some_and(|pid| {
                        pid > 0 && pid as u32 != std::process::id() && !pid_alive(pid)
                    })
            })
            .collect();
        stale.sort();
        stale
    }
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl Drop for Tracefs {
    fn drop(&mut self) {
        if let Some(runtime) = self.private.take() {
            let target = CString::new(self.root.as_os_str().as_bytes()).expect("our own path");
            // SAFETY: valid C string. A lazy unmount cannot fail on busy files.
            if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
                log::warn!(
                    "cannot unmount {}: {}",
                    self.root.display(),
                    io::Error::last_os_error()
                );
                return;
            }
            let _ = std::fs::remove_dir(&self.root);
            let _ = std::fs::remove_dir(&runtime);
            log::info!("unmounted {}", self.root.display());
        }
    }
}

/// Checks an instance name as tracefs and our own path handling need it: one plain component.
pub fn check_instance_name(name: &str) -> Result<(), HostError> {
    let ok = !name.is_empty()
        && name.len() <= eventfs_core::catalog::NAME_MAX
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == 0 || b.is_ascii_whitespace());
    if ok {
        Ok(())
    } else {
        Err(HostError::BadInstanceName(name.to_string()))
    }
}

/// A tracefs instance this daemon created; removed on drop (and only if we created it).
#[derive(Debug)]
pub struct Instance {
    /// Instance name.
    pub name: String,
    /// `<tracefs>/instances/<name>`.
    pub dir: PathBuf,
    removed: bool,
}

impl Instance {
    /// Creates `instances/<name>`. Fails with a clear error if it exists (it is not ours).
    pub fn create(tracefs: &Tracefs, name: &str) -> Result<Instance, HostError> {
        check_instance_name(name)?;
        let dir = tracefs.root.join("instances").join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(HostError::InstanceExists(dir.display().to_string()));
            }
            Err(source) => {
                return Err(HostError::Io {
                    what: format!(
                        "cannot create tracefs instance {} (the host source needs root)",
                        dir.display()
                    ),
                    source,
                })
            }
        }
        log::info!("created tracefs instance {}", dir.display());
        Ok(Instance {
            name: name.to_string(),
            dir,
            removed: false,
        })
    }

    /// Removes the instance. Open files keep an instance busy (EBUSY), so callers close their
    /// handles first; a few retries cover handles released concurrently.
    pub fn remove(&mut self) -> io::Result<()> {
        if self.removed {
            return Ok(());
        }
        let result = remove_instance_dir(&self.dir);
        match &result {
            Ok(()) => log::info!("removed tracefs instance {}", self.dir.display()),
            Err(e) => log::error!("cannot remove tracefs instance {}: {e}", self.dir.display()),
        }
        self.removed = result.is_ok();
        result
    }
}

/// `rmdir` of an instance directory with retries while it is busy.
pub fn remove_instance_dir(dir: &Path) -> io::Result<()> {
    let mut last = None;
    for _ in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                last = Some(e);
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EBUSY)))
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_fields_are_unescaped() {
        assert_eq!(unescape_mount_field("/a\\040b"), "/a b");
        assert_eq!(unescape_mount_field("/plain"), "/plain");
    }

    #[test]
    fn instance_names_are_single_components() {
        assert!(check_instance_name("eventfsd-1").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(256)] {
            assert!(check_instance_name(bad).is_err(), "{bad:?}");
        }
    }
}
