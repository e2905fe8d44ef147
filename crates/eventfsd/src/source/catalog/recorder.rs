//! The catalog source's data plane: synthetic records for enabled events, filters, pid
//! filtering and triggers applied to them, rendering for `trace` and `trace_pipe`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventfs_core::layout::FileKind;
use eventfs_core::tree::{DirId, Ino, Tree};
use eventfs_core::FsError;
use ftrace_text::format;
use ftrace_text::page::PayloadLayout;
use ftrace_text::render::{print_fmt_text, CompiledFmt, RenderOutcome};
use ftrace_text::trigger::Action;
use ftrace_text::{trace_header, FieldValue, Generator, Record, Ring};

use super::cmdlines::Cmdlines;
use super::state::{lock, FilterSlot, State};

/// How often the producer runs; records of one tick share its pacing.
pub const TICK: Duration = Duration::from_millis(100);
/// How long one wait of a blocked `trace_pipe` reader lasts before it re-checks whether its
/// handle was closed (INTERRUPT never arrives over virtio, so waits must end by themselves).
pub(super) const PIPE_WAIT: Duration = Duration::from_millis(250);

/// What the renderer and the page writer need of an event, built once per event id.
pub(super) struct EventRender {
    format: String,
    compiled: CompiledFmt,
    /// Where its fields go in a binary record.
    pub(super) layout: PayloadLayout,
}

/// A reader of `trace_pipe` (of every CPU, or of `per_cpu/cpuN/trace_pipe`): its leftover
/// rendered bytes and whether its handle was closed.
pub struct PipeReader {
    ring: Arc<Ring>,
    cpu: Option<u32>,
    pending: Mutex<Vec<u8>>,
    closed: AtomicBool,
}

impl PipeReader {
    /// A reader of `ring`, of one CPU's records when `cpu` is given.
    pub fn new(ring: Arc<Ring>, cpu: Option<u32>) -> Self {
        PipeReader {
            ring,
            cpu,
            pending: Mutex::default(),
            closed: AtomicBool::new(false),
        }
    }

    /// The handle was closed: a reader blocked on it must notice and return.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.ring.wake_all();
    }
}

/// Counters of the data plane.
#[derive(Default)]
pub(super) struct RecorderStats {
    records: AtomicU64,
    filtered: AtomicU64,
    fallbacks: AtomicU64,
    pub(super) blocked_readers: AtomicUsize,
}

/// Producer state kept between ticks.
struct Producer {
    generator: Generator,
    /// Fractional records owed to each event (rate × elapsed does not divide evenly).
    credit: HashMap<Ino, f64>,
}

impl Producer {
    fn new(seed: u64, nr_cpus: u32) -> Self {
        Producer {
            generator: Generator::with_cpus(seed, nr_cpus),
            credit: HashMap::new(),
        }
    }
}

/// A side effect of a trigger, applied after the events lock is released.
enum Effect {
    TracingOn(Ino, bool),
    Enable(DirId, bool),
}

/// The data plane: makes records for enabled events, applies filters, pid filtering and
/// triggers, and renders buffers as text.
pub struct Recorder {
    /// Compiled print fmts by event id.
    renders: Mutex<HashMap<u32, Arc<EventRender>>>,
    producer: Mutex<Producer>,
    pub(super) stats: RecorderStats,
    /// `saved_cmdlines`: the comms of the tasks recorded.
    cmdlines: Mutex<Cmdlines>,
}

impl Recorder {
    /// A recorder whose generator starts from `seed` on `nr_cpus` CPUs.
    pub fn new(seed: u64, nr_cpus: u32) -> Self {
        Recorder {
            renders: Mutex::default(),
            producer: Mutex::new(Producer::new(seed, nr_cpus)),
            stats: RecorderStats::default(),
            cmdlines: Mutex::default(),
        }
    }

    /// Records written so far, records dropped by filters, and lines rendered in the
    /// `field=value` fallback style.
    pub fn data_plane_counters(&self) -> (u64, u64, u64) {
        (
            self.stats.records.load(Ordering::Relaxed),
            self.stats.filtered.load(Ordering::Relaxed),
            self.stats.fallbacks.load(Ordering::Relaxed),
        )
    }

    /// The renderer of an event, compiled on first use.
    fn render_info(&self, tree: &Tree, event: DirId, id: u32) -> Arc<EventRender> {
        let mut renders = lock(&self.renders);
        renders
            .entry(id)
            .or_insert_with(|| {
                let format = tree.with_format(event, str::to_string);
                let name = tree.dir_name(event);
                let fields: Vec<format::Field<'_>> = format::fields(&format).collect();
                let compiled =
                    CompiledFmt::for_event(&name, print_fmt_text(&format).unwrap_or(""), &fields);
                let layout = PayloadLayout::new(&fields);
                Arc::new(EventRender {
                    format: format.clone(),
                    compiled,
                    layout,
                })
            })
            .clone()
    }

    /// Produces the records owed for `elapsed` time: for every enabled event (or event with
    /// triggers) of every instance whose tracing is on.
    pub fn produce(&self, state: &State, tree: &Tree, elapsed: Duration) {
        let mut producer = lock(&self.producer);
        // The trace clock follows real time since start, like the kernel's local clock.
        let now = state.started.elapsed().as_nanos() as u64;
        producer.generator.advance_to(now);
        let mut effects = Vec::new();
        let mut events = state.events();
        let keys: Vec<Ino> = events.keys().copied().collect();
        for key in keys {
            let Ok(node) = tree.node(key) else {
                continue;
            };
            let event = events.get_mut(&key).expect("key taken from the map");
            if !event.enabled && event.triggers.is_empty() {
                continue;
            }
            let credit = producer.credit.entry(key).or_insert(0.0);
            *credit += f64::from(state.options.rate) * elapsed.as_secs_f64();
            let count = credit.floor() as u32;
            *credit -= f64::from(count);
            if count == 0 {
                continue;
            }
            let id = tree.event_id(node.dir);
            let render = self.render_info(tree, node.dir, id);
            let fields: Vec<format::Field<'_>> = format::fields(&render.format).collect();
            let instance_key = tree.instance_ino_of(node.dir);
            let (ring, pids) = state.instance(tree, node.dir, |i| {
                (
                    i.ring.clone(),
                    i.event_pids.iter().copied().collect::<Vec<_>>(),
                )
            });
            for n in 0..count {
                let mut record = producer.generator.record(id, &fields);
                if !pids.is_empty() {
                    force_pid(&mut record, &fields, pids[n as usize % pids.len()]);
                }
                let value_of = |name: &str| record.value_of(&fields, name);
                // Triggers run whenever the event fires, also in soft mode.
                for trigger in event.triggers.triggers_mut() {
                    if trigger.count == 0
                        || !trigger.filter.as_ref().is_none_or(|f| f.matches(&value_of))
                    {
                        continue;
                    }
                    if trigger.count > 0 {
                        trigger.count -= 1;
                    }
                    match &trigger.action {
                        Action::TraceOn => effects.push(Effect::TracingOn(instance_key, true)),
                        Action::TraceOff => effects.push(Effect::TracingOn(instance_key, false)),
                        Action::EnableEvent { system, event }
                        | Action::DisableEvent { system, event } => {
                            let on = matches!(trigger.action, Action::EnableEvent { .. });
                            let events_dir = tree.events_dir_of(tree.instance_of(node.dir));
                            if let Some(target) =
                                events_dir.and_then(|d| tree.find_event_in(d, system, event))
                            {
                                effects.push(Effect::Enable(target, on));
                            }
                        }
                        // Snapshots, stack traces and histograms have no buffer to act on here.
                        _ => {}
                    }
                }
                if !event.enabled {
                    continue;
                }
                let passes = match &event.filter {
                    FilterSlot::Active(filter) => filter.matches(&value_of),
                    FilterSlot::Unset | FilterSlot::Failed(_) => true,
                };
                let tracing = state.instance(tree, node.dir, |i| i.tracing_on);
                if !passes {
                    self.stats.filtered.fetch_add(1, Ordering::Relaxed);
                } else if tracing {
                    self.note_task(&record);
                    ring.push(record);
                    self.stats.records.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        drop(events);
        drop(producer);
        for effect in effects {
            match effect {
                Effect::TracingOn(key, on) => {
                    state.existing_instance(key, |i| i.tracing_on = on);
                }
                Effect::Enable(target, on) => {
                    if tree.event_has_file(target, FileKind::EventEnable) {
                        state.update(tree.dir_ino(target), |s| s.enabled = on);
                    }
                }
            }
        }
    }

    /// Renders records as `trace` lines, counting fallbacks.
    fn render_records(&self, tree: &Tree, records: &[Arc<Record>], out: &mut String) {
        // A local map of the renderers seen so far: one shared-lock access per distinct event,
        // not per record.
        let mut by_id: HashMap<u32, Option<Arc<EventRender>>> = HashMap::new();
        for record in records {
            let render = by_id
                .entry(record.event_id)
                .or_insert_with(|| self.render_of(record.event_id));
            match render {
                Some(render) => {
                    if render.compiled.render_line(record, out) == RenderOutcome::Fallback {
                        self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                    }
                }
                None => {
                    // Only ids we produced reach the ring; a marker before any event was
                    // rendered registers ftrace/print on the spot.
                    if let Some(print) = tree.find_event("ftrace", "print") {
                        let render = self.render_info(tree, print, record.event_id);
                        render.compiled.render_line(record, out);
                    }
                }
            }
        }
    }

    /// The whole `cat trace` text of an instance (or of one CPU's `per_cpu/cpuN/trace`):
    /// header and every buffered record.
    pub fn trace_text(&self, state: &State, tree: &Tree, dir: DirId, cpu: Option<u32>) -> Vec<u8> {
        let ring = state.instance(tree, dir, |i| i.ring.clone());
        let records = ring.snapshot_of(cpu);
        let written = match cpu {
            Some(cpu) => {
                let stats = ring.cpu_stats(cpu);
                stats.entries + stats.overrun
            }
            None => ring.written(),
        };
        let mut out = trace_header(records.len(), written, ring.nr_cpus(), "nop");
        self.render_records(tree, &records, &mut out);
        out.into_bytes()
    }

    /// The renderer of an event already recorded. Lock order: the ring's lock may be held
    /// here (`trace_pipe_raw`), so nothing takes a ring's lock under the renderers' lock.
    pub(super) fn render_of(&self, id: u32) -> Option<Arc<EventRender>> {
        lock(&self.renders).get(&id).cloned()
    }

    /// Remembers the comm of a recorded task (`saved_cmdlines`).
    fn note_task(&self, record: &Record) {
        lock(&self.cmdlines).note(record.pid, &record.comm);
    }

    /// The saved task names.
    pub fn cmdlines(&self) -> std::sync::MutexGuard<'_, Cmdlines> {
        lock(&self.cmdlines)
    }

    /// A `trace_marker` write: a `print` event line in the instance's buffer.
    pub fn write_marker(
        &self,
        state: &State,
        tree: &Tree,
        dir: DirId,
        text: &str,
    ) -> Result<(), FsError> {
        let print = tree
            .find_event("ftrace", "print")
            .ok_or_else(|| FsError::Invalid("the catalog has no ftrace/print event".into()))?;
        let id = tree.event_id(print);
        self.render_info(tree, print, id);
        let (ring, on) = state.instance(tree, dir, |i| (i.ring.clone(), i.tracing_on));
        if on {
            let ts = {
                let mut producer = lock(&self.producer);
                producer
                    .generator
                    .advance_to(state.started.elapsed().as_nanos() as u64);
                producer.generator.now_ns() + 1_000
            };
            let record = Record::marker(id, ts, 0, 1, "sh", 0, 0, text);
            self.note_task(&record);
            ring.push(record);
            self.stats.records.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Reads from `trace_pipe`: consumes records, blocks until there are some (in bounded
    /// waits), returns at most `size` bytes and keeps the rest for the next read.
    pub fn read_pipe(
        &self,
        state: &State,
        tree: &Tree,
        pipe: &PipeReader,
        size: u32,
        nonblock: bool,
    ) -> Result<Vec<u8>, FsError> {
        let mut blocked = false;
        let result = loop {
            {
                let mut pending = lock(&pipe.pending);
                if pending.is_empty() {
                    let records = pipe.ring.consume_from(pipe.cpu, 256);
                    if !records.is_empty() {
                        let mut text = String::new();
                        self.render_records(tree, &records, &mut text);
                        pending.extend_from_slice(text.as_bytes());
                    }
                }
                if !pending.is_empty() {
                    let n = pending.len().min(size as usize);
                    break Ok(pending.drain(..n).collect());
                }
            }
            if nonblock {
                break Err(FsError::Os(libc::EAGAIN));
            }
            if pipe.closed.load(Ordering::Relaxed) || pipe.ring.is_shut_down() {
                break Ok(Vec::new());
            }
            if !blocked {
                // Keep workers free for other requests: refuse to park more readers than the
                // configured bound.
                let waiting = self.stats.blocked_readers.fetch_add(1, Ordering::Relaxed);
                blocked = true;
                if waiting >= state.options.max_blocked_readers {
                    break Err(FsError::Os(libc::EAGAIN));
                }
            }
            pipe.ring.wait_for_data_on(pipe.cpu, PIPE_WAIT);
        };
        if blocked {
            self.stats.blocked_readers.fetch_sub(1, Ordering::Relaxed);
        }
        result
    }
}

/// Makes a record look like it came from `pid` (set_event_pid filtering).
fn force_pid(record: &mut Record, fields: &[format::Field<'_>], pid: u32) {
    record.pid = pid as i32;
    if let Some(slot) = fields.iter().position(|f| f.name == "common_pid") {
        record.fields[slot] = FieldValue::Int(i64::from(pid));
    }
}
