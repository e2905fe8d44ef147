//! ftrace's default text output: the `trace` header, each line's context columns, and an
//! interpreter for the `print fmt` of an event's `format` file.
//!
//! A print fmt is the C argument list the kernel passes to its printf when it formats an
//! event: a format string and expressions over `REC->field`. [`CompiledFmt::compile`] parses
//! it once into a small tree; [`CompiledFmt::render`] evaluates it per record with C's integer
//! semantics. When a print fmt uses something this interpreter does not know (or a record
//! makes evaluation fail), the whole event body is printed in the kernel's `fields` option
//! style instead (`name=value ...`) and the caller gets [`RenderOutcome::Fallback`].

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::format::{self, Field};
use crate::record::{self, FieldValue, Record, MARKER_SYMBOL};

/// How a record was rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderOutcome {
    /// The print fmt (or the event's special kernel output) was used.
    Rendered,
    /// The event body was printed in the `field=value` fallback style.
    Fallback,
}

/// The header of `cat trace` for a non-latency tracer (`nop` in an instance), exactly as
/// the kernel prints it: `entries` stored, `written` = stored + overwritten, `cpus` = `#P`.
pub fn trace_header(entries: usize, written: u64, cpus: u32, tracer: &str) -> String {
    format!(
        "# tracer: {tracer}\n\
         #\n\
         # entries-in-buffer/entries-written: {entries}/{written}   #P:{cpus}\n\
         #\n\
         #                                _-----=> irqs-off/BH-disabled\n\
         #                               / _----=> need-resched\n\
         #                              | / _---=> hardirq/softirq\n\
         #                              || / _--=> preempt-depth\n\
         #                              ||| / _-=> migrate-disable\n\
         #                              |||| /     delay\n\
         #           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n\
         #              | |         |   |||||     |         |\n"
    )
}

/// Writes a line's context columns, up to and including the `: ` after the timestamp:
/// `            bash-24238   [000] d.h1.  1667.168334: `.
pub fn render_context(rec: &Record, out: &mut String) {
    // The kernel shows the idle task as `<idle>` whatever its comm is.
    let comm: &str = if rec.pid == 0 { "<idle>" } else { &rec.comm };
    // ns2usecs rounds to the nearest microsecond before splitting seconds off.
    let usecs = rec.ts_ns.saturating_add(500) / 1000;
    let _ = write!(
        out,
        "{comm:>16}-{pid:<7} [{cpu:03}] ",
        pid = rec.pid,
        cpu = rec.cpu
    );
    push_lat_flags(rec.flags, rec.preempt_count, out);
    let _ = write!(out, " {:>5}.{:06}: ", usecs / 1_000_000, usecs % 1_000_000);
}

/// The five irq-info columns (`irqs-off`, `need-resched`, `hardirq/softirq`,
/// `preempt-depth`, `migrate-disable`) from `common_flags` and `common_preempt_count`.
fn push_lat_flags(flags: u8, pc: u8, out: &mut String) {
    use record::*;
    let has = |b: u8| flags & b != 0;
    out.push(match (has(FLAG_IRQS_OFF), has(FLAG_BH_OFF)) {
        (true, true) => 'D',
        (true, false) => 'd',
        (false, true) => 'b',
        (false, false) => '.',
    });
    out.push(
        match (
            has(FLAG_NEED_RESCHED),
            has(FLAG_NEED_RESCHED_LAZY),
            has(FLAG_PREEMPT_RESCHED),
        ) {
            (true, true, true) => 'B',
            (true, false, true) => 'N',
            (false, true, true) => 'L',
            (true, true, false) => 'b',
            (true, false, false) => 'n',
            (false, true, false) => 'l',
            (false, false, true) => 'p',
            (false, false, false) => '.',
        },
    );
    out.push(
        match (has(FLAG_NMI), has(FLAG_HARDIRQ), has(FLAG_SOFTIRQ)) {
            (true, true, _) => 'Z',
            (true, false, _) => 'z',
            (false, true, true) => 'H',
            (false, true, false) => 'h',
            (false, false, true) => 's',
            (false, false, false) => '.',
        },
    );
    let nibble = |n: u8| {
        if n == 0 {
            '.'
        } else {
            char::from_digit(u32::from(n), 16).unwrap_or('.')
        }
    };
    out.push(nibble(pc & 0xf));
    out.push(nibble(pc >> 4));
}

/// The print fmt of a `format` text, including continuation lines: a few print fmts
/// (ext4's) contain raw newlines inside their format string, which `format::print_fmt`
/// (first line only) cuts off.
pub fn print_fmt_text(format: &str) -> Option<&str> {
    let start = format.find("\nprint fmt: ")? + "\nprint fmt: ".len();
    Some(format[start..].trim_end_matches('\n'))
}

/// Renders one whole `trace` line (context, event body, newline) into `out`.
///
/// Compiles the print fmt on every call; the daemon should keep a [`CompiledFmt`] per
/// event instead.
pub fn render_line(
    rec: &Record,
    event_name: &str,
    print_fmt: &str,
    fields: &[Field<'_>],
    out: &mut String,
) -> RenderOutcome {
    CompiledFmt::for_event(event_name, print_fmt, fields).render_line(rec, out)
}

/// What the interpreter could not handle; kept so the daemon can log why an event falls
/// back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Unsupported(String);

fn unsupported<T>(why: impl Into<String>) -> Result<T, Unsupported> {
    Err(Unsupported(why.into()))
}

/// An owned copy of what rendering needs from a format field.
#[derive(Debug, Clone)]
struct FieldInfo {
    name: Box<str>,
    size: u32,
    signed: bool,
    common: bool,
    string: bool,
    pointer_string: bool,
    dynamic: bool,
    /// Element count for `name[N]` arrays (`Some(0)` for `name[]`).
    array_len: Option<u32>,
}

impl FieldInfo {
    fn new(f: &Field<'_>) -> Self {
        FieldInfo {
            name: f.name.into(),
            size: f.size,
            signed: f.signed,
            common: f.common,
            string: format::is_string(f),
            pointer_string: format::is_string(f) && f.ty.ends_with('*'),
            dynamic: f.ty.contains("__data_loc") || f.ty.contains("__rel_loc"),
            array_len: f.array_len,
        }
    }
}

/// An event's print fmt, parsed once and rendered many times.
#[derive(Debug, Clone)]
pub struct CompiledFmt {
    event_name: Box<str>,
    fields: Box<[FieldInfo]>,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    /// A print fmt the interpreter handles.
    Print { segs: Vec<Seg>, args: Vec<Expr> },
    /// `syscalls/sys_enter_*`: the kernel ignores the print fmt and prints
    /// `sys_name(arg: value, ...)`.
    SyscallEnter { name: Box<str>, args: Vec<usize> },
    /// `syscalls/sys_exit_*`: `sys_name -> 0xret`.
    SyscallExit { name: Box<str>, ret: usize },
    /// `ftrace/print` (`trace_marker` writes): `tracing_mark_write: text`.
    Marker { buf: usize },
    /// Everything goes through the `field=value` fallback.
    Fallback { reason: String },
}

impl CompiledFmt {
    /// Compiles a print fmt on its own (no event-specific output). The body is printed
    /// without an event-name prefix.
    pub fn compile(print_fmt: &str, fields: &[Field<'_>]) -> CompiledFmt {
        Self::for_event("", print_fmt, fields)
    }

    /// Compiles the output of event `event_name`: its print fmt, or the kernel's dedicated
    /// output for syscall events and `ftrace/print`.
    pub fn for_event(event_name: &str, print_fmt: &str, fields: &[Field<'_>]) -> CompiledFmt {
        let infos: Box<[FieldInfo]> = fields.iter().map(FieldInfo::new).collect();
        let body = special_body(event_name, &infos).unwrap_or_else(|| {
            match Parser::new(print_fmt, &infos).and_then(Parser::print_fmt) {
                Ok((segs, args)) => Body::Print { segs, args },
                Err(Unsupported(reason)) => Body::Fallback { reason },
            }
        });
        CompiledFmt {
            event_name: event_name.into(),
            fields: infos,
            body,
        }
    }

    /// True if every record of this event renders in the fallback style.
    pub fn is_fallback(&self) -> bool {
        matches!(self.body, Body::Fallback { .. })
    }

    /// Why the print fmt is not interpreted, for logs.
    pub fn fallback_reason(&self) -> Option<&str> {
        match &self.body {
            Body::Fallback { reason } => Some(reason),
            _ => None,
        }
    }

    /// Renders a whole `trace` line: context columns, body, newline.
    pub fn render_line(&self, rec: &Record, out: &mut String) -> RenderOutcome {
        render_context(rec, out);
        let outcome = self.render(rec, out);
        out.push('\n');
        outcome
    }

    /// Renders the part of a line after the timestamp's `: ` (for ordinary events,
    /// `<event>: <print fmt output>`), without the newline.
    pub fn render(&self, rec: &Record, out: &mut String) -> RenderOutcome {
        let start = out.len();
        let ok = match &self.body {
            Body::Print { segs, args } => {
                if !self.event_name.is_empty() {
                    out.push_str(&self.event_name);
                    out.push_str(": ");
                }
                self.render_print(segs, args, rec, out).is_ok()
            }
            Body::SyscallEnter { name, args } => {
                out.push_str(name);
                out.push('(');
                for (i, &idx) in args.iter().enumerate() {
                    let v = self.raw_bits(rec, idx);
                    let sep = if i == 0 { "" } else { ", " };
                    // Small values read better in decimal; the kernel switches at 10.
                    if v < 10 {
                        let _ = write!(out, "{sep}{}: {v}", self.fields[idx].name);
                    } else {
                        let _ = write!(out, "{sep}{}: 0x{v:x}", self.fields[idx].name);
                    }
                }
                out.push(')');
                true
            }
            Body::SyscallExit { name, ret } => {
                let _ = write!(out, "{name} -> 0x{:x}", self.raw_bits(rec, *ret));
                true
            }
            Body::Marker { buf } => match rec.fields.get(*buf) {
                Some(FieldValue::Str(s)) => {
                    let _ = write!(out, "{MARKER_SYMBOL}: {s}");
                    true
                }
                _ => false,
            },
            Body::Fallback { .. } => false,
        };
        if ok {
            return RenderOutcome::Rendered;
        }
        out.truncate(start);
        self.render_fields(rec, out);
        RenderOutcome::Fallback
    }

    /// Integer value of a field as the kernel's raw 64-bit slot, with a stable fake address
    /// for string values (syscall pointer arguments).
    fn raw_bits(&self, rec: &Record, idx: usize) -> u64 {
        match rec.fields.get(idx) {
            Some(FieldValue::Int(i)) => *i as u64,
            Some(FieldValue::UInt(u)) => *u,
            Some(FieldValue::Str(s)) => fake_address(s.as_bytes(), 0x5555_0000_0000),
            Some(FieldValue::Bytes(b)) => fake_address(b, 0x5555_0000_0000),
            None => 0,
        }
    }

    fn render_print<'a>(
        &'a self,
        segs: &'a [Seg],
        args: &'a [Expr],
        rec: &'a Record,
        out: &mut String,
    ) -> Result<(), EvalError> {
        let ctx = Ctx {
            rec: Some(rec),
            fields: &self.fields,
        };
        for seg in segs {
            match seg {
                Seg::Lit(s) => out.push_str(s),
                Seg::Conv { spec, arg } => {
                    let width = match spec.width {
                        Count::None => None,
                        Count::Fixed(n) => Some(n),
                        // A negative `*` width means left-justify, as in C.
                        Count::Arg(i) => Some(ctx.eval(&args[i])?.int()?.bits as i32 as i64),
                    };
                    let prec = match spec.prec {
                        Count::None => None,
                        Count::Fixed(n) => Some(n),
                        Count::Arg(i) => {
                            let p = ctx.eval(&args[i])?.int()?.bits as i32;
                            (p >= 0).then_some(i64::from(p))
                        }
                    };
                    let mut spec = spec.clone();
                    if let Some(w) = width {
                        if w < 0 {
                            spec.left = true;
                        }
                        spec.width = Count::Fixed(w.abs());
                    }
                    spec.prec = prec.map_or(Count::None, Count::Fixed);
                    let v = ctx.eval(&args[*arg])?;
                    format_conv(&spec, &v, out)?;
                }
            }
        }
        Ok(())
    }

    /// The kernel's `fields` option output: ` name=value` for every non-common field.
    fn render_fields(&self, rec: &Record, out: &mut String) {
        out.push_str(&self.event_name);
        out.push(':');
        for (i, f) in self.fields.iter().enumerate() {
            if f.common {
                continue;
            }
            let _ = write!(out, " {}=", f.name);
            match rec.fields.get(i) {
                None => out.push_str("<OVERFLOW>"),
                Some(FieldValue::Str(s)) if f.pointer_string => {
                    let addr = 0xffff_8881_0000_0000_u64 + u64::from(i as u32) * 8;
                    let _ = write!(out, "(0x{addr:016x}:{s})");
                }
                Some(FieldValue::Str(s)) => out.push_str(s),
                Some(FieldValue::Bytes(b)) if f.dynamic => {
                    out.push_str("ARRAY[");
                    for (j, byte) in b.iter().enumerate() {
                        let sep = if j == 0 { "" } else { ", " };
                        let _ = write!(out, "{sep}{byte:02x}");
                    }
                    out.push(']');
                }
                Some(v) => {
                    let bits = match v {
                        FieldValue::Int(x) => *x as u64,
                        FieldValue::UInt(x) => *x,
                        FieldValue::Bytes(b) => {
                            let mut le = [0u8; 8];
                            let n = b.len().min(8);
                            le[..n].copy_from_slice(&b[..n]);
                            u64::from_le_bytes(le)
                        }
                        FieldValue::Str(_) => 0,
                    };
                    match f.size {
                        1 => {
                            let c = bits as u8;
                            if c.is_ascii_graphic() || c == b' ' {
                                let _ = write!(out, "'{}'", char::from(c));
                            } else {
                                let _ = write!(out, "({c})");
                            }
                        }
                        2 => {
                            let _ = write!(out, "0x{:x} ({})", bits as u16, bits as u16);
                        }
                        4 => {
                            let _ = write!(out, "0x{:x} ({})", bits as u32, bits as u32 as i32);
                        }
                        8 => {
                            let _ = write!(out, "0x{bits:x} ({})", bits as i64);
                        }
                        _ => out.push_str("<INVALID-SIZE>"),
                    }
                }
            }
        }
    }
}

/// Events whose kernel output does not come from their print fmt.
fn special_body(event_name: &str, fields: &[FieldInfo]) -> Option<Body> {
    let pos = |n: &str| fields.iter().position(|f| &*f.name == n);
    let first_own = fields.iter().position(|f| !f.common)?;
    if &*fields[first_own].name == "__syscall_nr" {
        if let Some(sc) = event_name.strip_prefix("sys_enter_") {
            let args = (first_own + 1..fields.len()).collect();
            return Some(Body::SyscallEnter {
                name: format!("sys_{sc}").into(),
                args,
            });
        }
        if let Some(sc) = event_name.strip_prefix("sys_exit_") {
            return Some(Body::SyscallExit {
                name: format!("sys_{sc}").into(),
                ret: pos("ret")?,
            });
        }
    }
    if event_name == "print" && pos("ip").is_some() {
        return Some(Body::Marker { buf: pos("buf")? });
    }
    None
}

/// A stable, plausible-looking address standing in for a pointer we only have contents of.
fn fake_address(bytes: &[u8], base: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    base | ((h & 0xff_ffff_ffff) << 3 & 0xfff_ffff_fff0)
}

// ---------------------------------------------------------------------------------------
// Format string

/// `*` widths and precisions take an argument; the index is into the argument list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    None,
    Fixed(i64),
    Arg(usize),
}

/// Integer argument size a conversion reads (C's length modifiers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Len {
    Char,
    Short,
    Int,
    Long,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PtrKind {
    /// `%p`: hashed.
    Hashed,
    /// `%pS`, `%ps`, `%pB`, `%pF`, `%pf`: symbol lookup (we have no symbols).
    Symbol,
    /// `%pU[bBlL]`.
    Uuid { upper: bool, little: bool },
    /// `%pI4`/`%pi4`.
    Ip4 { padded: bool },
    /// `%pI6`/`%pi6`/`%pI6c`.
    Ip6 { colons: bool, compressed: bool },
    /// `%pM`/`%pMR`/`%pm`/`%pmR`.
    Mac { colons: bool, reversed: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conv {
    Signed,
    Unsigned,
    Octal,
    Hex { upper: bool },
    Char,
    Str,
    Ptr(PtrKind),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    alt: bool,
    width: Count,
    prec: Count,
    len: Len,
    conv: Conv,
}

#[derive(Debug, Clone)]
enum Seg {
    Lit(String),
    Conv { spec: Spec, arg: usize },
}

/// What kind of value an argument must evaluate to for a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Str,
    Bytes,
}

/// Splits a format string into literal text and conversions, numbering the arguments each
/// conversion consumes. Returns the segments and the kinds the arguments must have.
fn parse_format(fmt: &str) -> Result<(Vec<Seg>, Vec<Kind>), Unsupported> {
    let mut segs = Vec::new();
    let mut kinds = Vec::new();
    let mut lit = String::new();
    let b = fmt.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            let next = fmt[i..].find('%').map_or(fmt.len(), |n| i + n);
            lit.push_str(&fmt[i..next]);
            i = next;
            continue;
        }
        i += 1;
        if b.get(i) == Some(&b'%') {
            lit.push('%');
            i += 1;
            continue;
        }
        let mut spec = Spec {
            left: false,
            zero: false,
            plus: false,
            space: false,
            alt: false,
            width: Count::None,
            prec: Count::None,
            len: Len::Int,
            conv: Conv::Signed,
        };
        while let Some(&c) = b.get(i) {
            match c {
                b'-' => spec.left = true,
                b'0' => spec.zero = true,
                b'+' => spec.plus = true,
                b' ' => spec.space = true,
                b'#' => spec.alt = true,
                _ => break,
            }
            i += 1;
        }
        let number = |i: &mut usize, kinds: &mut Vec<Kind>| -> Count {
            if b.get(*i) == Some(&b'*') {
                *i += 1;
                kinds.push(Kind::Int);
                return Count::Arg(kinds.len() - 1);
            }
            let start = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            if start == *i {
                Count::None
            } else {
                Count::Fixed(fmt[start..*i].parse().unwrap_or(i64::MAX).min(4096))
            }
        };
        spec.width = number(&mut i, &mut kinds);
        if b.get(i) == Some(&b'.') {
            i += 1;
            spec.prec = match number(&mut i, &mut kinds) {
                Count::None => Count::Fixed(0),
                c => c,
            };
        }
        // Length modifiers: everything that is not char/short/int is 64 bits on x86-64.
        loop {
            match b.get(i) {
                Some(b'h') => {
                    spec.len = if spec.len == Len::Short {
                        Len::Char
                    } else {
                        Len::Short
                    }
                }
                Some(b'l' | b'L' | b'z' | b'Z' | b't' | b'j' | b'q') => spec.len = Len::Long,
                _ => break,
            }
            i += 1;
        }
        let Some(&c) = b.get(i) else {
            return unsupported("format ends inside a conversion");
        };
        i += 1;
        let kind;
        spec.conv = match c {
            b'd' | b'i' => {
                kind = Kind::Int;
                Conv::Signed
            }
            b'u' => {
                kind = Kind::Int;
                Conv::Unsigned
            }
            b'o' => {
                kind = Kind::Int;
                Conv::Octal
            }
            b'x' | b'X' => {
                kind = Kind::Int;
                Conv::Hex { upper: c == b'X' }
            }
            b'c' => {
                kind = Kind::Int;
                Conv::Char
            }
            b's' => {
                kind = Kind::Str;
                Conv::Str
            }
            b'p' => {
                // The kernel takes every alphanumeric after %p as the extension.
                let start = i;
                while b.get(i).is_some_and(u8::is_ascii_alphanumeric) {
                    i += 1;
                }
                let ext = &fmt[start..i];
                let (k, p) = match ext {
                    "" => (Kind::Int, PtrKind::Hashed),
                    "S" | "s" | "B" | "F" | "f" | "SR" | "sR" | "BR" => {
                        (Kind::Int, PtrKind::Symbol)
                    }
                    "U" | "Ub" | "UB" | "Ul" | "UL" => (
                        Kind::Bytes,
                        PtrKind::Uuid {
                            upper: ext.ends_with(['B', 'L']),
                            little: ext.ends_with(['l', 'L']),
                        },
                    ),
                    "I4" | "i4" => (
                        Kind::Bytes,
                        PtrKind::Ip4 {
                            padded: ext == "i4",
                        },
                    ),
                    "I6" | "i6" | "I6c" => (
                        Kind::Bytes,
                        PtrKind::Ip6 {
                            colons: ext != "i6",
                            compressed: ext == "I6c",
                        },
                    ),
                    "M" | "MR" | "m" | "mR" => (
                        Kind::Bytes,
                        PtrKind::Mac {
                            colons: ext.starts_with('M'),
                            reversed: ext.ends_with('R'),
                        },
                    ),
                    _ => return unsupported(format!("%p{ext}")),
                };
                kind = k;
                Conv::Ptr(p)
            }
            _ => return unsupported(format!("conversion %{}", char::from(c))),
        };
        kinds.push(kind);
        if !lit.is_empty() {
            segs.push(Seg::Lit(std::mem::take(&mut lit)));
        }
        segs.push(Seg::Conv {
            spec,
            arg: kinds.len() - 1,
        });
    }
    if !lit.is_empty() {
        segs.push(Seg::Lit(lit));
    }
    Ok((segs, kinds))
}

// ---------------------------------------------------------------------------------------
// Values and formatting

/// A C integer after the usual promotions: `int`, `unsigned int`, `long` or `unsigned long`.
/// `bits` always holds the value converted to 64 bits (sign-extended when signed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CInt {
    bits: u64,
    wide: bool,
    signed: bool,
}

impl CInt {
    fn new(bits: u64, wide: bool, signed: bool) -> CInt {
        let bits = if wide {
            bits
        } else if signed {
            bits as i32 as i64 as u64
        } else {
            u64::from(bits as u32)
        };
        CInt { bits, wide, signed }
    }

    fn int(v: i64) -> CInt {
        CInt::new(v as u64, false, true)
    }

    /// A value read from `size` bytes, promoted the way C promotes it in an expression.
    fn from_sized(bits: u64, size: u32, signed: bool) -> CInt {
        let size = size.clamp(1, 8);
        let shift = 64 - 8 * size;
        let ext = if signed {
            (((bits << shift) as i64) >> shift) as u64
        } else {
            (bits << shift) >> shift
        };
        match size {
            1..=3 => CInt::new(ext, false, true),
            4 => CInt::new(ext, false, signed),
            _ => CInt::new(ext, true, signed),
        }
    }

    fn is_true(self) -> bool {
        self.bits != 0
    }
}

#[derive(Debug, Clone)]
enum Val<'r> {
    Int(CInt),
    Str(Cow<'r, str>),
    Bytes(&'r [u8]),
}

/// Why a record could not be rendered with its print fmt.
#[derive(Debug)]
struct EvalError;

impl<'r> Val<'r> {
    fn int(&self) -> Result<CInt, EvalError> {
        match self {
            Val::Int(i) => Ok(*i),
            _ => Err(EvalError),
        }
    }
}

/// Appends one converted argument.
fn format_conv(spec: &Spec, v: &Val<'_>, out: &mut String) -> Result<(), EvalError> {
    let width = match spec.width {
        Count::Fixed(n) => n.max(0) as usize,
        _ => 0,
    };
    let prec = match spec.prec {
        Count::Fixed(n) => Some(n.max(0) as usize),
        _ => None,
    };
    match spec.conv {
        Conv::Str => {
            let owned;
            let s: &str = match v {
                Val::Str(s) => s,
                Val::Bytes(b) => {
                    // A char array: up to its first NUL, like the kernel's string().
                    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                    owned = String::from_utf8_lossy(&b[..end]);
                    &owned
                }
                Val::Int(_) => return Err(EvalError),
            };
            let s = match prec {
                Some(p) if p < s.len() => {
                    let mut end = p;
                    while !s.is_char_boundary(end) {
                        end -= 1;
                    }
                    &s[..end]
                }
                _ => s,
            };
            pad(out, s, width, spec.left);
        }
        Conv::Char => {
            let c = char::from(v.int()?.bits as u8);
            let mut buf = [0u8; 4];
            pad(out, c.encode_utf8(&mut buf), width, spec.left);
        }
        Conv::Ptr(kind) => {
            let text = format_pointer(kind, v)?;
            if spec.width == Count::None && kind == PtrKind::Hashed {
                out.push_str(&text);
            } else {
                pad(out, &text, width, spec.left);
            }
        }
        Conv::Signed | Conv::Unsigned | Conv::Octal | Conv::Hex { .. } => {
            let x = v.int()?;
            format_int(spec, x.bits, width, prec, out);
        }
    }
    Ok(())
}

fn pad(out: &mut String, s: &str, width: usize, left: bool) {
    let fill = width.saturating_sub(s.chars().count());
    if !left {
        out.extend(std::iter::repeat_n(' ', fill));
    }
    out.push_str(s);
    if left {
        out.extend(std::iter::repeat_n(' ', fill));
    }
}

/// Integer conversions with the kernel's `number()` rules: the length modifier picks how
/// many bits of the argument are read, `#` always adds the prefix (even for 0), and the
/// width counts sign and prefix.
fn format_int(spec: &Spec, bits: u64, width: usize, prec: Option<usize>, out: &mut String) {
    let signed = spec.conv == Conv::Signed;
    let (mag, neg) = match (spec.len, signed) {
        (Len::Char, true) => signed_mag(i64::from(bits as i8)),
        (Len::Short, true) => signed_mag(i64::from(bits as i16)),
        (Len::Int, true) => signed_mag(i64::from(bits as i32)),
        (Len::Long, true) => signed_mag(bits as i64),
        (Len::Char, false) => (u64::from(bits as u8), false),
        (Len::Short, false) => (u64::from(bits as u16), false),
        (Len::Int, false) => (u64::from(bits as u32), false),
        (Len::Long, false) => (bits, false),
    };
    let digits = match spec.conv {
        Conv::Octal => format!("{mag:o}"),
        Conv::Hex { upper: true } => format!("{mag:X}"),
        Conv::Hex { upper: false } => format!("{mag:x}"),
        _ => mag.to_string(),
    };
    let sign = if !signed {
        ""
    } else if neg {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    let prefix = match (spec.alt, spec.conv) {
        (true, Conv::Hex { upper: false }) => "0x",
        (true, Conv::Hex { upper: true }) => "0X",
        (true, Conv::Octal) => "0",
        _ => "",
    };
    let body_len = digits.len().max(prec.unwrap_or(0));
    let fill = width.saturating_sub(body_len + sign.len() + prefix.len());
    if spec.left {
        out.push_str(sign);
        out.push_str(prefix);
    } else if spec.zero {
        out.push_str(sign);
        out.push_str(prefix);
        out.extend(std::iter::repeat_n('0', fill));
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(sign);
        out.push_str(prefix);
    }
    out.extend(std::iter::repeat_n('0', body_len - digits.len()));
    out.push_str(&digits);
    if spec.left {
        out.extend(std::iter::repeat_n(' ', fill));
    }
}

fn signed_mag(v: i64) -> (u64, bool) {
    (v.unsigned_abs(), v < 0)
}

fn format_pointer(kind: PtrKind, v: &Val<'_>) -> Result<String, EvalError> {
    let bytes = |n: usize| match v {
        Val::Bytes(b) if b.len() >= n => Ok(&b[..n]),
        Val::Str(s) if s.len() >= n => Ok(&s.as_bytes()[..n]),
        _ => Err(EvalError),
    };
    Ok(match kind {
        PtrKind::Hashed => {
            let p = v.int()?.bits;
            // NULL and error pointers are printed raw; others as a 32-bit hash, as the
            // kernel does so trace output does not leak addresses.
            if p == 0 || p >= (-4095i64) as u64 {
                format!("{p:016x}")
            } else {
                format!("{:016x}", hash_pointer(p))
            }
        }
        PtrKind::Symbol => format!("0x{:x}", v.int()?.bits),
        PtrKind::Uuid { upper, little } => {
            let b = bytes(16)?;
            // The little-endian variants swap the first three groups.
            let order: [usize; 16] = if little {
                [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15]
            } else {
                std::array::from_fn(|i| i)
            };
            let mut s = String::with_capacity(36);
            for (i, &j) in order.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    s.push('-');
                }
                if upper {
                    let _ = write!(s, "{:02X}", b[j]);
                } else {
                    let _ = write!(s, "{:02x}", b[j]);
                }
            }
            s
        }
        PtrKind::Ip4 { padded } => {
            let b = bytes(4)?;
            let parts: Vec<String> = b
                .iter()
                .map(|x| {
                    if padded {
                        format!("{x:03}")
                    } else {
                        x.to_string()
                    }
                })
                .collect();
            parts.join(".")
        }
        PtrKind::Ip6 { colons, compressed } => {
            let b = bytes(16)?;
            let words: Vec<u16> = b
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            if compressed {
                ip6_compressed(&words)
            } else if colons {
                let w: Vec<String> = words.iter().map(|w| format!("{w:04x}")).collect();
                w.join(":")
            } else {
                words.iter().map(|w| format!("{w:04x}")).collect()
            }
        }
        PtrKind::Mac { colons, reversed } => {
            let b = bytes(6)?;
            let mut v: Vec<u8> = b.to_vec();
            if reversed {
                v.reverse();
            }
            let parts: Vec<String> = v.iter().map(|x| format!("{x:02x}")).collect();
            parts.join(if colons { ":" } else { "" })
        }
    })
}

/// `%pI6c`: the longest run (of two or more) zero words becomes `::`, words lose leading
/// zeros, and v4-mapped addresses end in dotted quad.
fn ip6_compressed(w: &[u16]) -> String {
    let v4_mapped = w[..5].iter().all(|&x| x == 0) && w[5] == 0xffff;
    let n = if v4_mapped { 6 } else { 8 };
    let (mut best, mut best_len, mut i) = (0, 0, 0);
    while i < n {
        if w[i] == 0 {
            let start = i;
            while i < n && w[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                best = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    if best_len < 2 {
        best_len = 0;
    }
    let mut s = String::new();
    let mut i = 0;
    while i < n {
        if best_len > 0 && i == best {
            s.push_str("::");
            i += best_len;
            continue;
        }
        if !s.is_empty() && !s.ends_with(':') {
            s.push(':');
        }
        let _ = write!(s, "{:x}", w[i]);
        i += 1;
    }
    if v4_mapped {
        if !s.ends_with(':') {
            s.push(':');
        }
        let _ = write!(
            s,
            "{}.{}.{}.{}",
            w[6] >> 8,
            w[6] & 0xff,
            w[7] >> 8,
            w[7] & 0xff
        );
    }
    s
}

/// Stand-in for the kernel's keyed pointer hash: stable, 32 bits.
fn hash_pointer(p: u64) -> u64 {
    let mut z = p.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) & 0xffff_ffff
}

// ---------------------------------------------------------------------------------------
// Expressions

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    And,
    Or,
    Xor,
    Shl,
    Shr,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    LAnd,
    LOr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnOp {
    Neg,
    Not,
    LNot,
}

/// Target of a cast: its size and signedness (`bool` normalizes to 0/1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CType {
    size: u32,
    signed: bool,
    boolean: bool,
    pointer: bool,
}

/// `{ value, "name" }` table of `__print_flags`/`__print_symbolic`.
type Table = Vec<(u64, Box<str>)>;

#[derive(Debug, Clone)]
enum Expr {
    Num(CInt),
    Str(Box<str>),
    /// `REC->field` for a scalar.
    Field(usize),
    /// `REC->field` for a string field, or `__get_str(field)`.
    FieldStr(usize),
    /// `REC->field` for a non-string array, or `__get_dynamic_array(field)`.
    FieldBytes(usize),
    /// `REC->field[i]` on an array of integers.
    Index(usize, Box<Expr>),
    /// `__get_dynamic_array_len(field)`.
    DynLen(usize),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    Cast(CType, Box<Expr>),
    Flags(Box<Expr>, Box<str>, Table),
    Symbolic(Box<Expr>, Table),
    /// `__print_hex` (`false`) / `__print_hex_str` (`true`).
    Hex(Box<Expr>, Box<Expr>, bool),
    /// `__print_array(array, count, elem_size)`.
    Array(Box<Expr>, Box<Expr>, Box<Expr>),
}

/// Evaluation context; the record, the fields and the compiled expressions all outlive the
/// values, so strings can be borrowed instead of copied.
struct Ctx<'a> {
    rec: Option<&'a Record>,
    fields: &'a [FieldInfo],
}

impl<'a> Ctx<'a> {
    fn field(&self, idx: usize) -> Result<&'a FieldValue, EvalError> {
        self.rec.and_then(|r| r.fields.get(idx)).ok_or(EvalError)
    }

    fn eval(&self, e: &'a Expr) -> Result<Val<'a>, EvalError> {
        Ok(match e {
            Expr::Num(n) => Val::Int(*n),
            Expr::Str(s) => Val::Str(Cow::Borrowed(s)),
            Expr::Field(i) => {
                let f = &self.fields[*i];
                let bits = match self.field(*i)? {
                    // Only `char *` fields get here with a string: use a stable address.
                    FieldValue::Str(s) if f.pointer_string => {
                        fake_address(s.as_bytes(), 0xffff_8881_0000_0000)
                    }
                    v => v.as_bits().ok_or(EvalError)?,
                };
                Val::Int(CInt::from_sized(bits, f.size, f.signed))
            }
            Expr::FieldStr(i) => match self.field(*i)? {
                FieldValue::Str(s) => Val::Str(Cow::Borrowed(s)),
                FieldValue::Bytes(b) => Val::Bytes(b),
                _ => return Err(EvalError),
            },
            Expr::FieldBytes(i) => match self.field(*i)? {
                FieldValue::Bytes(b) => Val::Bytes(b),
                FieldValue::Str(s) => Val::Bytes(s.as_bytes()),
                _ => return Err(EvalError),
            },
            Expr::DynLen(i) => match self.field(*i)? {
                FieldValue::Bytes(b) => Val::Int(CInt::new(b.len() as u64, false, false)),
                FieldValue::Str(s) => Val::Int(CInt::new(s.len() as u64 + 1, false, false)),
                _ => return Err(EvalError),
            },
            Expr::Index(i, idx) => {
                let f = &self.fields[*i];
                let n = u64::from(f.array_len.filter(|&n| n > 0).ok_or(EvalError)?);
                let elem = (u64::from(f.size) / n) as usize;
                let b: &[u8] = match self.field(*i)? {
                    FieldValue::Bytes(b) => b,
                    FieldValue::Str(s) => s.as_bytes(),
                    _ => return Err(EvalError),
                };
                let k = self.eval(idx)?.int()?.bits;
                if k >= n || elem == 0 || elem > 8 {
                    return Err(EvalError);
                }
                // A string shorter than its array reads as the NULs that pad it.
                let start = k as usize * elem;
                let mut le = [0u8; 8];
                for (j, byte) in le.iter_mut().take(elem).enumerate() {
                    *byte = b.get(start + j).copied().unwrap_or(0);
                }
                Val::Int(CInt::from_sized(
                    u64::from_le_bytes(le),
                    elem as u32,
                    f.signed,
                ))
            }
            Expr::Unary(op, a) => {
                let a = self.eval(a)?.int()?;
                // Operands narrower than int were already promoted.
                Val::Int(match op {
                    UnOp::Neg => CInt::new(a.bits.wrapping_neg(), a.wide, a.signed),
                    UnOp::Not => CInt::new(!a.bits, a.wide, a.signed),
                    UnOp::LNot => CInt::int(i64::from(!a.is_true())),
                })
            }
            Expr::Binary(op, a, b) => {
                let a = self.eval(a)?.int()?;
                // && and || short-circuit like C.
                match op {
                    BinOp::LAnd if !a.is_true() => return Ok(Val::Int(CInt::int(0))),
                    BinOp::LOr if a.is_true() => return Ok(Val::Int(CInt::int(1))),
                    _ => {}
                }
                let b = self.eval(b)?.int()?;
                Val::Int(binary(*op, a, b)?)
            }
            Expr::Cond(c, t, f) => {
                if self.eval(c)?.int()?.is_true() {
                    self.eval(t)?
                } else {
                    self.eval(f)?
                }
            }
            Expr::Cast(ty, a) => match self.eval(a)? {
                Val::Int(x) => Val::Int(cast(*ty, x)),
                // Pointer casts of strings/arrays keep the pointee for %s / %pXX.
                v if ty.pointer => v,
                _ => return Err(EvalError),
            },
            Expr::Flags(v, sep, table) => {
                let mut flags = self.eval(v)?.int()?.bits;
                let mut s = String::new();
                let mut first = true;
                for (mask, name) in table {
                    if flags == 0 {
                        break;
                    }
                    if flags & mask != *mask {
                        continue;
                    }
                    flags &= !mask;
                    if !first {
                        s.push_str(sep);
                    }
                    first = false;
                    s.push_str(name);
                }
                if flags != 0 {
                    if !first {
                        s.push_str(sep);
                    }
                    let _ = write!(s, "0x{flags:x}");
                }
                Val::Str(Cow::Owned(s))
            }
            Expr::Symbolic(v, table) => {
                let v = self.eval(v)?.int()?.bits;
                match table.iter().find(|(k, _)| *k == v) {
                    Some((_, name)) => Val::Str(Cow::Borrowed(name)),
                    None => Val::Str(Cow::Owned(format!("0x{v:x}"))),
                }
            }
            Expr::Hex(buf, len, concat) => {
                let Val::Bytes(b) = self.eval(buf)? else {
                    return Err(EvalError);
                };
                let n = (self.eval(len)?.int()?.bits as usize).min(b.len());
                let mut s = String::with_capacity(n * 3);
                for (i, byte) in b[..n].iter().enumerate() {
                    if i > 0 && !concat {
                        s.push(' ');
                    }
                    let _ = write!(s, "{byte:02x}");
                }
                Val::Str(Cow::Owned(s))
            }
            Expr::Array(buf, count, el) => {
                let Val::Bytes(b) = self.eval(buf)? else {
                    return Err(EvalError);
                };
                let el = self.eval(el)?.int()?.bits as usize;
                if !matches!(el, 1 | 2 | 4 | 8) {
                    return Err(EvalError);
                }
                let count = (self.eval(count)?.int()?.bits as usize).min(b.len() / el);
                let mut s = String::from("{");
                for (i, c) in b.chunks_exact(el).take(count).enumerate() {
                    let mut le = [0u8; 8];
                    le[..el].copy_from_slice(c);
                    let sep = if i == 0 { "" } else { "," };
                    let _ = write!(s, "{sep}0x{:x}", u64::from_le_bytes(le));
                }
                s.push('}');
                Val::Str(Cow::Owned(s))
            }
        })
    }
}

fn cast(ty: CType, x: CInt) -> CInt {
    if ty.boolean {
        return CInt::int(i64::from(x.is_true()));
    }
    CInt::from_sized(x.bits, ty.size, ty.signed)
}

/// C's usual arithmetic conversions for two promoted operands.
fn common_type(a: CInt, b: CInt) -> (bool, bool) {
    if a.wide == b.wide {
        (a.wide, a.signed && b.signed)
    } else if a.wide {
        // long can hold every unsigned int, so the wide side's signedness wins.
        (true, a.signed)
    } else {
        (true, b.signed)
    }
}

fn binary(op: BinOp, a: CInt, b: CInt) -> Result<CInt, EvalError> {
    use BinOp::*;
    if matches!(op, Shl | Shr) {
        // The result has the (promoted) left operand's type; the count is masked the way
        // x86 masks it instead of being undefined.
        let bits = if a.wide { 64 } else { 32 };
        let n = (b.bits % bits) as u32;
        let v = match op {
            Shl => a.bits << n,
            _ if a.signed => ((a.bits as i64) >> n) as u64,
            _ => a.bits >> n,
        };
        return Ok(CInt::new(v, a.wide, a.signed));
    }
    let (wide, signed) = common_type(a, b);
    let x = CInt::new(a.bits, wide, signed).bits;
    let y = CInt::new(b.bits, wide, signed).bits;
    let (xs, ys) = (x as i64, y as i64);
    let (xn, yn) = if wide {
        (xs, ys)
    } else {
        (i64::from(xs as i32), i64::from(ys as i32))
    };
    let cmp = |r: bool| CInt::int(i64::from(r));
    let ordered = |f: fn(&i128, &i128) -> bool| {
        let (p, q) = if signed {
            (i128::from(xn), i128::from(yn))
        } else {
            (i128::from(x), i128::from(y))
        };
        cmp(f(&p, &q))
    };
    Ok(match op {
        Add => CInt::new(x.wrapping_add(y), wide, signed),
        Sub => CInt::new(x.wrapping_sub(y), wide, signed),
        Mul => CInt::new(x.wrapping_mul(y), wide, signed),
        Div | Rem => {
            if y == 0 {
                return Err(EvalError);
            }
            let v = if signed {
                if op == Div {
                    xn.wrapping_div(yn) as u64
                } else {
                    xn.wrapping_rem(yn) as u64
                }
            } else if op == Div {
                x / y
            } else {
                x % y
            };
            CInt::new(v, wide, signed)
        }
        And => CInt::new(x & y, wide, signed),
        Or => CInt::new(x | y, wide, signed),
        Xor => CInt::new(x ^ y, wide, signed),
        Eq => cmp(x == y),
        Ne => cmp(x != y),
        Lt => ordered(i128::lt),
        Gt => ordered(i128::gt),
        Le => ordered(i128::le),
        Ge => ordered(i128::ge),
        LAnd => cmp(a.is_true() && b.is_true()),
        LOr => cmp(a.is_true() || b.is_true()),
        Shl | Shr => unreachable!("handled above"),
    })
}

// ---------------------------------------------------------------------------------------
// Tokens and parser

#[derive(Debug, Clone, PartialEq)]
enum Tok<'s> {
    Str(String),
    Num(CInt),
    Ident(&'s str),
    Punct(&'static str),
}

const PUNCTS: &[&str] = &[
    "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "->", "+", "-", "*", "/", "%", "&", "|", "^",
    "~", "!", "<", ">", "?", ":", ",", "(", ")", "{", "}", "[", "]", ".",
];

fn tokenize(s: &str) -> Result<Vec<Tok<'_>>, Unsupported> {
    let b = s.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'"' {
            let (text, end) = string_literal(s, i + 1)?;
            // Adjacent literals are one string, as in C.
            if let Some(Tok::Str(prev)) = toks.last_mut() {
                prev.push_str(&text);
            } else {
                toks.push(Tok::Str(text));
            }
            i = end;
        } else if c == b'\'' {
            let (text, end) = char_literal(s, i + 1)?;
            toks.push(Tok::Num(CInt::int(i64::from(text))));
            i = end;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            toks.push(Tok::Num(int_literal(&s[start..i])?));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            toks.push(Tok::Ident(&s[start..i]));
        } else if let Some(p) = PUNCTS.iter().find(|p| s[i..].starts_with(**p)) {
            toks.push(Tok::Punct(p));
            i += p.len();
        } else {
            return unsupported(format!("character {:?}", char::from(c)));
        }
    }
    Ok(toks)
}

/// One escape sequence starting after the backslash at `i`; returns the byte and the index
/// after it.
fn escape(b: &[u8], i: usize) -> Result<(u8, usize), Unsupported> {
    let Some(&c) = b.get(i) else {
        return unsupported("unterminated escape");
    };
    Ok(match c {
        b'n' => (b'\n', i + 1),
        b't' => (b'\t', i + 1),
        b'r' => (b'\r', i + 1),
        b'a' => (7, i + 1),
        b'b' => (8, i + 1),
        b'f' => (12, i + 1),
        b'v' => (11, i + 1),
        b'x' => {
            let mut j = i + 1;
            let mut v: u32 = 0;
            while j < b.len() && b[j].is_ascii_hexdigit() && j < i + 3 {
                v = v * 16 + (b[j] as char).to_digit(16).unwrap_or(0);
                j += 1;
            }
            (v as u8, j)
        }
        b'0'..=b'7' => {
            let mut j = i;
            let mut v: u32 = 0;
            while j < b.len() && (b'0'..=b'7').contains(&b[j]) && j < i + 3 {
                v = v * 8 + u32::from(b[j] - b'0');
                j += 1;
            }
            (v as u8, j)
        }
        other => (other, i + 1),
    })
}

fn string_literal(s: &str, mut i: usize) -> Result<(String, usize), Unsupported> {
    let b = s.as_bytes();
    let mut bytes = Vec::new();
    while i < b.len() {
        match b[i] {
            b'"' => {
                // Escapes can produce non-UTF-8 bytes; keep whatever is printable.
                let text = String::from_utf8_lossy(&bytes).into_owned();
                return Ok((text, i + 1));
            }
            b'\\' => {
                let (c, next) = escape(b, i + 1)?;
                bytes.push(c);
                i = next;
            }
            c => {
                bytes.push(c);
                i += 1;
            }
        }
    }
    unsupported("unterminated string")
}

fn char_literal(s: &str, i: usize) -> Result<(u8, usize), Unsupported> {
    let b = s.as_bytes();
    let (c, next) = match b.get(i) {
        Some(b'\\') => escape(b, i + 1)?,
        Some(&c) => (c, i + 1),
        None => return unsupported("unterminated character"),
    };
    if b.get(next) != Some(&b'\'') {
        return unsupported("multi-character constant");
    }
    Ok((c, next + 1))
}

/// A C integer constant with its type (int, unsigned int, long, unsigned long).
fn int_literal(t: &str) -> Result<CInt, Unsupported> {
    let lower = t.to_ascii_lowercase();
    let digits = lower.trim_end_matches(['u', 'l']);
    let suffix = &lower[digits.len()..];
    let (radix, body) = if let Some(h) = digits.strip_prefix("0x") {
        (16, h)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    let Ok(v) = u64::from_str_radix(body, radix) else {
        return unsupported(format!("number {t}"));
    };
    let unsigned = suffix.contains('u');
    let long = suffix.contains('l');
    // The first type of the C list that holds the value.
    let (wide, signed) = if !long && !unsigned && v <= i32::MAX as u64 {
        (false, true)
    } else if !long && (radix != 10 || unsigned) && v <= u64::from(u32::MAX) {
        (false, false)
    } else if !unsigned && v <= i64::MAX as u64 {
        (true, true)
    } else {
        (true, false)
    };
    Ok(CInt::new(v, wide, signed))
}

/// Integer typedefs that show up in print fmts: (name, size, signed).
const TYPEDEFS: &[(&str, u32, bool)] = &[
    ("u8", 1, false),
    ("u16", 2, false),
    ("u32", 4, false),
    ("u64", 8, false),
    ("s8", 1, true),
    ("s16", 2, true),
    ("s32", 4, true),
    ("s64", 8, true),
    ("__u8", 1, false),
    ("__u16", 2, false),
    ("__u32", 4, false),
    ("__u64", 8, false),
    ("__s8", 1, true),
    ("__s16", 2, true),
    ("__s32", 4, true),
    ("__s64", 8, true),
    ("uint8_t", 1, false),
    ("uint16_t", 2, false),
    ("uint32_t", 4, false),
    ("uint64_t", 8, false),
    ("int8_t", 1, true),
    ("int16_t", 2, true),
    ("int32_t", 4, true),
    ("int64_t", 8, true),
    ("__le16", 2, false),
    ("__le32", 4, false),
    ("__le64", 8, false),
    ("__be16", 2, false),
    ("__be32", 4, false),
    ("__be64", 8, false),
    ("uint", 4, false),
    ("ulong", 8, false),
    ("ushort", 2, false),
    ("uchar", 1, false),
    ("size_t", 8, false),
    ("ssize_t", 8, true),
    ("uintptr_t", 8, false),
    ("pid_t", 4, true),
    ("uid_t", 4, false),
    ("gid_t", 4, false),
    ("gfp_t", 4, false),
    ("umode_t", 2, false),
    ("loff_t", 8, true),
    ("sector_t", 8, false),
    ("blkcnt_t", 8, false),
    ("dma_addr_t", 8, false),
    ("phys_addr_t", 8, false),
    ("resource_size_t", 8, false),
    ("dev_t", 4, false),
    ("ino_t", 8, false),
    ("time64_t", 8, true),
    ("ktime_t", 8, true),
    ("__kernel_rwf_t", 4, true),
    ("blk_opf_t", 4, false),
    ("blk_status_t", 1, false),
    ("fmode_t", 4, false),
    ("xfs_ino_t", 8, false),
    ("xfs_fsblock_t", 8, false),
    ("xfs_agblock_t", 4, false),
    ("xfs_agnumber_t", 4, false),
    ("xfs_extlen_t", 4, false),
    ("xfs_off_t", 8, true),
    ("xfs_daddr_t", 8, true),
    ("xfs_fileoff_t", 8, false),
    ("xfs_filblks_t", 8, false),
    ("xfs_rtblock_t", 8, false),
    ("xfs_nlink_t", 4, false),
    ("xfs_dablk_t", 4, false),
    ("xfs_dahash_t", 4, false),
    ("xfs_agino_t", 4, false),
    ("xfs_rfsblock_t", 8, false),
    ("xfs_fsize_t", 8, true),
];

/// Enum names the kernel leaves unresolved in some print fmts whose values are fixed by the
/// user-space ABI (so they cannot drift between kernels). Other unresolved names make the
/// event fall back rather than guess.
const UAPI_CONSTANTS: &[(&str, i64)] = &[
    ("IOPRIO_CLASS_NONE", 0),
    ("IOPRIO_CLASS_RT", 1),
    ("IOPRIO_CLASS_BE", 2),
    ("IOPRIO_CLASS_IDLE", 3),
    ("IOPRIO_CLASS_INVALID", 7),
];

fn is_type_word(w: &str) -> bool {
    matches!(
        w,
        "unsigned"
            | "signed"
            | "int"
            | "long"
            | "short"
            | "char"
            | "void"
            | "const"
            | "volatile"
            | "struct"
            | "enum"
            | "union"
            | "bool"
            | "_Bool"
    ) || TYPEDEFS.iter().any(|t| t.0 == w)
}

struct Parser<'s, 'f> {
    toks: Vec<Tok<'s>>,
    pos: usize,
    fields: &'f [FieldInfo],
}

impl<'s, 'f> Parser<'s, 'f> {
    fn new(text: &'s str, fields: &'f [FieldInfo]) -> Result<Self, Unsupported> {
        Ok(Parser {
            toks: tokenize(text)?,
            pos: 0,
            fields,
        })
    }

    fn peek(&self) -> Option<&Tok<'s>> {
        self.toks.get(self.pos)
    }

    fn peek_at(&self, k: usize) -> Option<&Tok<'s>> {
        self.toks.get(self.pos + k)
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Tok::Punct(q)) if *q == p)
    }

    fn eat(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, p: &str) -> Result<(), Unsupported> {
        if self.eat(p) {
            Ok(())
        } else {
            unsupported(format!("expected `{p}` at token {}", self.pos))
        }
    }

    /// The whole print fmt: the format string and its arguments, bound and type-checked.
    fn print_fmt(mut self) -> Result<(Vec<Seg>, Vec<Expr>), Unsupported> {
        let Some(Tok::Str(fmt)) = self.peek().cloned() else {
            return unsupported("print fmt does not start with a string");
        };
        self.pos += 1;
        let (segs, kinds) = parse_format(&fmt)?;
        let mut args = Vec::new();
        while self.eat(",") {
            let (e, k) = self.expr()?;
            let want = kinds.get(args.len()).copied();
            match (want, k) {
                (Some(w), k) if compatible(w, k) => {}
                (Some(_), k) => return unsupported(format!("argument {} is {k:?}", args.len())),
                (None, _) => return unsupported("more arguments than conversions"),
            }
            args.push(e);
        }
        if self.peek().is_some() {
            return unsupported(format!("trailing tokens at {}", self.pos));
        }
        if args.len() != kinds.len() {
            return unsupported("fewer arguments than conversions");
        }
        Ok((segs, args))
    }

    fn expr(&mut self) -> Result<(Expr, Kind), Unsupported> {
        let (c, kc) = self.binary(0)?;
        if !self.eat("?") {
            return Ok((c, kc));
        }
        if kc != Kind::Int {
            return unsupported("non-integer condition");
        }
        let (t, kt) = self.expr()?;
        self.expect(":")?;
        let (mut f, mut kf) = self.expr()?;
        let (mut t, mut kt) = (t, kt);
        // `cond ? __get_str(x) : NULL`: %s prints a NULL pointer as "(null)".
        let null =
            |e: &Expr, k| k == Kind::Int && const_eval(e, self.fields).is_some_and(|v| v.bits == 0);
        if kt == Kind::Str && null(&f, kf) {
            (f, kf) = (Expr::Str("(null)".into()), Kind::Str);
        } else if kf == Kind::Str && null(&t, kt) {
            (t, kt) = (Expr::Str("(null)".into()), Kind::Str);
        }
        if !compatible(kt, kf) {
            return unsupported("?: branches of different kinds");
        }
        Ok((Expr::Cond(Box::new(c), Box::new(t), Box::new(f)), kt))
    }

    fn binop(&self) -> Option<(BinOp, u8)> {
        let Some(Tok::Punct(p)) = self.peek() else {
            return None;
        };
        Some(match *p {
            "||" => (BinOp::LOr, 1),
            "&&" => (BinOp::LAnd, 2),
            "|" => (BinOp::Or, 3),
            "^" => (BinOp::Xor, 4),
            "&" => (BinOp::And, 5),
            "==" => (BinOp::Eq, 6),
            "!=" => (BinOp::Ne, 6),
            "<" => (BinOp::Lt, 7),
            ">" => (BinOp::Gt, 7),
            "<=" => (BinOp::Le, 7),
            ">=" => (BinOp::Ge, 7),
            "<<" => (BinOp::Shl, 8),
            ">>" => (BinOp::Shr, 8),
            "+" => (BinOp::Add, 9),
            "-" => (BinOp::Sub, 9),
            "*" => (BinOp::Mul, 10),
            "/" => (BinOp::Div, 10),
            "%" => (BinOp::Rem, 10),
            _ => return None,
        })
    }

    /// Precedence climbing over C's binary operators (all left-associative).
    fn binary(&mut self, min: u8) -> Result<(Expr, Kind), Unsupported> {
        let (mut lhs, mut kind) = self.unary()?;
        while let Some((op, prec)) = self.binop() {
            if prec <= min {
                break;
            }
            self.pos += 1;
            let (rhs, kr) = self.binary(prec)?;
            if kind != Kind::Int || kr != Kind::Int {
                return unsupported(format!("{op:?} on a non-integer"));
            }
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
            kind = Kind::Int;
        }
        Ok((lhs, kind))
    }

    fn unary(&mut self) -> Result<(Expr, Kind), Unsupported> {
        let op = match self.peek() {
            Some(Tok::Punct("-")) => Some(UnOp::Neg),
            Some(Tok::Punct("~")) => Some(UnOp::Not),
            Some(Tok::Punct("!")) => Some(UnOp::LNot),
            Some(Tok::Punct("+")) => {
                self.pos += 1;
                return self.unary();
            }
            Some(Tok::Punct("&" | "*")) => return unsupported("address-of or dereference"),
            _ => None,
        };
        if let Some(op) = op {
            self.pos += 1;
            let (e, k) = self.unary()?;
            if k != Kind::Int {
                return unsupported("unary operator on a non-integer");
            }
            return Ok((Expr::Unary(op, Box::new(e)), Kind::Int));
        }
        if self.is_punct("(") && self.starts_type(1) {
            self.pos += 1;
            let ty = self.type_name()?;
            self.expect(")")?;
            let (mut e, mut k) = self.unary()?;
            // A `char *` field is a pointer: casting it to an integer reads the address.
            if let (Expr::FieldStr(i), false) = (&e, ty.pointer) {
                if self.fields[*i].pointer_string {
                    (e, k) = (Expr::Field(*i), Kind::Int);
                }
            }
            return match (k, ty.pointer) {
                (Kind::Int, _) => Ok((Expr::Cast(ty, Box::new(e)), Kind::Int)),
                (k, true) => Ok((Expr::Cast(ty, Box::new(e)), k)),
                _ => unsupported("integer cast of a string or array"),
            };
        }
        self.postfix()
    }

    /// True if the token `k` ahead begins a type name (so a `(` before it is a cast).
    fn starts_type(&self, k: usize) -> bool {
        match self.peek_at(k) {
            Some(Tok::Ident(w)) => {
                is_type_word(w)
                    || (w.ends_with("_t")
                        && matches!(self.peek_at(k + 1), Some(Tok::Punct(")" | "*"))))
            }
            _ => false,
        }
    }

    fn type_name(&mut self) -> Result<CType, Unsupported> {
        let mut words = Vec::new();
        let mut pointer = false;
        loop {
            match self.peek() {
                Some(Tok::Ident(w)) => words.push(*w),
                Some(Tok::Punct("*")) => pointer = true,
                _ => break,
            }
            self.pos += 1;
        }
        let words: Vec<&str> = words
            .into_iter()
            .filter(|w| !matches!(*w, "const" | "volatile"))
            .collect();
        if pointer {
            return Ok(CType {
                size: 8,
                signed: false,
                boolean: false,
                pointer: true,
            });
        }
        let ty = |size, signed| CType {
            size,
            signed,
            boolean: false,
            pointer: false,
        };
        if let [w] = words.as_slice() {
            if let Some(&(_, size, signed)) = TYPEDEFS.iter().find(|t| t.0 == *w) {
                return Ok(ty(size, signed));
            }
            if matches!(*w, "bool" | "_Bool") {
                return Ok(CType {
                    size: 1,
                    signed: false,
                    boolean: true,
                    pointer: false,
                });
            }
        }
        if words.first() == Some(&"enum") {
            return Ok(ty(4, true));
        }
        let mut signed = true;
        let mut size = 4;
        let mut longs = 0;
        for w in &words {
            match *w {
                "unsigned" => signed = false,
                "signed" | "int" => {}
                "long" => longs += 1,
                "short" => size = 2,
                "char" => size = 1,
                _ => return unsupported(format!("type `{}`", words.join(" "))),
            }
        }
        if longs > 0 {
            size = 8;
        }
        if words.is_empty() {
            return unsupported("empty type");
        }
        Ok(ty(size, signed))
    }

    fn field_index(&self, name: &str) -> Result<usize, Unsupported> {
        match self.fields.iter().position(|f| &*f.name == name) {
            Some(i) => Ok(i),
            None => unsupported(format!("unknown field {name}")),
        }
    }

    /// `REC->name` (also `(REC)->name`), with an optional `[index]`.
    fn rec_field(&mut self) -> Result<(Expr, Kind), Unsupported> {
        self.expect("->")?;
        let Some(Tok::Ident(name)) = self.peek().cloned() else {
            return unsupported("expected a field name after REC->");
        };
        self.pos += 1;
        let idx = self.field_index(name)?;
        let f = &self.fields[idx];
        if self.eat("[") {
            let (i, k) = self.expr()?;
            self.expect("]")?;
            if k != Kind::Int || f.dynamic || f.array_len.unwrap_or(0) == 0 {
                return unsupported(format!("indexing {name}"));
            }
            return Ok((Expr::Index(idx, Box::new(i)), Kind::Int));
        }
        if f.string {
            if f.dynamic {
                return unsupported(format!("REC->{name} on a dynamic string"));
            }
            return Ok((Expr::FieldStr(idx), Kind::Str));
        }
        if f.dynamic || f.array_len.is_some() || f.size > 8 || f.size == 0 {
            if f.dynamic {
                return unsupported(format!("REC->{name} on a dynamic array"));
            }
            return Ok((Expr::FieldBytes(idx), Kind::Bytes));
        }
        Ok((Expr::Field(idx), Kind::Int))
    }

    fn postfix(&mut self) -> Result<(Expr, Kind), Unsupported> {
        let (e, k) = self.primary()?;
        if self.is_punct("[") || self.is_punct("->") || self.is_punct(".") {
            return unsupported("member access or indexing");
        }
        Ok((e, k))
    }

    fn primary(&mut self) -> Result<(Expr, Kind), Unsupported> {
        let Some(tok) = self.peek().cloned() else {
            return unsupported("expression expected");
        };
        self.pos += 1;
        match tok {
            Tok::Num(n) => Ok((Expr::Num(n), Kind::Int)),
            Tok::Str(s) => Ok((Expr::Str(s.into()), Kind::Str)),
            Tok::Punct("(") => {
                // `(REC)->field` appears in some print fmts.
                if matches!(self.peek(), Some(Tok::Ident("REC")))
                    && matches!(self.peek_at(1), Some(Tok::Punct(")")))
                {
                    self.pos += 2;
                    return self.rec_field();
                }
                let e = self.expr()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Ident("REC") => self.rec_field(),
            Tok::Ident(name) if self.is_punct("(") => {
                self.pos += 1;
                self.call(name)
            }
            // x86-64's default base of the `struct page` array; only ever printed hashed.
            Tok::Ident("vmemmap_base") => Ok((
                Expr::Num(CInt::new(0xffff_ea00_0000_0000, true, false)),
                Kind::Int,
            )),
            Tok::Ident(name) => match UAPI_CONSTANTS.iter().find(|c| c.0 == name) {
                Some(&(_, v)) => Ok((Expr::Num(CInt::int(v)), Kind::Int)),
                None => unsupported(format!("identifier {name}")),
            },
            Tok::Punct(p) => unsupported(format!("unexpected `{p}`")),
        }
    }

    /// A field name as the argument of `__get_str(...)` and friends.
    fn field_arg(&mut self) -> Result<usize, Unsupported> {
        let Some(Tok::Ident(name)) = self.peek().cloned() else {
            return unsupported("expected a field name");
        };
        self.pos += 1;
        self.field_index(name)
    }

    fn call(&mut self, name: &str) -> Result<(Expr, Kind), Unsupported> {
        let r = match name {
            "__get_str" | "__get_rel_str" => {
                let idx = self.field_arg()?;
                if !self.fields[idx].string {
                    return unsupported(format!("{name} on a non-string"));
                }
                (Expr::FieldStr(idx), Kind::Str)
            }
            "__get_dynamic_array" | "__get_rel_dynamic_array" => {
                (Expr::FieldBytes(self.field_arg()?), Kind::Bytes)
            }
            "__get_dynamic_array_len" | "__get_rel_dynamic_array_len" => {
                (Expr::DynLen(self.field_arg()?), Kind::Int)
            }
            "__print_flags" | "__print_flags_u64" => {
                let v = self.int_arg()?;
                self.expect(",")?;
                let Some(Tok::Str(sep)) = self.peek().cloned() else {
                    return unsupported("__print_flags separator is not a string");
                };
                self.pos += 1;
                let table = self.table()?;
                (Expr::Flags(Box::new(v), sep.into(), table), Kind::Str)
            }
            "__print_symbolic" | "__print_symbolic_u64" => {
                let v = self.int_arg()?;
                let table = self.table()?;
                (Expr::Symbolic(Box::new(v), table), Kind::Str)
            }
            "__print_hex" | "__print_hex_str" => {
                let (buf, k) = self.expr()?;
                self.expect(",")?;
                let len = self.int_arg()?;
                if k != Kind::Bytes {
                    return unsupported(format!("{name} of a non-array"));
                }
                let concat = name == "__print_hex_str";
                (Expr::Hex(Box::new(buf), Box::new(len), concat), Kind::Str)
            }
            "__print_array" => {
                let (buf, k) = self.expr()?;
                self.expect(",")?;
                let count = self.int_arg()?;
                self.expect(",")?;
                let el = self.int_arg()?;
                if k != Kind::Bytes {
                    return unsupported("__print_array of a non-array");
                }
                (
                    Expr::Array(Box::new(buf), Box::new(count), Box::new(el)),
                    Kind::Str,
                )
            }
            "sizeof" => {
                if !self.starts_type(0) {
                    return unsupported("sizeof of an expression");
                }
                let ty = self.type_name()?;
                (
                    Expr::Num(CInt::new(u64::from(ty.size), true, false)),
                    Kind::Int,
                )
            }
            "__builtin_expect" => {
                let v = self.int_arg()?;
                self.expect(",")?;
                self.int_arg()?;
                (v, Kind::Int)
            }
            _ => return unsupported(format!("function {name}")),
        };
        self.expect(")")?;
        Ok(r)
    }

    fn int_arg(&mut self) -> Result<Expr, Unsupported> {
        match self.expr()? {
            (e, Kind::Int) => Ok(e),
            _ => unsupported("integer argument expected"),
        }
    }

    /// `, { value, "name" }, ...` up to (not including) the closing parenthesis. A NULL
    /// name ends the table, as it ends the kernel's array.
    fn table(&mut self) -> Result<Table, Unsupported> {
        let mut table = Vec::new();
        let mut ended = false;
        while self.eat(",") {
            self.expect("{")?;
            if self.eat("}") {
                continue;
            }
            let value = self.int_arg()?;
            self.expect(",")?;
            let name = match self.expr()? {
                (Expr::Str(s), _) => Some(s),
                (e, Kind::Int) if const_eval(&e, self.fields).is_some_and(|v| v.bits == 0) => None,
                _ => return unsupported("table name is not a string literal"),
            };
            self.expect("}")?;
            let Some(value) = const_eval(&value, self.fields) else {
                return unsupported("table value is not a constant");
            };
            match name {
                Some(n) if !ended => table.push((value.bits, n)),
                Some(_) => {}
                None => ended = true,
            }
        }
        Ok(table)
    }
}

/// Strings and arrays are both just memory to `%s` and the `%p` extensions.
fn compatible(a: Kind, b: Kind) -> bool {
    a == b || (a != Kind::Int && b != Kind::Int)
}

/// Evaluates an expression that must not read the record.
fn const_eval(e: &Expr, fields: &[FieldInfo]) -> Option<CInt> {
    let ctx = Ctx { rec: None, fields };
    ctx.eval(e).ok()?.int().ok()
}

#[cfg(test)]
mod tests;
