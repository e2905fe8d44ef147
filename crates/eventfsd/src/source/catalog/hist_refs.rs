//! How histograms read each other's variables, as Linux 6.1 resolves them when a trigger is
//! created (`trace_events_hist.c`): a new histogram's `$NAME` references are bound to the
//! table of the histogram that defines `NAME` (the `onmatch()` events first, then the one
//! event of the instance whose histograms define it, the firing event's other histograms
//! included; `SYSTEM.EVENT.$NAME` names the event), its variables must be new on its event,
//! its expressions may not mix microsecond and other units, and its actions' parameters must
//! fit the synthetic event they generate. A histogram whose variables another reads cannot be
//! removed.

use std::collections::HashMap;

use eventfs_core::tree::{DirId, Ino, Tree};
use ftrace_text::filter::errno;
use ftrace_text::format;
use ftrace_text::probe::SYNTH_GROUP;
use ftrace_text::trigger::{
    Action, Expr, Handler, HistField, HistSpec, HistVar, TriggerCommand, TriggerError, VarBinding,
};

use super::state::EventState;

/// A variable of a registered histogram.
struct Found<'a> {
    /// The event whose histogram defines it.
    event: DirId,
    /// That histogram.
    spec: &'a HistSpec,
    /// Its index among the histogram's variables.
    index: usize,
}

/// What looking a variable up found.
enum Lookup<'a> {
    Found(Found<'a>),
    /// More than one event defines it (the kernel's `VAR_NOT_UNIQUE`).
    NotUnique,
    Missing,
}

/// The registered histograms of an instance, by event.
struct Instance<'a> {
    tree: &'a Tree,
    events: &'a HashMap<Ino, EventState>,
    instance: DirId,
}

impl<'a> Instance<'a> {
    fn of(tree: &'a Tree, events: &'a HashMap<Ino, EventState>, event: DirId) -> Self {
        Instance {
            tree,
            events,
            instance: tree.instance_of(event),
        }
    }

    /// The histograms of `event`, in the order they were registered.
    fn hists(&self, event: DirId) -> impl Iterator<Item = &'a HistSpec> + 'a {
        self.events
            .get(&self.tree.dir_ino(event))
            .into_iter()
            .flat_map(|e| e.triggers.triggers())
            .filter_map(|t| match &t.action {
                Action::Hist(spec) => Some(spec),
                _ => None,
            })
    }

    /// Every event of the instance that has a histogram.
    fn events_with_hists(&self) -> impl Iterator<Item = DirId> + 'a {
        let (tree, instance) = (self.tree, self.instance);
        self.events.iter().filter_map(move |(&ino, state)| {
            let dir = tree.node(ino).ok()?.dir;
            let hists = state.triggers.triggers().iter();
            let has_hist = hists
                .into_iter()
                .any(|t| matches!(t.action, Action::Hist(_)));
            (has_hist && tree.instance_of(dir) == instance).then_some(dir)
        })
    }

    fn event(&self, system: &str, name: &str) -> Option<DirId> {
        let events_dir = self.tree.events_dir_of(self.instance)?;
        self.tree.find_event_in(events_dir, system, name)
    }

    /// The first histogram of `event` that defines `name` (`find_file_var`).
    fn file_var(&self, event: DirId, name: &str) -> Option<Found<'a>> {
        self.hists(event)
            .find_map(|spec| spec.defines(name).map(|index| Found { event, spec, index }))
    }

    /// `find_event_var`: a qualified `SYSTEM.EVENT.NAME` on that event; an unqualified name
    /// on the events `spec`'s `onmatch()` actions match, then on the one event of the
    /// instance that defines it.
    fn lookup(&self, spec: &HistSpec, name: &str) -> Lookup<'a> {
        if let Some((system, event, var)) = qualified(name) {
            return match self
                .event(system, event)
                .and_then(|e| self.file_var(e, var))
            {
                Some(found) => Lookup::Found(found),
                None => Lookup::Missing,
            };
        }
        let mut matched = None;
        for action in &spec.actions {
            let Handler::Match { system, event } = &action.handler else {
                continue;
            };
            if let Some(found) = self
                .event(system, event)
                .and_then(|e| self.file_var(e, name))
            {
                if matched.is_some() {
                    return Lookup::NotUnique;
                }
                matched = Some(found);
            }
        }
        if let Some(found) = matched {
            return Lookup::Found(found);
        }
        let mut defining = self
            .events_with_hists()
            .filter_map(|event| self.file_var(event, name));
        match (defining.next(), defining.next()) {
            (Some(found), None) => Lookup::Found(found),
            (Some(_), Some(_)) => Lookup::NotUnique,
            (None, _) => Lookup::Missing,
        }
    }
}

/// `SYSTEM.EVENT.NAME` split in three.
fn qualified(name: &str) -> Option<(&str, &str, &str)> {
    let (system, rest) = name.split_once('.')?;
    let (event, var) = rest.split_once('.')?;
    Some((system, event, var))
}

/// The variable a parameter of an action reads: `$NAME` or `SYSTEM.EVENT.$NAME` (as a
/// reference name), else `None` (a field).
pub(super) fn param_ref(param: &str) -> Option<String> {
    if let Some(name) = param.strip_prefix('$') {
        return Some(name.to_string());
    }
    let (system, event, var) = qualified(param)?;
    var.strip_prefix('$')
        .map(|name| format!("{system}.{event}.{name}"))
}

/// Whether a variable holds microseconds: its expression's unit, its references' as bound.
fn var_usecs(spec: &HistSpec, index: usize) -> bool {
    spec.vars[index]
        .expr
        .usecs(&|name| spec.bindings.iter().any(|b| b.name == name && b.usecs))
}

/// Binds reference `name` to the variable found for it (once per name).
fn bind(bindings: &mut Vec<VarBinding>, name: &str, found: &Found<'_>) {
    if !bindings.iter().any(|b| b.name == name) {
        bindings.push(VarBinding {
            name: name.to_string(),
            table: found.spec.table.clone(),
            index: found.index,
            usecs: var_usecs(found.spec, found.index),
        });
    }
}

/// Binds a new histogram's references, after the kernel's checks (see the module). Returns
/// the `error_log` entries of a refusal, the one whose errno the write returns last.
pub(super) fn bind_references(
    tree: &Tree,
    events: &HashMap<Ino, EventState>,
    event: DirId,
    command: &mut TriggerCommand,
) -> Result<(), Vec<TriggerError>> {
    let TriggerCommand::Add(trigger) = command else {
        return Ok(());
    };
    let Action::Hist(spec) = &mut trigger.action else {
        return Ok(());
    };
    let instance = Instance::of(tree, events, event);
    let error = |reason: &'static str, token: &str| TriggerError::Hist {
        reason,
        pos: spec.command.find(token).unwrap_or(0),
        command: spec.command.clone(),
        errno: errno::EINVAL,
    };
    let mut bindings: Vec<VarBinding> = Vec::new();
    for var in &spec.vars {
        if instance
            .hists(event)
            .any(|other| other.defines(&var.name).is_some())
        {
            return Err(vec![error("Variable already defined", &var.name)]);
        }
        let mut refs = Vec::new();
        var.expr.refs(&mut refs);
        for (name, _) in &refs {
            let var_name = qualified(name).map_or(name.as_str(), |(_, _, v)| v);
            let not_found = || {
                vec![
                    error("Couldn't find variable", var_name),
                    error("Couldn't find field", &format!("${var_name}")),
                ]
            };
            match instance.lookup(spec, name) {
                Lookup::Found(found) => bind(&mut bindings, name, &found),
                Lookup::Missing => return Err(not_found()),
                Lookup::NotUnique => {
                    let mut entries = vec![error(NOT_UNIQUE, var_name)];
                    entries.extend(not_found());
                    return Err(entries);
                }
            }
        }
        let ref_usecs = |name: &str| bindings.iter().any(|b| b.name == name && b.usecs);
        if var.expr.units_mismatch(&ref_usecs) {
            return Err(vec![TriggerError::Hist {
                reason: "Timestamp units in expression don't match",
                pos: 0,
                command: spec.command.clone(),
                errno: errno::EINVAL,
            }]);
        }
    }
    check_actions(&instance, event, spec, &mut bindings, &error)?;
    spec.bindings = bindings;
    Ok(())
}

const NOT_UNIQUE: &str =
    "Variable name not unique, need to use fully qualified name (subsys.event.var) for variable";

/// Binds the actions' `$NAME` parameters (the histogram's own variables first; for
/// `onmatch()`, then its event's) and checks each generated synthetic event's fields against
/// them, in order.
fn check_actions(
    instance: &Instance<'_>,
    event: DirId,
    spec: &HistSpec,
    bindings: &mut Vec<VarBinding>,
    error: &dyn Fn(&'static str, &str) -> TriggerError,
) -> Result<(), Vec<TriggerError>> {
    let tree = instance.tree;
    let own_format = tree.with_format(event, str::to_string);
    let own_fields: Vec<format::Field<'_>> = format::fields(&own_format).collect();
    for action in &spec.actions {
        let Some(synth_name) = &action.synth else {
            continue;
        };
        let synth = instance.event(SYNTH_GROUP, synth_name);
        let Some(synth) = synth else {
            return Err(vec![error("Couldn't find synthetic event", synth_name)]);
        };
        let synth_format = tree.with_format(synth, str::to_string);
        let synth_fields: Vec<format::Field<'_>> = format::fields(&synth_format)
            .filter(|f| !f.name.starts_with("common_"))
            .collect();
        for (i, param) in action.params.iter().enumerate() {
            let shape = match param_ref(param) {
                Some(name) if qualified(&name).is_none() && spec.defines(&name).is_some() => {
                    let index = spec.defines(&name).unwrap_or_default();
                    ParamShape::of_var(&spec.vars[index], &own_fields)
                }
                Some(name) => {
                    let var_name = qualified(&name).map_or(name.as_str(), |(_, _, v)| v);
                    let lookup = match (&action.handler, qualified(&name)) {
                        (Handler::Match { system, event }, None) => instance
                            .event(system, event)
                            .and_then(|e| instance.file_var(e, &name))
                            .map_or(Lookup::Missing, Lookup::Found),
                        _ => instance.lookup(spec, &name),
                    };
                    let found = match lookup {
                        Lookup::Found(found) => found,
                        Lookup::Missing => {
                            return Err(vec![error("Couldn't find param", var_name)]);
                        }
                        Lookup::NotUnique => {
                            return Err(vec![
                                error(NOT_UNIQUE, var_name),
                                error("Couldn't find param", var_name),
                            ]);
                        }
                    };
                    let format = tree.with_format(found.event, str::to_string);
                    let fields: Vec<format::Field<'_>> = format::fields(&format).collect();
                    let shape = ParamShape::of_var(&found.spec.vars[found.index], &fields);
                    bind(bindings, &name, &found);
                    shape
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

    /// A variable: the field it holds as it is (`x=next_comm`) in `fields`, its event's, or
    /// a u64.
    fn of_var(var: &HistVar, fields: &[format::Field<'_>]) -> ParamShape {
        plain_field(var)
            .and_then(|f| format::find(fields, &f.name).map(ParamShape::of))
            .unwrap_or(ParamShape::U64)
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

/// The field a variable holds as it is (`x=next_comm`), if it holds one.
fn plain_field(var: &HistVar) -> Option<HistField> {
    match &var.expr {
        Expr::Field(f) if f.modifier.is_none() => Some(f.clone()),
        _ => None,
    }
}

/// Whether a histogram of the instance reads a variable of one of `event`'s histograms.
pub(super) fn event_is_read(tree: &Tree, events: &HashMap<Ino, EventState>, event: DirId) -> bool {
    let instance = Instance::of(tree, events, event);
    instance.hists(event).any(|spec| is_read(&instance, spec))
}

/// Whether a histogram of the instance but `spec` that has variables of its own (the kernel
/// tracks only those, `has_hist_vars`) reads a variable of `spec`.
fn is_read(instance: &Instance<'_>, spec: &HistSpec) -> bool {
    instance
        .events_with_hists()
        .flat_map(|e| instance.hists(e))
        .filter(|reader| !std::ptr::eq(*reader, spec) && !reader.vars.is_empty())
        .any(|reader| reader.bindings.iter().any(|b| b.table.same(&spec.table)))
}

/// Whether `command` removes a histogram of `event` whose variables a histogram of the
/// instance reads: the kernel refuses that with EBUSY (and logs nothing).
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
    let instance = Instance::of(tree, events, event);
    let Some(existing) = instance
        .hists(event)
        .find(|spec| spec.keys == removed.keys && spec.vars == removed.vars)
    else {
        return false;
    };
    is_read(&instance, existing)
}
