//! A parsed filter: its expression tree and how it is evaluated on a record's values.

use std::fmt;

use super::Value;

/// A parsed event filter (or the empty filter, shown as `none`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    pub(super) text: Option<String>,
    pub(super) root: Option<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Node {
    Pred(Pred),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pred {
    pub(super) field: Box<str>,
    pub(super) test: Test,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
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
pub(super) const OPS: [(&str, Op); 8] = [
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
pub(super) enum Test {
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

pub(super) fn eval<'v>(node: &Node, value_of: &dyn Fn(&str) -> Option<Value<'v>>) -> bool {
    match node {
        Node::Pred(p) => value_of(&p.field).is_some_and(|v| p.test.check(v)),
        Node::Not(a) => !eval(a, value_of),
        Node::And(a, b) => eval(a, value_of) && eval(b, value_of),
        Node::Or(a, b) => eval(a, value_of) || eval(b, value_of),
    }
}

/// Keeps the low `size` bytes and widens back, like the kernel's `(type)` casts.
pub(super) fn narrow(bits: u64, size: u8, signed: bool) -> i128 {
    let shift = 64 - 8 * u32::from(size);
    if signed {
        i128::from(((bits << shift) as i64) >> shift)
    } else {
        i128::from((bits << shift) >> shift)
    }
}

impl Test {
    pub(super) fn check(&self, v: Value<'_>) -> bool {
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

pub(super) enum ClassResult {
    Match(usize),
    NoMatch,
    Malformed,
}

/// Matches `c` against the class starting at `pat[start]` (just after `[`).
pub(super) fn class_match(pat: &[u8], start: usize, c: Option<u8>) -> ClassResult {
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
