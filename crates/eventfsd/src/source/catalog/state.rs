//! The simulated kernel's state: per event (enabled, filter, triggers) and per instance
//! (buffer, tracing_on, options ...). The bottom layer of the catalog source: the event
//! files, the root files and the recorder change it only through these methods, and it knows
//! no file.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::clock::SimClock;
use super::profile::RateProfile;

use eventfs_core::layout::FileKind;
use eventfs_core::tree::{DirId, Ino, Tree};
use ftrace_text::{filter, trigger, Ring};

/// Entries kept in an error log (the kernel keeps the last 8).
pub const ERROR_LOG_ENTRIES: usize = 8;

/// Tunables of the catalog source.
#[derive(Clone, Debug)]
pub struct CatalogOptions {
    /// How often each event fires (records per second while it is enabled or soft-enabled).
    pub profile: Arc<RateProfile>,
    /// Seed of the synthetic record generator (same seed, same records).
    pub seed: u64,
    /// Number of simulated CPUs.
    pub nr_cpus: u32,
    /// Default `buffer_size_kb` of a new instance.
    pub buffer_kb: u32,
    /// Readers that may wait in `trace_pipe` at once; more get EAGAIN. Keep it below the
    /// transport's worker count so blocked readers never take every worker.
    pub max_blocked_readers: usize,
}

impl Default for CatalogOptions {
    fn default() -> Self {
        CatalogOptions {
            profile: Arc::default(),
            seed: 1,
            nr_cpus: 1,
            buffer_kb: 1408,
            max_blocked_readers: 2,
        }
    }
}

/// What an event's `filter` file holds.
#[derive(Default)]
pub enum FilterSlot {
    /// No filter: reads `none`.
    #[default]
    Unset,
    /// A working filter.
    Active(filter::Filter),
    /// The last write failed: like the kernel, the event is unfiltered and the file shows the
    /// error (this text).
    Failed(String),
}

/// State of one event that differs from the default (disabled, no filter, no triggers).
#[derive(Default)]
pub struct EventState {
    /// `enable` reads 1.
    pub enabled: bool,
    /// The `filter` file.
    pub filter: FilterSlot,
    /// The `trigger` file.
    pub triggers: trigger::TriggerSet,
}

impl EventState {
    /// Whether the event fires: it is enabled, or its triggers run in soft mode.
    pub fn fires(&self) -> bool {
        self.enabled || !self.triggers.is_empty()
    }

    /// Whether nothing differs from a fresh event (its map entry can go).
    pub fn is_default(&self) -> bool {
        !self.enabled && matches!(self.filter, FilterSlot::Unset) && self.triggers.is_empty()
    }
}

/// An event probe attached to another event: what the recorder needs to fire it.
pub struct Attachment {
    /// The attached event's system.
    pub system: String,
    /// The attached event.
    pub event: String,
    /// The probe event's group.
    pub probe_group: String,
    /// The probe event's name.
    pub probe_event: String,
    /// Where each of the probe's fields gets its value.
    pub sources: Vec<(String, ftrace_text::probe::ProbeValueSource)>,
    /// `if FILTER`, on the attached event's record.
    pub filter: Option<filter::Filter>,
}

/// What the function tracer of an instance traces.
#[derive(Default)]
pub struct FtraceSelection {
    /// `set_ftrace_filter`: function numbers, sorted (empty: every function).
    pub filter: Vec<u32>,
    /// `set_ftrace_notrace`: function numbers, sorted.
    pub notrace: Vec<u32>,
    /// `set_ftrace_pid` (empty: every task).
    pub pids: BTreeSet<u32>,
    /// `set_ftrace_notrace_pid`.
    pub notrace_pids: BTreeSet<u32>,
}

/// The state tracefs keeps per instance.
pub struct InstanceState {
    /// `tracing_on`.
    pub tracing_on: bool,
    /// The instance's trace buffer (its size is `buffer_size_kb`).
    pub ring: Arc<Ring>,
    /// The snapshot buffer: empty and not counted while freed (see `snapshot.rs`).
    pub snapshot: Arc<Ring>,
    /// `echo 1 > snapshot` (or a snapshot trigger) allocated it.
    pub snapshot_allocated: bool,
    /// `current_tracer` is `function` (else `nop`).
    pub function_tracer: bool,
    /// The function tracer's selection (see `function_tracer.rs`).
    pub ftrace: FtraceSelection,
    /// Index of the selected clock in the catalog's `trace_clock` list.
    pub clock: usize,
    /// Trace option values, one bit per row of [`eventfs_core::layout::OPTIONS`].
    pub options: u64,
    /// `set_event_pid`.
    pub event_pids: BTreeSet<u32>,
    /// `set_event_notrace_pid`.
    pub notrace_pids: BTreeSet<u32>,
    /// Children that `event-fork` put on the pid lists, oldest first: the simulated system's
    /// short-lived processes, of which only the last few are alive (see `follow_fork`).
    pub forked: std::collections::VecDeque<u32>,
    /// The pid the last simulated fork gave its child.
    pub last_forked_pid: u32,
    /// `tracing_cpumask`.
    pub cpumask: u64,
    /// `error_log`, oldest first.
    pub error_log: Vec<String>,
    /// Open handles on files of this instance (rmdir is EBUSY while any is open).
    pub open_handles: usize,
}

impl InstanceState {
    fn new(options: &CatalogOptions, default_options: u64) -> Self {
        let nr_cpus = options.nr_cpus.clamp(1, 64);
        InstanceState {
            tracing_on: true,
            ring: Arc::new(Ring::new(nr_cpus, options.buffer_kb as usize)),
            snapshot: Arc::new(Ring::new(nr_cpus, options.buffer_kb as usize)),
            snapshot_allocated: false,
            function_tracer: false,
            ftrace: FtraceSelection::default(),
            clock: 0,
            options: default_options,
            event_pids: BTreeSet::new(),
            notrace_pids: BTreeSet::new(),
            forked: std::collections::VecDeque::new(),
            // Above the made-up tasks of the record generator (pids below 40001).
            last_forked_pid: 50_000,
            cpumask: if nr_cpus == 64 {
                u64::MAX
            } else {
                (1 << nr_cpus) - 1
            },
            error_log: Vec::new(),
            open_handles: 0,
        }
    }

    /// Sets or clears the trace option of `row`.
    pub fn set_option(&mut self, row: u8, on: bool) {
        if on {
            self.options |= 1 << row;
        } else {
            self.options &= !(1 << row);
        }
    }
}

/// Locks a state mutex. State is updated by whole-value replacement, so a poisoned lock
/// still holds a consistent value: keep serving.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The simulated kernel's state. Only events whose state differs from the default have an
/// entry, so an idle tree costs nothing here. Lock order: `events` before `instances`.
pub struct State {
    /// Keyed by the event directory's inode number, which includes its generation: state of
    /// a removed event can never leak into a new event of the same name.
    events: Mutex<HashMap<Ino, EventState>>,
    /// Keyed by the instance directory's inode (the root directory for the top level).
    /// Created on first use.
    instances: Mutex<HashMap<Ino, InstanceState>>,
    /// Event probes, by attached event.
    attachments: Mutex<Vec<Arc<Attachment>>>,
    /// The simulation's time (error log, records): the kernel counts from boot.
    pub clock: SimClock,
    /// Tunables.
    pub options: CatalogOptions,
    /// The entries every histogram together may hold (see [`HIST_ENTRY_BUDGET`]).
    pub hist_budget: Arc<trigger::EntryBudget>,
}

/// How many entries all the histograms of one guest's simulated kernel may hold together:
/// 32 full default-sized tables (a few MB of host memory). A guest may make any number of
/// `hist:` triggers of up to 2^17 entries each; past this bound new keys are dropped, as in
/// a full table.
pub const HIST_ENTRY_BUDGET: usize = 32 * 2048;

impl State {
    /// Empty state: every event disabled, no instance state yet.
    pub fn new(options: CatalogOptions) -> Self {
        State::with_clock(options, SimClock::default())
    }

    /// Empty state whose time comes from `clock`.
    pub fn with_clock(options: CatalogOptions, clock: SimClock) -> Self {
        State {
            events: Mutex::default(),
            instances: Mutex::default(),
            attachments: Mutex::default(),
            clock,
            options,
            hist_budget: trigger::EntryBudget::new(HIST_ENTRY_BUDGET),
        }
    }

    /// The per-event map, for walks over every event with state (the recorder, soft mode).
    pub fn events(&self) -> MutexGuard<'_, HashMap<Ino, EventState>> {
        lock(&self.events)
    }

    /// Whether the event whose directory has inode `key` is enabled.
    pub fn is_enabled(&self, key: Ino) -> bool {
        lock(&self.events).get(&key).is_some_and(|s| s.enabled)
    }

    /// Runs `f` on the state of the event `key`, dropping the entry if it is back to default.
    pub fn update<R>(&self, key: Ino, f: impl FnOnce(&mut EventState) -> R) -> R {
        let mut events = lock(&self.events);
        let state = events.entry(key).or_default();
        let result = f(state);
        if state.is_default() {
            events.remove(&key);
        }
        drop(events);
        result
    }

    /// Enables or disables every enable-able event below `dir` (one tree lock, one state lock).
    pub fn set_enabled_below(&self, tree: &Tree, dir: DirId, on: bool) {
        let targets = tree.events_with_file(dir, FileKind::EventEnable);
        let mut events = lock(&self.events);
        for (_, key) in targets {
            if on {
                events.entry(key).or_default().enabled = true;
            } else if let Some(state) = events.get_mut(&key) {
                state.enabled = false;
                if state.is_default() {
                    events.remove(&key);
                }
            }
        }
    }

    /// Runs `f` on the state of the instance whose directory has inode `key`, creating it on
    /// first use.
    pub fn instance_by_key<R>(
        &self,
        key: Ino,
        default_options: u64,
        f: impl FnOnce(&mut InstanceState) -> R,
    ) -> R {
        let mut instances = lock(&self.instances);
        let state = instances
            .entry(key)
            .or_insert_with(|| InstanceState::new(&self.options, default_options));
        f(state)
    }

    /// Runs `f` on the state of the instance `dir` belongs to, creating it on first use.
    pub fn instance<R>(
        &self,
        tree: &Tree,
        dir: DirId,
        f: impl FnOnce(&mut InstanceState) -> R,
    ) -> R {
        self.instance_by_key(tree.instance_ino_of(dir), tree.option_defaults(), f)
    }

    /// Runs `f` on the state of instance `key` if it exists.
    pub fn existing_instance<R>(
        &self,
        key: Ino,
        f: impl FnOnce(&mut InstanceState) -> R,
    ) -> Option<R> {
        lock(&self.instances).get_mut(&key).map(f)
    }

    /// The instances (by directory inode) whose state satisfies `f`.
    pub fn instances_where(&self, f: impl Fn(&InstanceState) -> bool) -> Vec<Ino> {
        lock(&self.instances)
            .iter()
            .filter(|(_, i)| f(i))
            .map(|(&key, _)| key)
            .collect()
    }

    /// The `system/event` directories of the instances whose state satisfies `f` (the
    /// events the recorder drives for them).
    pub fn event_of_instances_where(
        &self,
        tree: &Tree,
        (system, event): (&str, &str),
        f: impl Fn(&InstanceState) -> bool,
    ) -> Vec<Ino> {
        self.instances_where(f)
            .into_iter()
            .filter_map(|key| {
                let instance = tree.node(key).ok()?.dir;
                let events = tree.events_dir_of(instance)?;
                Some(tree.dir_ino(tree.find_event_in(events, system, event)?))
            })
            .collect()
    }

    /// Drops the state of instance `key` unless a file of it is open (the caller answers
    /// EBUSY then, as tracefs). Returns whether it was dropped.
    pub fn remove_instance(&self, key: Ino) -> bool {
        let mut instances = lock(&self.instances);
        if instances.get(&key).is_some_and(|i| i.open_handles > 0) {
            return false;
        }
        if let Some(state) = instances.remove(&key) {
            state.ring.shutdown();
        }
        true
    }

    /// Appends a kernel-style entry to the error log of the instance `dir` belongs to (oldest
    /// dropped past the bound).
    pub fn log_error(&self, tree: &Tree, dir: DirId, entry: Option<String>) {
        let Some(entry) = entry else { return };
        let t = self.clock.elapsed();
        let entry = format!("[{:>5}.{:06}] {entry}", t.as_secs(), t.subsec_micros());
        self.instance(tree, dir, |i| {
            if i.error_log.len() == ERROR_LOG_ENTRIES {
                i.error_log.remove(0);
            }
            i.error_log.push(entry);
        });
    }

    /// Registers an event probe.
    pub fn attach(&self, attachment: Attachment) {
        lock(&self.attachments).push(Arc::new(attachment));
    }

    /// Forgets the event probe `group/event`.
    pub fn detach(&self, group: &str, event: &str) {
        lock(&self.attachments).retain(|a| a.probe_group != group || a.probe_event != event);
    }

    /// Every event probe (a short list: the guest's own definitions).
    pub fn attachments(&self) -> Vec<Arc<Attachment>> {
        lock(&self.attachments).clone()
    }

    /// Drops state of events that no longer exist (after the tree removed them).
    pub fn prune(&self, tree: &Tree) {
        lock(&self.events).retain(|&ino, _| tree.node(ino).is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventfs_core::TreeConfig;

    #[test]
    fn default_state_leaves_no_entry() {
        let state = State::new(CatalogOptions::default());
        state.update(42, |s| s.enabled = true);
        assert!(state.is_enabled(42));
        state.update(42, |s| s.enabled = false);
        assert!(state.events().is_empty(), "a disabled event keeps no entry");
    }

    #[test]
    fn fan_out_enables_only_enableable_events() {
        let tree = Tree::embedded(TreeConfig::default());
        let state = State::new(CatalogOptions::default());
        // Over the whole events/ dir, which has events without `enable` (ftrace/*).
        let sched = tree.find_event("sched", "sched_switch").unwrap();
        let events_dir = tree.parent_of(tree.parent_of(sched));
        let all = tree.events_below(events_dir).len();
        state.set_enabled_below(&tree, events_dir, true);
        let on = state.events().len();
        assert!(on > 1000 && on < all, "{on} of {all} events enabled");
        assert!(state.is_enabled(tree.dir_ino(sched)));
        let function = tree.find_event("ftrace", "function").unwrap();
        assert!(
            !state.is_enabled(tree.dir_ino(function)),
            "ftrace/function has no enable"
        );
        state.set_enabled_below(&tree, events_dir, false);
        assert!(state.events().is_empty());
    }

    #[test]
    fn error_log_keeps_the_last_eight() {
        let tree = Tree::embedded(TreeConfig::default());
        let state = State::new(CatalogOptions::default());
        let ev = tree.find_event("sched", "sched_switch").unwrap();
        for n in 0..12 {
            state.log_error(&tree, ev, Some(format!("entry {n}")));
        }
        let log = state.instance(&tree, ev, |i| i.error_log.clone());
        assert_eq!(log.len(), ERROR_LOG_ENTRIES);
        assert!(log[0].ends_with("entry 4"), "{log:?}");
        assert!(log[7].ends_with("entry 11"), "{log:?}");
    }

    #[test]
    fn open_instance_cannot_be_removed() {
        let state = State::new(CatalogOptions::default());
        state.instance_by_key(7, 0, |i| i.open_handles = 1);
        assert!(!state.remove_instance(7));
        state.existing_instance(7, |i| i.open_handles = 0);
        assert!(state.remove_instance(7));
        assert!(state.existing_instance(7, |_| ()).is_none());
    }
}
