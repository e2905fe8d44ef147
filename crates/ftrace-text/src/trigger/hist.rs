//! The data of `hist:` triggers (the kernel's `tracing_map`) and the text of an event's `hist`
//! file, as `kernel/trace/trace_events_hist.c` prints it.
//!
//! A table maps a key (one part per `keys=` field) to sums: the hit count, then one sum per
//! `vals=` field. Named histograms share one table through [`SharedTable`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Handler, HistDialect, HistField, HistSpec, SortField, SortKey};

/// One part of a histogram key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyPart {
    /// A number, as the kernel keeps it: the field's value widened to 64 bits (signed fields
    /// sign-extended), after the key's modifier (`log2`, `buckets`, `usecs`).
    Num(u64),
    /// A string field.
    Str(Box<str>),
    /// A call chain (`stacktrace` keys), innermost frame first.
    Stack(Box<[u64]>),
}

/// What a record gives for one key or value field, before the field's modifier.
#[derive(Debug, Clone, Copy)]
pub enum FieldInput<'a> {
    /// A number (signed values as their two's-complement bits).
    Num(u64),
    /// A string.
    Str(&'a str),
    /// A call chain.
    Stack(&'a [u64]),
}

/// One entry: its sums (hit count first) and the comm of the task that created it (shown by
/// `.execname` keys).
#[derive(Debug, Clone)]
struct Entry {
    sums: Box<[u64]>,
    comm: Box<str>,
    /// The histogram's variables (`None`: not set, or read once and consumed).
    vars: Box<[Option<u64>]>,
    /// Per action, the value an `onmax`/`onchange` last acted on (0 at first).
    tracked: Box<[u64]>,
    /// The fields a `save` action kept, in its order (none until it ran).
    saved: Box<[Saved]>,
}

/// A field a `save` action kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// A number.
    Num(u64),
    /// A string.
    Str(Box<str>),
}

/// A bound on the entries of all the histograms of one simulated kernel together. Each table
/// is bounded by its `size=`, but a guest may make any number of tables; a table that finds
/// the budget spent drops a new key as a full table does (counted in `Dropped:`).
#[derive(Debug)]
pub struct EntryBudget {
    used: AtomicUsize,
    limit: usize,
}

impl EntryBudget {
    /// A budget of `limit` entries.
    pub fn new(limit: usize) -> Arc<EntryBudget> {
        Arc::new(EntryBudget {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    /// Entries held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes one entry, if any is left.
    fn take(&self) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used < self.limit).then_some(used + 1)
            })
            .is_ok()
    }

    fn give_back(&self, entries: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(entries))
            });
    }
}

/// One histogram's table.
#[derive(Debug, Default)]
pub struct HistTable {
    entries: HashMap<Box<[KeyPart]>, Entry>,
    hits: u64,
    drops: u64,
    /// The budget its entries are taken from (the one of its first entry's `add`).
    budget: Option<Arc<EntryBudget>>,
    /// The value the `snapshot()` actions track across entries (0 at first), and the last
    /// snapshot taken: which action, at what value, for which key.
    snapshot_value: u64,
    snapshot_taken: Option<(usize, u64, Box<[KeyPart]>)>,
}

impl Drop for HistTable {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give_back(self.entries.len());
        }
    }
}

impl HistTable {
    /// Adds one hit under the key made of `spec`'s key fields, summing its value fields;
    /// `input` gives each field's raw value (`None`: the record has no such field, which
    /// the trigger parser rules out). A full table drops the hit, as the kernel's does, and
    /// so does a table whose new key finds `budget` spent.
    pub fn add<'a>(
        &mut self,
        spec: &HistSpec,
        input: impl Fn(&HistField) -> Option<FieldInput<'a>>,
        comm: &str,
        budget: &Arc<EntryBudget>,
    ) -> bool {
        let Some(key) = HistTable::key_of(spec, &input) else {
            return false;
        };
        let vals: Vec<u64> = spec
            .vals
            .iter()
            .map(|v| match input(v) {
                Some(FieldInput::Num(n)) => value_of(spec, v, n),
                _ => 0,
            })
            .collect();
        let max_entries = 1usize << spec.map_bits;
        let full = self.entries.len() >= max_entries;
        let entry = match self.entries.get_mut(&key) {
            Some(entry) => entry,
            None if full || !budget.take() => {
                self.drops += 1;
                return false;
            }
            None => {
                self.budget.get_or_insert_with(|| Arc::clone(budget));
                self.entries.entry(key).or_insert_with(|| Entry {
                    sums: vec![0; 1 + vals.len()].into(),
                    comm: comm.into(),
                    vars: vec![None; spec.vars.len()].into(),
                    tracked: vec![0; spec.actions.len()].into(),
                    saved: Box::default(),
                })
            }
        };
        self.hits += 1;
        entry.sums[0] += 1;
        for (sum, v) in entry.sums[1..].iter_mut().zip(vals) {
            *sum = sum.wrapping_add(v);
        }
        true
    }

    /// The key `spec`'s key fields make of one hit (`None` if the record lacks one).
    pub fn key_of<'a>(
        spec: &HistSpec,
        input: &impl Fn(&HistField) -> Option<FieldInput<'a>>,
    ) -> Option<Box<[KeyPart]>> {
        spec.keys
            .iter()
            .map(|k| input(k).map(|v| key_part(spec, k, v)))
            .collect()
    }

    /// Variable `index` of the entry of `key`, if set; `consume` unsets it (a read-once
    /// reference).
    pub fn var(&mut self, key: &[KeyPart], index: usize, consume: bool) -> Option<u64> {
        let slot = self.entries.get_mut(key)?.vars.get_mut(index)?;
        if consume {
            slot.take()
        } else {
            *slot
        }
    }

    /// Runs the `onmax`/`onchange` test of action `action` on the entry of `key` with
    /// `value` (`max`: above the tracked value, else different from it); when it passes,
    /// tracks `value` and keeps `saved` (a `save` action's fields). Returns whether it passed.
    pub fn track(
        &mut self,
        key: &[KeyPart],
        action: usize,
        max: bool,
        value: u64,
        saved: Option<Vec<Saved>>,
    ) -> bool {
        let Some(entry) = self.entries.get_mut(key) else {
            return false;
        };
        let Some(tracked) = entry.tracked.get_mut(action) else {
            return false;
        };
        let passes = if max {
            value > *tracked
        } else {
            value != *tracked
        };
        if passes {
            *tracked = value;
            if let Some(saved) = saved {
                entry.saved = saved.into();
            }
        }
        passes
    }

    /// A `snapshot()` action's test across all entries (after its entry's own passed): when
    /// `value` passes it, it is tracked with `key`, and the caller takes the snapshot.
    pub fn track_snapshot(
        &mut self,
        key: &[KeyPart],
        action: usize,
        max: bool,
        value: u64,
    ) -> bool {
        let passes = if max {
            value > self.snapshot_value
        } else {
            value != self.snapshot_value
        };
        if passes {
            self.snapshot_value = value;
            self.snapshot_taken = Some((action, value, key.into()));
        }
        passes
    }

    /// Sets the variables of the entry of `key` (those `values` gives).
    pub fn set_vars(&mut self, key: &[KeyPart], values: &[Option<u64>]) {
        if let Some(entry) = self.entries.get_mut(key) {
            for (slot, value) in entry.vars.iter_mut().zip(values) {
                if value.is_some() {
                    *slot = *value;
                }
            }
        }
    }

    /// A field's value as a variable expression of `spec` reads it (its modifier applied).
    pub fn value_for_var(spec: &HistSpec, field: &HistField, input: FieldInput<'_>) -> Option<u64> {
        match input {
            FieldInput::Num(n) => Some(value_of(spec, field, n)),
            _ => None,
        }
    }

    /// Forgets every entry and the totals (`:clear`).
    pub fn clear(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give_back(self.entries.len());
        }
        self.entries.clear();
        (self.hits, self.drops) = (0, 0);
    }

    /// Appends one trigger's section of the `hist` file: the header naming `trigger_line`
    /// (the trigger as `cat trigger` lists it), the sorted entries, and the totals.
    pub fn render(&self, spec: &HistSpec, trigger_line: &str, out: &mut String) {
        out.push_str("# event histogram\n#\n# trigger info: ");
        out.push_str(trigger_line);
        out.push_str("\n#\n\n");
        let mut sorted: Vec<(&[KeyPart], &Entry)> =
            self.entries.iter().map(|(k, e)| (&**k, e)).collect();
        sorted.sort_by(|a, b| compare(spec, a, b));
        let totals: Vec<(u64, u64)> = (0..=spec.vals.len())
            .map(|i| {
                let column = sorted.iter().map(|(_, e)| e.sums[i]);
                (
                    column.clone().fold(0, u64::wrapping_add),
                    column.max().unwrap_or(0),
                )
            })
            .collect();
        for (key, entry) in &sorted {
            print_key(spec, key, &entry.comm, out);
            if !spec.nohitcount {
                let _ = write!(out, " hitcount: {:10}", entry.sums[0]);
            }
            for (i, field) in spec.vals.iter().enumerate() {
                out.push(' ');
                print_val(field, entry.sums[i + 1], totals[i + 1], out);
            }
            print_tracked(spec, entry, out);
            out.push('\n');
        }
        if let Some((action, value, key)) = &self.snapshot_taken {
            let handler = match spec.actions.get(*action).map(|a| &a.handler) {
                Some(Handler::Max(var)) => format!("onmax(${var})"),
                Some(Handler::Change(var)) => format!("onchange(${var})"),
                _ => String::new(),
            };
            let _ = write!(
                out,
                "\nSnapshot taken (see tracing/snapshot).  Details:\n\ttriggering value \
                 {{ {handler} }}: {value:10}\ttriggered by event with key: "
            );
            print_key(spec, key, "", out);
            out.push('\n');
        }
        let _ = write!(
            out,
            "\nTotals:\n    Hits: {}\n    Entries: {}\n    Dropped: {}\n",
            self.hits,
            sorted.len(),
            self.drops
        );
    }
}

/// The blocks `track_data_print` adds to an entry: per `onmax`/`onchange` action the value
/// it tracks, then every field a `save` kept (0 or empty before it ran).
fn print_tracked(spec: &HistSpec, entry: &Entry, out: &mut String) {
    let saves: Vec<(&str, bool)> = spec
        .actions
        .iter()
        .filter(|a| a.saves())
        .flat_map(|a| {
            a.params
                .iter()
                .map(String::as_str)
                .zip(a.saves_strings.iter().copied())
        })
        .collect();
    for (i, action) in spec.actions.iter().enumerate() {
        let label = match action.handler {
            _ if action.snapshot => continue,
            Handler::Max(_) => "max",
            Handler::Change(_) => "changed",
            Handler::Match { .. } => continue,
        };
        let _ = write!(out, "\n\t{label}: {:10}", entry.tracked[i]);
        for (n, &(name, string)) in saves.iter().enumerate() {
            match (entry.saved.get(n), string) {
                (Some(Saved::Str(s)), _) => {
                    let _ = write!(out, "  {name}: {s:<32}");
                }
                (Some(Saved::Num(v)), _) => {
                    let _ = write!(out, "  {name}: {v:10}");
                }
                // Never saved: the kernel reads an empty slot.
                (None, true) => {
                    let _ = write!(out, "  {name}: {:<32}", "");
                }
                (None, false) => {
                    let _ = write!(out, "  {name}: {:10}", 0);
                }
            }
        }
    }
}

/// A table shared by the triggers of one histogram (a named one is shared across events).
/// Two specs compare equal whatever their data: a trigger is identified by its text.
#[derive(Debug, Clone, Default)]
pub struct SharedTable(Arc<Mutex<HistTable>>);

impl SharedTable {
    /// Locks the table (a panic while it was held leaves the data usable).
    pub fn lock(&self) -> MutexGuard<'_, HistTable> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `self` and `other` are the same table.
    pub fn same(&self, other: &SharedTable) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl PartialEq for SharedTable {
    fn eq(&self, _: &SharedTable) -> bool {
        true
    }
}

impl Eq for SharedTable {}

/// The key the kernel stores for `field` (its modifier applied).
fn key_part(spec: &HistSpec, field: &HistField, input: FieldInput<'_>) -> KeyPart {
    match input {
        FieldInput::Num(n) => KeyPart::Num(match (field.modifier, field.buckets) {
            (Some("log2"), _) => log2_of(n),
            (Some("buckets"), Some(size)) => n / size * size,
            _ => value_of(spec, field, n),
        }),
        FieldInput::Str(s) => KeyPart::Str(s.into()),
        FieldInput::Stack(frames) => KeyPart::Stack(frames.into()),
    }
}

/// A value after its modifier: `common_timestamp.usecs` is in microseconds (rounded, as
/// the kernel's `ns2usecs`), and so is every `common_timestamp` of a histogram that has one.
fn value_of(spec: &HistSpec, field: &HistField, n: u64) -> u64 {
    if spec.ts_in_usecs && field.name == "common_timestamp" {
        n.saturating_add(500) / 1000
    } else {
        n
    }
}

/// `ilog2(roundup_pow_of_two(n))`, the kernel's `.log2` key (0 and 1 both give 0).
fn log2_of(n: u64) -> u64 {
    match n {
        0 | 1 => 0,
        n => u64::from(64 - (n - 1).leading_zeros()),
    }
}

fn compare(
    spec: &HistSpec,
    a: &(&[KeyPart], &Entry),
    b: &(&[KeyPart], &Entry),
) -> std::cmp::Ordering {
    let by = |sort: &SortKey| {
        let order = match sort.field {
            SortField::Hitcount => a.1.sums[0].cmp(&b.1.sums[0]),
            SortField::Val(i) => a.1.sums[i + 1].cmp(&b.1.sums[i + 1]),
            SortField::Key(i) => compare_key(&spec.keys[i], &a.0[i], &b.0[i]),
        };
        if sort.descending {
            order.reverse()
        } else {
            order
        }
    };
    // The kernel's order among equal entries is its hash table's; the key makes ours stable.
    spec.sort
        .iter()
        .map(by)
        .fold(std::cmp::Ordering::Equal, std::cmp::Ordering::then)
        .then_with(|| a.0.cmp(b.0))
}

/// Keys of signed fields compare as signed numbers, as `tracing_map_cmp_num` does.
fn compare_key(field: &HistField, a: &KeyPart, b: &KeyPart) -> std::cmp::Ordering {
    match (a, b) {
        (KeyPart::Num(x), KeyPart::Num(y)) if field.signed => (*x as i64).cmp(&(*y as i64)),
        _ => a.cmp(b),
    }
}

/// `{ key: value, ... }` as `hist_trigger_print_key` prints it.
fn print_key(spec: &HistSpec, key: &[KeyPart], comm: &str, out: &mut String) {
    out.push_str("{ ");
    let mut multiline = false;
    for (i, (field, part)) in spec.keys.iter().zip(key).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let name = &field.name;
        let _ = match (part, field.modifier) {
            (KeyPart::Stack(frames), _) => {
                // Renamed with the key (`common_stacktrace`) after 6.1.
                out.push_str(if spec.dialect == HistDialect::Linux6_1 {
                    "stacktrace:\n"
                } else {
                    "common_stacktrace:\n"
                });
                for frame in frames.iter().take_while(|&&f| f != 0) {
                    // `%pS` of an address without a symbol (the catalog has none).
                    let _ = writeln!(out, "{:9}0x{frame:x}", "");
                }
                multiline = true;
                Ok(())
            }
            (KeyPart::Str(s), _) => write!(out, "{name}: {s:<50}"),
            (KeyPart::Num(n), Some("hex")) => write!(out, "{name}: {n:x}"),
            (KeyPart::Num(n), Some("sym")) => write!(out, "{name}: [{n:x}] {:<45}", sym(*n)),
            (KeyPart::Num(n), Some("sym-offset")) => {
                write!(out, "{name}: [{n:x}] {:<55}", sym(*n))
            }
            (KeyPart::Num(n), Some("execname")) => write!(out, "{name}: {comm:<16}[{n:10}]"),
            // No syscall table in a catalog: the kernel's text for an unknown number.
            (KeyPart::Num(n), Some("syscall")) => {
                write!(out, "{name}: {:<30}[{n:3}]", "unknown_syscall")
            }
            (KeyPart::Num(n), Some("log2")) => write!(out, "{name}: ~ 2^{n:<2}"),
            (KeyPart::Num(n), Some("buckets")) => {
                let size = field.buckets.unwrap_or(1);
                write!(out, "{name}: ~ {n}-{}", n.wrapping_add(size - 1))
            }
            (KeyPart::Num(n), _) => write!(out, "{name}: {n:10}"),
        };
    }
    if !multiline {
        out.push(' ');
    }
    out.push('}');
}

/// `%ps` of an address with no symbol: the kernel prints the address.
fn sym(addr: u64) -> String {
    format!("0x{addr:x}")
}

/// ` name: value` as `hist_trigger_print_val` prints it (`total` is the column's sum and
/// maximum, for `.percent` and `.graph`).
fn print_val(field: &HistField, sum: u64, (total, max): (u64, u64), out: &mut String) {
    let name = &field.name;
    let _ = match field.modifier {
        Some("percent") => match percentage(sum, total) {
            None => write!(out, " {name} (%):[ERROR]"),
            Some(pc) => write!(out, " {name} (%): {:3}.{:02}", pc / 100, pc % 100),
        },
        Some("graph") => write!(out, " {name}: {:>20}", bar(sum, max)),
        Some("hex") => write!(out, " {name}: {sum:10x}"),
        _ => write!(out, " {name}: {sum:10}"),
    };
}

/// 100 times the percentage of `val` in `total` (`None` where the kernel prints `[ERROR]`).
fn percentage(val: u64, total: u64) -> Option<u64> {
    if total == 0 {
        return (val == 0).then_some(0);
    }
    if val < u64::MAX / 10000 {
        return Some(val * 10000 / total);
    }
    match total / 10000 {
        0 => None,
        t => Some(val / t),
    }
}

/// A 20-character bar of `#` proportional to `val / max`.
fn bar(val: u64, max: u64) -> String {
    const WIDTH: u64 = 20;
    match percentage(val, max) {
        None => "[ERROR]".to_string(),
        Some(pc) => {
            let len = (pc * WIDTH / 10000).min(WIDTH) as usize;
            format!("{}{}", "#".repeat(len), " ".repeat(WIDTH as usize - len))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{fields, testdata::SCHED_SWITCH};
    use crate::trigger::{parse, parse_in, Action, HistDialect, TriggerCommand, TriggerSet};

    fn spec_of(dialect: HistDialect, text: &str) -> (HistSpec, String) {
        let f: Vec<_> = fields(SCHED_SWITCH).collect();
        let Ok(TriggerCommand::Add(t)) = parse_in(dialect, text, &f, &|_, _| true) else {
            panic!("{text} does not parse");
        };
        let line = t.to_string();
        let Action::Hist(spec) = t.action else {
            panic!("{text} is no histogram")
        };
        (*spec, line)
    }

    /// Adds one hit with the given `(name, value)` numbers and strings.
    fn hit(table: &mut HistTable, spec: &HistSpec, values: &[(&str, u64)], comm: &str) {
        table.add(
            spec,
            |f| {
                values
                    .iter()
                    .find(|(n, _)| *n == f.name)
                    .map(|&(_, v)| FieldInput::Num(v))
                    .or(Some(FieldInput::Str("swapper/0")))
            },
            comm,
            &EntryBudget::new(usize::MAX),
        );
    }

    #[test]
    fn all_tables_together_stay_within_their_budget() {
        let (spec, _) = spec_of(HistDialect::Current, "hist:keys=next_pid");
        let budget = EntryBudget::new(3);
        let add = |table: &mut HistTable, pid: u64| {
            table.add(&spec, |_| Some(FieldInput::Num(pid)), "sh", &budget);
        };
        let mut first = HistTable::default();
        let mut second = HistTable::default();
        for pid in [1, 2, 1] {
            add(&mut first, pid);
        }
        for pid in [3, 4, 3] {
            add(&mut second, pid);
        }
        // The second table got one new key (3) before the budget ran out; its 4 was dropped,
        // and a key it holds still counts.
        assert_eq!(budget.used(), 3);
        let mut out = String::new();
        second.render(&spec, "-", &mut out);
        assert!(
            out.contains("Hits: 2\n    Entries: 1\n    Dropped: 1\n"),
            "{out}"
        );
        // Clearing or dropping a table gives its entries back.
        first.clear();
        assert_eq!(budget.used(), 1);
        add(&mut second, 4);
        assert_eq!(budget.used(), 2);
        drop(second);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn the_hist_text_is_the_kernels() {
        let (spec, line) = spec_of(HistDialect::Current, "hist:keys=next_pid:vals=prev_prio");
        let mut table = HistTable::default();
        for (pid, prio) in [(7, 120), (7, 100), (42, 1)] {
            hit(
                &mut table,
                &spec,
                &[("next_pid", pid), ("prev_prio", prio)],
                "sh",
            );
        }
        let mut out = String::new();
        table.render(&spec, &line, &mut out);
        assert_eq!(
            out,
            "# event histogram\n#\n\
             # trigger info: hist:keys=next_pid:vals=hitcount,prev_prio:sort=hitcount:size=2048 [active]\n\
             #\n\n\
             { next_pid:         42 } hitcount:          1  prev_prio:          1\n\
             { next_pid:          7 } hitcount:          2  prev_prio:        220\n\
             \nTotals:\n    Hits: 3\n    Entries: 2\n    Dropped: 0\n"
        );
    }

    #[test]
    fn modifiers_print_as_the_kernel_does() {
        let (spec, _) = spec_of(
            HistDialect::Current,
            "hist:keys=common_pid.execname,prev_pid.hex,prev_prio.log2:sort=prev_pid",
        );
        let mut table = HistTable::default();
        let values = [("common_pid", 1), ("prev_pid", 255), ("prev_prio", 100)];
        hit(&mut table, &spec, &values, "bash");
        let mut out = String::new();
        table.render(&spec, "-", &mut out);
        assert!(
            out.contains(
                "{ common_pid: bash            [         1], prev_pid: ff, prev_prio: ~ 2^7  } hitcount:          1\n"
            ),
            "{out}"
        );
        let (spec, _) = spec_of(
            HistDialect::Current,
            "hist:keys=next_pid.buckets=100,next_comm",
        );
        let mut table = HistTable::default();
        hit(&mut table, &spec, &[("next_pid", 1234)], "sh");
        let mut out = String::new();
        table.render(&spec, "-", &mut out);
        let name = format!("{:<50}", "swapper/0");
        assert!(
            out.contains(&format!("{{ next_pid: ~ 1200-1299, next_comm: {name} }}")),
            "{out}"
        );
    }

    #[test]
    fn percent_and_graph_use_the_column_totals() {
        let (spec, _) = spec_of(
            HistDialect::Current,
            "hist:keys=next_pid:vals=prev_prio.percent,next_prio.graph",
        );
        let mut table = HistTable::default();
        hit(
            &mut table,
            &spec,
            &[("next_pid", 1), ("prev_prio", 1), ("next_prio", 1)],
            "a",
        );
        hit(
            &mut table,
            &spec,
            &[("next_pid", 2), ("prev_prio", 3), ("next_prio", 4)],
            "a",
        );
        let mut out = String::new();
        table.render(&spec, "-", &mut out);
        assert!(
            out.contains("  prev_prio (%):  25.00  next_prio: #####               \n"),
            "{out}"
        );
        assert!(
            out.contains("  prev_prio (%):  75.00  next_prio: ####################\n"),
            "{out}"
        );
    }

    #[test]
    fn a_full_table_drops_new_keys_and_sorts_signed_keys_as_signed() {
        let (spec, _) = spec_of(
            HistDialect::Current,
            "hist:keys=prev_pid:sort=prev_pid:size=128",
        );
        let mut table = HistTable::default();
        for pid in 0..200u64 {
            hit(&mut table, &spec, &[("prev_pid", pid)], "a");
        }
        hit(&mut table, &spec, &[("prev_pid", -1i64 as u64)], "a");
        hit(&mut table, &spec, &[("prev_pid", 5)], "a");
        let mut out = String::new();
        table.render(&spec, "-", &mut out);
        assert!(
            out.ends_with("Hits: 129\n    Entries: 128\n    Dropped: 73\n"),
            "{out}"
        );
        let (spec, _) = spec_of(HistDialect::Current, "hist:keys=prev_pid:sort=prev_pid");
        let mut table = HistTable::default();
        hit(&mut table, &spec, &[("prev_pid", 3)], "a");
        hit(&mut table, &spec, &[("prev_pid", -1i64 as u64)], "a");
        let mut out = String::new();
        table.render(&spec, "-", &mut out);
        let first = out.lines().find(|l| l.starts_with('{')).unwrap();
        assert_eq!(
            first,
            "{ prev_pid: 18446744073709551615 } hitcount:          1"
        );
    }

    #[test]
    fn linux_6_1_differs_where_it_was_observed_to() {
        let f: Vec<_> = fields(SCHED_SWITCH).collect();
        let (_, line) = spec_of(HistDialect::Linux6_1, "hist:keys=stacktrace");
        assert_eq!(
            line,
            "hist:keys=stacktrace:vals=hitcount:sort=hitcount:size=2048 [active]"
        );
        let (_, line) = spec_of(HistDialect::Current, "hist:keys=stacktrace");
        assert!(line.starts_with("hist:keys=common_stacktrace:"), "{line}");
        for dialect in [HistDialect::Linux6_1, HistDialect::Current] {
            let mut set = TriggerSet::new();
            let apply = |set: &mut TriggerSet, text: &str| {
                set.apply(parse_in(dialect, text, &f, &|_, _| true)?)
            };
            apply(&mut set, "hist:keys=next_pid").unwrap();
            let cont = apply(&mut set, "hist:keys=next_pid:cont");
            let clear = apply(&mut set, "hist:keys=next_pid:clear");
            apply(&mut set, "!hist:keys=next_pid").unwrap();
            let missing = apply(&mut set, "!hist:keys=next_pid");
            if dialect == HistDialect::Linux6_1 {
                assert_eq!(cont.unwrap_err().errno(), 2);
                assert_eq!(clear.unwrap_err().errno(), 2);
                assert!(missing.is_ok());
            } else {
                assert!(cont.is_ok() && clear.is_ok());
                assert_eq!(missing.unwrap_err().errno(), 2);
            }
        }
        let refused = |dialect, text| parse_in(dialect, text, &f, &|_, _| true).unwrap_err();
        let e = refused(
            HistDialect::Linux6_1,
            "hist:keys=next_pid:vals=prev_prio.percent",
        );
        let log = e.error_log_entry("sched", "sched_switch").unwrap();
        assert!(
            log.ends_with(&format!(
                "\n{}^\n",
                " ".repeat(11 + "hist:keys=next_pid:vals=".len())
            )),
            "{log:?}"
        );
        assert!(
            refused(HistDialect::Linux6_1, "hist:keys=next_pid:nohitcount")
                .error_log_entry("s", "e")
                .is_none()
        );
        assert!(parse(
            "hist:keys=next_pid:vals=prev_prio:nohitcount",
            &f,
            &|_, _| true
        )
        .is_ok());
        assert_eq!(
            HistDialect::for_release("6.1.0-48-amd64"),
            HistDialect::Linux6_1
        );
        assert_eq!(HistDialect::for_release("5.15.0"), HistDialect::Linux6_1);
        assert_eq!(HistDialect::for_release("6.18.0-1"), HistDialect::Current);
    }

    #[test]
    fn nohitcount_leaves_the_hitcount_out_and_stack_keys_are_named_by_dialect() {
        let (spec, _) = spec_of(
            HistDialect::Current,
            "hist:keys=next_pid:vals=prev_prio:nohitcount",
        );
        let mut table = HistTable::default();
        hit(
            &mut table,
            &spec,
            &[("next_pid", 7), ("prev_prio", 3)],
            "sh",
        );
        let mut out = String::new();
        table.render(&spec, "-", &mut out);
        assert!(
            out.contains("{ next_pid:          7 }  prev_prio:          3\n"),
            "{out}"
        );
        for (dialect, label) in [
            (HistDialect::Current, "{ common_stacktrace:\n"),
            (HistDialect::Linux6_1, "{ stacktrace:\n"),
        ] {
            let (spec, _) = spec_of(dialect, "hist:keys=stacktrace");
            let mut table = HistTable::default();
            let budget = EntryBudget::new(10);
            table.add(
                &spec,
                |_| Some(FieldInput::Stack(&[0x10, 0x20])),
                "sh",
                &budget,
            );
            let mut out = String::new();
            table.render(&spec, "-", &mut out);
            assert!(
                out.contains(&format!(
                    "{label}         0x10\n         0x20\n}} hitcount:"
                )),
                "{out}"
            );
        }
    }

    #[test]
    fn a_sort_name_is_a_value_before_a_key() {
        let (spec, line) = spec_of(
            HistDialect::Current,
            "hist:keys=next_pid.hex:vals=next_pid:sort=next_pid.descending",
        );
        assert_eq!(spec.sort[0].field, SortField::Val(0));
        assert!(line.contains(":sort=next_pid.descending:"), "{line}");
    }
}
