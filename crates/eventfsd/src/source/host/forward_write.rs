//! The write path of [`HostControl`]: the guard's decision, carried out on the host.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use eventfs_core::layout::FileKind;
use eventfs_core::{FsError, Tree};

use super::super::scope;
use super::{guard, Decision, Handle, HostControl, Limit, WriteContext};
use crate::source::host::buffers;
use crate::source::host::hostio::{open_beneath, read_to_end, write_fd};

impl HostControl {
    /// The events enabled in the handle's instance, from its `set_event`.
    fn enabled_events(&self, h: &Handle) -> Result<BTreeSet<(String, String)>, FsError> {
        let fd = open_beneath(
            self.instance_fd(&h.instance_dir),
            "set_event",
            libc::O_RDONLY,
        )?;
        let text = read_to_end(&fd, 4 << 20)?;
        Ok(String::from_utf8_lossy(&text)
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(s, e)| (s.to_string(), e.to_string()))
            .collect())
    }

    /// Judges a guest write with the guard and carries out what it decides.
    pub(super) fn guarded_write(
        &self,
        tree: &Tree,
        h: &Handle,
        data: &[u8],
    ) -> Result<usize, FsError> {
        let (system, event) = match h.kind {
            FileKind::SystemEnable | FileKind::SystemFilter => {
                (tree.dir_name(h.dir), String::new())
            }
            FileKind::EventEnable
            | FileKind::EventFilter
            | FileKind::EventTrigger
            | FileKind::EventInject => (tree.dir_name(tree.parent_of(h.dir)), tree.dir_name(h.dir)),
            _ => (String::new(), String::new()),
        };
        let decision = {
            let view = self.view();
            let enabled = || self.enabled_events(h);
            let ctx = WriteContext {
                kind: h.kind,
                path: &h.path,
                system: &system,
                event: &event,
                events: &view.events,
                hidden: &view.hidden,
                enabled: &enabled,
            };
            let format = || {
                let path = format!("events/{system}/{event}/format");
                let fd = open_beneath(self.instance_fd(&h.instance_dir), &path, libc::O_RDONLY)?;
                Ok(String::from_utf8_lossy(&read_to_end(&fd, 1 << 20)?).into_owned())
            };
            guard::check_write(&self.policy, &ctx, data, &format)
        };
        let decision = decision.inspect_err(|e| {
            self.usage.refused(match e {
                FsError::Os(libc::ENOSPC) => Limit::EnabledEvents,
                _ => Limit::Policy,
            })
        })?;
        // The instance's ring buffer gets its real size before anything can record into it,
        // and goes back to idle when the guest stops (see `buffers`).
        let (buffers, dir) = self.buffers_of(&h.instance_dir);
        match decision {
            Decision::Ignore(n) => Ok(n),
            Decision::Enable(on) => {
                let text: &[u8] = if on { b"1\n" } else { b"0\n" };
                let write = || {
                    if on && self.enable_scope_has_hidden(tree, h) {
                        self.fan_out_enable(tree, h, text).map(|_| ())
                    } else {
                        write_fd(h.fd.as_ref().ok_or(FsError::Os(libc::EBADF))?, text).map(|_| ())
                    }
                };
                if on {
                    buffers.recording(dir, write)?;
                } else {
                    write()?;
                    buffers.settle(dir);
                }
                Ok(data.len())
            }
            Decision::Pids(pids) => self.write_pids(h, pids).map(|()| data.len()),
            Decision::Forward { writes, consumed } => {
                if let Some(done) = self.write_buffer_size(tree, h, &writes) {
                    return done.map(|()| consumed);
                }
                let forward = || writes.iter().try_for_each(|text| self.forward_one(h, text));
                if buffers::may_record(h.kind, &writes) {
                    buffers.recording(dir, forward)?;
                } else {
                    forward()?;
                }
                if buffers::may_stop(h.kind, &writes) {
                    buffers.settle(dir);
                }
                Ok(consumed)
            }
        }
    }

    /// One canonical write to the handle's host file(s), with the hist-trigger count.
    fn forward_one(&self, h: &Handle, text: &[u8]) -> Result<(), FsError> {
        let adds_hist = h.kind == FileKind::EventTrigger && text.starts_with(b"hist:");
        let removes_hist = h.kind == FileKind::EventTrigger && text.starts_with(b"!hist:");
        let max = self.policy.max_hist_triggers;
        if adds_hist && max > 0 && self.usage.hist_triggers.load(Ordering::SeqCst) >= max {
            log::warn!(
                "policy: hist trigger on {} refused: over max_hist_triggers {max}",
                h.path
            );
            self.usage.refused(Limit::HistTriggers);
            return Err(FsError::Os(libc::ENOSPC));
        }
        if let FileKind::PerCpu(_) = h.kind {
            // A guest CPU's buffer size is that of each host CPU it stands for.
            for fd in &h.cpu_fds {
                write_fd(fd, text)?;
            }
            return Ok(());
        }
        write_fd(h.fd.as_ref().ok_or(FsError::Os(libc::EBADF))?, text)?;
        if adds_hist {
            self.usage.hist_triggers.fetch_add(1, Ordering::SeqCst);
        } else if removes_hist {
            let _ =
                self.usage
                    .hist_triggers
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                        Some(n.saturating_sub(1))
                    });
        }
        Ok(())
    }

    /// `set_event_pid`: as written when there is no scope; within the scope otherwise.
    fn write_pids(&self, h: &Handle, pids: Vec<u32>) -> Result<(), FsError> {
        let fd = h.fd.as_ref().ok_or(FsError::Os(libc::EBADF))?;
        let Some(scope) = self.scope.get() else {
            return scope::write_pids(fd, pids.into_iter());
        };
        let dir = self.instance_fd(&h.instance_dir);
        let allowed = scope.allowed(dir)?;
        if let Some(outside) = pids.iter().find(|p| !allowed.contains(p)) {
            log::warn!(
                "policy: set_event_pid {outside} refused: outside the scope of process tree {}",
                scope.root
            );
            self.usage.refused(Limit::Policy);
            return Err(FsError::Os(libc::EACCES));
        }
        if h.truncate_pids.swap(false, Ordering::SeqCst) {
            // The kernel would clear the list at open; an empty list means every task, so
            // the scope's "every task" is the whole scope.
            let list: BTreeSet<u32> = if pids.is_empty() {
                allowed
            } else {
                pids.into_iter().collect()
            };
            return scope::replace_pids(dir, &list);
        }
        scope::write_pids(fd, pids.into_iter())
    }

    /// A scoped `set_event_pid` that was opened to truncate and closed without a write: the
    /// kernel would have cleared it (every task), so it becomes the whole scope.
    pub(super) fn finish_pid_truncate(&self, h: &Handle) {
        if !h.truncate_pids.swap(false, Ordering::SeqCst) {
            return;
        }
        if let Some(scope) = self.scope.get() {
            let dir = self.instance_fd(&h.instance_dir);
            if let Err(e) = scope
                .allowed(dir)
                .and_then(|all| scope::add_pids(dir, &all))
            {
                log::warn!("scope: cannot restore set_event_pid of {}: {e}", h.path);
            }
        }
    }
}
