//! Finding the connection socket vhost-user-backend keeps private (a `/proc/self/fd` scan),
//! so that a shutdown can interrupt its blocking read.

use std::collections::HashSet;
use std::fs;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use log::debug;

use super::listener::sockopt_int;

pub(super) fn sock_name(fd: RawFd) -> Option<Vec<u8>> {
    // SAFETY: sockaddr_un is plain data; getsockname writes at most `len` bytes.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: addr/len are valid for writes.
    let ret =
        unsafe { libc::getsockname(fd, &mut addr as *mut _ as *mut libc::sockaddr, &mut len) };
    if ret < 0 {
        return None;
    }
    // SAFETY: getsockname filled `len` bytes of addr.
    let bytes = unsafe { std::slice::from_raw_parts(&addr as *const _ as *const u8, len as usize) };
    Some(bytes.to_vec())
}

/// (fd, inode) of the sockets in this process that were accepted from `listen_fd`'s address.
pub(super) fn accepted_sockets(listen_fd: RawFd) -> HashSet<(RawFd, u64)> {
    let mut out = HashSet::new();
    let Some(name) = sock_name(listen_fd) else {
        return out;
    };
    let Ok(dir) = fs::read_dir("/proc/self/fd") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
        else {
            continue;
        };
        if fd == listen_fd {
            continue;
        }
        // SAFETY: fstat into a zeroed buffer we own; a closed fd just fails.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstat(fd, &mut st) } < 0 || st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            continue;
        }
        if sockopt_int(fd, libc::SO_ACCEPTCONN).ok() != Some(0) {
            continue;
        }
        if sock_name(fd).as_deref() == Some(name.as_slice()) {
            out.insert((fd, st.st_ino));
        }
    }
    out
}

/// A dup of the one connection accepted since `before` was taken, if it is unambiguous.
pub(super) fn find_new_connection(
    listen_fd: RawFd,
    before: &HashSet<(RawFd, u64)>,
) -> Option<OwnedFd> {
    let new: Vec<_> = accepted_sockets(listen_fd)
        .difference(before)
        .copied()
        .collect();
    match new.as_slice() {
        [(fd, _)] => dup_fd(*fd),
        _ => {
            debug!(
                "vhost-user: {} candidate connection sockets; a shutdown ends them all",
                new.len()
            );
            None
        }
    }
}

/// A close-on-exec dup of `fd`, if it is still open.
pub(super) fn dup_fd(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on an fd number returns a new fd that we own, or fails.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        None
    } else {
        // SAFETY: dup is a fresh fd owned by nobody else.
        Some(unsafe { OwnedFd::from_raw_fd(dup) })
    }
}
