//! Histograms of the simulated kernel: what a `hist:` trigger reads from an occurrence, the
//! `enable_hist`/`disable_hist` switches, named histograms shared across events, and the
//! `hist` file. The tables and their text are `ftrace_text::trigger`'s.

use std::collections::HashMap;
use std::sync::Arc;

use eventfs_core::tree::Ino;
use ftrace_text::filter::errno;
use ftrace_text::format;
use ftrace_text::trigger::{
    Action, EntryBudget, FieldInput, HistField, HistSpec, TriggerCommand, TriggerError, TriggerSet,
};
use ftrace_text::{FieldValue, Record};

use super::state::EventState;

/// One occurrence as a histogram sees it.
pub(super) struct Sample<'r> {
    /// The event's record.
    pub record: &'r Record,
    /// The event's format fields.
    pub fields: &'r [format::Field<'r>],
    /// The call chain of the occurrence (empty unless a histogram keys on it).
    pub stack: &'r [u64],
}

impl Sample<'_> {
    /// The raw value of a key or value field. Event fields are looked up in the format
    /// first (an event's own `comm` is its field, not the task's), then the special ones.
    fn input(&self, field: &HistField) -> Option<FieldInput<'_>> {
        match field.name.as_str() {
            "common_timestamp" => return Some(FieldInput::Num(self.record.ts_ns)),
            "common_cpu" => return Some(FieldInput::Num(u64::from(self.record.cpu))),
            "common_stacktrace" => return Some(FieldInput::Stack(self.stack)),
            _ => {}
        }
        match self.record.field(self.fields, &field.name)? {
            FieldValue::Int(i) => Some(FieldInput::Num(*i as u64)),
            FieldValue::UInt(u) => Some(FieldInput::Num(*u)),
            FieldValue::Str(s) => Some(FieldInput::Str(s)),
            FieldValue::Bytes(_) => None,
        }
    }

    /// Counts this occurrence in `spec`'s table unless it is paused; a new key takes an
    /// entry from `budget`, the bound of all tables together.
    pub fn hit(&self, spec: &HistSpec, budget: &Arc<EntryBudget>) -> bool {
        if spec.paused {
            return false;
        }
        spec.table
            .lock()
            .add(spec, |field| self.input(field), &self.record.comm, budget);
        true
    }
}

/// Whether a histogram of `triggers` keys on the call chain (one is then generated).
pub(super) fn wants_stack(triggers: &TriggerSet) -> bool {
    triggers.triggers().iter().any(|t| match &t.action {
        Action::Hist(spec) => spec.keys.iter().any(|k| k.name == "common_stacktrace"),
        _ => false,
    })
}

/// `enable_hist`/`disable_hist` reaching `event`: every histogram of it runs or pauses.
pub(super) fn set_running(event: &mut EventState, running: bool) {
    for trigger in event.triggers.triggers_mut() {
        if let Action::Hist(spec) = &mut trigger.action {
            spec.paused = !running;
        }
    }
}

/// The `hist` file of an event: one section per histogram, in trigger order.
pub(super) fn hist_file(event: Option<&EventState>) -> Vec<u8> {
    let mut out = String::new();
    let hists = event
        .into_iter()
        .flat_map(|e| e.triggers.triggers())
        .filter_map(|t| match &t.action {
            Action::Hist(spec) => Some((t, spec)),
            _ => None,
        });
    for (n, (trigger, spec)) in hists.enumerate() {
        if n > 0 {
            out.push_str("\n\n");
        }
        spec.table
            .lock()
            .render(spec, &trigger.to_string(), &mut out);
    }
    out.into_bytes()
}

/// A new named histogram joins the table of the existing one of that name (on any event, as
/// the kernel's named triggers are global); a different shape under the same name is the
/// kernel's `Named hist trigger doesn't match existing named trigger` error.
pub(super) fn share_named(
    events: &HashMap<Ino, EventState>,
    command: &mut TriggerCommand,
) -> Result<(), TriggerError> {
    let TriggerCommand::Add(trigger) = command else {
        return Ok(());
    };
    let Action::Hist(spec) = &mut trigger.action else {
        return Ok(());
    };
    let Some(name) = spec.name.clone() else {
        return Ok(());
    };
    let existing = events
        .values()
        .flat_map(|e| e.triggers.triggers())
        .find_map(|t| match &t.action {
            Action::Hist(other) if other.name.as_deref() == Some(name.as_str()) => Some(other),
            _ => None,
        });
    let Some(existing) = existing else {
        return Ok(());
    };
    if existing.keys != spec.keys || existing.vals != spec.vals || existing.sort != spec.sort {
        let pos = spec.command.find(&name).unwrap_or(0);
        return Err(TriggerError::Hist {
            reason: "Named hist trigger doesn't match existing named trigger (includes variables)",
            pos,
            command: spec.command.clone(),
            errno: errno::EINVAL,
        });
    }
    spec.table = existing.table.clone();
    Ok(())
}
