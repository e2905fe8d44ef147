//! Dropping every capability once the sandbox is built.
//!
//! The daemon needs none afterwards: as root it keeps uid 0, and the host tracefs files are
//! owned by root, so their owner permission bits let it create its instance (`mkdir` in
//! `instances/`, mode 0750), remove it, write control files and read `trace_pipe_raw`. FUSE and
//! vhost-user need no capability to serve on descriptors that are already open.

use super::error::{check, SandboxError};

/// `struct __user_cap_header_struct` (linux/capability.h).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`; version 3 takes two of them (capabilities 0-31, 32-63).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `SECBIT_NOROOT | SECBIT_NOROOT_LOCKED` (linux/securebits.h): uid 0 no longer regains
/// capabilities through an exec, and that cannot be undone.
const SECBITS_NOROOT_LOCKED: libc::c_ulong = (1 << 0) | (1 << 1);

/// The three capability sets of this thread, as 64-bit masks (effective, permitted,
/// inheritable).
pub fn current() -> std::io::Result<(u64, u64, u64)> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two CapData records for version 3, which `data` holds.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
        join(data[0].inheritable, data[1].inheritable),
    ))
}

/// Drops every capability for good: the bounding and ambient sets, then the effective,
/// permitted and inheritable ones, and sets `no_new_privs` (which seccomp needs anyway).
///
/// Applies to the calling thread; call it before any other thread exists, so that they all
/// start without capabilities.
pub fn drop_all() -> Result<(), SandboxError> {
    // Supplementary groups (root's own group 0, say) would keep granting group permissions.
    // In a user namespace of our own setgroups is denied (EPERM), and the groups stay: that is
    // the point of denying it (dropping a group could lift a negative ACL).
    // SAFETY: getgroups(0, NULL) only counts.
    if unsafe { libc::getgroups(0, std::ptr::null_mut()) } > 0 {
        // SAFETY: setgroups with an empty list.
        if unsafe { libc::setgroups(0, std::ptr::null()) } < 0
            && std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM)
        {
            return Err(super::error::last_error("drop supplementary groups"));
        }
    }
    // SAFETY: plain prctl; needs CAP_SETPCAP, which is still held.
    check(
        unsafe { libc::prctl(libc::PR_SET_SECUREBITS, SECBITS_NOROOT_LOCKED) },
        || "lock the securebits".into(),
    )?;
    // The bounding set limits what an exec could ever grant; dropping needs CAP_SETPCAP, so it
    // comes before the capability sets are cleared. EINVAL marks the end of the known caps.
    for cap in 0..64 {
        // SAFETY: plain prctl.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(super::error::last_error(format!(
                "drop capability {cap} from the bounding set"
            )));
        }
    }
    // SAFETY: plain prctl.
    check(
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            )
        },
        || "clear the ambient capabilities".into(),
    )?;
    let header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: capset reads the header and two CapData records.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    if rc < 0 {
        return Err(super::error::last_error("clear the capability sets"));
    }
    // SAFETY: plain prctl.
    check(
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
        || "set no_new_privs".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_capability_sets() {
        let (effective, permitted, _) = current().unwrap();
        // Effective is always a subset of permitted.
        assert_eq!(effective & !permitted, 0);
        if super::super::is_root() && permitted != 0 {
            // CAP_SYS_ADMIN (21) is what a root test process typically has.
            assert_ne!(permitted & (1 << 21), 0);
        }
    }
}
