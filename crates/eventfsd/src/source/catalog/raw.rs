//! `per_cpu/cpuN/trace_pipe_raw`: one CPU's records, consumed, as whole ring-buffer pages in
//! the kernel's binary layout (see `ftrace_text::page`).
//!
//! Like the kernel's `tracing_buffers_read`: `O_NONBLOCK` on an empty buffer is EAGAIN; a
//! blocking read waits for records, returns every full page that fits and the page being
//! filled, never a part of an event. Virtio-fs never delivers FUSE INTERRUPT, so a blocking
//! read waits at most [`RAW_WAIT`] and then returns 0: trace-cmd's recorder retries after its
//! sleep, and stops cleanly when asked while no records come.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventfs_core::tree::Tree;
use eventfs_core::FsError;
use ftrace_text::page::{PageBuilder, PAGE_SIZE};
use ftrace_text::Ring;

use super::recorder::{Recorder, PIPE_WAIT};
use super::state::{lock, State};

/// Longest a blocking read of `trace_pipe_raw` waits for records before it returns 0.
pub const RAW_WAIT: Duration = Duration::from_secs(1);

/// An open `trace_pipe_raw`.
pub struct RawReader {
    ring: Arc<Ring>,
    cpu: u32,
    /// The rest of a page a read smaller than a page left (the kernel's `info->read`).
    pending: Mutex<Vec<u8>>,
    /// Records lost to overwrite that no page has reported yet.
    unreported_lost: AtomicU64,
    closed: AtomicBool,
}

impl RawReader {
    /// A reader of `cpu`'s ring of `ring`.
    pub fn new(ring: Arc<Ring>, cpu: u32) -> Self {
        RawReader {
            ring,
            cpu,
            pending: Mutex::default(),
            unreported_lost: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// The handle was closed: a read blocked on it returns.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.ring.wake_all();
    }
}

impl Recorder {
    /// Takes the next page of `reader`'s CPU, if it has records.
    fn next_page(&self, reader: &RawReader) -> Option<Vec<u8>> {
        // The events of one page: a renderer lookup per distinct event, not per record.
        let mut renders = HashMap::new();
        let mut builder = PageBuilder::new();
        let lost = reader.ring.consume_cpu_while(reader.cpu, |record| {
            // Only events the recorder produced (and so has a layout for) reach the ring.
            renders
                .entry(record.event_id)
                .or_insert_with(|| self.render_of(record.event_id))
                .as_ref()
                .is_none_or(|r| builder.push(record, &r.layout))
        });
        let lost = reader.unreported_lost.swap(0, Ordering::Relaxed) + lost;
        if builder.is_empty() {
            reader.unreported_lost.fetch_add(lost, Ordering::Relaxed);
            return None;
        }
        Some(builder.finish(lost))
    }

    /// Reads `trace_pipe_raw`: up to `size` bytes of whole pages (a read smaller than a page
    /// gets the page in parts).
    pub fn read_raw(
        &self,
        state: &State,
        tree: &Tree,
        reader: &RawReader,
        size: u32,
        nonblock: bool,
    ) -> Result<Vec<u8>, FsError> {
        let size = size as usize;
        let deadline = Instant::now() + RAW_WAIT;
        let mut blocked = false;
        let result = loop {
            if blocked {
                self.catch_up(state, tree);
            }
            {
                let mut pending = lock(&reader.pending);
                if !pending.is_empty() {
                    let n = pending.len().min(size);
                    break Ok(pending.drain(..n).collect());
                }
                let mut out = Vec::new();
                while out.len() + PAGE_SIZE <= size.max(PAGE_SIZE) {
                    match self.next_page(reader) {
                        Some(page) => out.extend_from_slice(&page),
                        None => break,
                    }
                }
                if !out.is_empty() {
                    if out.len() > size {
                        pending.extend_from_slice(&out[size..]);
                        out.truncate(size);
                    }
                    break Ok(out);
                }
            }
            if nonblock {
                break Err(FsError::Os(libc::EAGAIN));
            }
            let now = Instant::now();
            if reader.closed.load(Ordering::Relaxed)
                || reader.ring.is_shut_down()
                || now >= deadline
            {
                break Ok(Vec::new());
            }
            if !blocked {
                // Workers must stay free for other requests: past the bound a blocking read
                // returns 0 at once (a retry for trace-cmd; EAGAIN would end its recording).
                let waiting = self.stats.blocked_readers.fetch_add(1, Ordering::Relaxed);
                blocked = true;
                if waiting >= state.options.max_blocked_readers {
                    break Ok(Vec::new());
                }
            }
            reader.ring.wait_for_data_on(
                Some(reader.cpu),
                self.wait_slice(state, PIPE_WAIT.min(deadline - now)),
            );
        };
        if blocked {
            self.stats.blocked_readers.fetch_sub(1, Ordering::Relaxed);
        }
        result
    }
}
