//! Histograms of the simulated kernel: what a `hist:` trigger reads from an occurrence, the
//! `enable_hist`/`disable_hist` switches, named histograms shared across events, and the
//! `hist` file. The tables and their text are `ftrace_text::trigger`'s; how histograms find
//! each other's variables is [`super::hist_refs`]'s.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use eventfs_core::tree::Ino;
use ftrace_text::filter::errno;
use ftrace_text::format;
use ftrace_text::trigger::{
    Action, EntryBudget, FieldInput, Handler, HistField, HistSpec, HistTable, Saved,
    TriggerCommand, TriggerError, TriggerSet,
};
use ftrace_text::{FieldValue, Record};

use super::hist_refs::{param_ref, unqualified};
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
    /// entry from `budget`, the bound of all tables together. With variables, the kernel's
    /// order: the references to other histograms' variables are read first, for this key,
    /// from the tables they were bound to (a read-once reference consumes the value); if one
    /// is missing the occurrence is ignored.
    /// Then the hit is counted, the variables are set, and each action that runs appends the
    /// synthetic event it generates to `generated`, or sets `snapshot` (`snapshot()`: the
    /// caller takes the snapshot).
    pub fn hit(
        &self,
        spec: &HistSpec,
        budget: &Arc<EntryBudget>,
        generated: &mut Vec<Generated>,
        snapshot: &mut bool,
    ) -> bool {
        if spec.paused {
            return false;
        }
        let input = |field: &HistField| self.input(field);
        if spec.vars.is_empty() && spec.actions.is_empty() {
            spec.table
                .lock()
                .add(spec, input, &self.record.comm, budget);
            return true;
        }
        let Some(key) = HistTable::key_of(spec, &input) else {
            return false;
        };
        let number =
            |field: &HistField| input(field).and_then(|v| HistTable::value_for_var(spec, field, v));
        // The other histograms' variables this one reads, through the bindings made when it
        // was created; a read-once reference consumes the value it read.
        let cross = |name: &str, consume: bool| {
            let binding = spec.bindings.iter().find(|b| b.name == name)?;
            binding.table.lock().var(&key, binding.index, consume)
        };
        let mut crossed: Vec<(String, u64)> = Vec::new();
        let mut missing = false;
        let mut values = Vec::with_capacity(spec.vars.len());
        for var in &spec.vars {
            let mut read = |name: &str, consume: bool| {
                let value = cross(name, consume);
                match value {
                    Some(v) => crossed.push((name.to_string(), v)),
                    None => missing = true,
                }
                value
            };
            values.push(var.expr.eval(&number, &mut read));
        }
        for action in &spec.actions {
            for name in action.params.iter().filter_map(|p| param_var(spec, p)) {
                let own = spec.defines(&name).is_some();
                if !own && !crossed.iter().any(|(n, _)| *n == name) {
                    match cross(&name, false) {
                        Some(v) => crossed.push((name.into_owned(), v)),
                        None => missing = true,
                    }
                }
            }
        }
        if missing {
            return false;
        }
        let mut table = spec.table.lock();
        if !table.add(spec, input, &self.record.comm, budget) {
            return true;
        }
        table.set_vars(&key, &values);
        drop(table);
        for (index, action) in spec.actions.iter().enumerate() {
            // `onmax`/`onchange` act only when their variable passes the entry's test.
            if let Handler::Max(var) | Handler::Change(var) = &action.handler {
                let Some(value) = spec.defines(var).and_then(|i| values[i]) else {
                    continue;
                };
                let saved = action.saves().then(|| self.saved(&action.params));
                let max = matches!(action.handler, Handler::Max(_));
                let mut table = spec.table.lock();
                if !table.track(&key, index, max, value, saved) {
                    continue;
                }
                if action.snapshot {
                    *snapshot |= table.track_snapshot(&key, index, max, value);
                    continue;
                }
            }
            let Some(synth) = &action.synth else {
                continue;
            };
            let params: Option<Vec<FieldValue>> = action
                .params
                .iter()
                .map(|param| match param_var(spec, param) {
                    Some(name) => match spec.defines(&name) {
                        Some(index) => values[index].map(FieldValue::UInt),
                        None => crossed
                            .iter()
                            .find(|(n, _)| *n == name)
                            .map(|&(_, v)| FieldValue::UInt(v)),
                    },
                    None => self.record.field(self.fields, unqualified(param)).cloned(),
                })
                .collect();
            if let Some(values) = params {
                generated.push(Generated {
                    synth: synth.clone(),
                    values,
                });
            }
        }
        true
    }

    /// The fields a `save` action keeps, from this occurrence.
    fn saved(&self, fields: &[String]) -> Vec<Saved> {
        fields
            .iter()
            .map(|name| match self.record.field(self.fields, name) {
                Some(FieldValue::Str(s)) => Saved::Str(s.clone()),
                Some(v) => Saved::Num(v.as_bits().unwrap_or(0)),
                None => Saved::Num(0),
            })
            .collect()
    }
}

/// The variable an action's parameter reads: `$NAME`, or a field of another event that a
/// histogram there holds (bound under the parameter's text); `None` for a field of its own.
fn param_var<'p>(spec: &HistSpec, param: &'p str) -> Option<Cow<'p, str>> {
    param_ref(param).or_else(|| {
        let bound = spec.bindings.iter().any(|b| b.name == param);
        bound.then_some(Cow::Borrowed(param))
    })
}

/// A synthetic event an `onmatch` action generated: its name and one value per field.
pub(super) struct Generated {
    /// The synthetic event.
    pub synth: String,
    /// Its fields' values, in order.
    pub values: Vec<FieldValue>,
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
