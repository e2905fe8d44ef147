//! Open files of the catalog source: what each handle carries between reads, and the count
//! of open files per instance (rmdir of an instance is EBUSY while one is open).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use eventfs_core::tree::Ino;

use super::raw::RawReader;
use super::recorder::PipeReader;
use super::state::{lock, State};

/// What an open handle carries beyond its instance.
#[derive(Clone)]
pub enum HandleKind {
    /// Nothing: the file is rendered afresh on each read.
    Plain,
    /// `trace`: the text as of open, so reads at growing offsets see one consistent buffer.
    Snapshot(Arc<Vec<u8>>),
    /// `trace_pipe`: a consuming reader.
    Pipe(Arc<PipeReader>),
    /// `trace_pipe_raw`: a consuming reader of pages.
    Raw(Arc<RawReader>),
}

struct OpenHandle {
    /// Inode of the instance directory the file belongs to.
    instance: Ino,
    kind: HandleKind,
}

/// The table of open handles.
pub struct Handles {
    open: Mutex<HashMap<u64, OpenHandle>>,
    next: AtomicU64,
}

impl Default for Handles {
    fn default() -> Self {
        Handles {
            open: Mutex::default(),
            next: AtomicU64::new(1),
        }
    }
}

impl Handles {
    /// Registers a handle on a file of the instance `instance` (its directory's inode).
    pub fn open(
        &self,
        state: &State,
        instance: Ino,
        default_options: u64,
        kind: HandleKind,
    ) -> u64 {
        state.instance_by_key(instance, default_options, |i| i.open_handles += 1);
        let handle = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.open).insert(handle, OpenHandle { instance, kind });
        handle
    }

    /// What `handle` carries (a cheap clone, so reads do not hold the table's lock).
    pub fn kind(&self, handle: u64) -> Option<HandleKind> {
        lock(&self.open).get(&handle).map(|h| h.kind.clone())
    }

    /// Closes `handle`: wakes a reader blocked on it and uncounts it from its instance.
    pub fn close(&self, state: &State, handle: u64) {
        let Some(open) = lock(&self.open).remove(&handle) else {
            return;
        };
        match &open.kind {
            HandleKind::Pipe(pipe) => pipe.close(),
            HandleKind::Raw(raw) => raw.close(),
            HandleKind::Plain | HandleKind::Snapshot(_) => {}
        }
        state.existing_instance(open.instance, |i| {
            i.open_handles = i.open_handles.saturating_sub(1)
        });
    }

    /// Closes every handle (a new FUSE session: the old one's handles are gone).
    pub fn close_all(&self, state: &State) {
        let handles: Vec<u64> = lock(&self.open).keys().copied().collect();
        for handle in handles {
            self.close(state, handle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::catalog::state::CatalogOptions;

    #[test]
    fn handles_count_against_their_instance() {
        let state = State::new(CatalogOptions::default());
        let handles = Handles::default();
        let a = handles.open(&state, 9, 0, HandleKind::Plain);
        let b = handles.open(&state, 9, 0, HandleKind::Plain);
        assert_ne!(a, b);
        assert_eq!(state.existing_instance(9, |i| i.open_handles), Some(2));
        handles.close(&state, a);
        handles.close(&state, a); // a second close of the same handle changes nothing
        assert_eq!(state.existing_instance(9, |i| i.open_handles), Some(1));
        handles.close_all(&state);
        assert_eq!(state.existing_instance(9, |i| i.open_handles), Some(0));
        assert!(handles.kind(b).is_none());
    }
}
