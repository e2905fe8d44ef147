//! The listening socket: created at a path (with stale-socket checks) or inherited (`--fd`).

use std::fs;
use std::io::{self};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use vhost::vhost_user::{Error as VhostUserError, Listener};

use super::TransportError;

/// Create the vhost-user listening socket at `path` (QEMU connects to it as a client).
///
/// A stale socket file left by a dead daemon is replaced; a socket another process is still
/// listening on is not (it is detected through `/proc/net/unix`, without connecting to it,
/// because a probing connection would make a single-connection daemon such as virtiofsd exit).
/// The returned listener removes the socket file when dropped.
pub fn listener_from_path(path: &Path) -> Result<Listener, TransportError> {
    let path = check_socket_path(path)?;
    Listener::new(&path, true).map_err(|e| match e {
        VhostUserError::SocketError(source) => bind_error(&path, source),
        other => TransportError::Bind {
            path,
            source: io::Error::other(other.to_string()),
        },
    })
}

/// Like [`listener_from_path`], for the daemon: the socket is created with mode 0600, or 0660
/// owned by `group` (`--socket-group`), and the caller removes the file (a sandboxed daemon
/// cannot see it any more; its parent does).
///
/// The mode is set by the umask around `bind`, so the socket never exists with a wider one.
/// The umask is process-wide: call this before any other thread creates files.
pub fn bind_socket(
    path: &Path,
    group: Option<libc::gid_t>,
) -> Result<UnixListener, TransportError> {
    let path = check_socket_path(path)?;
    // check_socket_path found nothing or a stale socket here.
    let _ = fs::remove_file(&path);
    // SAFETY: umask cannot fail.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(&path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = bound.map_err(|source| bind_error(&path, source))?;
    if let Some(gid) = group {
        let widen = std::os::unix::fs::lchown(&path, None, Some(gid))
            .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o660)));
        if let Err(source) = widen {
            let _ = fs::remove_file(&path);
            return Err(TransportError::Bind { path, source });
        }
    }
    Ok(listener)
}

/// `--socket-group`: a group name or number.
pub fn resolve_group(name: &str) -> Result<libc::gid_t, String> {
    if let Ok(gid) = name.parse::<libc::gid_t>() {
        return Ok(gid);
    }
    let c = std::ffi::CString::new(name).map_err(|_| format!("bad group name {name:?}"))?;
    // SAFETY: group is plain data filled by getgrnam_r; buf outlives its use.
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the sizes given.
    let rc = unsafe {
        libc::getgrnam_r(
            c.as_ptr(),
            &mut group,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return Err(format!("--socket-group: no group named {name:?}"));
    }
    Ok(group.gr_gid)
}

/// Checks where a socket may be created: the directory exists, and `path` is free or a stale
/// socket. Returns the absolute path.
fn check_socket_path(path: &Path) -> Result<PathBuf, TransportError> {
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
            // Stale socket from a previous run: the caller replaces it.
        }
        Ok(_) => return Err(TransportError::NotASocket { path }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(TransportError::Bind { path, source }),
    }
    Ok(path)
}

fn bind_error(path: &Path, source: io::Error) -> TransportError {
    let path = path.to_owned();
    match source.raw_os_error() {
        Some(libc::EADDRINUSE) => TransportError::SocketInUse { path },
        Some(libc::ENOENT) => TransportError::SocketDirMissing {
            dir: path.parent().unwrap_or(Path::new("/")).to_owned(),
        },
        _ => TransportError::Bind { path, source },
    }
}

/// Whether `/proc/net/unix` lists a listening socket bound to `path`.
pub(super) fn unix_socket_is_listening(path: &Path) -> bool {
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

pub(super) fn sockopt_int(fd: RawFd, opt: libc::c_int) -> io::Result<libc::c_int> {
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
