//! Event triggers (`events/<sys>/<event>/trigger`): parsing writes, and the list `cat`
//! shows.
//!
//! The simple commands were checked against a 6.18 kernel. That kernel was built without
//! `CONFIG_HIST_TRIGGERS` and `CONFIG_TRACER_SNAPSHOT`, so `hist`, `enable_hist`,
//! `disable_hist` and `snapshot` follow the kernel sources instead of a live check.

use std::fmt;

use crate::filter::{self, errno, Filter, FilterError};
use crate::format::Field;

mod hist;
mod hist_parse;
pub mod hist_vars;
mod write_form;

pub use hist::{EntryBudget, FieldInput, HistTable, KeyPart, Saved, SharedTable};
pub use hist_vars::{qualified, Expr, Handler, HistAction, HistVar};

/// What `cat trigger` shows when an event has no triggers (all trigger commands built in).
pub const HELP_TEXT: &str = "# Available triggers:\n\
# traceon traceoff snapshot stacktrace enable_event disable_event enable_hist disable_hist hist\n";

/// The help of a kernel with histograms but without snapshots (commands in registration
/// order, `snapshot` left out).
pub const HELP_TEXT_NO_SNAPSHOT: &str = "# Available triggers:\n\
# traceon traceoff stacktrace enable_event disable_event enable_hist disable_hist hist\n";

/// The same help as printed by a kernel without snapshot and hist support (as observed).
pub const HELP_TEXT_NO_HIST_SNAPSHOT: &str =
    "# Available triggers:\n# traceon traceoff stacktrace enable_event disable_event\n";

/// Longest write the kernel accepts on a `trigger` file (a page minus one).
pub const MAX_TRIGGER_WRITE: usize = 4095;

const HIST_KEYS_MAX: usize = 3;
/// Value slots including the implicit hitcount.
const HIST_VALS_MAX: usize = 3;
const HIST_SORT_KEYS_MAX: usize = 2;
const HIST_BITS_DEFAULT: u8 = 11;
const HIST_BITS_MIN: u8 = 7;
const HIST_BITS_MAX: u8 = 17;

/// Whose `hist:` behaviour to follow: it changed between kernels in ways tools can see.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HistDialect {
    /// The sources this crate follows (6.18): `common_stacktrace`, `.percent`, `.graph`,
    /// `nohitcount`; `:cont`/`:clear` act on the matching histogram; removing a missing
    /// histogram is ENOENT.
    #[default]
    Current,
    /// Linux 6.1 and older, as observed on Debian's 6.1: keys list `stacktrace`; none of
    /// `.percent`, `.graph`, `nohitcount`; `:cont` and `:clear` never find the histogram
    /// (ENOENT, `Can't clear or continue a nonexistent hist trigger`); removing a missing
    /// histogram succeeds.
    Linux6_1,
}

impl HistDialect {
    /// The dialect of a kernel release such as `6.1.0-48-amd64`.
    pub fn for_release(release: &str) -> HistDialect {
        let mut parts = release
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if (major, minor) <= (6, 1) {
            HistDialect::Linux6_1
        } else {
            HistDialect::Current
        }
    }
}

/// A parsed write to a `trigger` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerCommand {
    /// Add a trigger.
    Add(Trigger),
    /// `!cmd...`: remove the trigger this one matches.
    Remove(Trigger),
}

/// What a trigger does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `traceon`
    TraceOn,
    /// `traceoff`
    TraceOff,
    /// `snapshot`
    Snapshot,
    /// `stacktrace`
    StackTrace,
    /// `enable_event:<system>:<event>`
    EnableEvent {
        /// Target system.
        system: String,
        /// Target event.
        event: String,
    },
    /// `disable_event:<system>:<event>`
    DisableEvent {
        /// Target system.
        system: String,
        /// Target event.
        event: String,
    },
    /// `enable_hist:<system>:<event>`
    EnableHist {
        /// Target system.
        system: String,
        /// Target event.
        event: String,
    },
    /// `disable_hist:<system>:<event>`
    DisableHist {
        /// Target system.
        system: String,
        /// Target event.
        event: String,
    },
    /// `hist:keys=...`
    Hist(Box<HistSpec>),
}

impl Action {
    fn name(&self) -> &'static str {
        match self {
            Action::TraceOn => "traceon",
            Action::TraceOff => "traceoff",
            Action::Snapshot => "snapshot",
            Action::StackTrace => "stacktrace",
            Action::EnableEvent { .. } => "enable_event",
            Action::DisableEvent { .. } => "disable_event",
            Action::EnableHist { .. } => "enable_hist",
            Action::DisableHist { .. } => "disable_hist",
            Action::Hist(_) => "hist",
        }
    }

    /// The kernel allows one trigger per type on an event; traceon/traceoff share a type,
    /// as do enable/disable of the same target.
    fn same_slot(&self, other: &Action) -> bool {
        use Action::*;
        match (self, other) {
            (TraceOn | TraceOff, TraceOn | TraceOff) => true,
            (Snapshot, Snapshot) | (StackTrace, StackTrace) => true,
            (
                EnableEvent { system, event } | DisableEvent { system, event },
                EnableEvent {
                    system: s2,
                    event: e2,
                }
                | DisableEvent {
                    system: s2,
                    event: e2,
                },
            )
            | (
                EnableHist { system, event } | DisableHist { system, event },
                EnableHist {
                    system: s2,
                    event: e2,
                }
                | DisableHist {
                    system: s2,
                    event: e2,
                },
            ) => system == s2 && event == e2,
            (Hist(a), Hist(b)) => a.same_hist(b),
            _ => false,
        }
    }
}

/// One histogram key or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistField {
    /// Field name as printed (`common_stacktrace`, `common_cpu` or an event field).
    pub name: String,
    /// Modifier as printed after the dot (`hex`, `sym`, `sym-offset`, `execname`,
    /// `syscall`, `log2`, `buckets`, `usecs`, `percent`, `graph`).
    pub modifier: Option<&'static str>,
    /// Bucket size for `.buckets=N`.
    pub buckets: Option<u64>,
    /// The event field is signed (keys sort as signed numbers).
    pub signed: bool,
    /// The event field holds a string.
    pub string: bool,
}

impl fmt::Display for HistField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(m) = self.modifier {
            write!(f, ".{m}")?;
        }
        if let Some(b) = self.buckets {
            write!(f, "={b}")?;
        }
        Ok(())
    }
}

/// One `sort=` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// What is sorted on.
    pub field: SortField,
    /// `.descending`
    pub descending: bool,
}

/// What a sort key refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    /// The hit count.
    Hitcount,
    /// `keys[i]`
    Key(usize),
    /// `vals[i]` (not counting hitcount)
    Val(usize),
}

/// A `hist:` trigger's specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistSpec {
    /// `name=`
    pub name: Option<String>,
    /// `keys=`
    pub keys: Vec<HistField>,
    /// `vals=`, without hitcount.
    pub vals: Vec<HistField>,
    /// `sort=` (hitcount when not given).
    pub sort: Vec<SortKey>,
    /// log2 of the table size.
    pub map_bits: u8,
    /// `clock=` (printed only when `common_timestamp` is used).
    pub clock: String,
    /// `nohitcount`
    pub nohitcount: bool,
    /// Shown as `[paused]` instead of `[active]`.
    pub paused: bool,
    /// `pause`, `cont`/`continue`, `clear` given in this command.
    pub pause: bool,
    /// See `pause`.
    pub cont: bool,
    /// See `pause`.
    pub clear: bool,
    /// The command as the kernel logs it in `error_log` (`hist:` + parameters).
    pub command: String,
    /// The histogram's data (shared by every trigger of a named histogram).
    pub table: SharedTable,
    /// Whose behaviour it follows.
    pub dialect: HistDialect,
    /// `NAME=EXPR` variables, set per entry at each hit.
    pub vars: Vec<HistVar>,
    /// `onmatch`/`onmax`/`onchange` actions, run after each hit.
    pub actions: Vec<HistAction>,
    /// A `common_timestamp.usecs` anywhere in it makes every `common_timestamp` it reads
    /// microseconds, printed with or without `.usecs` (the kernel's `ts_in_usecs`).
    pub ts_in_usecs: bool,
    /// The other histograms' variables its `$NAME` references read, bound when the trigger is
    /// created (as the kernel's `create_var_ref` does); set by whoever knows the instance.
    pub bindings: Vec<VarBinding>,
    /// The histograms it created on other events to hold the fields its actions read there
    /// (the kernel's field variable histograms), removed with it.
    pub created: Vec<CreatedHist>,
}

/// A histogram made for another's field variable: `hist:keys=...:synthetic_FIELD=FIELD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedHist {
    /// The event it was made on: its system.
    pub system: String,
    /// See `system`.
    pub event: String,
    /// Its command as parsed (`hist:` + parameters), which identifies it there.
    pub command: String,
}

/// A reference of a histogram to a variable of another: the table holding it and its index
/// there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarBinding {
    /// The reference as written (`NAME`, or `SYSTEM.EVENT.NAME`).
    pub name: String,
    /// The table of the histogram that defines it.
    pub table: SharedTable,
    /// Its index among that histogram's variables.
    pub index: usize,
    /// It holds microseconds (the unit `Timestamp units in expression don't match` checks).
    pub usecs: bool,
}

impl HistSpec {
    fn uses_timestamp(&self) -> bool {
        self.keys
            .iter()
            .chain(&self.vals)
            .chain(self.vars.iter().flat_map(|v| v.expr.fields()))
            .any(|f| f.name == "common_timestamp")
    }

    /// Whether `name` is one of its variables.
    pub fn defines(&self, name: &str) -> Option<usize> {
        self.vars.iter().position(|v| v.name == name)
    }

    fn same_hist(&self, other: &HistSpec) -> bool {
        // The kernel compares keys, vals, sort keys, name and filter; the filter is
        // compared by the caller.
        self.name == other.name
            && self.keys == other.keys
            && self.vals == other.vals
            && self.sort == other.sort
            && self.vars == other.vars
    }

    fn fmt_spec(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("hist:")?;
        if let Some(n) = &self.name {
            write!(f, "{n}:")?;
        }
        f.write_str("keys=")?;
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if k.name == "common_stacktrace" && self.dialect == HistDialect::Linux6_1 {
                f.write_str("stacktrace")?;
            } else {
                write!(f, "{k}")?;
            }
        }
        f.write_str(":vals=")?;
        let mut first = true;
        if !self.nohitcount {
            f.write_str("hitcount")?;
            first = false;
        }
        for v in &self.vals {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{v}")?;
        }
        for (i, var) in self.vars.iter().enumerate() {
            f.write_str(if i == 0 { ":" } else { "," })?;
            write!(f, "{}={}", var.name, var.expr)?;
        }
        f.write_str(":sort=")?;
        for (i, s) in self.sort.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match s.field {
                SortField::Hitcount => f.write_str("hitcount")?,
                SortField::Key(k) => write!(f, "{}", self.keys[k])?,
                SortField::Val(v) => write!(f, "{}", self.vals[v])?,
            }
            if s.descending {
                f.write_str(".descending")?;
            }
        }
        write!(f, ":size={}", 1u32 << self.map_bits)?;
        if self.uses_timestamp() {
            write!(f, ":clock={}", self.clock)?;
        }
        if self.nohitcount {
            f.write_str(":nohitcount")?;
        }
        for action in &self.actions {
            write!(f, "{action}")?;
        }
        Ok(())
    }
}

/// One trigger, rendered by `Display` exactly as `cat trigger` lists it (without the
/// newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// What it does.
    pub action: Action,
    /// Remaining count; -1 is unlimited (the kernel keeps a signed long, so a written
    /// count of 2^64-1 also reads back as unlimited).
    pub count: i64,
    /// `if <filter>`
    pub filter: Option<Filter>,
}

impl Trigger {
    /// Whether `self` (an existing trigger) is what `other` names for EEXIST/removal.
    pub fn matches(&self, other: &Trigger) -> bool {
        if !self.action.same_slot(&other.action) {
            return false;
        }
        match self.action {
            Action::Hist(_) => self.filter_text() == other.filter_text(),
            _ => true,
        }
    }

    fn filter_text(&self) -> Option<&str> {
        self.filter.as_ref().and_then(Filter::text)
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.action {
            Action::Hist(h) => {
                h.fmt_spec(f)?;
                if let Some(t) = self.filter_text() {
                    write!(f, " if {t}")?;
                }
                return f.write_str(if h.paused { " [paused]" } else { " [active]" });
            }
            Action::EnableEvent { system, event }
            | Action::DisableEvent { system, event }
            | Action::EnableHist { system, event }
            | Action::DisableHist { system, event } => {
                write!(f, "{}:{system}:{event}", self.action.name())?
            }
            a => f.write_str(a.name())?,
        }
        if self.count == -1 {
            f.write_str(":unlimited")?;
        } else {
            write!(f, ":count={}", self.count)?;
        }
        if let Some(t) = self.filter_text() {
            write!(f, " if {t}")?;
        }
        Ok(())
    }
}

/// A rejected trigger write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    /// EINVAL without an `error_log` entry (the kernel logs nothing for these).
    #[error("invalid trigger: {0}")]
    Invalid(&'static str),
    /// The count does not fit an unsigned long (ERANGE).
    #[error("trigger count out of range")]
    Range,
    /// A trigger of this type (or for this target) is already set (EEXIST).
    #[error("trigger already exists")]
    Exists,
    /// `!hist...` named no existing histogram (ENOENT, nothing logged).
    #[error("no such hist trigger")]
    NotFound,
    /// The `if` filter did not parse; errno is the filter's (nothing is logged).
    #[error("trigger filter: {0}")]
    Filter(#[from] FilterError),
    /// A hist trigger error, logged to `error_log` like the kernel's `hist_err`.
    #[error("{reason}")]
    Hist {
        /// The kernel's reason text.
        reason: &'static str,
        /// Caret position within `command`.
        pos: usize,
        /// The command as the kernel logs it (`hist:` + the text after `hist:`).
        command: String,
        /// errno of the write.
        errno: i32,
    },
}

impl TriggerError {
    /// errno of the failed write.
    pub fn errno(&self) -> i32 {
        match self {
            TriggerError::Invalid(_) => errno::EINVAL,
            TriggerError::Range => errno::ERANGE,
            TriggerError::Exists => errno::EEXIST,
            TriggerError::NotFound => errno::ENOENT,
            TriggerError::Filter(e) => e.errno(),
            TriggerError::Hist { errno, .. } => *errno,
        }
    }

    /// The `error_log` entry without timestamp, for hist errors (`None` otherwise, as in
    /// the kernel). `system`/`event` name the event whose trigger file was written.
    pub fn error_log_entry(&self, system: &str, event: &str) -> Option<String> {
        match self {
            TriggerError::Hist {
                reason,
                pos,
                command,
                ..
            } => Some(filter::render_error_log(
                &format!("hist:{system}:{event}"),
                reason,
                command,
                *pos,
            )),
            _ => None,
        }
    }
}

/// Splits at the first byte in `seps`, like the kernel's `strsep`.
fn strsep<'a>(s: &'a str, seps: &[char]) -> (&'a str, Option<&'a str>) {
    match s.find(seps) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

fn trim_k(s: &str) -> &str {
    s.trim_matches(filter::is_kspace_char)
}

fn skip_spaces(s: &str) -> &str {
    s.trim_start_matches(filter::is_kspace_char)
}

/// The command a write to a `trigger` file names (`hist` for `!hist:keys=pid`), split as
/// [`parse`] splits it, so that a caller can refuse commands its kernel lacks before parsing.
pub fn command_name(text: &str) -> &str {
    let buf = trim_k(text.split('\0').next().unwrap_or(""));
    let (command, _) = strsep(buf, &[':', ' ', '\t']);
    command.strip_prefix('!').unwrap_or(command)
}

/// Commands that exist only in kernels built with histogram and snapshot support (an event
/// of such a kernel has a `hist` file).
pub const HIST_AND_SNAPSHOT_COMMANDS: &[&str] =
    &["hist", "snapshot", "enable_hist", "disable_hist"];

/// Parses a write to an event's `trigger` file (raw text; surrounding whitespace and the
/// newline are ignored as the kernel does). `fields` are the event's own fields, and
/// `event_exists(system, event)` tells whether an `enable_event` target exists and can be
/// enabled.
pub fn parse(
    text: &str,
    fields: &[Field<'_>],
    event_exists: &dyn Fn(&str, &str) -> bool,
) -> Result<TriggerCommand, TriggerError> {
    parse_in(HistDialect::Current, text, fields, event_exists)
}

/// [`parse`] for a kernel of `dialect`.
pub fn parse_in(
    dialect: HistDialect,
    text: &str,
    fields: &[Field<'_>],
    event_exists: &dyn Fn(&str, &str) -> bool,
) -> Result<TriggerCommand, TriggerError> {
    if text.len() > MAX_TRIGGER_WRITE {
        return Err(TriggerError::Invalid("write too large"));
    }
    let buf = trim_k(text.split('\0').next().unwrap_or(""));
    let (command, next) = strsep(buf, &[':', ' ', '\t']);
    let next = next.map(skip_spaces).filter(|n| !n.is_empty());
    let (remove, name) = match command.strip_prefix('!') {
        Some(n) => (true, n),
        None => (false, command),
    };
    let simple = match name {
        "traceon" => Some(Action::TraceOn),
        "traceoff" => Some(Action::TraceOff),
        "snapshot" => Some(Action::Snapshot),
        "stacktrace" => Some(Action::StackTrace),
        _ => None,
    };
    let trigger = if let Some(action) = simple {
        parse_simple(action, next, remove, fields)?
    } else if matches!(
        name,
        "enable_event" | "disable_event" | "enable_hist" | "disable_hist"
    ) {
        parse_enable(name, next, remove, fields, event_exists)?
    } else if name == "hist" {
        HistSpec::parse(next, fields, dialect, event_exists)?
    } else {
        return Err(TriggerError::Invalid("unknown trigger command"));
    };
    Ok(if remove {
        TriggerCommand::Remove(trigger)
    } else {
        TriggerCommand::Add(trigger)
    })
}

/// `traceon[:N] [if filter]` and friends.
fn parse_simple(
    action: Action,
    rest: Option<&str>,
    remove: bool,
    fields: &[Field<'_>],
) -> Result<Trigger, TriggerError> {
    // Only a leading digit starts a count; anything else must be the filter.
    let (param, filter_part) = match rest {
        Some(r) if r.starts_with(|c: char| c.is_ascii_digit()) => {
            let (p, f) = strsep(r, &[' ', '\t']);
            (Some(p), f.map(skip_spaces).filter(|f| !f.is_empty()))
        }
        r => (None, r),
    };
    finish_trigger(action, remove, param, filter_part, fields)
}

/// The common tail of every trigger: a removal is matched by type alone (the kernel looks at
/// neither the count nor the filter), an addition takes its `:N` count and `if` filter.
fn finish_trigger(
    action: Action,
    remove: bool,
    count: Option<&str>,
    filter_part: Option<&str>,
    fields: &[Field<'_>],
) -> Result<Trigger, TriggerError> {
    let mut trigger = Trigger {
        action,
        count: -1,
        filter: None,
    };
    if remove {
        return Ok(trigger);
    }
    trigger.count = parse_count(count)?;
    trigger.filter = parse_if(filter_part, fields)?;
    Ok(trigger)
}

/// `:N` as the kernel reads it: the text up to the next `:` through `kstrtoul`.
fn parse_count(param: Option<&str>) -> Result<i64, TriggerError> {
    let Some(param) = param else { return Ok(-1) };
    let number = strsep(param, &[':']).0;
    if number.is_empty() {
        return Err(TriggerError::Invalid("empty count"));
    }
    match filter::parse_u64(number) {
        // The kernel stores it in a signed long.
        Some(v) => Ok(v as i64),
        None if number.bytes().all(|b| b.is_ascii_digit()) => Err(TriggerError::Range),
        None if is_overflowing_radix(number) => Err(TriggerError::Range),
        None => Err(TriggerError::Invalid("bad count")),
    }
}

/// True when `s` is a well-formed hex/octal number too large for 64 bits.
fn is_overflowing_radix(s: &str) -> bool {
    let (d, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None if s.starts_with('0') => (&s[1..], 8),
        None => return false,
    };
    !d.is_empty() && d.chars().all(|c| c.is_digit(radix))
}

/// `if <filter>`: the word `if`, one separator, then the filter text as stored.
fn parse_if(part: Option<&str>, fields: &[Field<'_>]) -> Result<Option<Filter>, TriggerError> {
    let Some(part) = part else { return Ok(None) };
    let (word, rest) = strsep(part, &[' ', '\t']);
    let Some(rest) = rest else {
        return Err(TriggerError::Invalid("missing filter"));
    };
    if word != "if" {
        return Err(TriggerError::Invalid("expected 'if'"));
    }
    Ok(Some(filter::parse_expression(rest, fields)?))
}

/// `enable_event:<system>:<event>[:N] [if filter]` and the hist variants.
fn parse_enable(
    name: &str,
    rest: Option<&str>,
    remove: bool,
    fields: &[Field<'_>],
    event_exists: &dyn Fn(&str, &str) -> bool,
) -> Result<Trigger, TriggerError> {
    let rest = rest.ok_or(TriggerError::Invalid("missing target"))?;
    let (param, filter_part) = strsep(rest, &[' ', '\t']);
    let filter_part = filter_part.map(skip_spaces).filter(|f| !f.is_empty());
    let (system, after) = strsep(param, &[':']);
    let after = after.ok_or(TriggerError::Invalid("missing event"))?;
    let (event, count) = strsep(after, &[':']);
    if !event_exists(system, event) {
        return Err(TriggerError::Invalid("no such event"));
    }
    let (system, event) = (system.to_owned(), event.to_owned());
    let action = match name {
        "enable_event" => Action::EnableEvent { system, event },
        "disable_event" => Action::DisableEvent { system, event },
        "enable_hist" => Action::EnableHist { system, event },
        _ => Action::DisableHist { system, event },
    };
    finish_trigger(action, remove, count, filter_part, fields)
}

/// The triggers of one event, in the order `cat trigger` lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerSet {
    triggers: Vec<Trigger>,
}

impl TriggerSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The triggers, in listing order.
    pub fn triggers(&self) -> &[Trigger] {
        &self.triggers
    }

    /// The triggers, for the record producer to count down and fire them.
    pub fn triggers_mut(&mut self) -> &mut [Trigger] {
        &mut self.triggers
    }

    /// Keeps only the triggers `keep` accepts, in order.
    pub fn retain(&mut self, keep: impl FnMut(&Trigger) -> bool) {
        self.triggers.retain(keep);
    }

    /// True when no trigger is set.
    pub fn is_empty(&self) -> bool {
        self.triggers.is_empty()
    }

    /// Applies a parsed write.
    ///
    /// Adding a second trigger of a type (or for the same enable/disable target) fails
    /// with EEXIST; removing a trigger that is not there succeeds silently (as on 6.18),
    /// except for `!hist`, which the kernel answers with ENOENT.
    pub fn apply(&mut self, cmd: TriggerCommand) -> Result<(), TriggerError> {
        match cmd {
            TriggerCommand::Add(t) => self.add(t),
            TriggerCommand::Remove(t) => {
                match self.triggers.iter().position(|x| x.matches(&t)) {
                    Some(i) => {
                        self.triggers.remove(i);
                    }
                    None if matches!(&t.action, Action::Hist(h) if h.dialect == HistDialect::Current) =>
                    {
                        return Err(TriggerError::NotFound);
                    }
                    None => {}
                }
                Ok(())
            }
        }
    }

    fn add(&mut self, t: Trigger) -> Result<(), TriggerError> {
        let existing = self.triggers.iter().position(|x| x.matches(&t));
        if let Action::Hist(spec) = &t.action {
            if spec.pause || spec.cont || spec.clear {
                // 6.1 never finds the histogram that :cont or :clear names.
                let existing =
                    existing.filter(|_| spec.pause || spec.dialect == HistDialect::Current);
                let Some(i) = existing else {
                    if spec.cont || spec.clear {
                        return Err(TriggerError::Hist {
                            reason: "Can't clear or continue a nonexistent hist trigger",
                            pos: 0,
                            command: spec.command.clone(),
                            errno: errno::ENOENT,
                        });
                    }
                    self.triggers.push(t);
                    return Ok(());
                };
                if let Action::Hist(old) = &mut self.triggers[i].action {
                    if spec.pause {
                        old.paused = true;
                    } else if spec.cont {
                        old.paused = false;
                    }
                    if spec.clear {
                        old.table.lock().clear();
                    }
                }
                return Ok(());
            }
            if existing.is_some() {
                return Err(TriggerError::Hist {
                    reason: "Hist trigger already exists",
                    pos: 0,
                    command: spec.command.clone(),
                    errno: errno::EEXIST,
                });
            }
            // Histograms are appended; the other triggers go to the front.
            self.triggers.push(t);
            return Ok(());
        }
        if existing.is_some() {
            return Err(TriggerError::Exists);
        }
        self.triggers.insert(0, t);
        Ok(())
    }

    /// The whole `cat trigger` text, with [`HELP_TEXT`] when empty.
    pub fn render(&self) -> String {
        self.render_with_help(HELP_TEXT)
    }

    /// [`TriggerSet::render`] with another help text (e.g. [`HELP_TEXT_NO_HIST_SNAPSHOT`]).
    pub fn render_with_help(&self, help: &str) -> String {
        if self.triggers.is_empty() {
            return help.to_owned();
        }
        let mut out = String::new();
        for t in &self.triggers {
            out.push_str(&t.to_string());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{fields, testdata::*};

    fn hang() -> Vec<Field<'static>> {
        fields(SCHED_PROCESS_HANG).collect()
    }

    fn exists(system: &str, event: &str) -> bool {
        system == "sched"
            && matches!(
                event,
                "sched_wakeup" | "sched_waking" | "sched_process_hang"
            )
    }

    fn p(text: &str) -> Result<TriggerCommand, TriggerError> {
        parse(text, &hang(), &exists)
    }

    fn add(text: &str) -> Trigger {
        match p(text) {
            Ok(TriggerCommand::Add(t)) => t,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn shown(text: &str) -> String {
        add(text).to_string()
    }

    #[test]
    fn huge_hist_sizes_are_refused() {
        // Found by the trigger_parser fuzzer: rounding a size above 2^63 up to a power of two
        // overflowed (a panic with overflow checks on).
        for size in [
            "13106511852580896768",
            "18446744073709551615",
            "9223372036854775809",
        ] {
            let err = p(&format!("hist:keys=pid:size={size}")).unwrap_err();
            assert_eq!(err.errno(), errno::EINVAL, "size={size}");
        }
        assert!(p("hist:keys=pid:size=9223372036854775808").is_err());
        assert!(p("hist:keys=pid:size=2048").is_ok());
    }

    #[test]
    fn rendering_matches_kernel() {
        // All observed with `cat trigger` on 6.18.
        let cases = [
            ("traceoff", "traceoff:unlimited"),
            ("traceon:5 if pid == 0", "traceon:count=5 if pid == 0"),
            (
                "stacktrace:3 if comm ~ \"a*\"",
                "stacktrace:count=3 if comm ~ \"a*\"",
            ),
            (
                "enable_event:sched:sched_wakeup",
                "enable_event:sched:sched_wakeup:unlimited",
            ),
            (
                "disable_event:sched:sched_waking:7",
                "disable_event:sched:sched_waking:count=7",
            ),
            (
                "enable_event:sched:sched_waking:5 if pid == 0",
                "enable_event:sched:sched_waking:count=5 if pid == 0",
            ),
            (
                "enable_event:sched:sched_waking:5:junk",
                "enable_event:sched:sched_waking:count=5",
            ),
            (
                "enable_event:sched:sched_process_hang",
                "enable_event:sched:sched_process_hang:unlimited",
            ),
            ("traceon:0", "traceon:count=0"),
            ("traceon:0x10", "traceon:count=16"),
            ("traceon:", "traceon:unlimited"),
            ("traceon  if   pid==0  \n", "traceon:unlimited if   pid==0"),
            ("  traceon", "traceon:unlimited"),
            ("traceon ", "traceon:unlimited"),
            ("traceon: 5", "traceon:count=5"),
            ("traceon:5:6", "traceon:count=5"),
            (
                "traceon if pid == 1 && ",
                "traceon:unlimited if pid == 1 &&",
            ),
            ("traceon\tif\tpid==1", "traceon:unlimited if pid==1"),
            ("traceon:5 \t if pid==1", "traceon:count=5 if pid==1"),
            ("traceon:4294967296", "traceon:count=4294967296"),
            ("traceon:18446744073709551615", "traceon:unlimited"),
            (
                "traceon:9223372036854775808",
                "traceon:count=-9223372036854775808",
            ),
            ("snapshot:2", "snapshot:count=2"),
            (
                "enable_hist:sched:sched_waking",
                "enable_hist:sched:sched_waking:unlimited",
            ),
        ];
        for (input, out) in cases {
            assert_eq!(shown(input), out, "{input}");
        }
    }

    #[test]
    fn rejected_like_kernel() {
        let einval = [
            "bogus",
            "Traceon",
            "traceon:-1",
            "traceon:abc",
            "traceon:5x",
            "traceon:unlimited",
            "traceon if",
            "traceon if ",
            "traceon :5",
            "traceon iff pid == 1",
            "traceon pid == 1",
            "traceon:5if pid == 0",
            "traceon if foo == 1",
            "traceon if 0",
            "enable_event",
            "enable_event:",
            "enable_event:sched",
            "enable_event:sched:",
            "enable_event:sched:sched_waking:abc",
            "enable_event:sched:sched_waking junk",
            "enable_event:nosys:sched_waking",
            "enable_event :sched:sched_waking",
            "!bogus",
            "!enable_event:sched:nonexist",
            "!enable_event:sched",
        ];
        for t in einval {
            assert_eq!(p(t).map(|_| ()).unwrap_err().errno(), 22, "{t}");
        }
        assert_eq!(p("traceon:99999999999999999999").unwrap_err().errno(), 34);
        // Filter errors keep the filter parser's errno.
        assert_eq!(p("traceon if (pid == 1").unwrap_err().errno(), 2);
        assert_eq!(p("traceon if pid == \"x").unwrap_err().errno(), 3);
        assert_eq!(p("traceon if == 1").unwrap_err().errno(), 1);
        assert_eq!(p("traceon if pid == 1)").unwrap_err().errno(), 1);
        let e = p("traceon if foo == 1").unwrap_err();
        assert!(matches!(e, TriggerError::Filter(_)));
        assert_eq!(e.error_log_entry("sched", "sched_process_hang"), None);
        assert!(p(&"x".repeat(MAX_TRIGGER_WRITE + 1)).is_err());
    }

    #[test]
    fn remove_forms() {
        for t in [
            "!traceoff",
            "!stacktrace:99 if pid == 7",
            "!traceon if foo == 1",
            "!enable_event:sched:sched_waking:4",
            "!disable_event:sched:sched_wakeup",
        ] {
            assert!(matches!(p(t), Ok(TriggerCommand::Remove(_))), "{t}");
        }
    }

    #[test]
    fn set_behaves_like_kernel() {
        let mut set = TriggerSet::new();
        assert_eq!(set.render(), HELP_TEXT);
        assert_eq!(
            set.render_with_help(HELP_TEXT_NO_HIST_SNAPSHOT),
            "# Available triggers:\n# traceon traceoff stacktrace enable_event disable_event\n"
        );
        let ap = |set: &mut TriggerSet, t: &str| set.apply(p(t).unwrap());
        ap(&mut set, "traceon:5 if pid == 0").unwrap();
        ap(&mut set, "stacktrace:3 if comm ~ \"a*\"").unwrap();
        ap(&mut set, "enable_event:sched:sched_wakeup").unwrap();
        ap(&mut set, "disable_event:sched:sched_waking:7").unwrap();
        // traceon/traceoff share a slot; enable/disable of one target share a slot.
        for dup in [
            "traceoff",
            "stacktrace",
            "enable_event:sched:sched_wakeup:3",
            "disable_event:sched:sched_wakeup",
        ] {
            let e = ap(&mut set, dup).unwrap_err();
            assert_eq!((e.clone(), e.errno()), (TriggerError::Exists, 17), "{dup}");
        }
        // Newest first.
        assert_eq!(
            set.render(),
            "disable_event:sched:sched_waking:count=7\n\
             enable_event:sched:sched_wakeup:unlimited\n\
             stacktrace:count=3 if comm ~ \"a*\"\n\
             traceon:count=5 if pid == 0\n"
        );
        // `!traceoff` removes traceon; removing again is not an error.
        ap(&mut set, "!traceoff").unwrap();
        ap(&mut set, "!traceoff").unwrap();
        ap(&mut set, "!stacktrace:99 if pid == 7").unwrap();
        assert_eq!(
            set.render(),
            "disable_event:sched:sched_waking:count=7\nenable_event:sched:sched_wakeup:unlimited\n"
        );
        // Removal matches the target, not enable vs disable.
        ap(&mut set, "!enable_event:sched:sched_waking").unwrap();
        ap(&mut set, "!disable_event:sched:sched_wakeup").unwrap();
        assert!(set.is_empty());
        assert_eq!(set.render(), HELP_TEXT);
        // enable_event and enable_hist on one target coexist.
        ap(&mut set, "enable_event:sched:sched_wakeup").unwrap();
        ap(&mut set, "enable_hist:sched:sched_wakeup").unwrap();
        assert_eq!(set.triggers().len(), 2);
    }

    fn sw() -> Vec<Field<'static>> {
        fields(SCHED_SWITCH).collect()
    }

    fn hist(text: &str) -> Result<Trigger, TriggerError> {
        match parse(text, &sw(), &exists)? {
            TriggerCommand::Add(t) | TriggerCommand::Remove(t) => Ok(t),
        }
    }

    #[test]
    fn hist_rendering() {
        let cases = [
            (
                "hist:keys=prev_pid",
                "hist:keys=prev_pid:vals=hitcount:sort=hitcount:size=2048 [active]",
            ),
            (
                "hist:keys=common_pid.execname,prev_prio:vals=prev_state:sort=prev_state.descending,prev_prio:size=1000",
                "hist:keys=common_pid.execname,prev_prio:vals=hitcount,prev_state:sort=prev_state.descending,prev_prio:size=1024 [active]",
            ),
            (
                "hist:name=foo:keys=next_pid.hex:pause if prev_pid == 0",
                "hist:foo:keys=next_pid.hex:vals=hitcount:sort=hitcount:size=2048 if prev_pid == 0 [paused]",
            ),
            (
                "hist:keys=stacktrace",
                "hist:keys=common_stacktrace:vals=hitcount:sort=hitcount:size=2048 [active]",
            ),
            (
                "hist:keys=prev_state.buckets=10,cpu:sort=hitcount.descending",
                "hist:keys=prev_state.buckets=10,common_cpu:vals=hitcount:sort=hitcount.descending:size=2048 [active]",
            ),
            (
                "hist:keys=prev_prio.log2:vals=prev_state:nohitcount",
                "hist:keys=prev_prio.log2:vals=prev_state:sort=hitcount:size=2048:nohitcount [active]",
            ),
            (
                "hist:keys=common_timestamp.usecs",
                "hist:keys=common_timestamp.usecs:vals=hitcount:sort=hitcount:size=2048:clock=global [active]",
            ),
            (
                "hist:keys=prev_comm:clock=mono",
                "hist:keys=prev_comm:vals=hitcount:sort=hitcount:size=2048 [active]",
            ),
        ];
        for (input, out) in cases {
            assert_eq!(hist(input).unwrap().to_string(), out, "{input}");
        }
    }

    #[test]
    fn hist_errors() {
        let log = |t: &str| {
            hist(t)
                .unwrap_err()
                .error_log_entry("sched", "sched_switch")
                .unwrap_or_else(|| panic!("{t}: no log"))
        };
        assert_eq!(
            log("hist:keys=foo"),
            "hist:sched:sched_switch: error: Couldn't find field\n  Command: hist:keys=foo\n                     ^\n"
        );
        assert!(log("hist:keys=prev_pid.bogus").contains("Invalid field modifier"));
        assert!(log("hist:keys=prev_pid.execname").contains("Invalid field modifier"));
        assert!(log("hist:keys=prev_pid.buckets=0").contains("Invalid field modifier"));
        assert!(log("hist:keys=prev_pid.percent").contains("Invalid field modifier"));
        assert!(
            log("hist:keys=prev_pid:sort=next_pid").contains("Sort field must be a key or a val")
        );
        assert!(log("hist:keys=prev_pid:sort=prev_pid.up").contains("Invalid sort modifier"));
        assert!(log("hist:keys=prev_pid:sort=").contains("Empty sort field"));
        assert!(log("hist:keys=prev_pid:sort=hitcount,prev_pid,hitcount")
            .contains("Too many sort fields (Max = 2)"));
        assert!(log("hist:keys=prev_pid:nohitcount").contains("Non-hitcount value is required"));
        for t in [
            "hist",
            "hist:",
            "hist:vals=prev_pid",
            "hist:keys=prev_pid:size=64",
            "hist:keys=prev_pid:size=262144",
            "hist:keys=prev_pid:size=abc",
            "hist:keys=a,b,c,d",
            "hist:keys=prev_pid:vals=prev_prio,next_prio,prev_state",
            "hist:keys=prev_pid:bogus",
            "hist:keys=prev_pid:onmax($x).save(prev_pid)",
            "hist:keys=prev_pid:clock=nope",
            "hist:keys=prev_pid if",
            "hist:keys=prev_pid if foo == 1",
        ] {
            assert_eq!(hist(t).map(|_| ()).unwrap_err().errno(), 22, "{t}");
        }
    }

    #[test]
    fn hist_set_semantics() {
        let mut set = TriggerSet::new();
        let ap = |set: &mut TriggerSet, t: &str| set.apply(parse(t, &sw(), &exists).unwrap());
        ap(&mut set, "traceon").unwrap();
        ap(&mut set, "hist:keys=prev_pid").unwrap();
        ap(&mut set, "hist:keys=next_pid").unwrap();
        let e = ap(&mut set, "hist:keys=prev_pid").unwrap_err();
        assert_eq!(e.errno(), 17);
        assert!(e
            .error_log_entry("sched", "sched_switch")
            .unwrap()
            .starts_with("hist:sched:sched_switch: error: Hist trigger already exists\n"));
        ap(&mut set, "hist:keys=prev_pid:pause").unwrap();
        assert!(set
            .render()
            .contains("hist:keys=prev_pid:vals=hitcount:sort=hitcount:size=2048 [paused]\n"));
        ap(&mut set, "hist:keys=prev_pid:cont").unwrap();
        assert!(set.render().contains("size=2048 [active]\n"));
        assert_eq!(
            ap(&mut set, "hist:keys=prev_prio:clear")
                .unwrap_err()
                .errno(),
            2
        );
        assert_eq!(ap(&mut set, "!hist:keys=prev_prio").unwrap_err().errno(), 2);
        ap(&mut set, "!hist:keys=prev_pid").unwrap();
        assert_eq!(
            set.render(),
            "traceon:unlimited\nhist:keys=next_pid:vals=hitcount:sort=hitcount:size=2048 [active]\n"
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = parse(&s, &sw(), &exists);
        }

        #[test]
        fn never_panics_trigger_alphabet(s in "(!?(traceon|hist|enable_event|stacktrace))?[a-z_:=,. !0-9'\"()&|<>-]{0,50}") {
            if let Ok(cmd) = parse(&s, &sw(), &exists) {
                let mut set = TriggerSet::new();
                let _ = set.apply(cmd);
                let _ = set.render();
            }
        }
    }
}
