//! The catalog source's data plane: synthetic records for enabled events, filters, pid
//! filtering and triggers applied to them, rendering for `trace` and `trace_pipe`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventfs_core::layout::OPTIONS;
use eventfs_core::tree::{DirId, Ino, Tree};
use eventfs_core::FsError;
use ftrace_text::format;
use ftrace_text::functions::FunctionTable;
use ftrace_text::page::PayloadLayout;
use ftrace_text::render::{print_fmt_text, CompiledFmt, RenderOutcome};
use ftrace_text::trigger::Action;
use ftrace_text::{trace_header, FieldValue, Generator, Record, Ring};

use super::cmdlines::Cmdlines;
use super::derived_records::{fill_probe_record, generated_record};
use super::function_tracer;
use super::hist::{self, Sample};
use super::kprobes::{self, Kprobes};
use super::occurrence::Occurrence;
use super::state::{lock, EventState, FilterSlot, InstanceState, State};
use super::timeline::{self, Schedule, Timeline};

/// How often a blocked reader catches the simulation up while events fire: new records
/// reach a waiting `trace_pipe` within this.
pub(super) const PIPE_POLL: Duration = Duration::from_millis(20);
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

impl EventRender {
    /// The renderer of event `name` whose `format` file is `format`, printing with
    /// `print_fmt` (its own, or the kernel's output for probe events).
    fn new(name: &str, print_fmt: &str, format: String) -> Self {
        let fields: Vec<format::Field<'_>> = format::fields(&format).collect();
        let compiled = CompiledFmt::for_event(name, print_fmt, &fields);
        let layout = PayloadLayout::new(&fields);
        EventRender {
            format,
            compiled,
            layout,
        }
    }
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
    /// Simulated time skipped by the catch-up bound (for the log line).
    skipped_ns: AtomicU64,
    pub(super) blocked_readers: AtomicUsize,
}

/// The data plane: makes records for enabled events, applies filters, pid filtering and
/// triggers, and renders buffers as text.
pub struct Recorder {
    /// Compiled print fmts by event id.
    renders: Mutex<HashMap<u32, Arc<EventRender>>>,
    /// The time model: what has fired up to when.
    timeline: Mutex<Timeline>,
    /// Each event's rate from the profile, looked up once.
    rates: Mutex<HashMap<Ino, f64>>,
    pub(super) stats: RecorderStats,
    /// `saved_cmdlines`: the comms of the tasks recorded.
    cmdlines: Mutex<Cmdlines>,
    /// The catalog's functions, read from the tree the first time the function tracer or
    /// its files are used (megabytes of names a daemon that never traces functions skips).
    functions: std::sync::OnceLock<FunctionTable>,
    /// Where the kprobes sit, and their hits.
    pub(super) kprobes: Kprobes,
    /// Events that never fire by themselves (synthetic events: only histogram actions
    /// generate them), by id.
    generated_only: Mutex<HashSet<u32>>,
}

impl Recorder {
    /// A recorder whose generator starts from `seed` on `nr_cpus` CPUs.
    pub fn new(seed: u64, nr_cpus: u32) -> Self {
        Recorder {
            renders: Mutex::default(),
            timeline: Mutex::new(Timeline::new(seed, nr_cpus)),
            rates: Mutex::default(),
            stats: RecorderStats::default(),
            cmdlines: Mutex::default(),
            functions: std::sync::OnceLock::new(),
            kprobes: Kprobes::default(),
            generated_only: Mutex::default(),
        }
    }

    /// The catalog's functions (`available_filter_functions`).
    pub fn functions(&self, tree: &Tree) -> &FunctionTable {
        self.functions.get_or_init(|| {
            tree.with_functions(|list| FunctionTable::parse(&String::from_utf8_lossy(list)))
        })
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

    /// Registers how a probe event's records render: with the kernel's output for probes
    /// (`(0x<ip>) name=value`), not its print fmt.
    pub fn register_probe_render(
        &self,
        id: u32,
        name: &str,
        layout: &ftrace_text::probe::ProbeLayout,
    ) {
        let render = EventRender::new(name, &layout.display_fmt, layout.format.clone());
        lock(&self.renders).insert(id, Arc::new(render));
    }

    /// Forgets a removed probe event's renderer (its id may be reused).
    pub fn forget_render(&self, id: u32) {
        lock(&self.renders).remove(&id);
        lock(&self.generated_only).remove(&id);
    }

    /// Marks event `id` as one that fires only when something generates it.
    pub fn set_generated_only(&self, id: u32) {
        lock(&self.generated_only).insert(id);
    }

    /// The renderer of an event, compiled on first use.
    fn render_info(&self, tree: &Tree, event: DirId, id: u32) -> Arc<EventRender> {
        let mut renders = lock(&self.renders);
        renders
            .entry(id)
            .or_insert_with(|| {
                let format = tree.with_format(event, str::to_string);
                let print_fmt = print_fmt_text(&format).unwrap_or("").to_string();
                Arc::new(EventRender::new(&tree.dir_name(event), &print_fmt, format))
            })
            .clone()
    }

    /// The trace clock now.
    pub fn trace_now(&self, state: &State) -> u64 {
        lock(&self.timeline).trace_ns(state.clock.now_ns())
    }

    /// Advances the simulation to now: every occurrence of every firing event (enabled, or
    /// soft-enabled by triggers) since the last catch-up happens, in time order, with its
    /// triggers, filter, pid filtering and `tracing_on` applied as of that moment. Called
    /// before anything the guest does, so what it observes is never behind and what it
    /// changes applies from now on.
    pub fn catch_up(&self, state: &State, tree: &Tree) {
        let mut timeline = lock(&self.timeline);
        let Some((from, to)) = timeline.advance(state.clock.now_ns()) else {
            return;
        };
        let skipped = timeline.skipped_ns;
        if skipped > 0 && self.stats.skipped_ns.swap(skipped, Ordering::Relaxed) == 0 {
            log::info!(
                "catalog: the simulation skipped {} s of simulated time nobody observed \
                 (one catch-up covers at most {} s)",
                skipped / 1_000_000_000,
                timeline::MAX_CATCH_UP_NS / 1_000_000_000
            );
        }
        let mut events = state.events();
        let mut driven = driven_by_probes(state, tree, &events);
        driven.extend(driven_by_fork_following(state, tree));
        driven.extend(function_tracer::driven(state, tree));
        if events.is_empty() && driven.is_empty() {
            timeline.retain_credit(|_| false);
            return;
        }
        let mut schedule = Schedule::default();
        let mut firing: Vec<Ino> = events
            .iter()
            .filter(|(_, e)| e.fires())
            .map(|(&key, _)| key)
            .collect();
        for key in &driven {
            if !firing.contains(key) {
                firing.push(*key);
            }
        }
        timeline.retain_credit(|key| firing.contains(&key));
        let mut planned: HashSet<Ino> = HashSet::new();
        for &key in &firing {
            self.plan(&mut timeline, &mut schedule, state, tree, key, from, to);
            planned.insert(key);
        }
        while let Some((ts, key)) = schedule.next(&mut timeline.generator) {
            // Taken out of the map while it fires, so that its triggers can look at the
            // states of the events they switch.
            // An event only an event probe makes fire has no state of its own.
            let Some(mut event) = events
                .remove(&key)
                .or_else(|| driven.contains(&key).then(EventState::default))
            else {
                continue;
            };
            let trace_ns = timeline.trace_ns(ts);
            let mut switched = Vec::new();
            let mut hists_switched = Vec::new();
            let mut generated = Vec::new();
            // Not firing: disabled by a trigger earlier in this interval.
            let fires = event.fires() || driven.contains(&key);
            if let (true, Ok(node)) = (fires, tree.node(key)) {
                let mut occurrence = Occurrence {
                    state,
                    tree,
                    dir: node.dir,
                    events: &events,
                    switched: &mut switched,
                    hists_switched: &mut hists_switched,
                    generated: &mut generated,
                };
                self.occur(&mut occurrence, &mut event, trace_ns, &mut timeline);
            }
            if !event.is_default() {
                events.insert(key, event);
            }
            for (target, running) in hists_switched {
                if let Some(target) = events.get_mut(&tree.dir_ino(target)) {
                    hist::set_running(target, running);
                }
            }
            for (target, on) in switched {
                let target_key = tree.dir_ino(target);
                let entry = events.entry(target_key).or_default();
                entry.enabled = on;
                if entry.is_default() {
                    events.remove(&target_key);
                } else if planned.insert(target_key) {
                    // Switched on now: it fires for the rest of the interval.
                    self.plan(
                        &mut timeline,
                        &mut schedule,
                        state,
                        tree,
                        target_key,
                        ts,
                        to,
                    );
                }
            }
        }
    }

    /// Adds the occurrences of event `key` in `(from, to]` to `schedule`.
    #[allow(clippy::too_many_arguments)]
    fn plan(
        &self,
        timeline: &mut Timeline,
        schedule: &mut Schedule,
        state: &State,
        tree: &Tree,
        key: Ino,
        from: u64,
        to: u64,
    ) {
        let Ok(node) = tree.node(key) else { return };
        if lock(&self.generated_only).contains(&tree.event_id(node.dir)) {
            return;
        }
        let profile = &state.options.profile;
        // A kprobe's rate follows its probes (appended or removed at any time): not cached.
        let id = tree.event_id(node.dir);
        let kprobe_rate = self.kprobes.rate(id, || self.functions(tree), profile);
        let rate = kprobe_rate.unwrap_or_else(|| {
            *lock(&self.rates).entry(key).or_insert_with(|| {
                let system = tree.dir_name(tree.parent_of(node.dir));
                profile.rate_of(&system, &tree.dir_name(node.dir))
            })
        });
        let count = timeline.occurrences(key, rate, from, to);
        schedule.add(key, from, to, count, &mut timeline.generator);
    }

    /// One occurrence of `event` at trace time `ts`, in the kernel's order
    /// (`trace_trigger_soft_disabled`, `event_triggers_call`, `event_triggers_post_call`):
    ///
    /// - while no trigger of the event needs the record (none has a filter, none is a
    ///   post-trigger like `traceoff` or `stacktrace`), every trigger runs first, so the
    ///   event that a `traceon` fired on is in the buffer;
    /// - otherwise the record is taken first (tracing is judged then), the triggers whose
    ///   filters match it run, and the post-triggers run after it is written.
    ///
    /// The event is written if it is enabled, passes its filter and tracing is on. A counted
    /// trigger counts only the times it changed something.
    fn occur(
        &self,
        at: &mut Occurrence<'_>,
        event: &mut EventState,
        ts: u64,
        timeline: &mut Timeline,
    ) {
        let (state, tree, dir) = (at.state, at.tree, at.dir);
        let id = tree.event_id(dir);
        let render = self.render_info(tree, dir, id);
        let fields: Vec<format::Field<'_>> = format::fields(&render.format).collect();
        if function_tracer::is_function_event(tree, dir) {
            let functions = self.functions(tree);
            let (ring, on, call) = state.instance(tree, dir, |i| {
                let call = i.function_tracer.then(|| {
                    function_tracer::call(i, functions, &mut timeline.generator, ts, id, &fields)
                });
                (i.ring.clone(), i.tracing_on, call.flatten())
            });
            if let (true, Some(call)) = (on, call) {
                self.note_task(&call);
                self.stats.records.fetch_add(1, Ordering::Relaxed);
                ring.push(call);
            }
            return;
        }
        let (ring, pid, follows_forks) = state.instance(tree, dir, |i| {
            let follows_forks = i.options & event_fork_bit() != 0;
            (
                i.ring.clone(),
                choose_pid(i, &mut timeline.generator),
                follows_forks,
            )
        });
        let mut record = timeline.generator.record_at(ts, id, &fields);
        let generator = &mut timeline.generator;
        (self.kprobes).fill(id, &mut record, &fields, || self.functions(tree), generator);
        let ignored = match pid {
            PidChoice::Listed(pid) => {
                force_pid(&mut record, &fields, pid);
                false
            }
            PidChoice::NoneListed => true,
            PidChoice::Any => {
                state.instance(tree, dir, |i| i.notrace_pids.contains(&(record.pid as u32)))
            }
        };
        if follows_forks && tree.dir_name(dir) == "sched_process_fork" {
            follow_fork(state, tree, dir, &mut record, &fields);
        }
        let needs_record = event.triggers.triggers().iter().any(|t| {
            t.filter.is_some() || is_post_trigger(&t.action) || matches!(t.action, Action::Hist(_))
        });
        if !needs_record {
            for trigger in event.triggers.triggers_mut() {
                if at.run_trigger(trigger, None) {
                    self.record_stack(at, &ring, &record, timeline);
                }
            }
        }
        // A task the pid lists leave out: its events are dropped after the triggers that run
        // without the record, and before the ones that need it (the kernel's reserve fails).
        if ignored {
            return;
        }
        let value_of = |name: &str| record.value_of(&fields, name);
        let passes = match &event.filter {
            FilterSlot::Active(filter) => filter.matches(&value_of),
            FilterSlot::Unset | FilterSlot::Failed(_) => true,
        };
        let written = event.enabled && passes && state.instance(tree, dir, |i| i.tracing_on);
        if event.enabled && !passes {
            self.stats.filtered.fetch_add(1, Ordering::Relaxed);
        }
        let mut post = false;
        if needs_record {
            let stack = if hist::wants_stack(&event.triggers) {
                timeline.generator.call_chain()
            } else {
                Vec::new()
            };
            let sample = Sample {
                record: &record,
                fields: &fields,
                stack: &stack,
            };
            for trigger in event.triggers.triggers_mut() {
                let matches = trigger.filter.as_ref().is_none_or(|f| f.matches(&value_of));
                if !matches {
                    continue;
                }
                if is_post_trigger(&trigger.action) {
                    post |= trigger.count != 0;
                } else {
                    at.run_trigger(trigger, Some(&sample));
                }
            }
        }
        let probe_records = self.probe_records(at, &record, &fields, timeline);
        if written {
            self.note_task(&record);
            self.stats.records.fetch_add(1, Ordering::Relaxed);
            if !post && probe_records.is_empty() && at.generated.is_empty() {
                ring.push(record);
                return;
            }
            ring.push(record.clone());
        }
        // Synthetic events generated by its histograms' actions, then the event probes, which
        // run as triggers of their event: their entries follow it.
        let generated = std::mem::take(at.generated);
        let generated_records: Vec<Record> = if generated.is_empty()
            || !state.instance(tree, dir, |i| i.tracing_on)
        {
            Vec::new()
        } else {
            let instance = tree.instance_of(dir);
            let generator = &mut timeline.generator;
            generated
                .iter()
                .filter_map(|g| generated_record(tree, at.events, instance, &record, g, generator))
                .collect()
        };
        for probe_record in generated_records.into_iter().chain(probe_records) {
            self.note_task(&probe_record);
            self.stats.records.fetch_add(1, Ordering::Relaxed);
            ring.push(probe_record);
        }
        if post {
            for trigger in event.triggers.triggers_mut() {
                let matches = trigger.filter.as_ref().is_none_or(|f| f.matches(&value_of));
                if matches && is_post_trigger(&trigger.action) && at.run_trigger(trigger, None) {
                    self.record_stack(at, &ring, &record, timeline);
                }
            }
        }
    }

    /// The records of the event probes attached to the event that made `record` and enabled
    /// in its instance (their filters on the event's record and their own filters applied).
    fn probe_records(
        &self,
        at: &Occurrence<'_>,
        record: &Record,
        fields: &[format::Field<'_>],
        timeline: &mut Timeline,
    ) -> Vec<Record> {
        let (state, tree, dir) = (at.state, at.tree, at.dir);
        let attachments = state.attachments();
        if attachments.is_empty() {
            return Vec::new();
        }
        let (system, name) = (tree.dir_name(tree.parent_of(dir)), tree.dir_name(dir));
        let Some(events_dir) = tree.events_dir_of(tree.instance_of(dir)) else {
            return Vec::new();
        };
        if !state.instance(tree, dir, |i| i.tracing_on) {
            return Vec::new();
        }
        let value_of = |n: &str| record.value_of(fields, n);
        let mut out = Vec::new();
        for attachment in attachments
            .iter()
            .filter(|a| a.system == system && a.event == name)
        {
            let Some(probe_dir) =
                tree.find_event_in(events_dir, &attachment.probe_group, &attachment.probe_event)
            else {
                continue;
            };
            let Some(probe_state) = at.events.get(&tree.dir_ino(probe_dir)) else {
                continue;
            };
            if !probe_state.enabled
                || !attachment
                    .filter
                    .as_ref()
                    .is_none_or(|f| f.matches(&value_of))
            {
                continue;
            }
            let id = tree.event_id(probe_dir);
            let Some(render) = self.render_of(id) else {
                continue;
            };
            let probe_fields: Vec<format::Field<'_>> = format::fields(&render.format).collect();
            let mut probe_record = timeline
                .generator
                .record_at(record.ts_ns, id, &probe_fields);
            fill_probe_record(&mut probe_record, &probe_fields, record, fields, attachment);
            let passes = match &probe_state.filter {
                FilterSlot::Active(f) => {
                    f.matches(&|n: &str| probe_record.value_of(&probe_fields, n))
                }
                FilterSlot::Unset | FilterSlot::Failed(_) => true,
            };
            if passes {
                out.push(probe_record);
            } else {
                self.stats.filtered.fetch_add(1, Ordering::Relaxed);
            }
        }
        out
    }

    /// A `stacktrace` trigger fired in the context of `record`: a stack entry goes into the
    /// buffer if tracing is on, as `__trace_stack` writes it.
    fn record_stack(
        &self,
        at: &Occurrence<'_>,
        ring: &Ring,
        record: &Record,
        timeline: &mut Timeline,
    ) {
        let (state, tree) = (at.state, at.tree);
        if !state.instance(tree, at.dir, |i| i.tracing_on) {
            return;
        }
        let Some(stack) = tree.find_event("ftrace", "kernel_stack") else {
            return;
        };
        let id = tree.event_id(stack);
        self.render_info(tree, stack, id);
        let frames = timeline.generator.call_chain();
        ring.push(Record::kernel_stack(id, record, &frames));
        self.stats.records.fetch_add(1, Ordering::Relaxed);
    }

    /// How long a blocked reader waits before it catches the simulation up again: briefly
    /// while events fire (their records are due), else `idle` (only a marker or a close can
    /// end the wait, and both wake it).
    pub(super) fn wait_slice(&self, state: &State, idle: Duration) -> Duration {
        if state.events().values().any(EventState::fires) {
            PIPE_POLL.min(idle)
        } else {
            idle
        }
    }

    /// Renders records as `trace` lines, counting fallbacks.
    fn render_records(&self, tree: &Tree, records: &[Arc<Record>], out: &mut String) {
        // A local map of the renderers seen so far: one shared-lock access per distinct event,
        // not per record.
        let mut by_id: HashMap<u32, Option<Arc<EventRender>>> = HashMap::new();
        let function_id = tree
            .find_event("ftrace", "function")
            .map(|d| tree.event_id(d));
        // Where a function record keeps `ip` and `parent_ip`, found at the first one.
        let mut call_fields: Option<Option<(usize, usize)>> = None;
        let mut kprobes: HashMap<u32, Option<(bool, String)>> = HashMap::new();
        for record in records {
            // Kprobes print their place with symbols (`print_kprobe_event`), then the
            // arguments (their renderer's fmt holds those alone).
            let kprobe = kprobes
                .entry(record.event_id)
                .or_insert_with(|| self.kprobes.describe(record.event_id));
            if let (Some((ret, name)), Some(render)) = (kprobe, self.render_of(record.event_id)) {
                ftrace_text::render_context(record, out);
                out.push_str(name);
                out.push_str(": ");
                kprobes::render_head(record, *ret, self.functions(tree), out);
                render.compiled.render(record, out);
                out.push('\n');
                continue;
            }
            // Calls of the function tracer print as `trace_fn_trace` prints them.
            if Some(record.event_id) == function_id {
                let slots = *call_fields.get_or_insert_with(|| {
                    let render = self.render_of(record.event_id)?;
                    function_tracer::call_fields(
                        &format::fields(&render.format).collect::<Vec<_>>(),
                    )
                });
                if let Some((ip, parent_ip)) = slots {
                    let bits = |at: usize| record.fields.get(at).and_then(FieldValue::as_bits);
                    ftrace_text::render_context(record, out);
                    let (ip, parent_ip) = (bits(ip).unwrap_or(0), bits(parent_ip).unwrap_or(0));
                    function_tracer::render_call(self.functions(tree), ip, parent_ip, out);
                    out.push('\n');
                    continue;
                }
            }
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
        let (ring, tracer) = state.instance(tree, dir, |i| {
            (i.ring.clone(), function_tracer::tracer_name(i))
        });
        self.ring_text(tree, &ring, cpu, tracer)
    }

    /// The `trace` text of `ring` (a main or a snapshot buffer), all CPUs or one, under
    /// `tracer`'s name.
    pub fn ring_text(&self, tree: &Tree, ring: &Ring, cpu: Option<u32>, tracer: &str) -> Vec<u8> {
        let records = ring.snapshot_of(cpu);
        let written = match cpu {
            Some(cpu) => {
                let stats = ring.cpu_stats(cpu);
                stats.entries + stats.overrun
            }
            None => ring.written(),
        };
        let mut out = trace_header(records.len(), written, ring.nr_cpus(), tracer);
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
            // Caught up by the caller: the marker comes after everything that fired before.
            let ts = {
                let mut timeline = lock(&self.timeline);
                let ts = timeline.trace_ns(state.clock.now_ns());
                timeline.generator.advance_to(ts);
                ts
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
            if blocked {
                self.catch_up(state, tree);
            }
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
            pipe.ring
                .wait_for_data_on(pipe.cpu, self.wait_slice(state, PIPE_WAIT));
        };
        if blocked {
            self.stats.blocked_readers.fetch_sub(1, Ordering::Relaxed);
        }
        result
    }
}

/// How many children of followed tasks are alive at once in the simulation.
const FORKED_ALIVE: usize = 4;

/// The `event-fork` bit of an instance's trace options.
fn event_fork_bit() -> u64 {
    OPTIONS
        .iter()
        .position(|o| o.name == "event-fork")
        .map_or(0, |row| 1 << row)
}

/// `sched_process_fork` of every instance that follows forks (`options/event-fork` on and a
/// pid list set): the kernel hooks the fork tracepoint for it whether or not the event is
/// enabled, so forks keep happening in the simulation too.
fn driven_by_fork_following(state: &State, tree: &Tree) -> Vec<Ino> {
    let bit = event_fork_bit();
    state.event_of_instances_where(tree, ("sched", "sched_process_fork"), |i| {
        i.options & bit != 0 && !(i.event_pids.is_empty() && i.notrace_pids.is_empty())
    })
}

/// A fork by the task of `record` (`sched_process_fork`): the child gets a pid of its own,
/// and with `event-fork` the pid lists follow it, as `event_filter_pid_sched_process_fork`
/// does: a listed parent's child is listed, an excluded parent's child excluded.
fn follow_fork(
    state: &State,
    tree: &Tree,
    dir: DirId,
    record: &mut Record,
    fields: &[format::Field<'_>],
) {
    let parent = record.pid;
    // Each fork makes a new task: pids are handed out upwards, as the kernel's are.
    let child = state.instance(tree, dir, |i| {
        i.last_forked_pid += 1;
        i.last_forked_pid
    }) as i32;
    for (name, value) in [
        ("parent_pid", FieldValue::Int(i64::from(parent))),
        ("child_pid", FieldValue::Int(i64::from(child))),
        ("parent_comm", FieldValue::Str(record.comm.clone())),
        ("child_comm", FieldValue::Str(record.comm.clone())),
    ] {
        if let Some(slot) = fields.iter().position(|f| f.name == name) {
            record.fields[slot] = value;
        }
    }
    let (parent, child) = (parent as u32, child as u32);
    state.instance(tree, dir, |i| {
        let listed = i.event_pids.contains(&parent) && i.event_pids.insert(child);
        let excluded = i.notrace_pids.contains(&parent) && i.notrace_pids.insert(child);
        if listed || excluded {
            i.forked.push_back(child);
        }
        // A simulated child lives briefly: past the last few, the oldest has exited and, as
        // `event_filter_pid_sched_process_exit` does, leaves the lists.
        while i.forked.len() > FORKED_ALIVE {
            if let Some(gone) = i.forked.pop_front() {
                i.event_pids.remove(&gone);
                i.notrace_pids.remove(&gone);
            }
        }
    });
}

/// Events that fire only because an enabled event probe is attached to them (the kernel
/// soft-enables them with a trigger).
fn driven_by_probes(state: &State, tree: &Tree, events: &HashMap<Ino, EventState>) -> Vec<Ino> {
    let attachments = state.attachments();
    if attachments.is_empty() {
        return Vec::new();
    }
    let mut driven = Vec::new();
    for (&key, event) in events {
        if !event.enabled {
            continue;
        }
        let Ok(node) = tree.node(key) else { continue };
        let (group, name) = (
            tree.dir_name(tree.parent_of(node.dir)),
            tree.dir_name(node.dir),
        );
        for a in attachments
            .iter()
            .filter(|a| a.probe_group == group && a.probe_event == name)
        {
            let target = tree
                .events_dir_of(tree.instance_of(node.dir))
                .and_then(|d| tree.find_event_in(d, &a.system, &a.event));
            if let Some(target) = target {
                driven.push(tree.dir_ino(target));
            }
        }
    }
    driven
}

/// Triggers the kernel runs after the event is written (`EVENT_CMD_FL_POST_TRIGGER`): so the
/// event that turned tracing off is in the buffer, and a stack entry follows its event.
fn is_post_trigger(action: &Action) -> bool {
    matches!(action, Action::TraceOff | Action::StackTrace)
}

/// Which task an occurrence happens in, by the instance's pid lists.
enum PidChoice {
    /// `set_event_pid` lists this one (records of filtered events carry the listed pids).
    Listed(u32),
    /// `set_event_pid` lists only pids that `set_event_notrace_pid` excludes.
    NoneListed,
    /// No `set_event_pid`: any task (dropped if `set_event_notrace_pid` names it).
    Any,
}

fn choose_pid(instance: &InstanceState, generator: &mut Generator) -> PidChoice {
    if instance.event_pids.is_empty() {
        return PidChoice::Any;
    }
    let allowed: Vec<u32> = instance
        .event_pids
        .difference(&instance.notrace_pids)
        .copied()
        .collect();
    if allowed.is_empty() {
        return PidChoice::NoneListed;
    }
    PidChoice::Listed(allowed[generator.below(allowed.len() as u64) as usize])
}

/// Makes a record look like it came from `pid` (set_event_pid filtering).
fn force_pid(record: &mut Record, fields: &[format::Field<'_>], pid: u32) {
    record.pid = pid as i32;
    if let Some(slot) = fields.iter().position(|f| f.name == "common_pid") {
        record.fields[slot] = FieldValue::Int(i64::from(pid));
    }
}
