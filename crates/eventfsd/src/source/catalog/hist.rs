//! Histograms of the simulated kernel: what a `hist:` trigger reads from an occurrence, the
//! `enable_hist`/`disable_hist` switches, named histograms shared across events, and the
//! `hist` file. The tables and their text are `ftrace_text::trigger`'s.

use std::collections::HashMap;
use std::sync::Arc;

use eventfs_core::tree::{DirId, Ino, Tree};
use ftrace_text::filter::errno;
use ftrace_text::format;
use ftrace_text::probe::SYNTH_GROUP;
use ftrace_text::trigger::{
    Action, EntryBudget, FieldInput, Handler, HistField, HistSpec, HistTable, KeyPart, Saved,
    TriggerCommand, TriggerError, TriggerSet,
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
    /// entry from `budget`, the bound of all tables together. With variables, the kernel's
    /// order: the references to other histograms' variables are read first (`cross` reads one
    /// for this key, consuming it when asked); if one is missing the occurrence is ignored.
    /// Then the hit is counted, the variables are set, and each action that runs appends the
    /// synthetic event it generates to `generated`, or sets `snapshot` (`snapshot()`: the
    /// caller takes the snapshot).
    pub fn hit(
        &self,
        spec: &HistSpec,
        budget: &Arc<EntryBudget>,
        cross: &mut CrossVar<'_>,
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
            |field: &HistField| input(field).and_then(|v| HistTable::value_for_var(field, v));
        // Other histograms' variables this one reads (its own are read from its entry).
        let mut crossed: Vec<(String, u64)> = Vec::new();
        let mut missing = false;
        let mut values = Vec::with_capacity(spec.vars.len());
        for var in &spec.vars {
            let mut read = |name: &str, consume: bool| {
                if let Some(index) = spec.defines(name) {
                    return spec.table.lock().var(&key, index, false);
                }
                let value = cross(name, &key, consume);
                match value {
                    Some(v) => crossed.push((name.to_string(), v)),
                    None => missing = true,
                }
                value
            };
            values.push(var.expr.eval(&number, &mut read));
        }
        for action in &spec.actions {
            for name in action.params.iter().filter_map(|p| p.strip_prefix('$')) {
                if spec.defines(name).is_none() && !crossed.iter().any(|(n, _)| n == name) {
                    match cross(name, &key, false) {
                        Some(v) => crossed.push((name.to_string(), v)),
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
                .map(|param| match param.strip_prefix('$') {
                    Some(name) => match spec.defines(name) {
                        Some(index) => values[index].map(FieldValue::UInt),
                        None => crossed
                            .iter()
                            .find(|(n, _)| n == name)
                            .map(|&(_, v)| FieldValue::UInt(v)),
                    },
                    None => self.record.field(self.fields, param).cloned(),
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

/// The triggers of the events of `instance` (but `except`), which hold the histograms whose
/// variables others read.
fn hists_of_instance<'a>(
    tree: &'a Tree,
    events: &'a HashMap<Ino, EventState>,
    instance: DirId,
    except: Option<DirId>,
) -> impl Iterator<Item = &'a ftrace_text::trigger::Trigger> + 'a {
    events
        .iter()
        .filter(move |(&ino, _)| {
            tree.node(ino).is_ok_and(|node| {
                tree.instance_of(node.dir) == instance && Some(node.dir) != except
            })
        })
        .flat_map(|(_, e)| e.triggers.triggers())
}

/// Reads variable `name` of another histogram for a key (`true`: consume it).
pub(super) type CrossVar<'a> = dyn FnMut(&str, &[KeyPart], bool) -> Option<u64> + 'a;

/// A synthetic event an `onmatch` action generated: its name and one value per field.
pub(super) struct Generated {
    /// The synthetic event.
    pub synth: String,
    /// Its fields' values, in order.
    pub values: Vec<FieldValue>,
}

/// Variable `name` of the entry of `key` in a histogram of another event of `instance`
/// (`consume`: a read-once reference).
pub(super) fn cross_var(
    tree: &Tree,
    events: &HashMap<Ino, EventState>,
    instance: DirId,
    name: &str,
    key: &[KeyPart],
    consume: bool,
) -> Option<u64> {
    hists_of_instance(tree, events, instance, None)
        .find_map(|t| match &t.action {
            Action::Hist(other) => other.defines(name).map(|index| (other, index)),
            _ => None,
        })
        .and_then(|(other, index)| other.table.lock().var(key, index, consume))
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

/// What a new histogram refers to must exist, as the kernel checks when it creates the
/// trigger: each `$VAR` it reads but does not define is a variable of a histogram of another
/// event of its instance (`Couldn't find variable`, which the kernel follows with a second
/// entry, `Couldn't find field`), and each `onmatch` action's synthetic event exists there
/// with a field of a matching type for each parameter, in order. Returns the `error_log`
/// entries of a refusal, the one whose errno the write returns last.
pub(super) fn check_references(
    tree: &Tree,
    events: &HashMap<Ino, EventState>,
    event: DirId,
    command: &TriggerCommand,
) -> Result<(), Vec<TriggerError>> {
    let TriggerCommand::Add(trigger) = command else {
        return Ok(());
    };
    let Action::Hist(spec) = &trigger.action else {
        return Ok(());
    };
    let instance = tree.instance_of(event);
    // The variable `name` of a histogram of another event of the instance, if any.
    let elsewhere = |name: &str| -> Option<Option<HistField>> {
        hists_of_instance(tree, events, instance, Some(event)).find_map(|t| match &t.action {
            Action::Hist(other) => other.defines(name).map(|i| plain_field(&other.vars[i])),
            _ => None,
        })
    };
    let error = |reason: &'static str, token: &str| TriggerError::Hist {
        reason,
        pos: spec.command.find(token).unwrap_or(0),
        command: spec.command.clone(),
        errno: errno::EINVAL,
    };
    let mut refs = Vec::new();
    for var in &spec.vars {
        var.expr.refs(&mut refs);
    }
    for (name, _) in &refs {
        if spec.defines(name).is_none() && elsewhere(name).is_none() {
            return Err(vec![
                error("Couldn't find variable", name),
                error("Couldn't find field", &format!("${name}")),
            ]);
        }
    }
    let own_format = tree.with_format(event, str::to_string);
    let own_fields: Vec<format::Field<'_>> = format::fields(&own_format).collect();
    for action in &spec.actions {
        let Some(synth_name) = &action.synth else {
            continue;
        };
        let synth = tree
            .events_dir_of(instance)
            .and_then(|d| tree.find_event_in(d, SYNTH_GROUP, synth_name));
        let Some(synth) = synth else {
            return Err(vec![error("Couldn't find synthetic event", synth_name)]);
        };
        let synth_format = tree.with_format(synth, str::to_string);
        let synth_fields: Vec<format::Field<'_>> = format::fields(&synth_format)
            .filter(|f| !f.name.starts_with("common_"))
            .collect();
        for (i, param) in action.params.iter().enumerate() {
            let shape = match param.strip_prefix('$') {
                Some(name) => {
                    let var = match spec.defines(name) {
                        Some(index) => Some(plain_field(&spec.vars[index])),
                        None => elsewhere(name),
                    };
                    let Some(var) = var else {
                        return Err(vec![error("Couldn't find param", name)]);
                    };
                    var.and_then(|f| format::find(&own_fields, &f.name).map(ParamShape::of))
                        .unwrap_or(ParamShape::U64)
                }
                None => match format::find(&own_fields, param) {
                    Some(field) => ParamShape::of(field),
                    None => return Err(vec![error("Couldn't find param", param)]),
                },
            };
            if !synth_fields.get(i).is_some_and(|f| shape.fits(f)) {
                return Err(vec![error(
                    "Param type doesn't match synthetic event field type",
                    param,
                )]);
            }
        }
        if synth_fields.len() != action.params.len() {
            return Err(vec![error(
                "Param count doesn't match synthetic event field count",
                synth_name,
            )]);
        }
    }
    Ok(())
}

/// The field a variable holds as it is (`x=next_comm`), if it holds one.
fn plain_field(var: &ftrace_text::trigger::HistVar) -> Option<HistField> {
    match &var.expr {
        ftrace_text::trigger::Expr::Field(f) if f.modifier.is_none() => Some(f.clone()),
        _ => None,
    }
}

/// What `check_synth_field` compares of an action parameter.
#[derive(Clone, Copy)]
struct ParamShape {
    size: u32,
    signed: bool,
    string: bool,
}

impl ParamShape {
    /// A variable computed from an expression (or a timestamp): a u64.
    const U64: ParamShape = ParamShape {
        size: 8,
        signed: false,
        string: false,
    };

    fn of(field: &format::Field<'_>) -> ParamShape {
        ParamShape {
            size: field.size,
            signed: field.signed,
            string: format::is_string(field),
        }
    }

    /// Whether it fits synthetic field `field`: a string any dynamic string or one of its
    /// size, a number one of its size and signedness.
    fn fits(self, field: &format::Field<'_>) -> bool {
        match (self.string, format::is_string(field)) {
            (true, true) => field.ty.contains("__data_loc") || field.size == self.size,
            (false, false) => field.size == self.size && field.signed == self.signed,
            _ => false,
        }
    }
}

/// Whether `command` removes a histogram of `event` whose variables a histogram of another
/// event of its instance reads: the kernel refuses that with EBUSY (and logs nothing).
pub(super) fn removes_referenced(
    tree: &Tree,
    events: &HashMap<Ino, EventState>,
    event: DirId,
    command: &TriggerCommand,
) -> bool {
    let TriggerCommand::Remove(removed) = command else {
        return false;
    };
    let Action::Hist(removed) = &removed.action else {
        return false;
    };
    let own = events.get(&tree.dir_ino(event));
    let Some(existing) = own
        .into_iter()
        .flat_map(|e| e.triggers.triggers())
        .find_map(|t| match &t.action {
            Action::Hist(spec) if spec.keys == removed.keys && spec.vars == removed.vars => {
                Some(spec)
            }
            _ => None,
        })
    else {
        return false;
    };
    let instance = tree.instance_of(event);
    let readers =
        hists_of_instance(tree, events, instance, Some(event)).filter_map(|t| match &t.action {
            Action::Hist(reader) => Some(reader),
            _ => None,
        });
    for reader in readers {
        let mut refs = Vec::new();
        for var in &reader.vars {
            var.expr.refs(&mut refs);
        }
        let params = reader.actions.iter().flat_map(|a| &a.params);
        let names = refs
            .iter()
            .map(|(name, _)| name.as_str())
            .chain(params.filter_map(|p| p.strip_prefix('$')));
        if names
            .into_iter()
            .any(|name| reader.defines(name).is_none() && existing.defines(name).is_some())
        {
            return true;
        }
    }
    false
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
