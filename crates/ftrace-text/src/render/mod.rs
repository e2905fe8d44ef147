//! ftrace's default text output: the `trace` header, each line's context columns, and an
//! interpreter for the `print fmt` of an event's `format` file.
//!
//! A print fmt is the C argument list the kernel passes to its printf when it formats an
//! event: a format string and expressions over `REC->field`. [`CompiledFmt::compile`] parses
//! it once into a small tree; [`CompiledFmt::render`] evaluates it per record with C's integer
//! semantics. When a print fmt uses something this interpreter does not know (or a record
//! makes evaluation fail), the whole event body is printed in the kernel's `fields` option
//! style instead (`name=value ...`) and the caller gets [`RenderOutcome::Fallback`].

use std::fmt::Write as _;

use crate::format::Field;
use crate::record::{self, FieldValue, Record, MARKER_SYMBOL};

mod base;
mod expr;
mod parse;
mod printf;
mod value;

use base::{fake_address, FieldInfo, Unsupported};
use expr::{Ctx, Expr};
use parse::Parser;
use printf::{Count, Seg};
use value::{format_conv, EvalError};

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
    /// `ftrace/kernel_stack` (the `stacktrace` trigger and option): `<stack trace>` and one
    /// ` => ` line per frame, as `trace_stack_print` writes it.
    KernelStack { size: usize, caller: usize },
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
            Body::KernelStack { size, caller } => {
                self.render_stack(rec, *size, *caller, out);
                true
            }
            Body::Fallback { .. } => false,
        };
        if ok {
            return RenderOutcome::Rendered;
        }
        out.truncate(start);
        self.render_fields(rec, out);
        RenderOutcome::Fallback
    }

    /// A stack entry: the frames `size` says it holds, up to the end of `caller` or the
    /// first `ULONG_MAX`. With no kernel symbols to resolve them, each frame prints as the
    /// kernel prints an address it has no symbol for (`0x…`; `0` for a null one).
    fn render_stack(&self, rec: &Record, size: usize, caller: usize, out: &mut String) {
        out.push_str("<stack trace>");
        let frames = match rec.fields.get(caller) {
            Some(FieldValue::Bytes(b)) => b.as_ref(),
            _ => &[],
        };
        let count = self.raw_bits(rec, size) as usize;
        for frame in frames.chunks_exact(8).take(count) {
            let ip = u64::from_le_bytes(frame.try_into().expect("8-byte chunk"));
            if ip == u64::MAX {
                break;
            }
            if ip == 0 {
                out.push_str("\n => 0");
            } else {
                let _ = write!(out, "\n => 0x{ip:x}");
            }
        }
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
    if event_name == "kernel_stack" {
        return Some(Body::KernelStack {
            size: pos("size")?,
            caller: pos("caller")?,
        });
    }
    if event_name == "print" && pos("ip").is_some() {
        return Some(Body::Marker { buf: pos("buf")? });
    }
    None
}

#[cfg(test)]
mod tests;
