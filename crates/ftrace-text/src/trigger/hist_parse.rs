//! Parsing `hist:` trigger commands (keys, values, sort keys, attributes) with the kernel's
//! checks and `error_log` texts.

use super::hist_vars::{check_handler_vars, parse_action, parse_assignments, Expr, HistVar};
use super::{
    parse_if, trim_k, Action, HistDialect, HistField, HistSpec, SharedTable, SortField, SortKey,
    Trigger, TriggerError, HIST_BITS_DEFAULT, HIST_BITS_MAX, HIST_BITS_MIN, HIST_KEYS_MAX,
    HIST_SORT_KEYS_MAX, HIST_VALS_MAX,
};
use crate::filter::{self, errno};
use crate::format::{self, Field};

/// Builds hist errors with the command text the kernel logs.
struct HistCtx {
    command: String,
}

impl HistCtx {
    fn err(&self, reason: &'static str, token: &str) -> TriggerError {
        self.err_errno(reason, token, errno::EINVAL)
    }

    fn err_errno(&self, reason: &'static str, token: &str, errno: i32) -> TriggerError {
        // Like the kernel, the caret goes to the first occurrence of the token.
        let pos = if token.is_empty() {
            0
        } else {
            self.command.find(token).unwrap_or(0)
        };
        TriggerError::Hist {
            reason,
            pos,
            command: self.command.clone(),
            errno,
        }
    }
}

/// Splits `k:v... [if filter]` the way the kernel does: at the first `if` that has a
/// blank before and after it.
fn split_hist_filter(param: &str) -> Result<(&str, Option<&str>), TriggerError> {
    let b = param.as_bytes();
    let mut from = 0;
    while let Some(off) = param[from..].find("if") {
        let p = from + off;
        if p == 0 {
            return Err(TriggerError::Invalid("hist: starts with 'if'"));
        }
        let blank = |c: u8| c == b' ' || c == b'\t';
        if !blank(b[p - 1]) {
            from = p + 1;
            continue;
        }
        if p + 2 >= b.len().saturating_sub(1) {
            return Err(TriggerError::Invalid("hist: empty filter"));
        }
        if !blank(b[p + 2]) {
            from = p + 1;
            continue;
        }
        return Ok((&param[..p - 1], Some(trim_k(&param[p..]))));
    }
    Ok((param, None))
}

impl HistSpec {
    /// Parses the text after `hist:` into a trigger (the `if` filter included).
    pub(super) fn parse(
        rest: Option<&str>,
        fields: &[Field<'_>],
        dialect: HistDialect,
        event_exists: &dyn Fn(&str, &str) -> bool,
    ) -> Result<Trigger, TriggerError> {
        let legacy = dialect == HistDialect::Linux6_1;
        let param = rest.ok_or(TriggerError::Invalid("hist: missing keys"))?;
        let ctx = HistCtx {
            command: format!("hist:{param}"),
        };
        let (spec_text, filter_part) = split_hist_filter(param)?;
        let mut keys_str = None;
        let mut vals_str = None;
        let mut sort_str = None;
        let mut spec = HistSpec {
            name: None,
            keys: Vec::new(),
            vals: Vec::new(),
            sort: Vec::new(),
            map_bits: HIST_BITS_DEFAULT,
            clock: "global".to_owned(),
            nohitcount: false,
            paused: false,
            pause: false,
            cont: false,
            clear: false,
            command: ctx.command.clone(),
            table: SharedTable::default(),
            dialect,
            vars: Vec::new(),
            actions: Vec::new(),
            ts_in_usecs: false,
            bindings: Vec::new(),
            created: Vec::new(),
        };
        let err_at =
            |reason: &'static str, token: &str, errno: i32| ctx.err_errno(reason, token, errno);
        let field_of = |text: &str| hist_field(&ctx, text, fields, false, legacy);
        for item in spec_text.split(':') {
            let item = trim_k(item);
            if let Some((k, v)) = item.split_once('=') {
                match k {
                    "key" | "keys" => keys_str = Some(v),
                    "val" | "vals" | "values" => vals_str = Some(v),
                    "sort" => sort_str = Some(v),
                    "name" => spec.name = Some(v.to_owned()),
                    "clock" => {
                        let clock = trim_k(v);
                        if !matches!(
                            clock,
                            "local"
                                | "global"
                                | "counter"
                                | "uptime"
                                | "perf"
                                | "mono"
                                | "mono_raw"
                                | "boot"
                                | "tai"
                                | "x86-tsc"
                        ) {
                            return Err(TriggerError::Invalid("hist: unknown clock"));
                        }
                        spec.clock = clock.to_owned();
                    }
                    "size" => spec.map_bits = parse_map_size(v)?,
                    _ => parse_assignments(item, &mut spec.vars, &field_of, &err_at)?,
                }
            } else {
                match item {
                    "pause" => spec.pause = true,
                    "cont" | "continue" => spec.cont = true,
                    "clear" => spec.clear = true,
                    "nohitcount" | "NOHC" if !legacy => spec.nohitcount = true,
                    i if i.starts_with("onmatch(")
                        || i.starts_with("onmax(")
                        || i.starts_with("onchange(") =>
                    {
                        let field_kind =
                            |name: &str| format::find(fields, name).map(format::is_string);
                        spec.actions
                            .push(parse_action(i, event_exists, &field_kind, &err_at)?)
                    }
                    i if i.starts_with("onmatch")
                        || i.starts_with("onmax")
                        || i.starts_with("onchange") =>
                    {
                        return Err(TriggerError::Invalid(
                            "hist: actions are not supported by this emulation",
                        ))
                    }
                    _ => return Err(TriggerError::Invalid("hist: unknown attribute")),
                }
            }
        }
        let keys_str = keys_str.ok_or(TriggerError::Invalid("hist: missing keys"))?;

        let vals_str = vals_str.unwrap_or("hitcount");
        let mut parts = vals_str.split(',');
        let mut slots = 1;
        for v in parts.by_ref() {
            if v == "hitcount" {
                continue;
            }
            spec.vals.push(hist_field(&ctx, v, fields, false, legacy)?);
            slots += 1;
            if slots == HIST_VALS_MAX {
                break;
            }
        }
        let leftover: Vec<&str> = parts.collect();
        if !(leftover.is_empty() || leftover == ["hitcount"]) {
            return Err(TriggerError::Invalid("hist: too many values"));
        }
        if spec.nohitcount && spec.vals.is_empty() {
            return Err(ctx.err("Non-hitcount value is required for 'nohitcount'", vals_str));
        }

        let key_parts: Vec<&str> = keys_str.split(',').collect();
        if key_parts.len() > HIST_KEYS_MAX {
            return Err(TriggerError::Invalid("hist: too many keys"));
        }
        for k in key_parts {
            spec.keys.push(hist_field(&ctx, k, fields, true, legacy)?);
        }

        substitute_local_vars(&mut spec.vars);
        spec.ts_in_usecs = spec
            .keys
            .iter()
            .chain(&spec.vals)
            .chain(spec.vars.iter().flat_map(|v| v.expr.fields()))
            .any(|f| f.name == "common_timestamp" && f.modifier == Some("usecs"));
        check_handler_vars(&spec.vars, &spec.actions, &err_at)?;
        spec.sort = parse_sort(&ctx, sort_str, &spec)?;
        let filter = match filter_part {
            Some(f) => parse_if(Some(f), fields)?,
            None => None,
        };
        spec.paused = spec.pause;
        Ok(Trigger {
            action: Action::Hist(Box::new(spec)),
            count: -1,
            filter,
        })
    }
}

fn parse_map_size(v: &str) -> Result<u8, TriggerError> {
    let size = filter::parse_u64(v).ok_or(TriggerError::Invalid("hist: bad size"))?;
    // Sizes above 2^63 have no power of two to round up to (found by fuzzing: it overflowed).
    let bits = size
        .max(1)
        .checked_next_power_of_two()
        .map_or(u32::MAX, u64::trailing_zeros);
    if bits < u32::from(HIST_BITS_MIN) || bits > u32::from(HIST_BITS_MAX) {
        return Err(TriggerError::Invalid("hist: size out of range"));
    }
    Ok(bits as u8)
}

/// One key or value: `field[.modifier]`, validated against the event's fields.
fn hist_field(
    ctx: &HistCtx,
    text: &str,
    fields: &[Field<'_>],
    is_key: bool,
    legacy: bool,
) -> Result<HistField, TriggerError> {
    if text.is_empty() {
        return Err(TriggerError::Invalid("hist: empty field"));
    }
    if is_key && matches!(text, "stacktrace" | "common_stacktrace") {
        return Ok(HistField {
            name: "common_stacktrace".to_owned(),
            modifier: None,
            buckets: None,
            signed: false,
            string: false,
        });
    }
    // 6.1 puts the caret of a bad modifier under the field, later kernels under the modifier.
    let bad_modifier = |m: &str| ctx.err("Invalid field modifier", if legacy { text } else { m });
    // `sym-offset` contains a '-', so split at the first '.' only.
    let (name, modifier) = match text.split_once('.') {
        Some((n, m)) => (n, Some(m)),
        None => (text, None),
    };
    let mut buckets = None;
    let modifier = match modifier {
        None => None,
        Some(m) => Some(match m {
            "hex" => "hex",
            "sym" => "sym",
            "sym-offset" => "sym-offset",
            "execname" if name == "common_pid" => "execname",
            "syscall" => "syscall",
            "log2" => "log2",
            "usecs" => "usecs",
            "percent" | "graph" if !is_key && !legacy => {
                if m == "percent" {
                    "percent"
                } else {
                    "graph"
                }
            }
            m if m.starts_with("bucket") => {
                let n = m["bucket".len()..]
                    .strip_prefix('s')
                    .unwrap_or(&m["bucket".len()..]);
                let n = n
                    .strip_prefix('=')
                    .and_then(filter::parse_u64)
                    .filter(|&n| n != 0)
                    .ok_or_else(|| bad_modifier(m))?;
                buckets = Some(n);
                "buckets"
            }
            m => return Err(bad_modifier(m)),
        }),
    };
    let (name, signed, string) = match name {
        "common_timestamp" | "common_cpu" | "hitcount" => (name, false, false),
        "cpu" | "CPU" => ("common_cpu", false, false),
        "common_stacktrace" | "stacktrace" => ("common_stacktrace", false, false),
        _ => match format::find(fields, name) {
            Some(f) if f.size > 0 => (name, f.signed, format::is_string(f)),
            _ => return Err(ctx.err("Couldn't find field", name)),
        },
    };
    Ok(HistField {
        name: name.to_owned(),
        modifier,
        buckets,
        signed,
        string,
    })
}

fn parse_sort(
    ctx: &HistCtx,
    sort_str: Option<&str>,
    spec: &HistSpec,
) -> Result<Vec<SortKey>, TriggerError> {
    let Some(sort_str) = sort_str else {
        return Ok(vec![SortKey {
            field: SortField::Hitcount,
            descending: false,
        }]);
    };
    let items: Vec<&str> = sort_str.split(',').collect();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item = trim_k(item);
        if item.is_empty() {
            return Err(ctx.err("Empty sort field", "sort="));
        }
        if i == HIST_SORT_KEYS_MAX - 1 && i + 1 < items.len() {
            return Err(ctx.err("Too many sort fields (Max = 2)", "sort="));
        }
        let (name, modifier) = match item.split_once('.') {
            Some((n, m)) => (n, Some(m)),
            None => (item, None),
        };
        if name.is_empty() {
            return Err(ctx.err("Empty sort field", "sort="));
        }
        // The kernel looks the name up among the values first, then the keys.
        let field = if name == "hitcount" {
            SortField::Hitcount
        } else if let Some(v) = spec.vals.iter().position(|v| v.name == name) {
            SortField::Val(v)
        } else if let Some(k) = spec.keys.iter().position(|k| k.name == name) {
            SortField::Key(k)
        } else {
            return Err(ctx.err("Sort field must be a key or a val", name));
        };
        let descending = match modifier {
            None | Some("ascending") => false,
            Some("descending") => true,
            Some(m) => return Err(ctx.err("Invalid sort modifier", m)),
        };
        out.push(SortKey { field, descending });
    }
    Ok(out)
}

/// `$NAME` of a variable of the same trigger that holds one field is that field, in any
/// order of definition; other references stay, for the instance to resolve. A variable
/// defined earlier by an expression counts as its leftmost operand: 6.1 cuts the text of a
/// parsed expression at its operators, so `c=next_prio-1,d=$c` makes `d=next_prio`.
fn substitute_local_vars(vars: &mut [HistVar]) {
    let defined: Vec<(String, Expr)> = vars
        .iter()
        .map(|v| (v.name.clone(), v.expr.clone()))
        .collect();
    for (position, var) in vars.iter_mut().enumerate() {
        let local = |name: &str| {
            let at = defined.iter().position(|(n, _)| n == name)?;
            match &defined[at].1 {
                Expr::Field(f) => Some(f.clone()),
                Expr::Binary(..) if at < position => leftmost_field(&defined[at].1),
                _ => None,
            }
        };
        var.expr.substitute_local(&local);
    }
}

/// The first operand of an expression, if it is a field.
fn leftmost_field(expr: &Expr) -> Option<HistField> {
    match expr {
        Expr::Binary(_, a, _) => leftmost_field(a),
        Expr::Field(f) => Some(f.clone()),
        _ => None,
    }
}
