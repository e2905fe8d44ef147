//! Kprobe definitions (`p`/`r` written to `kprobe_events`, or to `dynamic_events` when the place
//! is not a uprobe's `PATH:OFFSET`), as Linux 6.1's `__trace_kprobe_create` parses them: the
//! kernel whose catalog has a function list (the only one with kprobes here).
//!
//! The simulated kernel has functions but no machine code: a symbol is one of the catalog's
//! functions, registers and memory are not read (values are made up), and a probe address is
//! refused as outside the kernel's text.

use super::{
    kstrtoul, libc_errno, parse_args, parse_event_name, ArgContext, AttachTarget, Log, ProbeDef,
    ProbeError, ProbeKind, FENTRY_CALL_LEN, MAX_ARGS, MAX_EVENT_NAME_LEN,
};
use crate::kparse;

/// Default group of kprobes.
pub const KPROBE_GROUP: &str = "kprobes";
/// `KRETPROBE_MAXACTIVE_MAX`.
const MAXACTIVE_MAX: u64 = 4096;

/// Messages of `trace_probe.h` that only kprobes log.
pub(super) const BAD_PROBE_ADDR: &str = "Invalid probed address or symbol";

impl ProbeDef {
    /// Parses a kprobe command. `Ok(None)`: the place is a uprobe's (`PATH:OFFSET`), so the
    /// command is not a kprobe's (the kernel's `-ECANCELED`, which lets `dynamic_events` try
    /// the uprobe parser).
    pub(super) fn parse_kprobe(
        argv: &[&str],
        targets: &dyn AttachTarget,
    ) -> Result<Option<ProbeDef>, ProbeError> {
        let log = Log {
            subsystem: "trace_kprobe",
            argv,
        };
        if argv.len() < 2 {
            return Err(ProbeError::silent(libc_errno::EINVAL));
        }
        if argv.len() - 2 > MAX_ARGS {
            return Err(log.err(2, 0, "Too many arguments are specified", libc_errno::E2BIG));
        }
        let head = argv[0];
        let mut ret = head.starts_with('r');
        let colon = head[1..].find(':').map(|c| c + 1);
        let maxactive = parse_maxactive(&log, head, colon, ret)?;
        let place = argv[1];
        if kstrtoul(place).is_ok() {
            // An address: the simulated kernel has no text to probe.
            return Err(log.err(1, 0, BAD_PROBE_ADDR, libc_errno::ENOENT));
        }
        if place.contains('/') && place.contains(':') {
            return Ok(None);
        }
        let mut symbol = place;
        if let Some(percent) = symbol.find('%') {
            if &symbol[percent..] != "%return" {
                return Err(log.inval(1, percent, "Invalid probed address suffix"));
            }
            ret = true;
            symbol = &symbol[..percent];
        }
        let (symbol, offset) =
            split_symbol_offset(symbol).ok_or_else(|| log.inval(1, 0, BAD_PROBE_ADDR))?;
        let known = targets.functions_named(symbol);
        if ret && offset != 0 && known > 0 {
            return Err(log.inval(1, 0, "Retprobe address must be an function entry"));
        }
        if !symbol.contains(':') {
            if known > 1 {
                return Err(log.err(1, 0, "The symbol is not unique", libc_errno::EADDRNOTAVAIL));
            }
            if known == 0 {
                return Err(log.err(1, 0, BAD_PROBE_ADDR, libc_errno::ENOENT));
            }
        }
        let (group, event) = match colon {
            Some(at) => parse_event_name(&log, &head[at + 1..], at + 1, KPROBE_GROUP)?,
            None => (KPROBE_GROUP.to_string(), None),
        };
        let event = event.unwrap_or_else(|| default_name(ret, symbol, offset));
        let context = ArgContext::Kprobe {
            ret,
            entry: offset == 0 && !ret,
        };
        let args = parse_args(&log, &argv[2..], &context)?;
        // What registering the probe checks: the place, then each `@SYMBOL`.
        if known == 0 {
            return Err(log.err(1, 0, BAD_PROBE_ADDR, libc_errno::ENOENT));
        }
        if offset != 0 && offset < FENTRY_CALL_LEN {
            return Err(log.err(
                1,
                0,
                "Probe point is not an instruction boundary",
                libc_errno::EILSEQ,
            ));
        }
        for symbol in args.iter().flat_map(|a| a.fetch.symbols()) {
            match split_signed_offset(symbol) {
                None => return Err(log.inval(1, 0, "Failed to register probe event")),
                Some(name) if targets.functions_named(name) == 0 => {
                    return Err(log.err(1, 0, BAD_PROBE_ADDR, libc_errno::ENOENT))
                }
                Some(_) => {}
            }
        }
        Ok(Some(ProbeDef {
            group,
            event,
            kind: ProbeKind::Kprobe {
                symbol: symbol.to_string(),
                offset,
                ret,
                maxactive,
            },
            args,
        }))
    }
}

/// `rN`: the number of return instances (`None` when not given).
fn parse_maxactive(
    log: &Log<'_>,
    head: &str,
    colon: Option<usize>,
    ret: bool,
) -> Result<Option<u32>, ProbeError> {
    if !head[1..].starts_with(|c: char| c.is_ascii_digit()) {
        return Ok(None);
    }
    if !ret {
        return Err(log.inval(0, 1, "Maxactive is not for kprobe"));
    }
    let digits = &head[1..colon.unwrap_or(head.len())];
    if digits.len() > MAX_EVENT_NAME_LEN - 1 {
        return Err(log.inval(0, 1, "Invalid maxactive number"));
    }
    match kparse::kstrtoull(digits.as_bytes(), 0) {
        Ok(n) if n == 0 || n > u64::from(u32::MAX) => {
            Err(log.inval(0, 1, "Invalid maxactive number"))
        }
        Ok(n) if n > MAXACTIVE_MAX => Err(log.inval(0, 1, "Maxactive is too big")),
        Ok(n) => Ok(Some(n as u32)),
        Err(_) => Err(log.inval(0, 1, "Invalid maxactive number")),
    }
}

/// `traceprobe_split_symbol_offset`: `SYM`, `SYM+OFFS` (the offset as `kstrtol` reads it,
/// sign included); a negative offset or one above `UINT_MAX` is refused.
fn split_symbol_offset(text: &str) -> Option<(&str, u64)> {
    let Some(sign) = text.find(['+', '-']) else {
        return Some((text, 0));
    };
    let (symbol, tail) = text.split_at(sign);
    if let Some(magnitude) = tail.strip_prefix('-') {
        // `kstrtol` of `-N`: only `-0` is not negative.
        return kparse::kstrtoull(magnitude.as_bytes(), 0)
            .ok()
            .filter(|&n| n == 0)
            .map(|n| (symbol, n));
    }
    kparse::kstrtoull(tail.as_bytes(), 0)
        .ok()
        .filter(|&n| n <= u64::from(u32::MAX))
        .map(|n| (symbol, n))
}

/// The symbol of an `@SYMBOL[+|-OFFS]` fetch, whose offset may be negative; `None` when the
/// offset does not parse.
fn split_signed_offset(text: &str) -> Option<&str> {
    let Some(sign) = text.find(['+', '-']) else {
        return Some(text);
    };
    kparse::kstrtoull(&text.as_bytes()[sign + 1..], 0)
        .ok()
        .map(|_| &text[..sign])
}

/// `p_SYMBOL_OFFSET` (`r_` for a return probe), cut to 63 bytes, a module's `:` and any `.`
/// made `_` (`sanitize_event_name`).
fn default_name(ret: bool, symbol: &str, offset: u64) -> String {
    let letter = if ret { 'r' } else { 'p' };
    let mut name = format!("{letter}_{symbol}_{offset}");
    let mut end = name.len().min(MAX_EVENT_NAME_LEN - 1);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    name.replace([':', '.'], "_")
}
