//! Variables and `onmatch` actions of `hist:` triggers, as Linux 6.1 parses and prints them
//! (`trace_events_hist.c`): `NAME=EXPR` assignments whose expressions combine fields,
//! constants and `$NAME` references to variables of any histogram with `+ - * /`, and
//! actions run by `onmatch(SYSTEM.EVENT)`, `onmax($VAR)` or `onchange($VAR)`:
//! `.trace(SYNTH,PARAMS)` (or `.SYNTH(PARAMS)`), which generates a synthetic event, and
//! `.save(FIELDS)`, which keeps fields of the event in the histogram's entry.

use std::fmt;

use crate::filter::errno;
use crate::kparse;

use super::{HistField, TriggerError};

/// Most variables one histogram defines (`TRACING_MAP_VARS_MAX`).
pub const HIST_VARS_MAX: usize = 16;
/// Most binary operators one expression nests (`HIST_FIELD_OPERANDS_MAX` levels).
const EXPR_LEVELS_MAX: usize = 3;
/// Most parameters of an action (`SYNTH_FIELDS_MAX`).
const ACTION_PARAMS_MAX: usize = 64;

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `*`
    Mul,
    /// `/`
    Div,
}

impl Op {
    fn symbol(self) -> char {
        match self {
            Op::Plus => '+',
            Op::Minus => '-',
            Op::Mul => '*',
            Op::Div => '/',
        }
    }

    /// u64 arithmetic as the kernel does it (division by zero gives all ones).
    fn apply(self, a: u64, b: u64) -> u64 {
        match self {
            Op::Plus => a.wrapping_add(b),
            Op::Minus => a.wrapping_sub(b),
            Op::Mul => a.wrapping_mul(b),
            Op::Div => a.checked_div(b).unwrap_or(u64::MAX),
        }
    }
}

/// A variable's expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// An event field (modifier applied), `common_timestamp` included.
    Field(HistField),
    /// `$NAME`: a variable of another histogram, or `SYSTEM.EVENT.NAME` of one of that
    /// event's (written `SYSTEM.EVENT.$NAME`, printed `$SYSTEM.EVENT.NAME` as the kernel does).
    Ref(String),
    /// A number (constant expressions are folded into one).
    Const(u64),
    /// `-(EXPR)`
    Neg(Box<Expr>),
    /// `A op B`
    Binary(Op, Box<Expr>, Box<Expr>),
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Field(field) => write!(f, "{field}"),
            Expr::Ref(name) => write!(f, "${name}"),
            Expr::Const(n) => write!(f, "{n}"),
            Expr::Neg(e) => write!(f, "-({e})"),
            Expr::Binary(op, a, b) => write!(f, "{a}{}{b}", op.symbol()),
        }
    }
}

/// How an expression reads a variable reference: `consume` when it is an operand of a binary
/// operator (the kernel's read-once references).
pub type RefReader<'a> = dyn FnMut(&str, bool) -> Option<u64> + 'a;

impl Expr {
    /// Every `$NAME` it references, with whether the read consumes it.
    pub fn refs(&self, out: &mut Vec<(String, bool)>) {
        self.collect_refs(false, out);
    }

    fn collect_refs(&self, operand: bool, out: &mut Vec<(String, bool)>) {
        match self {
            Expr::Ref(name) => out.push((name.clone(), operand)),
            Expr::Neg(e) => e.collect_refs(false, out),
            Expr::Binary(_, a, b) => {
                a.collect_refs(true, out);
                b.collect_refs(true, out);
            }
            Expr::Field(_) | Expr::Const(_) => {}
        }
    }

    /// Its value: fields from `field`, references from `var`; `None` if one is missing.
    pub fn eval(
        &self,
        field: &dyn Fn(&HistField) -> Option<u64>,
        var: &mut RefReader<'_>,
    ) -> Option<u64> {
        self.eval_as(false, field, var)
    }

    fn eval_as(
        &self,
        operand: bool,
        field: &dyn Fn(&HistField) -> Option<u64>,
        var: &mut RefReader<'_>,
    ) -> Option<u64> {
        match self {
            Expr::Field(f) => field(f),
            Expr::Ref(name) => var(name, operand),
            Expr::Const(n) => Some(*n),
            Expr::Neg(e) => Some(e.eval_as(false, field, var)?.wrapping_neg()),
            Expr::Binary(op, a, b) => {
                let a = a.eval_as(true, field, var)?;
                let b = b.eval_as(true, field, var)?;
                Some(op.apply(a, b))
            }
        }
    }

    /// Replaces each unqualified `$NAME` that `local` knows by the field it names: the
    /// kernel's `field_name_from_var`, which reads a variable of the trigger being created
    /// that holds one field (`b=$a` with `a=pid`) as that field itself.
    pub fn substitute_local(&mut self, local: &dyn Fn(&str) -> Option<HistField>) {
        match self {
            Expr::Ref(name) => {
                if let Some(field) = local(name) {
                    *self = Expr::Field(field);
                }
            }
            Expr::Neg(e) => e.substitute_local(local),
            Expr::Binary(_, a, b) => {
                a.substitute_local(local);
                b.substitute_local(local);
            }
            Expr::Field(_) | Expr::Const(_) => {}
        }
    }

    /// Whether its value is in microseconds (the kernel's `HIST_FIELD_FL_TIMESTAMP_USECS`):
    /// a `.usecs` field, a reference to such a variable (`ref_usecs`), or an expression whose
    /// left operand is one.
    pub fn usecs(&self, ref_usecs: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Expr::Field(f) => f.modifier == Some("usecs"),
            Expr::Ref(name) => ref_usecs(name),
            Expr::Const(_) => false,
            Expr::Neg(e) => e.usecs(ref_usecs),
            Expr::Binary(_, a, _) => a.usecs(ref_usecs),
        }
    }

    /// Whether a binary operator in it combines a microsecond operand with one that is not:
    /// the kernel's `Timestamp units in expression don't match` (a constant counts as not).
    pub fn units_mismatch(&self, ref_usecs: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Expr::Field(_) | Expr::Ref(_) | Expr::Const(_) => false,
            Expr::Neg(e) => e.units_mismatch(ref_usecs),
            Expr::Binary(_, a, b) => {
                a.units_mismatch(ref_usecs)
                    || b.units_mismatch(ref_usecs)
                    || a.usecs(ref_usecs) != b.usecs(ref_usecs)
            }
        }
    }

    /// The event fields it reads.
    pub fn fields(&self) -> Vec<&HistField> {
        match self {
            Expr::Field(f) => vec![f],
            Expr::Neg(e) => e.fields(),
            Expr::Binary(_, a, b) => {
                let mut out = a.fields();
                out.extend(b.fields());
                out
            }
            Expr::Ref(_) | Expr::Const(_) => Vec::new(),
        }
    }
}

/// One `NAME=EXPR` of a histogram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistVar {
    /// Its name (referenced as `$NAME`).
    pub name: String,
    /// What it holds.
    pub expr: Expr,
}

/// When an action runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handler {
    /// `onmatch(SYSTEM.EVENT)`: at every hit whose references to that event's variables
    /// resolved.
    Match {
        /// The event whose histogram's variables it matches.
        system: String,
        /// See `system`.
        event: String,
    },
    /// `onmax($VAR)`: when the variable exceeds the entry's maximum so far (0 at first).
    Max(String),
    /// `onchange($VAR)`: when the variable differs from the entry's last value (0 at first).
    Change(String),
}

/// A histogram action: `HANDLER.trace(SYNTH,PARAMS)` or `HANDLER.SYNTH(PARAMS)` generates a
/// synthetic event; `HANDLER.save(FIELDS)` keeps this event's fields in the entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistAction {
    /// When it runs.
    pub handler: Handler,
    /// The synthetic event it generates (`None`: `save`).
    pub synth: Option<String>,
    /// Written as `.trace(SYNTH,...)` (printed the same way).
    pub trace_keyword: bool,
    /// `$VAR`s or fields of this event, one per field of the synthetic event; for `save`,
    /// the fields it saves.
    pub params: Vec<String>,
    /// For `save`, which of its fields are strings (printed as such before it first runs).
    pub saves_strings: Vec<bool>,
    /// `snapshot()`: takes a snapshot of the trace buffer (`synth` is `None`).
    pub snapshot: bool,
}

impl HistAction {
    /// Whether it is a `save()`.
    pub fn saves(&self) -> bool {
        self.synth.is_none() && !self.snapshot
    }
}

impl fmt::Display for HistAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.handler {
            Handler::Match { system, event } => write!(f, ":onmatch({system}.{event}).")?,
            Handler::Max(var) => write!(f, ":onmax(${var}).")?,
            Handler::Change(var) => write!(f, ":onchange(${var}).")?,
        }
        match &self.synth {
            None if self.snapshot => f.write_str("snapshot()")?,
            None => write!(f, "save({})", self.params.join(","))?,
            Some(synth) if self.trace_keyword => {
                write!(f, "trace({synth}")?;
                for p in &self.params {
                    write!(f, ",{p}")?;
                }
                f.write_str(")")?;
            }
            Some(synth) => write!(f, "{synth}({})", self.params.join(","))?,
        }
        Ok(())
    }
}

/// Builds an error whose caret goes under the first occurrence of a token.
pub(super) type ErrAt<'a> = &'a dyn Fn(&'static str, &str, i32) -> TriggerError;

/// Parses one assignment segment (`a=EXPR[,b=EXPR]`), appending to `vars`. `field` parses a
/// field operand (`Couldn't find field` when the event has none of that name).
pub(super) fn parse_assignments(
    segment: &str,
    vars: &mut Vec<HistVar>,
    field: &dyn Fn(&str) -> Result<HistField, TriggerError>,
    err: ErrAt<'_>,
) -> Result<(), TriggerError> {
    for item in segment.split(',') {
        let Some((name, text)) = item.split_once('=') else {
            return Err(err("Malformed assignment", item, errno::EINVAL));
        };
        if text.is_empty() {
            return Err(err("Empty assignment", segment, errno::EINVAL));
        }
        if vars.iter().any(|v| v.name == name) {
            return Err(err("Variable already defined", name, errno::EINVAL));
        }
        if vars.len() == HIST_VARS_MAX {
            return Err(err("Too many variables defined", name, errno::EINVAL));
        }
        let expr = parse_expr(text, 0, field, err)?;
        vars.push(HistVar {
            name: name.to_string(),
            expr,
        });
    }
    Ok(())
}

/// `parse_expr`: the rightmost `+`/`-` is the root (so operators of one precedence group
/// evaluate left to right), else the rightmost `*`/`/`; a leading `-` is unary minus.
fn parse_expr(
    text: &str,
    level: usize,
    field: &dyn Fn(&str) -> Result<HistField, TriggerError>,
    err: ErrAt<'_>,
) -> Result<Expr, TriggerError> {
    if level > EXPR_LEVELS_MAX {
        return Err(err("Too many subexpressions (3 max)", text, errno::EINVAL));
    }
    let rightmost = |ops: &[char]| text.rfind(ops).filter(|&at| at > 0);
    if text.starts_with('-') && rightmost(&['+', '-']).is_none() {
        if level > 0 {
            return Err(err(
                "Unary minus not supported in sub-expressions",
                text,
                errno::EINVAL,
            ));
        }
        let inner = text[1..]
            .strip_prefix('(')
            .and_then(|t| t.strip_suffix(')'))
            .ok_or_else(|| {
                err(
                    "Unary minus not supported in sub-expressions",
                    text,
                    errno::EINVAL,
                )
            })?;
        let operand = parse_expr(inner, level + 1, field, err)?;
        return Ok(match operand {
            Expr::Const(n) => Expr::Const(n.wrapping_neg()),
            e => Expr::Neg(Box::new(e)),
        });
    }
    let split = rightmost(&['+', '-']).or_else(|| rightmost(&['*', '/']));
    let Some(at) = split else {
        return parse_operand(text, field, err);
    };
    let op = match &text[at..=at] {
        "+" => Op::Plus,
        "-" => Op::Minus,
        "*" => Op::Mul,
        _ => Op::Div,
    };
    let (left, right) = (&text[..at], &text[at + 1..]);
    let a = parse_expr(left, level + 1, field, err)?;
    let b = parse_expr(right, level + 1, field, err)?;
    for (side, text) in [(&a, left), (&b, right)] {
        if let Expr::Field(f) = side {
            if f.string {
                return Err(err(
                    "String type can not be an operand in expression",
                    text,
                    errno::EINVAL,
                ));
            }
        }
    }
    if op == Op::Div && b == Expr::Const(0) {
        return Err(err("Division by zero", right, errno::EDOM));
    }
    Ok(match (&a, &b) {
        (Expr::Const(x), Expr::Const(y)) => Expr::Const(op.apply(*x, *y)),
        _ => Expr::Binary(op, Box::new(a), Box::new(b)),
    })
}

fn parse_operand(
    text: &str,
    field: &dyn Fn(&str) -> Result<HistField, TriggerError>,
    err: ErrAt<'_>,
) -> Result<Expr, TriggerError> {
    if let Some(name) = text.strip_prefix('$') {
        return Ok(Expr::Ref(name.to_string()));
    }
    // `SYSTEM.EVENT.$VAR` names a variable of that event's histograms; with no `$` after
    // the second dot the kernel reads what follows as a field of this event.
    if let Some((system, event, var)) = qualified(text) {
        return match var.strip_prefix('$') {
            Some(name) if !name.is_empty() => Ok(Expr::Ref(format!("{system}.{event}.{name}"))),
            _ => field(var).map(Expr::Field),
        };
    }
    if text.starts_with(|c: char| c.is_ascii_digit()) {
        return kparse::kstrtoull(text.as_bytes(), 0)
            .map(Expr::Const)
            .map_err(|_| err("Expecting numeric literal", text, errno::EINVAL));
    }
    field(text).map(Expr::Field)
}

/// `SYSTEM.EVENT.REST` split at its first two dots (the kernel's qualified names of
/// variables and fields of another event), if it has two.
pub fn qualified(name: &str) -> Option<(&str, &str, &str)> {
    let (system, rest) = name.split_once('.')?;
    let (event, rest) = rest.split_once('.')?;
    Some((system, event, rest))
}

/// Parses `onmatch(SYSTEM.EVENT).ACTION(PARAMS)`, `onmax($VAR).ACTION(PARAMS)` or
/// `onchange($VAR).ACTION(PARAMS)`; `exists` says whether an event exists, `field_kind`
/// whether this event has a field (what `save` keeps) and if so whether it is a string. Whether `$VAR` is a variable of the
/// histogram is checked once all its variables are parsed ([`check_handler_vars`]).
pub(super) fn parse_action(
    item: &str,
    exists: &dyn Fn(&str, &str) -> bool,
    field_kind: &dyn Fn(&str) -> Option<bool>,
    err: ErrAt<'_>,
) -> Result<HistAction, TriggerError> {
    let open = item.find('(').unwrap_or(item.len());
    let (name, inner) = item.split_at(open);
    let inner = inner.get(1..).unwrap_or("");
    let Some(close) = inner.find(')') else {
        return Err(err("No closing paren found", item, errno::EINVAL));
    };
    let target = &inner[..close];
    let handler = match name {
        "onmatch" => {
            let Some((system, event)) = target.split_once('.') else {
                return Err(err("Missing subsystem", target, errno::EINVAL));
            };
            if !exists(system, event) {
                return Err(err(
                    "Invalid subsystem or event name",
                    target,
                    errno::EINVAL,
                ));
            }
            Handler::Match {
                system: system.to_string(),
                event: event.to_string(),
            }
        }
        _ => {
            let Some(var) = target.strip_prefix('$') else {
                return Err(err(
                    "For onmax(x) or onchange(x), x must be a variable",
                    target,
                    errno::EINVAL,
                ));
            };
            if name == "onmax" {
                Handler::Max(var.to_string())
            } else {
                Handler::Change(var.to_string())
            }
        }
    };
    let rest = &inner[close + 1..];
    let action = rest.strip_prefix('.').unwrap_or(rest);
    let Some(open) = action.find('(').filter(|&at| at > 0) else {
        return Err(err("No action found", "", errno::EINVAL));
    };
    let action_name = &action[..open];
    let Some(params_text) = action[open + 1..].strip_suffix(')') else {
        return Err(err("No closing paren found", action, errno::EINVAL));
    };
    let mut params: Vec<String> = params_text
        .split(',')
        .map(|p| p.trim().to_string())
        .collect();
    if params.len() > ACTION_PARAMS_MAX {
        return Err(err("Too many action params", "", errno::EINVAL));
    }
    if let Some(bad) = params.iter().find(|p| p.len() < 2 && !p.is_empty()) {
        return Err(err("Invalid action param", bad, errno::EINVAL));
    }
    params.retain(|p| !p.is_empty());
    let save = action_name.starts_with("save");
    if action_name.starts_with("snapshot") {
        if matches!(handler, Handler::Match { .. }) {
            return Err(err(
                "Handler doesn't support action",
                action_name,
                errno::EINVAL,
            ));
        }
        return Ok(HistAction {
            handler,
            synth: None,
            trace_keyword: false,
            params: Vec::new(),
            saves_strings: Vec::new(),
            snapshot: true,
        });
    }
    if save && matches!(handler, Handler::Match { .. }) {
        return Err(err(
            "Handler doesn't support action",
            action_name,
            errno::EINVAL,
        ));
    }
    if save {
        if params.is_empty() {
            return Err(err("No params found for save()", "", errno::EINVAL));
        }
        let mut saves_strings = Vec::with_capacity(params.len());
        for param in &params {
            match field_kind(param) {
                Some(string) => saves_strings.push(string),
                None => return Err(err("Couldn't create field variable", param, errno::EINVAL)),
            }
        }
        return Ok(HistAction {
            handler,
            synth: None,
            trace_keyword: false,
            params,
            saves_strings,
            snapshot: false,
        });
    }
    let trace_keyword = action_name.starts_with("trace");
    let synth = if trace_keyword {
        if params.is_empty() {
            return Err(err(
                "Couldn't find synthetic event",
                action_name,
                errno::EINVAL,
            ));
        }
        params.remove(0)
    } else {
        action_name.to_string()
    };
    Ok(HistAction {
        handler,
        synth: Some(synth),
        trace_keyword,
        params,
        saves_strings: Vec::new(),
        snapshot: false,
    })
}

/// The checks that need every variable and action of a histogram: an `onmax`/`onchange`
/// variable is one of its own, and it saves at most once.
pub(super) fn check_handler_vars(
    vars: &[HistVar],
    actions: &[HistAction],
    err: ErrAt<'_>,
) -> Result<(), TriggerError> {
    for action in actions {
        if let Handler::Max(var) | Handler::Change(var) = &action.handler {
            if !vars.iter().any(|v| &v.name == var) {
                return Err(err(
                    "Couldn't find onmax or onchange variable",
                    var,
                    errno::EINVAL,
                ));
            }
        }
    }
    if actions.iter().filter(|a| a.saves()).count() > 1 {
        return Err(err(
            "Can't have more than one save() action per hist",
            "",
            errno::EEXIST,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{fields, testdata::SCHED_SWITCH};
    use crate::trigger::{parse_in, Action, HistDialect, TriggerCommand, TriggerError};

    fn parse(text: &str) -> Result<String, TriggerError> {
        let f: Vec<_> = fields(SCHED_SWITCH).collect();
        let exists = |system: &str, event: &str| system == "sched" && event == "sched_waking";
        match parse_in(HistDialect::Linux6_1, text, &f, &exists)? {
            TriggerCommand::Add(t) => Ok(t.to_string()),
            other => panic!("{other:?}"),
        }
    }

    fn refused(text: &str) -> (&'static str, usize, i32) {
        match parse(text) {
            Err(TriggerError::Hist {
                reason, pos, errno, ..
            }) => (reason, pos, errno),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn variables_and_actions_print_as_the_kernel_prints_them() {
        assert_eq!(
            parse(
                "hist:keys=next_pid:wakeup_lat=common_timestamp.usecs-$ts0:\
                 onmatch(sched.sched_waking).wakeup_latency($wakeup_lat,next_pid,next_comm) \
                 if next_comm==\"ping\""
            )
            .unwrap(),
            "hist:keys=next_pid:vals=hitcount:wakeup_lat=common_timestamp.usecs-$ts0:\
             sort=hitcount:size=2048:clock=global:onmatch(sched.sched_waking).\
             wakeup_latency($wakeup_lat,next_pid,next_comm) if next_comm==\"ping\" [active]"
        );
        assert_eq!(
            parse(
                "hist:keys=prev_pid:a=prev_prio,b=next_prio:c=prev_prio*2+1:\
                   onmatch(sched.sched_waking).trace(synth, $a , prev_pid)"
            )
            .unwrap(),
            "hist:keys=prev_pid:vals=hitcount:a=prev_prio,b=next_prio,c=prev_prio*2+1:\
             sort=hitcount:size=2048:onmatch(sched.sched_waking).trace(synth,$a,prev_pid) \
             [active]"
        );
        // Constants fold.
        assert!(parse("hist:keys=prev_pid:x=16-8-4-2")
            .unwrap()
            .contains(":x=2:"));
    }

    #[test]
    fn onmax_and_onchange_print_as_the_kernel_prints_them() {
        assert_eq!(
            parse("hist:keys=next_pid:lat=common_timestamp.usecs:onmax($lat).save(next_comm,prev_pid)")
                .unwrap(),
            "hist:keys=next_pid:vals=hitcount:lat=common_timestamp.usecs:sort=hitcount:\
             size=2048:clock=global:onmax($lat).save(next_comm,prev_pid) [active]"
        );
        assert!(
            parse("hist:keys=next_pid:p=next_prio:onchange($p).snapshot()")
                .unwrap()
                .contains(":onchange($p).snapshot() [active]")
        );
        assert_eq!(
            parse("hist:keys=next_pid:p=next_prio:onchange($p).trace(synth,$p)").unwrap(),
            "hist:keys=next_pid:vals=hitcount:p=next_prio:sort=hitcount:size=2048:\
             onchange($p).trace(synth,$p) [active]"
        );
        let einval = crate::filter::errno::EINVAL;
        assert_eq!(
            refused("hist:keys=next_pid:onmax(next_prio).save(prev_pid)"),
            (
                "For onmax(x) or onchange(x), x must be a variable",
                25,
                einval
            )
        );
        assert_eq!(
            refused("hist:keys=next_pid:onmax($nope).save(prev_pid)"),
            ("Couldn't find onmax or onchange variable", 26, einval)
        );
        assert_eq!(
            refused("hist:keys=next_pid:p=next_prio:onmax($p).save()"),
            ("No params found for save()", 0, einval)
        );
        assert_eq!(
            refused("hist:keys=next_pid:p=next_prio:onmax($p).save(nofield)"),
            ("Couldn't create field variable", 46, einval)
        );
        assert_eq!(
            refused("hist:keys=next_pid:p=next_prio:onmax($p).save(prev_pid):onchange($p).save(prev_pid)"),
            (
                "Can't have more than one save() action per hist",
                0,
                crate::filter::errno::EEXIST
            )
        );
    }

    #[test]
    fn expressions_evaluate_left_to_right_with_precedence() {
        let f: Vec<_> = fields(SCHED_SWITCH).collect();
        let text = "hist:keys=prev_pid:x=prev_prio-next_prio-$t:y=prev_prio+next_prio*2";
        let Ok(TriggerCommand::Add(t)) = parse_in(HistDialect::Linux6_1, text, &f, &|_, _| true)
        else {
            panic!("{text}");
        };
        let Action::Hist(spec) = t.action else {
            panic!("not a hist")
        };
        let field = |f: &HistField| match f.name.as_str() {
            "prev_prio" => Some(100),
            "next_prio" => Some(10),
            _ => None,
        };
        let mut consumed = Vec::new();
        let mut var = |name: &str, consume: bool| {
            consumed.push((name.to_string(), consume));
            Some(1)
        };
        assert_eq!(spec.vars[0].expr.eval(&field, &mut var), Some(89));
        assert_eq!(spec.vars[1].expr.eval(&field, &mut var), Some(120));
        // An operand of a binary operator is a read-once reference.
        assert_eq!(consumed, [("t".to_string(), true)]);
    }

    #[test]
    fn variable_errors_are_the_kernels() {
        let einval = crate::filter::errno::EINVAL;
        assert_eq!(
            refused("hist:keys=prev_pid:x=1+2+3+4+5"),
            ("Too many subexpressions (3 max)", 21, einval)
        );
        assert_eq!(
            refused("hist:keys=prev_pid:x=3/0"),
            ("Division by zero", 23, crate::filter::errno::EDOM)
        );
        assert_eq!(
            refused("hist:keys=prev_pid:x="),
            ("Empty assignment", 19, einval)
        );
        assert_eq!(
            refused("hist:keys=prev_pid:x=prev_prio,y"),
            ("Malformed assignment", 7, einval)
        );
        assert_eq!(
            refused("hist:keys=prev_pid:x=prev_prio:x=next_prio"),
            ("Variable already defined", 19, einval)
        );
        assert_eq!(
            refused("hist:keys=prev_pid:x=prev_comm+1"),
            (
                "String type can not be an operand in expression",
                21,
                einval
            )
        );
        assert_eq!(
            refused("hist:keys=prev_pid:onmatch(sched.nosuch).s($a)"),
            ("Invalid subsystem or event name", 27, einval)
        );
        assert_eq!(
            refused("hist:keys=prev_pid:onmatch(sched.sched_waking).save(prev_pid)"),
            ("Handler doesn't support action", 47, einval)
        );
    }
}
