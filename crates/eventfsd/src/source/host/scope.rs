//! Tenant scoping: the host instance records only the events of one process tree (the VM's
//! QEMU and its threads), through the kernel's own pid filter, `set_event_pid` with the
//! `event-fork` option (children and new threads join, exiting tasks leave).
//!
//! The guest may narrow the list and widen it back within the scope, never past it: it writes
//! pids the daemon checks, and a truncating open (which in the kernel clears the filter, i.e.
//! "every task") restores the whole scope instead.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use eventfs_core::FsError;

use super::hostio::{open_beneath, read_to_end, write_fd};

/// The tasks (threads) of `pid` and of all its descendants, from `/proc`.
pub fn process_tree(pid: u32) -> io::Result<BTreeSet<u32>> {
    let mut tasks = BTreeSet::new();
    let mut pending = vec![pid];
    while let Some(process) = pending.pop() {
        let task_dir = format!("/proc/{process}/task");
        let entries = match std::fs::read_dir(&task_dir) {
            Ok(entries) => entries,
            // A child that exited meanwhile: nothing to scope.
            Err(_) if process != pid => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("{task_dir}: {e}"))),
        };
        for entry in entries.flatten() {
            let Some(tid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if !tasks.insert(tid) {
                continue;
            }
            let children =
                std::fs::read_to_string(entry.path().join("children")).unwrap_or_default();
            pending.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    Ok(tasks)
}

/// One process tree an instance is pinned to.
#[derive(Clone, Debug)]
pub struct Scope {
    /// The root process (for logs).
    pub root: u32,
    /// The tasks found when the daemon started.
    pub initial: BTreeSet<u32>,
}

/// The pid list of `set_event_pid` in the instance `dir` now (the kernel adds forked tasks
/// and drops exited ones).
pub fn current_pids(dir: BorrowedFd<'_>) -> Result<BTreeSet<u32>, FsError> {
    let fd = open_beneath(dir, "set_event_pid", libc::O_RDONLY)?;
    let text = read_to_end(&fd, 1 << 20)?;
    Ok(String::from_utf8_lossy(&text)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

impl Scope {
    /// The pids the guest may name in the instance `dir`: the scope as it was and as the
    /// kernel has followed it since.
    pub fn allowed(&self, dir: BorrowedFd<'_>) -> Result<BTreeSet<u32>, FsError> {
        let mut allowed = current_pids(dir)?;
        allowed.extend(&self.initial);
        Ok(allowed)
    }

    /// Pins the instance `dir` to the scope: `event-fork` on, `set_event_pid` replaced by the
    /// whole scope.
    pub fn apply(&self, dir: BorrowedFd<'_>) -> Result<(), FsError> {
        let fork = open_beneath(dir, "options/event-fork", libc::O_WRONLY)?;
        write_fd(&fork, b"1\n")?;
        let whole = self.allowed(dir)?;
        replace_pids(dir, &whole)
    }
}

/// Replaces the instance's pid list. The kernel replaces only through a truncating open, which
/// leaves "no filter" (every task) until the pids are written: recording is off meanwhile, so
/// no other task's event lands in the buffer.
pub fn replace_pids(dir: BorrowedFd<'_>, pids: &BTreeSet<u32>) -> Result<(), FsError> {
    let on = open_beneath(dir, "tracing_on", libc::O_RDWR)?;
    let was_on = read_to_end(&on, 16)?.starts_with(b"1");
    if was_on {
        write_fd(&on, b"0\n")?;
    }
    let replaced = open_beneath(dir, "set_event_pid", libc::O_WRONLY | libc::O_TRUNC)
        .and_then(|fd: OwnedFd| write_pids(&fd, pids.iter().copied()));
    if was_on {
        write_fd(&on, b"1\n")?;
    }
    replaced
}

/// Adds to the instance's pid list what `pids` has and it lacks (no window without a filter).
pub fn add_pids(dir: BorrowedFd<'_>, pids: &BTreeSet<u32>) -> Result<(), FsError> {
    let current = current_pids(dir)?;
    let fd = open_beneath(dir, "set_event_pid", libc::O_WRONLY)?;
    write_pids(&fd, pids.difference(&current).copied())
}

/// Writes pids to an open `set_event_pid` (appending, unless it was opened truncating).
pub fn write_pids(fd: &OwnedFd, pids: impl Iterator<Item = u32>) -> Result<(), FsError> {
    let text: Vec<String> = pids.map(|p| p.to_string()).collect();
    if text.is_empty() {
        return Ok(());
    }
    write_fd(fd, format!("{}\n", text.join(" ")).as_bytes()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_tree_holds_its_threads_and_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let tasks = process_tree(std::process::id()).unwrap();
        let child_pid = child.id();
        child.kill().unwrap();
        child.wait().unwrap();
        // This test binary runs tests on threads: more than one task, and the child.
        assert!(tasks.contains(&std::process::id()));
        assert!(tasks.contains(&child_pid), "{tasks:?} lacks {child_pid}");
        assert!(process_tree(u32::MAX - 1).is_err());
    }
}
