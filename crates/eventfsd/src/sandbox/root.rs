//! The confined process's new namespaces and its empty root.
//!
//! The new root is a small read-only tmpfs holding only:
//! * `/tracefs`: the host tracefs (host source), bind-mounted read-write, since the daemon
//!   creates its instance and writes control files there;
//! * `/proc/self/fd`: the daemon's own fd directory, read-only. The vhost-user transport finds
//!   the connection socket it must interrupt at shutdown there. A bind of this one directory
//!   shows less than a fresh `proc` would (no `/proc/sys`, no other processes).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::error::{check, last_error, SandboxError};
use crate::stats::process::SMAPS_ROLLUP;

/// What the confined process needs to find inside its new root.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    /// Host source: the host tracefs directory, bind-mounted at [`TRACEFS_IN_SANDBOX`].
    pub tracefs: Option<PathBuf>,
}

/// Where the host tracefs appears inside the sandbox.
pub const TRACEFS_IN_SANDBOX: &str = "/tracefs";

/// Size limit of the root tmpfs: it holds a few empty directories.
const ROOT_TMPFS_OPTIONS: &str = "size=64k,nr_inodes=32,mode=0755";

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("paths from the command line have no NUL")
}

fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), SandboxError> {
    let source_c = source.map(c_path);
    let target_c = c_path(target);
    let fstype_c = fstype.map(|t| CString::new(t).expect("no NUL"));
    let data_c = data.map(|d| CString::new(d).expect("no NUL"));
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is null or a valid C string that outlives the call.
    let rc = unsafe {
        libc::mount(
            ptr(&source_c),
            target_c.as_ptr(),
            ptr(&fstype_c),
            flags,
            ptr(&data_c).cast(),
        )
    };
    check(rc, || {
        format!(
            "mount {} on {} (flags {flags:#x})",
            source.map_or_else(
                || fstype.unwrap_or("-").to_string(),
                |s| s.display().to_string()
            ),
            target.display()
        )
    })
}

fn mkdir(path: &Path) -> Result<(), SandboxError> {
    std::fs::create_dir_all(path).map_err(|source| SandboxError::Step {
        step: format!("mkdir {}", path.display()),
        source,
    })
}

/// An `O_PATH` fd of the directory `path`, taken before the new root covers anything.
fn open_path(path: &Path) -> Result<OwnedFd, SandboxError> {
    open_path_with(path, libc::O_DIRECTORY)
}

/// An `O_PATH` fd of `path` (a file or a directory, as `flags` require).
fn open_path_with(path: &Path, flags: libc::c_int) -> Result<OwnedFd, SandboxError> {
    let c = c_path(path);
    // SAFETY: valid C string; the result is checked before it is owned.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC | flags) };
    check(fd, || format!("open {}", path.display()))?;
    // SAFETY: a fresh fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The path through which a bind mount reaches an fd opened before (not shadowed by our tmpfs).
fn via_fd(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Bind-mounts the directory or file behind `source` on `target` (made first, as an empty
/// directory or file), then remounts the bind with `flags` (a bind mount ignores flags on its
/// first mount call).
fn bind(source: &OwnedFd, target: &Path, flags: libc::c_ulong) -> Result<(), SandboxError> {
    let is_dir = std::fs::metadata(via_fd(source)).is_ok_and(|m| m.is_dir());
    if is_dir {
        mkdir(target)?;
    } else {
        if let Some(parent) = target.parent() {
            mkdir(parent)?;
        }
        std::fs::File::create(target).map_err(|source| SandboxError::Step {
            step: format!("create {}", target.display()),
            source,
        })?;
    }
    mount(Some(&via_fd(source)), target, None, libc::MS_BIND, None)?;
    mount(
        None,
        target,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | flags,
        None,
    )
}

/// Where the new root's tmpfs is mounted before `pivot_root` moves it to `/`. It hides that
/// directory only in our own mount namespace.
fn staging_dir() -> PathBuf {
    let tmp = std::env::temp_dir();
    if tmp.is_dir() {
        tmp
    } else {
        PathBuf::from("/")
    }
}

/// In the process being confined: new mount and IPC namespaces, the new root, `pivot_root` into it.
///
/// No network namespace: the seccomp allow-list has no `socket`, `socketpair`, `connect` or
/// `bind`, so the daemon cannot reach any network it is in, and a network namespace costs the
/// host about 136 KiB of slab per daemon (its loopback device and per-namespace tables),
/// more than half of what an idle guest may cost it (issue 15).
pub(super) fn build(plan: &Plan) -> Result<(), SandboxError> {
    // SAFETY: unshare has no memory-safety preconditions.
    check(
        unsafe { libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWIPC) },
        || "unshare(CLONE_NEWNS | CLONE_NEWIPC)".into(),
    )?;
    // Nothing we mount from now on may propagate back to the host's mount namespace.
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;
    // The sources are opened first, so that the tmpfs cannot hide them (a tracefs under /tmp).
    let tracefs = plan.tracefs.as_deref().map(open_path).transpose()?;
    let fd_dir = open_path(Path::new("/proc/self/fd"))?;
    // The stats file's memory figures: this process's own rollup, nothing of anyone else.
    let smaps_rollup = open_path_with(Path::new(SMAPS_ROLLUP), 0)?;

    let new_root = staging_dir();
    if new_root == Path::new("/") {
        return Err(SandboxError::Step {
            step: "find a directory to build the new root on".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        });
    }
    mount(
        None,
        &new_root,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some(ROOT_TMPFS_OPTIONS),
    )
    .map_err(|e| rename_tmpfs_error(e, &new_root))?;
    let hardened = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    if let Some(fd) = &tracefs {
        let target = new_root.join(TRACEFS_IN_SANDBOX.trim_start_matches('/'));
        bind(fd, &target, hardened)?;
    }
    bind(
        &fd_dir,
        &new_root.join("proc/self/fd"),
        hardened | libc::MS_RDONLY,
    )?;
    bind(
        &smaps_rollup,
        &new_root.join(SMAPS_ROLLUP.trim_start_matches('/')),
        hardened | libc::MS_RDONLY,
    )?;
    drop(tracefs);
    drop(fd_dir);
    drop(smaps_rollup);
    pivot_into(&new_root)?;
    // Read-only from now on: the daemon writes nothing outside tracefs.
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | hardened,
        None,
    )
}

fn rename_tmpfs_error(e: SandboxError, dir: &Path) -> SandboxError {
    match e {
        SandboxError::Step { source, .. } => SandboxError::Step {
            step: format!("mount the new root's tmpfs on {}", dir.display()),
            source,
        },
        other => other,
    }
}

/// `pivot_root(new_root, new_root)`: the old root ends up stacked on the new one, is detached
/// (lazily, with every mount under it), and `/` is the new root.
fn pivot_into(new_root: &Path) -> Result<(), SandboxError> {
    let dir = c_path(new_root);
    // SAFETY: valid C string.
    check(unsafe { libc::chdir(dir.as_ptr()) }, || {
        format!("chdir {}", new_root.display())
    })?;
    // SAFETY: valid C strings; pivot_root has no libc wrapper.
    let rc = unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) };
    if rc < 0 {
        return Err(last_error(format!("pivot_root {}", new_root.display())));
    }
    // The old root's mounts are private already: detaching them cannot reach the host.
    // SAFETY: valid C string.
    check(
        unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) },
        || "detach the old root".into(),
    )?;
    // SAFETY: valid C string.
    check(unsafe { libc::chdir(c"/".as_ptr()) }, || "chdir /".into())
}
