//! The kernel's event filter language (`events/<sys>/<event>/filter`).
//!
//! The parser follows the kernel's own two passes (a bracket/quote scan, then a predicate
//! walk) so that error reasons, caret positions and errno values match what a 6.18 kernel
//! reports; the resulting [`Filter`] owns a small expression tree that can be evaluated on
//! synthetic records.

use std::fmt;

use crate::format::{self, Field};

/// errno values used by the control files (Linux numbering).
pub mod errno {
    /// Operation not permitted; the kernel leaks it for some filter syntax errors.
    pub const EPERM: i32 = 1;
    /// No such file or directory; the kernel returns it for an unclosed `(`.
    pub const ENOENT: i32 = 2;
    /// No such process; the kernel returns it for an unterminated quote.
    pub const ESRCH: i32 = 3;
    /// File exists.
    pub const EEXIST: i32 = 17;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// Numerical result out of range.
    pub const ERANGE: i32 = 34;
}

/// Longest write the kernel accepts on a `filter` file, in bytes (it rejects writes of a
/// page or more with EINVAL before parsing). Counts the trailing newline `echo` adds.
pub const MAX_FILTER_WRITE: usize = 4095;

/// Longest quoted string operand, in bytes; longer ones give "Operand too long".
pub const MAX_STRING_OPERAND: usize = 255;

/// Longest numeric operand, in bytes (the kernel's 24-byte number buffer).
pub const MAX_NUMBER_OPERAND: usize = 23;

/// CPU count assumed by [`parse`] when checking `CPUS{...}` lists.
pub const DEFAULT_NR_CPUS: u32 = 64;

/// What `cat` of a system `filter` file shows (the kernel never shows the system's text).
pub const SYSTEM_FILTER_TEXT: &str = "### global filter ###\n\
# Use this to set filters for multiple events.\n\
# Only events with the given fields will be affected.\n\
# If no events are modified, an error message will be displayed here\n";

/// Where [`FilterError::error_log_entry`] says the error came from.
const ERROR_LOG_LOCATION: &str = "event filter parse error";

/// A field value supplied to [`Filter::matches`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'v> {
    /// A signed number (only its low `size` bytes are compared, as the kernel does).
    Int(i64),
    /// An unsigned number.
    UInt(u64),
    /// A string field's contents, without the terminating NUL.
    Str(&'v str),
}

/// The reasons the kernel gives for a rejected filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FilterErrorKind {
    /// Unknown comparison operator.
    #[error("Invalid operator")]
    InvalidOp,
    /// A `(` was never closed.
    #[error("Too many '('")]
    TooManyOpen,
    /// A `)` has no matching `(`.
    #[error("Too few '('")]
    TooManyClose,
    /// A quoted string was not terminated.
    #[error("Missing matching quote")]
    MissingQuote,
    /// `CPUS` not followed by `{`.
    #[error("Missing '{{'")]
    MissingBraceOpen,
    /// `CPUS{` not closed.
    #[error("Missing '}}'")]
    MissingBraceClose,
    /// A string or number operand is too long.
    #[error("Operand too long")]
    OperandTooLong,
    /// A number was compared with a string field.
    #[error("Expecting string field")]
    ExpectString,
    /// A string was compared with a numeric field.
    #[error("Expecting numeric field")]
    ExpectDigit,
    /// The operator does not apply to this field type.
    #[error("Illegal operation for field type")]
    IllegalFieldOp,
    /// No such field in the event.
    #[error("Field not found")]
    FieldNotFound,
    /// The number does not parse for the field's signedness.
    #[error("Illegal integer value")]
    IllegalIntval,
    /// Per-event failure of a system filter.
    #[error("Couldn't find or set field in one of a subsystem's events")]
    BadSubsysFilter,
    /// Junk after a predicate (e.g. a single `&` or a second predicate without `&&`).
    #[error("Too many terms in predicate expression")]
    TooManyPreds,
    /// Bad `CPUS{...}` list.
    #[error("Invalid cpulist")]
    InvalidCpulist,
    /// The value is neither a number nor a quoted string.
    #[error("Invalid value (did you forget quotes)?")]
    InvalidValue,
    /// `field.function == name` with a name we cannot resolve.
    #[error("Function not found")]
    NoFunction,
    /// Only negations, nothing to filter on.
    #[error("No filter found")]
    NoFilter,
    /// A failure the kernel reports without a reason ("Error: (0)"); carries the errno.
    #[error("Error")]
    Errno(i32),
    /// The write was a page or larger; rejected before parsing, nothing is logged.
    #[error("Filter too long")]
    WriteTooLarge,
}

/// A rejected filter: the kernel's reason, caret position and the text as stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (at byte {pos})")]
pub struct FilterError {
    kind: FilterErrorKind,
    pos: usize,
    text: String,
}

impl FilterError {
    fn new(kind: FilterErrorKind, pos: usize, text: &str) -> Self {
        Self {
            kind,
            pos,
            text: text.to_owned(),
        }
    }

    /// The reason.
    pub fn kind(&self) -> FilterErrorKind {
        self.kind
    }

    /// Caret position as the kernel logs it (a byte offset; it may point one past the
    /// end, as the kernel's does).
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The filter text as the kernel stored it (trailing whitespace removed).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The kernel's reason string, e.g. `Field not found`.
    pub fn reason(&self) -> String {
        self.kind.to_string()
    }

    /// errno the write fails with (the kernel is not always EINVAL here).
    pub fn errno(&self) -> i32 {
        use FilterErrorKind::*;
        match self.kind {
            TooManyOpen => errno::ENOENT,
            TooManyClose | TooManyPreds => errno::EPERM,
            MissingQuote => errno::ESRCH,
            Errno(e) => e,
            _ => errno::EINVAL,
        }
    }

    /// Whether the kernel replaced the event's filter with this error (it does for every
    /// parse error: the event becomes unfiltered and `cat filter` shows the error).
    pub fn replaces_filter(&self) -> bool {
        self.kind != FilterErrorKind::WriteTooLarge
    }

    /// What `cat filter` shows after this error, or `None` if the old filter stays.
    pub fn filter_file_text(&self) -> Option<String> {
        if !self.replaces_filter() {
            return None;
        }
        Some(match self.kind {
            FilterErrorKind::Errno(_) => format!("{}\nError: (0)\n\n", self.text),
            kind => {
                // The kernel clamps the caret to the end of the text in this view only.
                let col = self.pos.min(self.text.len());
                format!("{}\n{:col$}^\nparse_error: {kind}\n\n", self.text, "")
            }
        })
    }

    /// The entry the kernel appends to `error_log`, without the `[ seconds.micros] `
    /// timestamp prefix (the kernel prints it as `[{:>5}.{:06}] `). `None` when the kernel
    /// logs nothing.
    pub fn error_log_entry(&self) -> Option<String> {
        let (reason, pos) = match self.kind {
            FilterErrorKind::WriteTooLarge => return None,
            FilterErrorKind::Errno(_) => ("Error".to_owned(), 0),
            kind => (kind.to_string(), self.pos),
        };
        Some(render_error_log(
            ERROR_LOG_LOCATION,
            &reason,
            &self.text,
            pos,
        ))
    }
}

/// Renders one `error_log` entry (without timestamp) the way `tracing_log_err` does.
pub(crate) fn render_error_log(location: &str, reason: &str, command: &str, pos: usize) -> String {
    // "  Command: " is 11 columns wide; the caret is placed under byte `pos` of the command.
    let col = pos + 11;
    format!(
        "{location}: error: {reason}\n  Command: {command}\n{:col$}^\n",
        ""
    )
}

/// A parsed event filter (or the empty filter, shown as `none`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    text: Option<String>,
    root: Option<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Pred(Pred),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pred {
    field: Box<str>,
    test: Test,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    BAnd,
    Glob,
}

// Longest first so that `<=` wins over `<`.
const OPS: [(&str, Op); 8] = [
    ("==", Op::Eq),
    ("!=", Op::Ne),
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("<", Op::Lt),
    (">", Op::Gt),
    ("&", Op::BAnd),
    ("~", Op::Glob),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    Num {
        op: Op,
        val: u64,
        size: u8,
        signed: bool,
    },
    Str {
        op: Op,
        pattern: Box<str>,
        /// `~ "!pat"` negates the glob.
        negate: bool,
        /// Fixed char arrays compare at most this many bytes.
        max_len: Option<u32>,
    },
    Cpus {
        op: Op,
        mask: Box<[u64]>,
    },
}

impl Filter {
    /// The empty filter: matches everything, shown as `none`.
    pub fn none() -> Self {
        Self::default()
    }

    /// True for the empty filter.
    pub fn is_none(&self) -> bool {
        self.root.is_none()
    }

    /// The text as written (trailing whitespace removed), `None` for the empty filter.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// What `cat filter` shows.
    pub fn filter_file_text(&self) -> String {
        format!("{self}\n")
    }

    /// Names of the fields the filter reads (canonical names, see [`parse`]), in order,
    /// possibly repeated.
    pub fn field_names(&self) -> Vec<&str> {
        fn walk<'a>(n: &'a Node, out: &mut Vec<&'a str>) {
            match n {
                Node::Pred(p) => out.push(&p.field),
                Node::Not(a) => walk(a, out),
                Node::And(a, b) | Node::Or(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
            }
        }
        let mut out = Vec::new();
        if let Some(root) = &self.root {
            walk(root, &mut out);
        }
        out
    }

    /// Evaluates the filter on a record. `value_of` gets a field name and returns its
    /// value; a predicate on a missing field, or on a value of the wrong kind, is false.
    pub fn matches<'v>(&self, value_of: &dyn Fn(&str) -> Option<Value<'v>>) -> bool {
        self.root.as_ref().is_none_or(|n| eval(n, value_of))
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text.as_deref().unwrap_or("none"))
    }
}

fn eval<'v>(node: &Node, value_of: &dyn Fn(&str) -> Option<Value<'v>>) -> bool {
    match node {
        Node::Pred(p) => value_of(&p.field).is_some_and(|v| p.test.check(v)),
        Node::Not(a) => !eval(a, value_of),
        Node::And(a, b) => eval(a, value_of) && eval(b, value_of),
        Node::Or(a, b) => eval(a, value_of) || eval(b, value_of),
    }
}

/// Keeps the low `size` bytes and widens back, like the kernel's `(type)` casts.
fn narrow(bits: u64, size: u8, signed: bool) -> i128 {
    let shift = 64 - 8 * u32::from(size);
    if signed {
        i128::from(((bits << shift) as i64) >> shift)
    } else {
        i128::from((bits << shift) >> shift)
    }
}

impl Test {
    fn check(&self, v: Value<'_>) -> bool {
        match self {
            Test::Num {
                op,
                val,
                size,
                signed,
            } => {
                let bits = match v {
                    Value::Int(i) => i as u64,
                    Value::UInt(u) => u,
                    Value::Str(_) => return false,
                };
                let (a, b) = (narrow(bits, *size, *signed), narrow(*val, *size, *signed));
                match op {
                    Op::Eq => a == b,
                    Op::Ne => a != b,
                    Op::Lt => a < b,
                    Op::Le => a <= b,
                    Op::Gt => a > b,
                    Op::Ge => a >= b,
                    Op::BAnd => (bits & val) << (64 - 8 * u32::from(*size)) != 0,
                    Op::Glob => false,
                }
            }
            Test::Str {
                op,
                pattern,
                negate,
                max_len,
            } => {
                let Value::Str(s) = v else { return false };
                let mut s = s.as_bytes();
                let mut p = pattern.as_bytes();
                if let Some(n) = max_len.map(|n| n as usize) {
                    // strncmp-like: a fixed array stops at its size or its first NUL.
                    s = &s[..s.len().min(n)];
                    if *op != Op::Glob {
                        p = &p[..p.len().min(n)];
                    }
                }
                if let Some(nul) = s.iter().position(|&c| c == 0) {
                    s = &s[..nul];
                }
                match op {
                    Op::Eq => s == p,
                    Op::Ne => s != p,
                    _ => glob_match(p, s) != *negate,
                }
            }
            Test::Cpus { op, mask } => {
                let cpu = match v {
                    Value::Int(i) if i >= 0 => i as u64,
                    Value::UInt(u) => u,
                    _ => return false,
                };
                let in_mask = usize::try_from(cpu)
                    .ok()
                    .and_then(|c| mask.get(c / 64).map(|w| w >> (c % 64) & 1 == 1))
                    .unwrap_or(false);
                let single = mask.iter().map(|w| w.count_ones()).sum::<u32>() == 1;
                match op {
                    Op::Eq => in_mask && single,
                    Op::Ne => !(in_mask && single),
                    _ => in_mask,
                }
            }
        }
    }
}

/// Shell-style glob as the kernel's `glob_match`: `*`, `?`, `[...]` classes with ranges and
/// `!` negation, `\` escapes; a malformed class makes its `[` literal.
pub fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    // Position after the last `*` and the text position it is being tried at.
    let mut star: Option<(usize, usize)> = None;
    loop {
        let c = s.get(i).copied();
        let step = match pat.get(p).copied() {
            None => {
                if c.is_none() {
                    return true;
                }
                None
            }
            Some(b'*') => {
                if p + 1 == pat.len() {
                    return true;
                }
                star = Some((p + 1, i));
                p += 1;
                continue;
            }
            Some(b'?') => c.map(|_| p + 1),
            Some(b'[') => match class_match(pat, p + 1, c) {
                ClassResult::Match(next) => Some(next),
                ClassResult::NoMatch => None,
                ClassResult::Malformed => (c == Some(b'[')).then_some(p + 1),
            },
            Some(b'\\') => {
                // A trailing backslash stands for itself.
                let (lit, next) = match pat.get(p + 1) {
                    Some(&d) => (d, p + 2),
                    None => (b'\\', p + 1),
                };
                (c == Some(lit)).then_some(next)
            }
            Some(d) => (c == Some(d)).then_some(p + 1),
        };
        match step {
            Some(next) => {
                p = next;
                i += 1;
            }
            None => match star {
                Some((sp, si)) if si < s.len() => {
                    star = Some((sp, si + 1));
                    p = sp;
                    i = si + 1;
                }
                _ => return false,
            },
        }
    }
}

enum ClassResult {
    Match(usize),
    NoMatch,
    Malformed,
}

/// Matches `c` against the class starting at `pat[start]` (just after `[`).
fn class_match(pat: &[u8], start: usize, c: Option<u8>) -> ClassResult {
    let inverted = pat.get(start) == Some(&b'!');
    let mut k = start + usize::from(inverted);
    let mut hit = false;
    let mut first = true;
    loop {
        let Some(&a) = pat.get(k) else {
            return ClassResult::Malformed;
        };
        // `]` right after `[` or `[!` is a member, not the end.
        if a == b']' && !first {
            k += 1;
            break;
        }
        first = false;
        let mut b = a;
        if pat.get(k + 1) == Some(&b'-') && pat.get(k + 2).is_some_and(|&x| x != b']') {
            b = pat[k + 2];
            k += 3;
        } else {
            k += 1;
        }
        if let Some(c) = c {
            hit |= a <= c && c <= b;
        }
    }
    match c {
        Some(_) if hit != inverted => ClassResult::Match(k),
        _ => ClassResult::NoMatch,
    }
}

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

fn is_kspace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

pub(crate) fn is_kspace_char(c: char) -> bool {
    c.is_ascii() && is_kspace(c as u8)
}

/// How a field takes part in filtering.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Cpu,
    /// A string; `Some(n)` for fixed arrays of n bytes.
    Str(Option<u32>),
}

struct FieldInfo<'a> {
    name: &'a str,
    kind: Kind,
    size: u32,
    signed: bool,
}

#[derive(Default)]
struct Frame {
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

fn fold(nodes: Vec<Node>, join: fn(Box<Node>, Box<Node>) -> Node) -> Option<Node> {
    nodes
        .into_iter()
        .reduce(|a, b| join(Box::new(a), Box::new(b)))
}

fn negate_if(n: Node, invert: bool) -> Node {
    if invert {
        Node::Not(Box::new(n))
    } else {
        n
    }
}

struct Parser<'t, 'f, 'a> {
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
fn parse_i64(s: &str) -> Option<i64> {
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
fn parse_cpulist(list: &str, nr_cpus: u32) -> Option<Box<[u64]>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{fields, testdata::*};
    use FilterErrorKind::*;

    fn sw() -> Vec<Field<'static>> {
        fields(SCHED_SWITCH).collect()
    }

    /// Parses against sched_switch and returns (kind, pos, errno).
    fn bad(text: &str) -> (FilterErrorKind, usize, i32) {
        let e = parse(text, &sw()).expect_err(text);
        (e.kind(), e.pos(), e.errno())
    }

    fn ok(text: &str) -> Filter {
        parse(text, &sw()).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn rec<'v>(pairs: &'v [(&'v str, Value<'v>)]) -> impl Fn(&str) -> Option<Value<'v>> + 'v {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    fn m(filter: &str, pairs: &[(&str, Value<'_>)]) -> bool {
        ok(filter).matches(&rec(pairs))
    }

    #[test]
    fn accepted_forms_keep_text() {
        for t in [
            "prev_pid == 0",
            "next_pid > 10 && prev_comm ~ \"sw*\"",
            "prev_pid == 0x10",
            "prev_pid == -5",
            "prev_pid != -0x10",
            "prev_pid == 0777",
            "prev_pid <= -9223372036854775808",
            "!prev_pid == 1",
            "!(prev_pid == 1)",
            "!!(prev_pid == 1)",
            "(((prev_pid==1)))",
            "prev_pid & 3",
            "prev_comm == 'sw'",
            "prev_comm ~ 'a\"'",
            "common_pid == 1",
            "cpu == 0",
            "CPU == 0",
            "common_cpu == 0",
            "comm == \"bash\"",
            "COMM ~ \"b*\"",
            "stacktrace == 1",
            "cpu & CPUS{0}",
            "cpu == CPUS{0-1}",
            "prev_pid & CPUS{0}",
            "prev_comm ~ \"\"",
            "prev_pid>=1",
            "prev_pid==1&&next_pid==2",
            "prev_pid == 1 && !(next_pid == 2 || prev_prio > 3)",
        ] {
            let f = ok(t);
            assert_eq!(f.text(), Some(t));
            assert_eq!(f.filter_file_text(), format!("{t}\n"));
        }
    }

    #[test]
    fn trailing_whitespace_stripped_leading_kept() {
        assert_eq!(ok("  prev_pid==1   \n").text(), Some("  prev_pid==1"));
        // A dangling && / || is ignored by the kernel.
        assert_eq!(ok("prev_pid == 1 &&").text(), Some("prev_pid == 1 &&"));
        assert_eq!(ok("prev_pid == 1 || \n").text(), Some("prev_pid == 1 ||"));
    }

    #[test]
    fn zero_clears() {
        for t in ["0", "0\n", " 0 "] {
            let f = ok(t);
            assert!(f.is_none());
            assert_eq!(f.filter_file_text(), "none\n");
            assert!(f.matches(&|_| None));
        }
    }

    #[test]
    fn errors_match_kernel() {
        // (input, reason, caret position as in error_log, errno) observed on 6.18.
        let cases: &[(&str, FilterErrorKind, usize, i32)] = &[
            ("prev_pid = 5", InvalidOp, 10, 22),
            ("foo == 1", FieldNotFound, 4, 22),
            ("  foo == 1", FieldNotFound, 6, 22),
            ("prev_pid", InvalidOp, 9, 22),
            ("prev_pid ==", InvalidValue, 12, 22),
            ("prev_pid == \n", InvalidValue, 12, 22),
            ("(prev_pid == 1", TooManyOpen, 0, 2),
            ("((prev_pid == 1)", TooManyOpen, 0, 2),
            ("prev_pid == 1 (", TooManyOpen, 14, 2),
            ("prev_pid == 1)", TooManyClose, 13, 1),
            ("(prev_pid == 1))", TooManyClose, 15, 1),
            (")(", TooManyClose, 0, 1),
            ("prev_pid ==1)(", TooManyClose, 12, 1),
            ("prev_pid ~ \"a*\"", ExpectDigit, 12, 22),
            ("prev_comm > \"a\"", IllegalFieldOp, 13, 22),
            ("prev_comm & 1", ExpectString, 13, 22),
            ("prev_comm == abc", InvalidValue, 14, 22),
            ("prev_comm == \"abc", MissingQuote, 13, 3),
            ("prev_comm ~ \"", MissingQuote, 12, 3),
            ("prev_pid == abc", InvalidValue, 13, 22),
            ("prev_pid == 1.5", TooManyPreds, 13, 1),
            ("prev_pid == \"5\"", ExpectDigit, 13, 22),
            ("prev_comm == 5", ExpectString, 14, 22),
            ("prev_pid == 1 prev_pid == 2", TooManyPreds, 14, 1),
            ("prev_pid == 1 | prev_pid == 2", TooManyPreds, 14, 1),
            ("prev_pid == 1 & prev_pid == 2", TooManyPreds, 14, 1),
            ("prev_comm ~ sw*", InvalidValue, 13, 22),
            ("prev_comm==sw", InvalidValue, 12, 22),
            ("prev_pid >= 18446744073709551615", IllegalIntval, 13, 22),
            ("prev_pid == 0b11", IllegalIntval, 13, 22),
            ("prev_pid == 08", IllegalIntval, 13, 22),
            ("prev_pid == 0x", IllegalIntval, 13, 22),
            ("common_type == -1", IllegalIntval, 16, 22),
            ("prev_pid ==   -", IllegalIntval, 15, 22),
            ("prev_pid == +5", InvalidValue, 13, 22),
            (
                "prev_pid == 123456789012345678901234",
                OperandTooLong,
                37,
                22,
            ),
            ("prev_pid == 12345678901234567890123", IllegalIntval, 13, 22),
            ("!", NoFilter, 1, 22),
            ("!!", NoFilter, 2, 22),
            ("()", Errno(22), 0, 22),
            ("   ", Errno(22), 0, 22),
            ("\n", Errno(22), 0, 22),
            ("== 5", Errno(1), 0, 1),
            ("&& prev_pid == 1", Errno(1), 0, 1),
            ("|| prev_pid == 1", Errno(1), 0, 1),
            ("prev_pid == 1 &&& prev_pid == 2", Errno(1), 0, 1),
            ("prev_pid == 1 && ()", Errno(1), 0, 1),
            ("comm == 5", ExpectString, 9, 22),
            ("COMM & 1", ExpectString, 8, 22),
            ("comm < \"a\"", IllegalFieldOp, 8, 22),
            ("cpu ~ \"x\"", ExpectDigit, 7, 22),
            ("stacktrace ~ \"x\"", ExpectDigit, 14, 22),
            ("stacktrace", InvalidOp, 11, 22),
            ("1 == prev_pid", FieldNotFound, 2, 22),
            ("prev_pid ! = 1", InvalidOp, 10, 22),
            ("prev_pid =~ 1", InvalidOp, 10, 22),
            ("prev_pid=<1", InvalidOp, 9, 22),
            ("prev_pid.hex == 1", InvalidOp, 9, 22),
            ("prev_pid.function == 1", IllegalFieldOp, 22, 22),
            ("prev_state.function < x", InvalidOp, 23, 22),
            ("prev_state.function == sym", NoFunction, 27, 22),
            ("cpu & CPUS{0-99}", InvalidCpulist, 16, 22),
            ("cpu < CPUS{0-1}", IllegalFieldOp, 7, 22),
            ("prev_comm & CPUS{0}", IllegalFieldOp, 13, 22),
            ("cpu & CPUS{0", MissingBraceClose, 13, 22),
            ("cpu & CPUS0", MissingBraceOpen, 12, 22),
            ("cpu & {0}", InvalidValue, 7, 22),
        ];
        for &(text, kind, pos, errno) in cases {
            assert_eq!(bad(text), (kind, pos, errno), "{text}");
        }
    }

    #[test]
    fn long_operands() {
        let ok_str = format!("prev_comm == \"{}\"", "a".repeat(255));
        ok(&ok_str);
        let long = format!("prev_comm == \"{}\"", "a".repeat(256));
        assert_eq!(bad(&long), (OperandTooLong, 271, 22));
        let mut big = String::from("prev_pid == 1");
        while big.len() + 17 <= MAX_FILTER_WRITE {
            big.push_str(" || prev_pid == 1");
        }
        while big.len() < MAX_FILTER_WRITE {
            big.push(' ');
        }
        ok(&big);
        big.push('\n');
        let e = parse(&big, &sw()).unwrap_err();
        assert_eq!((e.kind(), e.errno()), (WriteTooLarge, 22));
        assert_eq!(e.error_log_entry(), None);
        assert_eq!(e.filter_file_text(), None);
    }

    #[test]
    fn rendering_of_errors() {
        let e = parse("foo == 1\n", &sw()).unwrap_err();
        assert_eq!(
            e.error_log_entry().unwrap(),
            "event filter parse error: error: Field not found\n  Command: foo == 1\n               ^\n"
        );
        assert_eq!(
            e.filter_file_text().unwrap(),
            "foo == 1\n    ^\nparse_error: Field not found\n\n"
        );
        let e = parse("prev_pid = 5", &sw()).unwrap_err();
        assert_eq!(
            e.filter_file_text().unwrap(),
            "prev_pid = 5\n          ^\nparse_error: Invalid operator\n\n"
        );
        // The filter view clamps the caret to the text, error_log does not.
        let e = parse("prev_pid", &sw()).unwrap_err();
        assert_eq!(
            e.filter_file_text().unwrap(),
            "prev_pid\n        ^\nparse_error: Invalid operator\n\n"
        );
        assert!(e
            .error_log_entry()
            .unwrap()
            .ends_with(&format!("\n{}^\n", " ".repeat(20))));
        let e = parse("== 5", &sw()).unwrap_err();
        assert_eq!(e.filter_file_text().unwrap(), "== 5\nError: (0)\n\n");
        assert_eq!(
            e.error_log_entry().unwrap(),
            "event filter parse error: error: Error\n  Command: == 5\n           ^\n"
        );
        assert_eq!(e.reason(), "Error");
        assert_eq!(
            parse("(x", &sw()).unwrap_err().to_string(),
            "Too many '(' (at byte 0)"
        );
    }

    #[test]
    fn system_filters() {
        let hang: Vec<_> = fields(SCHED_PROCESS_HANG).collect();
        assert!(applies_to("prev_pid == 1", &sw()));
        assert!(!applies_to("prev_pid == 1", &hang));
        let e = parse_for_system("prev_pid == 1\n", &hang).unwrap_err();
        assert_eq!(
            e.filter_file_text().unwrap(),
            "prev_pid == 1\n^\nparse_error: Couldn't find or set field in one of a subsystem's events\n\n"
        );
        assert_eq!(
            e.error_log_entry().unwrap(),
            "event filter parse error: error: Couldn't find or set field in one of a subsystem's events\n  Command: prev_pid == 1\n           ^\n"
        );
        assert!(parse_for_system("0", &hang).unwrap().is_none());
        assert!(SYSTEM_FILTER_TEXT.ends_with("displayed here\n"));
    }

    #[test]
    fn numeric_signed_and_unsigned() {
        use Value::*;
        assert!(m("prev_pid == -5", &[("prev_pid", Int(-5))]));
        assert!(m("prev_pid < 0", &[("prev_pid", Int(-5))]));
        assert!(!m("prev_pid > 0", &[("prev_pid", Int(-5))]));
        // 32-bit signed field: 0xffffffff is -1.
        assert!(m("prev_pid == -1", &[("prev_pid", UInt(0xffff_ffff))]));
        assert!(m("prev_pid < 0", &[("prev_pid", UInt(0xffff_ffff))]));
        // Unsigned 2-byte field: comparisons are unsigned, constants truncated.
        let ct = |v| [("common_type", UInt(v))];
        assert!(m("common_type > 100", &ct(65535)));
        assert!(m("common_type == 65536", &ct(0)));
        assert!(m("common_type >= 0x10", &ct(16)));
        assert!(!m("common_type <= 15", &ct(16)));
        assert!(m("common_type != 3", &ct(4)));
        let ps = |v| [("prev_state", Int(v))];
        assert!(m("prev_state <= 0x7fffffffffffffff", &ps(i64::MAX)));
        assert!(m("prev_state >= -9223372036854775808", &ps(i64::MIN)));
        // Wrong kind or missing value never matches.
        assert!(!m("prev_pid == 1", &[("prev_pid", Str("1"))]));
        assert!(!m("prev_pid == 1", &[]));
        assert!(!m("prev_comm == \"a\"", &[("prev_comm", Int(1))]));
    }

    #[test]
    fn bit_test() {
        use Value::*;
        assert!(m("prev_state & 1", &[("prev_state", Int(3))]));
        assert!(!m("prev_state & 4", &[("prev_state", Int(3))]));
        assert!(m("prev_state & 0x80", &[("prev_state", Int(0x80))]));
        // Bits above the field's size do not count.
        assert!(!m(
            "common_type & 0x10000",
            &[("common_type", UInt(0x1_0000))]
        ));
        assert!(m("!(prev_state & 2)", &[("prev_state", Int(1))]));
    }

    #[test]
    fn strings_and_globs() {
        use Value::*;
        let c = |s| [("prev_comm", Str(s))];
        assert!(m("prev_comm == \"swapper/0\"", &c("swapper/0")));
        assert!(!m("prev_comm == \"swapper*\"", &c("swapper/0")));
        assert!(m("prev_comm != \"bash\"", &c("sh")));
        assert!(m("prev_comm ~ \"swapper*\"", &c("swapper/1")));
        assert!(m("prev_comm ~ \"*per/1\"", &c("swapper/1")));
        assert!(m("prev_comm ~ \"*app*\"", &c("swapper/1")));
        assert!(m("prev_comm ~ \"*\"", &c("")));
        assert!(m("prev_comm ~ \"\"", &c("")));
        assert!(!m("prev_comm ~ \"\"", &c("a")));
        assert!(m("prev_comm ~ \"sw?pper/[0-9]\"", &c("swapper/7")));
        assert!(!m("prev_comm ~ \"sw?pper/[0-6]\"", &c("swapper/7")));
        assert!(m("prev_comm ~ \"[!s]*\"", &c("bash")));
        assert!(!m("prev_comm ~ \"[!s]*\"", &c("sh")));
        assert!(m("prev_comm ~ \"!swapper*\"", &c("bash")));
        assert!(!m("prev_comm ~ \"!swapper*\"", &c("swapper/0")));
        assert!(m("prev_comm ~ \"swapper/\\0\"", &c("swapper/0")));
        assert!(m("prev_comm ~ \"*apper?[01]\"", &c("swapper/1")));
        assert!(m("prev_comm ~ 'a[b'", &c("a[b")));
        // char[16]: only 16 bytes take part.
        assert!(m(
            "prev_comm == \"0123456789abcdefXYZ\"",
            &c("0123456789abcdef")
        ));
        // __data_loc strings compare whole.
        let exec: Vec<_> = fields(SCHED_PROCESS_EXEC).collect();
        let f = parse("filename ~ \"/usr/*\"", &exec).unwrap();
        assert!(f.matches(&|n| (n == "filename").then_some(Str("/usr/bin/true"))));
        let f = parse("comm == \"bash\"", &exec).unwrap();
        assert!(f.matches(&|n| (n == "comm").then_some(Str("bash"))));
        assert_eq!(f.field_names(), ["comm"]);
    }

    #[test]
    fn glob_matcher() {
        let g = |p: &str, s: &str| glob_match(p.as_bytes(), s.as_bytes());
        assert!(g("a*b*c", "aXXbYYc"));
        assert!(!g("a*b*c", "aXXbYY"));
        assert!(g("*", ""));
        assert!(g("**", "abc"));
        assert!(!g("?", ""));
        assert!(g("[]a]", "]"));
        assert!(g("[!]a]", "b"));
        assert!(g("[a-]", "-"));
        assert!(g("[z-a]x", "zx") || !g("[z-a]x", "zx"));
        assert!(g("[abc", "[abc"));
        assert!(g("\\*", "*"));
        assert!(!g("\\*", "a"));
        assert!(g("a\\", "a\\"));
        assert!(g("*a*a*a*", "aaaa"));
        assert!(!g("*a*a*a*a*a", "aaaa"));
    }

    #[test]
    fn precedence_parens_and_not() {
        use Value::*;
        let v = |a, b, c| {
            [
                ("prev_pid", Int(a)),
                ("next_pid", Int(b)),
                ("prev_prio", Int(c)),
            ]
        };
        // && binds tighter than || (checked live).
        let f = "prev_pid == 1 || next_pid == 1 && prev_prio == 1";
        assert!(m(f, &v(1, 0, 0)));
        assert!(!m(f, &v(0, 1, 0)));
        assert!(m(f, &v(0, 1, 1)));
        let f = "next_pid == 1 && prev_prio == 1 || prev_pid == 1";
        assert!(m(f, &v(1, 0, 0)));
        let f = "(prev_pid == 1 || next_pid == 1) && prev_prio == 1";
        assert!(!m(f, &v(1, 0, 0)));
        assert!(m(f, &v(1, 0, 1)));
        assert!(m("!prev_pid == 1", &v(0, 0, 0)));
        assert!(!m("!prev_pid == 1", &v(1, 0, 0)));
        assert!(m("!prev_pid == 1 && next_pid == 2", &v(0, 2, 0)));
        assert!(!m("!prev_pid == 1 && next_pid == 2", &v(0, 3, 0)));
        let f = "!(prev_pid == 1 || next_pid == 1)";
        assert!(m(f, &v(0, 0, 0)));
        assert!(!m(f, &v(0, 1, 0)));
        assert!(m("!!(prev_pid == 1)", &v(1, 0, 0)));
        assert!(m("!(!prev_pid == 1)", &v(1, 0, 0)));
        let f = "prev_pid == 1 && !(next_pid == 2 || (prev_prio > 3 && !next_pid == 5))";
        assert!(m(f, &v(1, 5, 9)));
        assert!(!m(f, &v(1, 4, 9)));
        assert!(m("prev_pid == 1 &&", &v(1, 0, 0)));
    }

    #[test]
    fn cpus() {
        use Value::*;
        let c = |n| [("common_cpu", Int(n))];
        assert!(m("cpu & CPUS{1,3-5}", &c(4)));
        assert!(!m("cpu & CPUS{1,3-5}", &c(2)));
        assert!(m("CPU == CPUS{3}", &c(3)));
        assert!(!m("cpu == CPUS{3-4}", &c(3)));
        assert!(m("cpu != CPUS{3-4}", &c(3)));
        assert!(m("cpu & CPUS{0-7:1/4}", &c(4)));
        assert!(!m("cpu & CPUS{0-7:1/4}", &c(5)));
        assert!(m("cpu & CPUS{N}", &c(63)));
        assert!(m("common_cpu & CPUS{all}", &c(17)));
        assert!(m("cpu & CPUS{0,,1}", &c(1)));
        assert!(m("cpu & CPUS{ 0}", &c(0)));
        for bad_list in ["", "a", "1-", "3-1", "64", "1:1/2", "0-1:2/1"] {
            let t = format!("cpu & CPUS{{{bad_list}}}");
            assert_eq!(bad(&t).0, InvalidCpulist, "{t}");
        }
        let f = parse_with_nr_cpus("cpu & CPUS{0-3}", &sw(), 2).unwrap_err();
        assert_eq!((f.kind(), f.pos()), (InvalidCpulist, 15));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("0x1F"), Some(31));
        assert_eq!(parse_u64("010"), Some(8));
        assert_eq!(parse_u64("0"), Some(0));
        assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64("18446744073709551616"), None);
        assert_eq!(parse_u64("-1"), None);
        assert_eq!(parse_i64("-0x8000000000000000"), Some(i64::MIN));
        assert_eq!(parse_i64("-0x8000000000000001"), None);
        assert_eq!(parse_i64("9223372036854775808"), None);
        assert_eq!(parse_i64("-"), None);
        assert_eq!(parse_i64("-0"), Some(0));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = parse(&s, &sw());
            let _ = parse_for_system(&s, &sw());
        }

        #[test]
        fn never_panics_on_filter_alphabet(s in "[a-z_ ()!&|=<>~'\"0-9x{}CPUS,.*?\\[\\]-]{0,60}") {
            if let Ok(f) = parse(&s, &sw()) {
                let _ = f.matches(&|_| Some(Value::Int(1)));
                let _ = f.matches(&|_| Some(Value::Str("swapper")));
            } else if let Err(e) = parse(&s, &sw()) {
                let _ = e.error_log_entry();
                let _ = e.filter_file_text();
            }
        }

        #[test]
        fn glob_never_panics(p in "[a*?\\[\\]!\\\\-]{0,12}", s in "[a\\[\\]!-]{0,12}") {
            let _ = glob_match(p.as_bytes(), s.as_bytes());
        }
    }
}
