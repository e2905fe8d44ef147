//! The filter parser, in the kernel's two passes (bracket/quote scan, then predicate walk).

use crate::format::{self, Field};

use super::error::{FilterError, FilterErrorKind};
use super::eval::{Filter, Node, Op, Pred, Test, OPS};
use super::{errno, DEFAULT_NR_CPUS, MAX_FILTER_WRITE, MAX_NUMBER_OPERAND, MAX_STRING_OPERAND};

/// Parses a filter as written to an event's `filter` file (the raw write, trailing newline
/// allowed). `0` alone gives [`Filter::none`].
///
/// Besides the format's fields, the kernel's generic fields are accepted: `cpu`, `CPU`,
/// `common_cpu` (stored as `common_cpu`), `comm`, `COMM` (stored as `comm`, the current
/// task's name) and `stacktrace`, `STACKTRACE` (stored as `stacktrace`); like the kernel,
/// these names win over event fields of the same name. `field.function == sym` always
/// fails with "Function not found" because there is no symbol table to resolve against.
pub fn parse(text: &str, fields: &[Field<'_>]) -> Result<Filter, FilterError> {
    parse_with_nr_cpus(text, fields, DEFAULT_NR_CPUS)
}

/// [`parse`] with the CPU count used to validate `CPUS{...}` lists.
pub fn parse_with_nr_cpus(
    text: &str,
    fields: &[Field<'_>],
    nr_cpus: u32,
) -> Result<Filter, FilterError> {
    if text.len() > MAX_FILTER_WRITE {
        return Err(FilterError::new(FilterErrorKind::WriteTooLarge, 0, ""));
    }
    // The kernel works on a C string and strips trailing whitespace only.
    let text = text.split('\0').next().unwrap_or("");
    let stored = text.trim_end_matches(is_kspace_char);
    if stored.trim_start_matches(is_kspace_char) == "0" {
        return Ok(Filter::none());
    }
    let root = Parser {
        s: stored.as_bytes(),
        text: stored,
        fields,
        nr_cpus,
    }
    .run()?;
    Ok(Filter {
        text: Some(stored.to_owned()),
        root: Some(root),
    })
}

/// Parses a filter expression embedded in another command (a trigger's `if ...`): no
/// length limit, no trailing-space trimming and no special meaning for `0`, as in the
/// kernel's `create_event_filter`.
pub(crate) fn parse_expression(text: &str, fields: &[Field<'_>]) -> Result<Filter, FilterError> {
    let text = text.split('\0').next().unwrap_or("");
    let root = Parser {
        s: text.as_bytes(),
        text,
        fields,
        nr_cpus: DEFAULT_NR_CPUS,
    }
    .run()?;
    Ok(Filter {
        text: Some(text.to_owned()),
        root: Some(root),
    })
}

/// Parses `text` as written to a system's `filter` file, for one event of the system.
///
/// The kernel tries the text on every event of the system: where it parses, the event gets
/// that filter; where it does not, the event's filter is replaced by this error
/// ("Couldn't find or set field in one of a subsystem's events", caret at 0; see
/// [`FilterError::filter_file_text`]) and one `error_log` entry is written per such event.
/// The write itself succeeds (returns the byte count) whenever the system has events,
/// even if every event failed; `0` clears every event's filter.
pub fn parse_for_system(text: &str, fields: &[Field<'_>]) -> Result<Filter, FilterError> {
    parse(text, fields).map_err(|e| match e.kind {
        FilterErrorKind::WriteTooLarge => e,
        _ => FilterError::new(FilterErrorKind::BadSubsysFilter, 0, &e.text),
    })
}

/// True if a system filter `text` would be set on an event with these fields.
pub fn applies_to(text: &str, fields: &[Field<'_>]) -> bool {
    parse_for_system(text, fields).is_ok()
}

pub(super) fn is_kspace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

pub(crate) fn is_kspace_char(c: char) -> bool {
    c.is_ascii() && is_kspace(c as u8)
}

/// How a field takes part in filtering.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Number,
    Cpu,
    /// A string; `Some(n)` for fixed arrays of n bytes.
    Str(Option<u32>),
}

pub(super) struct FieldInfo<'a> {
    name: &'a str,
    kind: Kind,
    size: u32,
    signed: bool,
}

#[derive(Default)]
pub(super) struct Frame {
    invert: bool,
    ors: Vec<Node>,
    ands: Vec<Node>,
}

impl Frame {
    fn fold_ands(&mut self) {
        if let Some(n) = fold(std::mem::take(&mut self.ands), Node::And) {
            self.ors.push(n);
        }
    }

    fn finish(mut self) -> Option<Node> {
        self.fold_ands();
        let n = fold(self.ors, Node::Or)?;
        Some(if self.invert {
            Node::Not(Box::new(n))
        } else {
            n
        })
    }
}

pub(super) fn fold(nodes: Vec<Node>, join: fn(Box<Node>, Box<Node>) -> Node) -> Option<Node> {
    nodes
        .into_iter()
        .reduce(|a, b| join(Box::new(a), Box::new(b)))
}

pub(super) fn negate_if(n: Node, invert: bool) -> Node {
    if invert {
        Node::Not(Box::new(n))
    } else {
        n
    }
}

pub(super) struct Parser<'t, 'f, 'a> {
    s: &'t [u8],
    text: &'t str,
    fields: &'f [Field<'a>],
    nr_cpus: u32,
}

impl Parser<'_, '_, '_> {
    fn err(&self, kind: FilterErrorKind, pos: usize) -> FilterError {
        FilterError::new(kind, pos, self.text)
    }

    fn at(&self, i: usize) -> u8 {
        self.s.get(i).copied().unwrap_or(0)
    }

    fn run(&self) -> Result<Node, FilterError> {
        self.check_brackets()?;
        self.walk()
    }

    /// First pass: quotes and parentheses balance, and there is something to parse.
    fn check_brackets(&self) -> Result<(), FilterError> {
        use FilterErrorKind::*;
        let s = self.s;
        let mut open = 1usize;
        let mut quote = 0u8;
        let mut last_quote = 0;
        let mut preds = 0;
        let mut in_pred = false;
        let mut i = 0;
        while i < s.len() {
            let c = s[i];
            i += 1;
            if is_kspace(c) {
                continue;
            }
            if quote != 0 {
                if c == quote {
                    quote = 0;
                }
                continue;
            }
            match c {
                b'\'' | b'"' => {
                    quote = c;
                    last_quote = i - 1;
                }
                b'|' | b'&' if self.at(i) == c => {
                    in_pred = false;
                    continue;
                }
                b'(' => {
                    in_pred = false;
                    open += 1;
                    continue;
                }
                b')' => {
                    in_pred = false;
                    if open == 1 {
                        return Err(self.err(TooManyClose, i - 1));
                    }
                    open -= 1;
                    continue;
                }
                _ => {}
            }
            if !in_pred {
                preds += 1;
                in_pred = true;
            }
        }
        if quote != 0 {
            return Err(self.err(MissingQuote, last_quote));
        }
        if open != 1 {
            // Blame the '(' whose ')' is missing: scan back, the kernel never looks at
            // byte 0 and blames it by default.
            let mut level = open;
            let mut quote = 0u8;
            let mut j = s.len().saturating_sub(1);
            while j > 0 {
                let c = s[j];
                if quote != 0 {
                    if c == quote {
                        quote = 0;
                    }
                } else {
                    match c {
                        b'(' => {
                            if level == open {
                                return Err(self.err(TooManyOpen, j));
                            }
                            level -= 1;
                        }
                        b')' => level += 1,
                        b'\'' | b'"' => quote = c,
                        _ => {}
                    }
                }
                j -= 1;
            }
            return Err(self.err(TooManyOpen, 0));
        }
        if preds == 0 {
            return Err(self.err(Errno(errno::EINVAL), 0));
        }
        Ok(())
    }

    /// Second pass: predicates joined by `&&`/`||`, with `!` and parentheses.
    fn walk(&self) -> Result<Node, FilterError> {
        use FilterErrorKind::*;
        let s = self.s;
        let mut stack = vec![Frame::default()];
        let mut invert = false;
        let mut count = 0usize;
        let mut p = 0;
        'outer: while p < s.len() {
            let start = p;
            p += 1;
            match s[start] {
                c if is_kspace(c) => continue,
                b'(' => {
                    stack.push(Frame {
                        invert,
                        ..Frame::default()
                    });
                    invert = false;
                    continue;
                }
                // `!=` and `!~` are not negations (and then fail as predicates).
                b'!' if !matches!(self.at(start + 1), b'=' | b'~') => {
                    invert = !invert;
                    continue;
                }
                _ => {}
            }
            let (pred, end) = self.parse_pred(start)?;
            let top = stack.last_mut().expect("base frame");
            top.ands.push(negate_if(Node::Pred(pred), invert));
            invert = false;
            count += 1;
            p = end;
            loop {
                let next = p;
                let c = self.at(next);
                p += 1;
                if is_kspace(c) {
                    continue;
                }
                match c {
                    b')' | 0 => {}
                    b'&' | b'|' if self.at(next + 1) == c => p += 1,
                    _ => return Err(self.err(TooManyPreds, next)),
                }
                let top = stack.last_mut().expect("base frame");
                match c {
                    b'&' => continue 'outer,
                    b'|' => {
                        top.fold_ands();
                        continue 'outer;
                    }
                    0 => break 'outer,
                    _ => {}
                }
                if stack.len() == 1 {
                    return Err(self.err(TooManyClose, p));
                }
                let frame = stack.pop().expect("checked");
                let node = frame.finish().ok_or_else(|| self.err(NoFilter, p))?;
                stack.last_mut().expect("base frame").ands.push(node);
            }
        }
        if stack.len() != 1 {
            return Err(self.err(TooManyOpen, p));
        }
        if count == 0 {
            return Err(self.err(NoFilter, p));
        }
        let base = stack.pop().expect("base frame");
        base.finish().ok_or_else(|| self.err(NoFilter, p))
    }

    fn lookup(&self, name: &str) -> Option<FieldInfo<'static>> {
        let generic = |name, kind, size, signed| FieldInfo {
            name,
            kind,
            size,
            signed,
        };
        Some(match name {
            "CPU" | "cpu" | "common_cpu" => generic("common_cpu", Kind::Cpu, 4, true),
            "COMM" | "comm" => generic("comm", Kind::Str(Some(16)), 16, false),
            "STACKTRACE" | "stacktrace" => generic("stacktrace", Kind::Number, 8, false),
            _ => return None,
        })
    }

    /// Parses one predicate starting at byte `start`; returns it and the end offset.
    ///
    /// The kernel reports positions inside a predicate one byte to the right (it passes
    /// the offset of the byte after the predicate's first one), so `pos` adds 1.
    fn parse_pred(&self, start: usize) -> Result<(Pred, usize), FilterError> {
        use FilterErrorKind::*;
        let s = self.s;
        let pos = |i: usize| i + 1;
        let mut i = start;
        let name_start = i;
        while s
            .get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            i += 1;
        }
        if i == name_start {
            // The kernel returns -1 here without a reason: EPERM, "Error: (0)".
            return Err(self.err(Errno(errno::EPERM), 0));
        }
        let name = &self.text[name_start..i];
        let mut function = false;
        if s[i..].starts_with(b".function") {
            function = true;
            i += ".function".len();
        }
        let info = match self.lookup(name) {
            Some(g) => g,
            None => {
                let f = format::find(self.fields, name)
                    .ok_or_else(|| self.err(FieldNotFound, pos(i)))?;
                let kind = if format::is_string(f) {
                    // Only fixed arrays have a length to stop at.
                    let fixed = f.array_len.filter(|&n| n > 0 && !f.ty.contains("__"));
                    Kind::Str(fixed.map(|_| f.size))
                } else {
                    Kind::Number
                };
                FieldInfo {
                    name: "",
                    kind,
                    size: f.size,
                    signed: f.signed,
                }
            }
        };
        let field_name: Box<str> = if info.name.is_empty() {
            name.into()
        } else {
            info.name.into()
        };
        while is_kspace(self.at(i)) {
            i += 1;
        }
        let op = OPS
            .iter()
            .find(|(t, _)| s[i..].starts_with(t.as_bytes()))
            .map(|&(_, op)| op)
            .ok_or_else(|| self.err(InvalidOp, pos(i)))?;
        i += OPS
            .iter()
            .find(|(_, o)| *o == op)
            .map_or(0, |(t, _)| t.len());
        while is_kspace(self.at(i)) {
            i += 1;
        }
        let c = self.at(i);
        let is_str = matches!(info.kind, Kind::Str(_));

        if function {
            if !matches!(op, Op::Eq | Op::Ne) {
                return Err(self.err(InvalidOp, pos(i)));
            }
            if info.size != 8 || is_str {
                return Err(self.err(IllegalFieldOp, pos(i)));
            }
            while i < s.len() && !is_kspace(s[i]) {
                i += 1;
            }
            return Err(self.err(NoFunction, pos(i)));
        }

        let test = if s[i..].starts_with(b"CPUS") {
            if is_str || !matches!(op, Op::Eq | Op::Ne | Op::BAnd) {
                return Err(self.err(IllegalFieldOp, pos(i)));
            }
            i += 4;
            let brace = self.at(i);
            i += 1;
            if brace != b'{' {
                return Err(self.err(MissingBraceOpen, pos(i)));
            }
            let list_start = i;
            while i < s.len() && s[i] != b'}' {
                i += 1;
            }
            if i >= s.len() {
                return Err(self.err(MissingBraceClose, pos(i)));
            }
            let mask = Some(&self.text[list_start..i])
                .filter(|l| !l.is_empty())
                .and_then(|l| parse_cpulist(l, self.nr_cpus))
                .ok_or_else(|| self.err(InvalidCpulist, pos(i)))?;
            i += 1;
            Test::Cpus { op, mask }
        } else if c == b'"' || c == b'\'' {
            if !is_str {
                return Err(self.err(ExpectDigit, pos(i)));
            }
            if !matches!(op, Op::Eq | Op::Ne | Op::Glob) {
                return Err(self.err(IllegalFieldOp, pos(i)));
            }
            i += 1;
            let body = i;
            while i < s.len() && s[i] != c {
                i += 1;
            }
            if i >= s.len() {
                return Err(self.err(MissingQuote, pos(i)));
            }
            if i - body > MAX_STRING_OPERAND {
                return Err(self.err(OperandTooLong, pos(i)));
            }
            let mut pattern = &self.text[body..i];
            i += 1;
            let mut negate = false;
            if op == Op::Glob {
                if let Some(rest) = pattern.strip_prefix('!') {
                    negate = true;
                    pattern = rest;
                }
            }
            let max_len = match info.kind {
                Kind::Str(n) => n,
                _ => None,
            };
            Test::Str {
                op,
                pattern: pattern.into(),
                negate,
                max_len,
            }
        } else if c.is_ascii_digit() || c == b'-' {
            if is_str {
                return Err(self.err(ExpectString, pos(i)));
            }
            if op == Op::Glob {
                return Err(self.err(IllegalFieldOp, pos(i)));
            }
            let num_start = i;
            if c == b'-' {
                i += 1;
            }
            while s.get(i).is_some_and(u8::is_ascii_alphanumeric) {
                i += 1;
            }
            if i - num_start > MAX_NUMBER_OPERAND {
                return Err(self.err(OperandTooLong, pos(i)));
            }
            let num = &self.text[num_start..i];
            let val = if info.signed {
                parse_i64(num).map(|v| v as u64)
            } else {
                parse_u64(num)
            }
            .ok_or_else(|| self.err(IllegalIntval, pos(num_start)))?;
            let size = match info.size {
                1 | 2 | 4 | 8 => info.size as u8,
                // Arrays and odd sizes: compare as a 64-bit word.
                _ => 8,
            };
            Test::Num {
                op,
                val,
                size,
                signed: info.signed,
            }
        } else {
            return Err(self.err(InvalidValue, pos(i)));
        };
        Ok((
            Pred {
                field: field_name,
                test,
            },
            i,
        ))
    }
}

/// `kstrtoull(s, 0)`: decimal, `0x` hex or leading-`0` octal, no sign.
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.bytes().all(|b| (b as char).is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// `kstrtoll(s, 0)`: [`parse_u64`] with an optional leading `-`, range-checked.
pub(super) fn parse_i64(s: &str) -> Option<i64> {
    match s.strip_prefix('-') {
        Some(rest) => {
            let v = parse_u64(rest)?;
            if v > 1 << 63 {
                None
            } else {
                Some((v as i64).wrapping_neg())
            }
        }
        None => i64::try_from(parse_u64(s)?).ok(),
    }
}

/// `cpulist_parse`: `N`, `A-B`, `A-B:used/group`, comma separated; `all` and the `N`
/// keyword (last CPU) as in the kernel. Every CPU must be below `nr_cpus`.
pub(super) fn parse_cpulist(list: &str, nr_cpus: u32) -> Option<Box<[u64]>> {
    let nr = nr_cpus.max(1);
    let mut mask = vec![0u64; nr.div_ceil(64) as usize];
    let num = |t: &str| -> Option<u32> {
        if t == "N" {
            return Some(nr - 1);
        }
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    for group in list.split(',') {
        // The kernel skips blanks and empty groups (`0,,1` and `{ 0}` are accepted).
        let group = group.trim_matches(is_kspace_char);
        if group.is_empty() {
            continue;
        }
        let (range, stride) = match group.split_once(':') {
            Some((r, st)) => {
                let (used, size) = st.split_once('/')?;
                let (used, size) = (num(used)?, num(size)?);
                if used == 0 || size == 0 || used > size {
                    return None;
                }
                (r, Some((used, size)))
            }
            None => (group, None),
        };
        let (lo, hi) = if range == "all" {
            (0, nr - 1)
        } else if let Some((a, b)) = range.split_once('-') {
            (num(a)?, num(b)?)
        } else {
            let v = num(range)?;
            if stride.is_some() {
                return None;
            }
            (v, v)
        };
        if lo > hi || hi >= nr {
            return None;
        }
        let (used, size) = stride.unwrap_or((1, 1));
        for cpu in lo..=hi {
            if (cpu - lo) % size < used {
                mask[(cpu / 64) as usize] |= 1 << (cpu % 64);
            }
        }
    }
    Some(mask.into_boxed_slice())
}
