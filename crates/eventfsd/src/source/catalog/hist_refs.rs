//! How histograms read each other's variables, as Linux 6.1 resolves them when a trigger is
//! created (`trace_events_hist.c`): a new histogram's `$NAME` references are bound to the
//! table of the histogram that defines `NAME` (the `onmatch()` events first, then the one
//! event of the instance whose histograms define it, the firing event's other histograms
//! included; `SYSTEM.EVENT.$NAME` names the event), its variables must be new on its event,
//! its expressions may not mix microsecond and other units, and its actions' parameters must
//! fit the synthetic event they generate. A histogram whose variables another reads cannot be
//! removed.

use std::borrow::Cow;
use std::collections::HashMap;

use eventfs_core::tree::{DirId, Ino, Tree};
use ftrace_text::filter::errno;
use ftrace_text::format;
use ftrace_text::probe::SYNTH_GROUP;
use ftrace_text::trigger::{
    self, qualified, Action, CreatedHist, Expr, Handler, HistField, HistSpec, HistVar, SharedTable,
    Trigger, TriggerCommand, TriggerError, VarBinding,
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
#[derive(Clone, Copy)]
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
        self.hist_triggers(event).filter_map(|t| match &t.action {
            Action::Hist(spec) => Some(&**spec),
            _ => None,
        })
    }

    /// The histogram triggers of `event`, in the order they were registered.
    fn hist_triggers(&self, event: DirId) -> impl Iterator<Item = &'a Trigger> + 'a {
        self.events
            .get(&self.tree.dir_ino(event))
            .into_iter()
            .flat_map(|e| e.triggers.triggers())
            .filter(|t| matches!(t.action, Action::Hist(_)))
    }

    /// Every event of the instance that has a histogram.
    fn events_with_hists(&self) -> impl Iterator<Item = DirId> + 'a {
        let this = *self;
        self.events.keys().filter_map(move |&ino| {
            let dir = this.tree.node(ino).ok()?.dir;
            let has_hist = this.hist_triggers(dir).next().is_some();
            (has_hist && this.tree.instance_of(dir) == this.instance).then_some(dir)
        })
    }

    /// The registered histogram trigger that removal `command` names on `event` (the one
    /// the removal would take), if it is one.
    fn removed_by(&self, event: DirId, command: &TriggerCommand) -> Option<&'a HistSpec> {
        let TriggerCommand::Remove(removed) = command else {
            return None;
        };
        let stored = self.hist_triggers(event).find(|t| t.matches(removed))?;
        match &stored.action {
            Action::Hist(spec) => Some(spec),
            _ => None,
        }
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

/// The variable a parameter of an action reads: `$NAME` or `SYSTEM.EVENT.$NAME` (as a
/// reference name), else `None` (a field).
pub(super) fn param_ref(param: &str) -> Option<Cow<'_, str>> {
    if let Some(name) = param.strip_prefix('$') {
        return Some(Cow::Borrowed(name));
    }
    let (system, event, var) = qualified(param)?;
    var.strip_prefix('$')
        .map(|name| Cow::Owned(format!("{system}.{event}.{name}")))
}

/// The last part of a possibly qualified name: the field of a `SYSTEM.EVENT.FIELD` parameter,
/// the variable of a `SYSTEM.EVENT.NAME` reference.
pub(super) fn unqualified(name: &str) -> &str {
    qualified(name).map_or(name, |(_, _, last)| last)
}

/// Whether a variable holds microseconds: its expression's unit, its references' as bound.
fn var_usecs(spec: &HistSpec, index: usize) -> bool {
    spec.vars[index]
        .expr
        .usecs(&|name| spec.bindings.iter().any(|b| b.name == name && b.usecs))
}

/// Binds reference `name` to variable `index` of `table` (once per name).
fn bind(
    bindings: &mut Vec<VarBinding>,
    name: &str,
    table: &SharedTable,
    index: usize,
    usecs: bool,
) {
    if !bindings.iter().any(|b| b.name == name) {
        bindings.push(VarBinding {
            name: name.to_string(),
            table: table.clone(),
            index,
            usecs,
        });
    }
}

/// Binds reference `name` to the variable found for it.
fn bind_found(bindings: &mut Vec<VarBinding>, name: &str, found: &Found<'_>) {
    let usecs = var_usecs(found.spec, found.index);
    bind(bindings, name, &found.spec.table, found.index, usecs);
}

/// Binds a new histogram's references, after the kernel's checks (see the module). Returns
/// the `error_log` entries of a refusal, the one whose errno the write returns last.
pub(super) fn bind_references(
    tree: &Tree,
    events: &HashMap<Ino, EventState>,
    event: DirId,
    command: &mut TriggerCommand,
) -> Result<Bound, Vec<TriggerError>> {
    let mut bound = Bound::default();
    let TriggerCommand::Add(trigger) = command else {
        return Ok(bound);
    };
    let Action::Hist(spec) = &mut trigger.action else {
        return Ok(bound);
    };
    let instance = Instance::of(tree, events, event);
    let error = |reason: &'static str, token: &str| TriggerError::Hist {
        reason,
        pos: spec.command.find(token).unwrap_or(0),
        command: spec.command.clone(),
        errno: errno::EINVAL,
    };
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
            let var_name = unqualified(name);
            let not_found = || {
                vec![
                    error("Couldn't find variable", var_name),
                    error("Couldn't find field", &format!("${var_name}")),
                ]
            };
            match instance.lookup(spec, name) {
                Lookup::Found(found) => bind_found(&mut bound.bindings, name, &found),
                Lookup::Missing => return Err(not_found()),
                Lookup::NotUnique => {
                    let mut entries = vec![error(NOT_UNIQUE, var_name)];
                    entries.extend(not_found());
                    return Err(entries);
                }
            }
        }
        let ref_usecs = |name: &str| bound.bindings.iter().any(|b| b.name == name && b.usecs);
        if var.expr.units_mismatch(&ref_usecs) {
            return Err(vec![TriggerError::Hist {
                reason: "Timestamp units in expression don't match",
                pos: 0,
                command: spec.command.clone(),
                errno: errno::EINVAL,
            }]);
        }
    }
    check_actions(&instance, event, spec, &mut bound, &error)?;
    spec.bindings = std::mem::take(&mut bound.bindings);
    spec.created = bound.created.iter().map(|c| c.record.clone()).collect();
    Ok(bound)
}

/// What binding a new histogram's references made besides its bindings.
#[derive(Default)]
pub(super) struct Bound {
    bindings: Vec<VarBinding>,
    /// Histograms to register on other events before it, for its field variables.
    pub created: Vec<FieldVarHist>,
    /// `error_log` entries of a command that succeeds nonetheless (6.1 logs its failed
    /// attempt to find a field on the firing event before it looks at the matched one).
    pub logged: Vec<TriggerError>,
}

/// A histogram made to hold a field of another event for an action's parameter.
pub(super) struct FieldVarHist {
    /// The event it goes on.
    pub event: DirId,
    /// It, parsed.
    pub trigger: Trigger,
    record: CreatedHist,
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
    bound: &mut Bound,
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
            let reference = param_ref(param);
            // The histogram's own variables come first (a qualified name is never one).
            let own = reference
                .as_deref()
                .filter(|name| qualified(name).is_none())
                .and_then(|name| spec.defines(name));
            let shape = match (own, reference) {
                (Some(index), _) => ParamShape::of_var(&spec.vars[index], &own_fields),
                (None, Some(name)) => {
                    let var_name = unqualified(&name);
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
                    bind_found(&mut bound.bindings, &name, &found);
                    shape
                }
                (None, None) => {
                    let context = FieldParam {
                        instance,
                        event,
                        spec,
                        own_fields: &own_fields,
                        handler: &action.handler,
                        error,
                    };
                    context.check(param, bound)?
                }
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

/// An action parameter that names a field rather than a variable, and where to look for it.
struct FieldParam<'a, 'i> {
    instance: &'a Instance<'i>,
    /// The firing event.
    event: DirId,
    spec: &'a HistSpec,
    own_fields: &'a [format::Field<'a>],
    handler: &'a Handler,
    error: &'a dyn Fn(&'static str, &str) -> TriggerError,
}

impl FieldParam<'_, '_> {
    /// The shape of field parameter `param`: a field of the firing event (`FIELD`, or
    /// `SYSTEM.EVENT.FIELD` naming it), or of another event (`SYSTEM.EVENT.FIELD`, or for
    /// `onmatch()` a `FIELD` the firing event lacks), which a histogram on that event holds.
    fn check(&self, param: &str, bound: &mut Bound) -> Result<ParamShape, Vec<TriggerError>> {
        let tree = self.instance.tree;
        let (target, field) = match qualified(param) {
            Some((system, event, field)) => {
                let own = tree.dir_name(self.event) == event
                    && tree.dir_name(tree.parent_of(self.event)) == system;
                (
                    (!own).then(|| (system.to_string(), event.to_string())),
                    field,
                )
            }
            // `a.b`, `common_timestamp.usecs`: refused, and nothing logged.
            None if param.contains('.') => return Err(Vec::new()),
            None => (None, param),
        };
        if target.is_none() {
            if let Some(found) = format::find(self.own_fields, field) {
                return Ok(ParamShape::of(found));
            }
            bound
                .logged
                .push((self.error)("Couldn't find field", field));
            bound
                .logged
                .push((self.error)("Couldn't parse field variable", field));
        }
        let target = match (target, self.handler) {
            (Some(target), _) => target,
            (None, Handler::Match { system, event }) => (system.clone(), event.clone()),
            (None, _) => return Err(std::mem::take(&mut bound.logged)),
        };
        self.field_var_hist(param, &target, field, bound)
            .map_err(|mut entries| {
                bound.logged.append(&mut entries);
                std::mem::take(&mut bound.logged)
            })
    }

    /// Binds `param` to variable `synthetic_FIELD` of a histogram of `target`: one that
    /// defines it already, else one made now (`keys=KEYS:synthetic_FIELD=FIELD[ if FILTER]`)
    /// with the keys and filter of the first histogram there whose keys match ours.
    fn field_var_hist(
        &self,
        param: &str,
        (system, event): &(String, String),
        field: &str,
        bound: &mut Bound,
    ) -> Result<ParamShape, Vec<TriggerError>> {
        let error = self.error;
        let instance = self.instance;
        let Some(target) = instance.event(system, event) else {
            return Err(vec![error("Event file not found", field)]);
        };
        let format_text = instance.tree.with_format(target, str::to_string);
        let fields: Vec<format::Field<'_>> = format::fields(&format_text).collect();
        let shape = format::find(&fields, field).map_or(ParamShape::U64, ParamShape::of);
        if shape.string {
            // The simulated tables hold numbers: a string would reach the event empty.
            return Err(vec![TriggerError::Invalid(
                "hist: a field variable of a string field on another event is not simulated",
            )]);
        }
        let var = format!("synthetic_{field}");
        let table = match instance.file_var(target, &var) {
            Some(found) => Some((found.spec.table.clone(), found.index)),
            None => bound.created.iter().find_map(|c| match &c.trigger.action {
                Action::Hist(spec) if c.event == target => {
                    spec.defines(&var).map(|i| (spec.table.clone(), i))
                }
                _ => None,
            }),
        };
        let (table, index) = match table {
            Some(existing) => existing,
            None => {
                let made = self.make_field_var_hist(target, &fields, field)?;
                let Action::Hist(spec) = &made.action else {
                    return Err(Vec::new());
                };
                let table = (spec.table.clone(), 0);
                bound.created.push(FieldVarHist {
                    event: target,
                    record: CreatedHist {
                        system: system.clone(),
                        event: event.clone(),
                        command: spec.command.clone(),
                    },
                    trigger: made,
                });
                table
            }
        };
        bind(&mut bound.bindings, param, &table, index, false);
        Ok(shape)
    }

    fn make_field_var_hist(
        &self,
        target: DirId,
        fields: &[format::Field<'_>],
        field: &str,
    ) -> Result<Trigger, Vec<TriggerError>> {
        let error = self.error;
        let own = self.own_fields;
        let compatible = self
            .instance
            .hist_triggers(target)
            .find_map(|t| match &t.action {
                Action::Hist(other)
                    if compatible_keys(&self.spec.keys, own, &other.keys, fields) =>
                {
                    Some((other, t.filter.as_ref().and_then(|f| f.text())))
                }
                _ => None,
            });
        let Some((other, filter)) = compatible else {
            return Err(vec![error("Matching event histogram not found", field)]);
        };
        let keys: Vec<&str> = other.keys.iter().map(|k| k.name.as_str()).collect();
        let mut text = format!("hist:keys={}:synthetic_{field}={field}", keys.join(","));
        if let Some(filter) = filter {
            text.push_str(" if ");
            text.push_str(filter);
        }
        let parsed = trigger::parse_in(self.spec.dialect, &text, fields, &|_, _| false);
        match parsed {
            Ok(TriggerCommand::Add(made)) => Ok(made),
            Ok(TriggerCommand::Remove(_)) => Err(Vec::new()),
            Err(e) => {
                let mut entries = Vec::new();
                if let TriggerError::Hist { reason, .. } = e {
                    entries.push(error(reason, field));
                }
                entries.push(error("Couldn't create histogram for field", field));
                Err(entries)
            }
        }
    }
}

/// Whether two histograms' keys have the same types, sizes and signedness, in order (the
/// kernel's `compatible_keys`); a key that is no field of its event compares by name.
fn compatible_keys(
    ours: &[HistField],
    our_fields: &[format::Field<'_>],
    theirs: &[HistField],
    their_fields: &[format::Field<'_>],
) -> bool {
    ours.len() == theirs.len()
        && ours.iter().zip(theirs).all(|(a, b)| {
            match (
                format::find(our_fields, &a.name),
                format::find(their_fields, &b.name),
            ) {
                (Some(x), Some(y)) => x.ty == y.ty && x.size == y.size && x.signed == y.signed,
                (None, None) => a.name == b.name,
                _ => false,
            }
        })
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

    /// A variable: the type of its expression's first operand (6.1 gives an expression the
    /// size and signedness of its left operand), a field's in `fields`, its event's; a
    /// timestamp, constant or reference is a u64.
    fn of_var(var: &HistVar, fields: &[format::Field<'_>]) -> ParamShape {
        let mut first = &var.expr;
        while let Expr::Binary(_, left, _) | Expr::Neg(left) = first {
            first = left;
        }
        match first {
            Expr::Field(f) => format::find(fields, &f.name).map_or(ParamShape::U64, ParamShape::of),
            _ => ParamShape::U64,
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

/// Whether a histogram of the instance reads a variable of one of `event`'s histograms.
pub(super) fn event_is_read(tree: &Tree, events: &HashMap<Ino, EventState>, event: DirId) -> bool {
    let instance = Instance::of(tree, events, event);
    instance.hists(event).any(|spec| is_read(&instance, spec))
}

/// Whether a histogram of the instance reads a variable of `event`'s histogram whose command
/// is `command`.
pub(super) fn hist_is_read(
    tree: &Tree,
    events: &HashMap<Ino, EventState>,
    event: DirId,
    command: &str,
) -> bool {
    let instance = Instance::of(tree, events, event);
    instance
        .hists(event)
        .filter(|spec| spec.command == command)
        .any(|spec| is_read(&instance, spec))
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
    let instance = Instance::of(tree, events, event);
    instance
        .removed_by(event, command)
        .is_some_and(|existing| is_read(&instance, existing))
}

/// The histograms the histogram `command` removes from `event` made on other events for its
/// field variables (they go with it).
pub(super) fn created_by(
    tree: &Tree,
    events: &HashMap<Ino, EventState>,
    event: DirId,
    command: &TriggerCommand,
) -> Vec<CreatedHist> {
    Instance::of(tree, events, event)
        .removed_by(event, command)
        .map(|spec| spec.created.clone())
        .unwrap_or_default()
}
