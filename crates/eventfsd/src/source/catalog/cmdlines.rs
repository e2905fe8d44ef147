//! `saved_cmdlines`: the kernel's small table of the comms of recorded tasks, so that readers
//! of binary records (trace-cmd, perfetto) can name pids. Bounded by `saved_cmdlines_size`;
//! the oldest entry makes room, as the kernel's ring of slots does.

use std::collections::VecDeque;

/// The kernel's default `saved_cmdlines_size`.
pub const DEFAULT_SIZE: usize = 128;
/// Largest `saved_cmdlines_size` the kernel accepts (`PID_MAX_DEFAULT`).
pub const MAX_SIZE: usize = 32768;

/// Recorded (pid, comm) pairs, oldest first, at most `size` of them.
pub struct Cmdlines {
    entries: VecDeque<(i32, Box<str>)>,
    size: usize,
}

impl Default for Cmdlines {
    fn default() -> Self {
        Cmdlines {
            entries: VecDeque::new(),
            size: DEFAULT_SIZE,
        }
    }
}

impl Cmdlines {
    /// Records that `pid` ran as `comm`. The idle task (pid 0) is never saved, as in the kernel.
    pub fn note(&mut self, pid: i32, comm: &str) {
        if pid <= 0 {
            return;
        }
        if let Some(entry) = self.entries.iter_mut().find(|(p, _)| *p == pid) {
            if &*entry.1 != comm {
                entry.1 = comm.into();
            }
            return;
        }
        if self.entries.len() >= self.size {
            self.entries.pop_front();
        }
        self.entries.push_back((pid, comm.into()));
    }

    /// `saved_cmdlines_size`.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Sets `saved_cmdlines_size` (1 ..= [`MAX_SIZE`]); the kernel starts a fresh table.
    pub fn resize(&mut self, size: usize) -> bool {
        if size == 0 || size > MAX_SIZE {
            return false;
        }
        self.size = size;
        self.entries.clear();
        true
    }

    /// `saved_cmdlines`: `PID COMM` lines.
    pub fn text(&self) -> String {
        self.entries
            .iter()
            .map(|(pid, comm)| format!("{pid} {comm}\n"))
            .collect()
    }

    /// `saved_tgids`: `PID TGID` lines; the simulated tasks are single-threaded, so each
    /// task is its own thread group.
    pub fn tgids_text(&self) -> String {
        self.entries
            .iter()
            .map(|(pid, _)| format!("{pid} {pid}\n"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_latest_comm_and_no_idle_task() {
        let mut c = Cmdlines::default();
        c.note(0, "swapper/0");
        c.note(5, "sh");
        c.note(5, "cat");
        c.note(7, "init");
        assert_eq!(c.text(), "5 cat\n7 init\n");
        assert_eq!(c.tgids_text(), "5 5\n7 7\n");
        assert!(!c.resize(0) && !c.resize(MAX_SIZE + 1));
        assert!(c.resize(2));
        assert_eq!(c.text(), "");
        for pid in 1..=3 {
            c.note(pid, "t");
        }
        assert_eq!(c.text(), "2 t\n3 t\n");
        assert_eq!(c.size(), 2);
    }
}
