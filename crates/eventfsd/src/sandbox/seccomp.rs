//! The syscall allow-list (`--seccomp kill|log|none`), built with rust-vmm's `seccompiler`.
//!
//! The list is what the daemon was measured to use (`strace -f -c` over both sources and both
//! transports: walks, reads of `trace`/`trace_pipe`/`trace_pipe_raw`, control writes, instance
//! mkdir/rmdir, the stats file, reconnects, SIGTERM; see README, "Sandbox"). Rules take no
//! arguments (the list is about which kernel surfaces exist for the daemon at all), except for
//! `tgkill`, the one allowed call that names another process: it may signal the daemon's own
//! threads only, which keeps a daemon without a pid namespace of its own
//! ([`super::enter_alone`]) from every other process of the host. Left out on
//! purpose: `execve`, `socket`/`socketpair`/`connect`/`bind` (their absence, not a network
//! namespace, keeps the daemon off every network), `ptrace`, `mount`/`pivot_root`/`unshare`/
//! `setns`, `kill` (of other processes), `setuid` and friends, `bpf`, `perf_event_open`, module
//! and keyring calls: nothing the daemon does after start-up needs them.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::cli::SeccompMode;

/// Expands to `(SYS_x, "x")` pairs, so a log or a test can name what it allows.
macro_rules! syscalls {
    ($($name:ident),* $(,)?) => {
        &[$((libc::$name, stringify!($name))),*]
    };
}

/// Syscalls of the confined daemon on every architecture.
const COMMON: &[(libc::c_long, &str)] = syscalls![
    // Files: tracefs control files, the stats file, the catalog's own fds.
    SYS_read,
    SYS_write,
    SYS_readv,
    SYS_writev,
    SYS_pread64,
    SYS_pwrite64,
    SYS_preadv,
    SYS_pwritev,
    SYS_preadv2,
    SYS_pwritev2,
    SYS_openat,
    SYS_openat2,
    SYS_close,
    SYS_fstat,
    SYS_newfstatat,
    SYS_statx,
    SYS_fstatfs,
    SYS_statfs,
    SYS_lseek,
    SYS_getdents64,
    SYS_fcntl,
    SYS_ioctl,
    SYS_dup,
    SYS_dup3,
    SYS_readlinkat,
    SYS_faccessat,
    SYS_faccessat2,
    // Instances (guest mkdir/rmdir) and the stats file's rename.
    SYS_mkdirat,
    SYS_unlinkat,
    SYS_renameat,
    SYS_renameat2,
    // Memory.
    SYS_mmap,
    SYS_munmap,
    SYS_mprotect,
    SYS_mremap,
    SYS_madvise,
    SYS_brk,
    // Threads, time and waiting.
    SYS_clone,
    SYS_clone3,
    SYS_set_robust_list,
    SYS_rseq,
    SYS_futex,
    SYS_exit,
    SYS_exit_group,
    SYS_getpid,
    SYS_gettid,
    // The stats file's CPU time.
    SYS_getrusage,
    SYS_sched_yield,
    SYS_sched_getaffinity,
    SYS_prctl,
    SYS_clock_gettime,
    SYS_clock_nanosleep,
    SYS_nanosleep,
    SYS_getrandom,
    SYS_rt_sigaction,
    SYS_rt_sigprocmask,
    SYS_rt_sigreturn,
    SYS_sigaltstack,
    // epoll and eventfds: the vring and FUSE channel loops, the shutdown eventfd.
    SYS_epoll_create1,
    SYS_epoll_ctl,
    SYS_epoll_pwait,
    SYS_eventfd2,
    SYS_ppoll,
    SYS_pipe2,
    // The stats file's pacing timer, on the vring thread's epoll.
    SYS_timerfd_create,
    SYS_timerfd_settime,
    // The vhost-user socket: accept QEMU, messages with fds, shutting a connection down.
    SYS_accept4,
    SYS_recvmsg,
    SYS_sendmsg,
    SYS_recvfrom,
    SYS_sendto,
    SYS_shutdown,
    SYS_getsockname,
    SYS_getsockopt,
];

/// x86_64's older forms of the same calls, which the C library still uses for some of them.
#[cfg(target_arch = "x86_64")]
const ARCH: &[(libc::c_long, &str)] = syscalls![
    SYS_open,
    SYS_stat,
    SYS_lstat,
    SYS_access,
    SYS_readlink,
    SYS_poll,
    SYS_epoll_wait,
    SYS_mkdir,
    SYS_rmdir,
    SYS_unlink,
    SYS_rename,
    SYS_pipe,
    SYS_dup2,
];
#[cfg(not(target_arch = "x86_64"))]
const ARCH: &[(libc::c_long, &str)] = &[];

/// Only without the sandbox: the daemon unmounts its own `--mount` and removes its own socket
/// when it stops, since no parent is left outside to do it.
const UNCONFINED_CLEANUP: &[(libc::c_long, &str)] = syscalls![SYS_umount2];

/// Allowed with an argument check: `tgkill(tgid, tid, sig)` (raise, abort, pthread_kill) with
/// `tgid` the daemon's own pid. Named here so that tests and logs see it with the others.
const OWN_THREADS_ONLY: (libc::c_long, &str) = (libc::SYS_tgkill, "SYS_tgkill");

/// The syscalls allowed (number, name), for `sandboxed` or unconfined operation; the ones in
/// [`OWN_THREADS_ONLY`] only for the daemon's own pid.
pub fn allowed(sandboxed: bool) -> Vec<(libc::c_long, &'static str)> {
    let mut list: Vec<_> = COMMON.iter().chain(ARCH).copied().collect();
    list.push(OWN_THREADS_ONLY);
    if !sandboxed {
        list.extend_from_slice(UNCONFINED_CLEANUP);
    }
    list.sort_unstable();
    list.dedup();
    list
}

fn target_arch() -> Result<TargetArch, seccompiler::Error> {
    Ok(std::env::consts::ARCH.try_into()?)
}

/// The BPF program `--seccomp mode` installs in this process (`None` for `--seccomp none`).
pub fn build_filter(
    mode: SeccompMode,
    sandboxed: bool,
) -> Result<Option<BpfProgram>, seccompiler::Error> {
    build_filter_for(mode, sandboxed, std::process::id())
}

/// The BPF program for the process `own_pid`: allow the listed syscalls; anything else kills
/// the process (`kill`, SECCOMP_RET_KILL_PROCESS) or is logged and allowed (`log`,
/// SECCOMP_RET_LOG).
pub fn build_filter_for(
    mode: SeccompMode,
    sandboxed: bool,
    own_pid: u32,
) -> Result<Option<BpfProgram>, seccompiler::Error> {
    let mismatch = match mode {
        SeccompMode::None => return Ok(None),
        SeccompMode::Kill => SeccompAction::KillProcess,
        SeccompMode::Log => SeccompAction::Log,
    };
    let own_tgid = SeccompRule::new(vec![SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        u64::from(own_pid),
    )?])?;
    let rules: BTreeMap<i64, Vec<SeccompRule>> = allowed(sandboxed)
        .into_iter()
        .map(|(nr, _)| match nr == OWN_THREADS_ONLY.0 {
            true => (nr, vec![own_tgid.clone()]),
            false => (nr, Vec::new()),
        })
        .collect();
    let filter = SeccompFilter::new(rules, mismatch, SeccompAction::Allow, target_arch()?)?;
    Ok(Some(filter.try_into()?))
}

/// Installs the filter on every thread of the process (TSYNC), so that threads started
/// before it (the source's) are covered too; threads started after inherit it.
pub fn install(mode: SeccompMode, sandboxed: bool) -> Result<(), seccompiler::Error> {
    if let Some(program) = build_filter(mode, sandboxed)? {
        seccompiler::apply_filter_all_threads(&program)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_leaves_out_what_the_daemon_must_never_do() {
        let names: Vec<&str> = allowed(true).into_iter().map(|(_, n)| n).collect();
        for forbidden in [
            "SYS_execve",
            "SYS_execveat",
            "SYS_socket",
            "SYS_socketpair",
            "SYS_io_uring_setup",
            "SYS_connect",
            "SYS_bind",
            "SYS_ptrace",
            "SYS_mount",
            "SYS_umount2",
            "SYS_pivot_root",
            "SYS_unshare",
            "SYS_setns",
            "SYS_kill",
            "SYS_setuid",
            "SYS_bpf",
            "SYS_perf_event_open",
        ] {
            assert!(!names.contains(&forbidden), "{forbidden} is allowed");
        }
        assert!(names.contains(&"SYS_accept4"));
        let unconfined: Vec<&str> = allowed(false).into_iter().map(|(_, n)| n).collect();
        assert!(unconfined.contains(&"SYS_umount2"));
    }

    #[test]
    fn builds_for_each_mode() {
        assert!(build_filter(SeccompMode::None, true).unwrap().is_none());
        let kill = build_filter(SeccompMode::Kill, true).unwrap().unwrap();
        let log = build_filter(SeccompMode::Log, true).unwrap().unwrap();
        // One comparison per syscall at least, and the same shape for both actions.
        assert!(kill.len() > allowed(true).len());
        assert_eq!(kill.len(), log.len());
    }
}
