//! System calls on the host tracefs, all beneath a directory fd: opening a path built from
//! metadata names (`openat2`, no symlinks, no escapes), and reads and writes of tracefs's
//! control files as they need them (large reads for seq files, no `pread` where a file has no
//! offset).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use eventfs_core::control::OpenFlags;
use eventfs_core::FsError;

/// Largest single read forwarded to the host (the guest asks for at most 1 MiB with MAX_PAGES).
pub const MAX_READ: u32 = 1 << 20;
/// How often a blocked `trace_pipe` reader re-checks whether it should give up.
/// Number of `per_cpu/cpuN` directories of a tracefs instance.
pub fn count_cpus(instance_dir: &Path) -> u32 {
    std::fs::read_dir(instance_dir.join("per_cpu")).map_or(0, |dir| {
        dir.filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.strip_prefix("cpu")
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .count() as u32
    })
}

/// Opens a directory of the host tracefs as an `O_PATH` anchor for [`open_beneath`].
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: valid C string; the returned fd is owned below.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Checks a relative path built from metadata names: plain components only.
pub fn check_relative_path(path: &str) -> Result<(), FsError> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.split('/').any(|c| {
            c.is_empty()
                || c == "."
                || c == ".."
                || c.len() > eventfs_core::catalog::NAME_MAX
                || c.contains('\0')
        });
    if bad {
        log::warn!("refusing host path {path:?}");
        Err(FsError::Os(libc::EINVAL))
    } else {
        Ok(())
    }
}

/// `struct open_how` of linux/openat2.h (libc's is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens `path` beneath `dir` with `openat2`, refusing symlinks, `..` escapes and mount
/// crossings. The caller has already checked `path` with [`check_relative_path`].
pub fn open_beneath(dir: BorrowedFd<'_>, path: &str, flags: i32) -> Result<OwnedFd, FsError> {
    check_relative_path(path)?;
    let c = CString::new(path).map_err(|_| FsError::Os(libc::EINVAL))?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NOCTTY) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH
            | libc::RESOLVE_NO_SYMLINKS
            | libc::RESOLVE_NO_MAGICLINKS
            | libc::RESOLVE_NO_XDEV,
    };
    // SAFETY: valid dirfd, C string and open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The last system call's errno as an `FsError`.
pub fn last_errno() -> FsError {
    FsError::Os(
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

/// One `read` (or `pread` at `offset`) of at most `size` bytes, retried on EINTR.
pub fn read_fd(fd: &OwnedFd, size: u32, offset: Option<u64>) -> Result<Vec<u8>, FsError> {
    let mut buf = vec![0u8; size.min(MAX_READ) as usize];
    loop {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe {
            match offset {
                Some(off) => libc::pread(
                    fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    off as libc::off_t,
                ),
                None => libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()),
            }
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf);
        }
        let e = last_errno();
        if e != FsError::Os(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Reads a file from its current position to the end (or `cap` bytes).
pub fn read_to_end(fd: &OwnedFd, cap: usize) -> Result<Vec<u8>, FsError> {
    let mut out = Vec::new();
    while out.len() < cap {
        let chunk = read_fd(fd, MAX_READ.min((cap - out.len()) as u32), None)?;
        if chunk.is_empty() {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Reads up to `size` bytes at `offset`, looping over short reads. tracefs seq files return
/// about a page per call; answering the guest page by page makes a reader of a live `trace`
/// slower than the events its own requests cause, and it would never reach the end.
pub fn read_full(fd: &OwnedFd, size: u32, offset: u64) -> Result<Vec<u8>, FsError> {
    let want = size.min(MAX_READ) as usize;
    let mut out = Vec::new();
    while out.len() < want {
        let left = (want - out.len()) as u32;
        let chunk = match read_fd(fd, left, Some(offset + out.len() as u64)) {
            // Stream-like files refuse pread; they have no position to honour anyway.
            Err(FsError::Os(libc::ESPIPE)) => read_fd(fd, left, None),
            other => other,
        };
        match chunk {
            Ok(chunk) if chunk.is_empty() => break,
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(e) if out.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    Ok(out)
}

/// One `write` of `data`, retried on EINTR.
pub fn write_fd(fd: &OwnedFd, data: &[u8]) -> Result<usize, FsError> {
    loop {
        // SAFETY: data is valid for data.len() bytes.
        let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = last_errno();
        if e != FsError::Os(libc::EINTR) {
            return Err(e);
        }
    }
}

/// The host `open(2)` flags for a guest open: its access mode, and `O_TRUNC` with write
/// (`echo > set_event` and `> trace` clear on the host exactly as natively).
pub fn host_open_flags(flags: OpenFlags) -> i32 {
    let mode = match (flags.read, flags.write) {
        (true, true) => libc::O_RDWR,
        (false, true) => libc::O_WRONLY,
        _ => libc::O_RDONLY,
    };
    if flags.truncate && flags.write {
        mode | libc::O_TRUNC
    } else {
        mode
    }
}
