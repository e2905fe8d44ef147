//! The sandbox (`--sandbox namespace`), in virtiofsd's shape.
//!
//! Once the daemon has opened what it needs (the vhost-user socket or the /dev/fuse mount, the
//! stats directory, the catalog or policy file), it confines itself in one of two shapes:
//!
//! * [`enter_alone`]: the daemon confines the process it runs in. This is the shape when
//!   nothing it made in the host's namespaces must be removed after it is gone (libvirt's
//!   `--fd`; a `--socket-path` served to one QEMU, removed once QEMU has connected). One
//!   process costs the host about 100 KiB less kernel memory per guest than two (issue 15).
//! * [`enter`]: the daemon splits in two. The **parent** stays in the host's namespaces and
//!   only supervises ([`parent`]): it forwards SIGTERM/SIGINT, waits for the child and then
//!   removes what only the host can see (the socket file of a daemon that waits for the next
//!   QEMU, the `--mount` mount point, a tracefs it mounted). The **child** is pid 1 of a new pid
//!   namespace.
//!
//! Either way the confined process is in new mount and IPC namespaces whose root is an empty
//! read-only tmpfs ([`root`]) holding only the host tracefs (host source) and the daemon's own
//! `/proc/self/fd` and `/proc/self/smaps_rollup`. The caller then drops every capability
//! ([`caps`]) and installs the syscall allow-list ([`seccomp`]), whose calls that take a pid
//! reach only the daemon itself, so that no pid namespace is needed to keep it from others.
//!
//! An unprivileged daemon (the catalog source needs no privilege) first enters a user namespace
//! of its own, in which it is uid 0, so that it may create the others.

pub mod caps;
mod error;
mod parent;
mod root;
pub mod seccomp;

use std::io;

pub use error::SandboxError;
use error::{check, last_error};
pub use parent::Child;
pub use root::{Plan, TRACEFS_IN_SANDBOX};

/// Which side of the fork [`enter`] returned on.
#[derive(Debug)]
pub enum Side {
    /// The supervising parent, in the host's namespaces.
    Parent(Child),
    /// The confined daemon: build the source and serve.
    Child,
}

/// Whether this process is root in the initial user namespace's sense (euid 0).
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Forks into the sandbox. Must be called while the process has a single thread: `fork` copies
/// only the calling thread, and `unshare(CLONE_NEWUSER)` refuses a multi-threaded caller.
///
/// Returns [`Side::Parent`] in the original process and [`Side::Child`] in the confined one,
/// which is then already in its new root (caps and seccomp are the caller's next steps).
pub fn enter(plan: &Plan) -> Result<Side, SandboxError> {
    if !is_root() {
        enter_user_namespace()?;
    }
    // CLONE_NEWPID applies to the children made after it: the parent itself stays in the host's
    // pid namespace, where its pid names our tracefs instance and is what others can check.
    // SAFETY: unshare has no memory-safety preconditions.
    check(unsafe { libc::unshare(libc::CLONE_NEWPID) }, || {
        "unshare(CLONE_NEWPID)".into()
    })?;
    // A signal that arrives between fork and the parent's forwarding handler (or the child's
    // own handlers) must wait rather than be lost: block them across the fork.
    let blocked = parent::block_termination_signals()?;
    // SAFETY: single-threaded (documented precondition), so the child's copy is consistent.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let error = last_error("fork");
        parent::restore_signal_mask(&blocked);
        return Err(error);
    }
    if pid > 0 {
        return Ok(Side::Parent(Child::new(pid, blocked)));
    }
    // The child. If the parent dies, there is nobody left to clean up or to report to: go too.
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    parent::restore_signal_mask(&blocked);
    root::build(plan)?;
    Ok(Side::Child)
}

/// Confines this process itself (no fork, no pid namespace): a user namespace if unprivileged,
/// then the new mount and IPC namespaces and the empty root. Must be called while the process
/// has a single thread (`unshare(CLONE_NEWUSER)` refuses a multi-threaded caller).
pub fn enter_alone(plan: &Plan) -> Result<(), SandboxError> {
    if !is_root() {
        enter_user_namespace()?;
    }
    root::build(plan)
}

/// Makes this process uid/gid 0 of a new user namespace (mapping our own ids only), so that an
/// unprivileged daemon may create the other namespaces and mount its empty root.
fn enter_user_namespace() -> Result<(), SandboxError> {
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    // SAFETY: unshare has no memory-safety preconditions.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } < 0 {
        return Err(SandboxError::UserNamespace(io::Error::last_os_error()));
    }
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text).map_err(|source| SandboxError::Step {
            step: format!("write /proc/self/{file}"),
            source,
        })
    };
    // An unprivileged process may map only its own ids, and a gid map needs setgroups denied
    // first (user_namespaces(7)): supplementary groups could otherwise be dropped to gain access.
    write("uid_map", format!("0 {uid} 1\n"))?;
    write("setgroups", "deny\n".into())?;
    write("gid_map", format!("0 {gid} 1\n"))?;
    Ok(())
}
