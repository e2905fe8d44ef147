//! Dynamic probe definitions, as written to `uprobe_events` and `dynamic_events`: the kernel's
//! syntax (`kernel/trace/trace_uprobe.c`, `trace_eprobe.c`, `trace_probe.c`), the errors it
//! logs, and what a definition creates (see [`layout`]: the event's `format`, its listing line).
//!
//! Uprobes (`p`/`r`), event probes (`e`, `dynamic_events` only) and kprobes (`p`/`r` on a
//! function, see [`kprobe`]; only for a kernel that has them) are covered. Differences from
//! the kernel, which has the guest's files and registers at hand and this parser does not: a
//! probed path is not looked up (any path with a `/` is taken as a regular file), and array and
//! bitfield types are refused.

use crate::kparse::{self, NumberError};

pub mod kprobe;
pub mod layout;
pub mod synth;

pub use kprobe::KPROBE_GROUP;
pub use layout::{ProbeLayout, ProbeValueSource};
pub use synth::{SynthField, SYNTH_GROUP};

/// The kernel's limit on argument count per probe (`MAX_TRACE_ARGS`).
pub const MAX_ARGS: usize = 128;
/// Where a function's first instruction (the 5-byte `call __fentry__`) ends: a kprobe inside
/// it is not on an instruction boundary.
pub const FENTRY_CALL_LEN: u64 = 5;
/// `PARAM_MAX_STACK` on x86-64 (a 16 KiB stack of 8-byte words): the highest `$stackN` and
/// `$argN`.
pub const PARAM_MAX_STACK: u64 = 2048;
/// `MAX_EVENT_NAME_LEN`: group and event names are shorter.
pub const MAX_EVENT_NAME_LEN: usize = 64;
const MAX_ARG_NAME_LEN: usize = 32;
const MAX_ARGSTR_LEN: usize = 63;
const MAX_DEREF_DEPTH: usize = 16;
/// Default group of uprobes.
pub const UPROBE_GROUP: &str = "uprobes";
/// Default group of event probes.
pub const EPROBE_GROUP: &str = "eprobes";
/// Names an argument may not take: the common fields and the probe's own.
const RESERVED_ARG_NAMES: &[&str] = &[
    "common_type",
    "common_flags",
    "common_preempt_count",
    "common_pid",
    "common_tgid",
    "__probe_ip",
    "__probe_ret_ip",
    "__probe_func",
];
/// x86-64 register names a uprobe may fetch (`%ax` ...), as `regs_query_register_offset` knows
/// them.
const X86_REGISTERS: &[&str] = &[
    "ax", "bx", "cx", "dx", "sp", "bp", "si", "di", "ip", "flags", "cs", "ss", "ds", "es", "fs",
    "gs", "orig_ax", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
];

/// Which file a command was written to: the two accept different commands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// `uprobe_events`: uprobes only.
    UprobeEvents,
    /// `dynamic_events`: any dynamic event.
    DynamicEvents,
    /// `kprobe_events`: kprobes only.
    KprobeEvents,
    /// `synthetic_events`: synthetic events only.
    SyntheticEvents,
}

/// A fetched value's type (`:u32`, `:string` ...).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ArgType {
    /// `uN`, `sN` or `xN`: an integer of `bytes` bytes, printed signed, unsigned or in hex.
    Int {
        /// Size in bytes (1, 2, 4, 8).
        bytes: u8,
        /// `sN`.
        signed: bool,
        /// `xN`.
        hex: bool,
    },
    /// `char`: one byte, printed as a character.
    Char,
    /// `string` or `ustring`: a NUL-terminated string, stored as `__data_loc char[]`.
    String,
    /// `symbol` (kprobes): an address, printed as `symbol+offset/size`.
    Symbol,
    /// `symstr` (kprobes): an address turned into its `symbol+offset/size` text when fetched.
    SymStr,
}

impl ArgType {
    /// The kernel's default type (`x64` on 64-bit).
    pub const DEFAULT: ArgType = ArgType::Int {
        bytes: 8,
        signed: false,
        hex: true,
    };
}

/// Where an argument's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetch {
    /// `%REG`.
    Register(String),
    /// `$stack` (`None`) or `$stackN`.
    Stack(Option<u64>),
    /// `$retval`.
    Retval,
    /// `$comm`.
    Comm,
    /// `$argN` (kprobes on a function's entry): the Nth argument, from 1.
    Arg(u64),
    /// `@ADDR`.
    Address(u64),
    /// `@SYMBOL[+|-OFFS]` (kprobes), as written: resolved when the probe is registered.
    Symbol(String),
    /// `@+OFFS`: a file offset in the probed binary.
    FileOffset(u64),
    /// `\IMM`.
    Immediate(u64),
    /// `\"STR"`.
    ImmediateString(String),
    /// `$FIELD` of the event an event probe is attached to.
    Field(String),
    /// `+|-[u]OFFS(FETCH)`: memory at an offset from another fetch.
    Deref {
        /// Byte offset.
        offset: i64,
        /// `u`: user memory.
        user: bool,
        /// What gives the base address.
        base: Box<Fetch>,
    },
}

impl Fetch {
    /// Whether the value is read from memory (what `string` needs).
    fn is_memory(&self) -> bool {
        matches!(
            self,
            Fetch::Deref { .. }
                | Fetch::Address(_)
                | Fetch::Symbol(_)
                | Fetch::FileOffset(_)
                | Fetch::Comm
                | Fetch::ImmediateString(_)
                | Fetch::Field(_)
        )
    }

    /// The `@SYMBOL`s it reads (through dereferences too), as written.
    fn symbols(&self) -> impl Iterator<Item = &str> {
        let mut at = Some(self);
        std::iter::from_fn(move || loop {
            match at? {
                Fetch::Deref { base, .. } => at = Some(base),
                Fetch::Symbol(text) => {
                    at = None;
                    return Some(text.as_str());
                }
                _ => at = None,
            }
        })
    }
}

/// One fetch argument of a probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeArg {
    /// Its field name.
    pub name: String,
    /// The text after `NAME=` as written (the listing shows it).
    pub text: String,
    /// What it fetches.
    pub fetch: Fetch,
    /// Its type.
    pub ty: ArgType,
}

/// What a probe is attached to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// A uprobe at `path:offset`; `ret` for a return probe.
    Uprobe {
        /// The binary, as written.
        path: String,
        /// Offset in the file.
        offset: u64,
        /// `r` or `%return`.
        ret: bool,
        /// `(REF_CTR_OFFSET)`, 0 when absent.
        ref_ctr: u64,
    },
    /// A kprobe on one of the kernel's functions; `ret` for a kretprobe.
    Kprobe {
        /// The function (`MODULE:NAME` for a module's).
        symbol: String,
        /// Bytes after its entry.
        offset: u64,
        /// `r` or `%return`.
        ret: bool,
        /// `rN`: return instances (the daemon fills in the kernel's default when absent).
        maxactive: Option<u32>,
    },
    /// A synthetic event (no probe: histogram actions generate it).
    Synthetic {
        /// Its fields, in order.
        fields: Vec<SynthField>,
    },
    /// An event probe on another event.
    Eprobe {
        /// The attached event's system.
        system: String,
        /// The attached event.
        event: String,
        /// `if FILTER`, on the attached event's fields.
        filter: Option<String>,
    },
}

/// A parsed probe definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeDef {
    /// The group (the event's system).
    pub group: String,
    /// The event's name.
    pub event: String,
    /// What it probes.
    pub kind: ProbeKind,
    /// Its fetch arguments.
    pub args: Vec<ProbeArg>,
}

/// One command of a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeCommand {
    /// Define a probe.
    Define(ProbeDef),
    /// `-:[GROUP/][EVENT] [words]`: remove the probes that match.
    Remove {
        /// `None`: any group.
        group: Option<String>,
        /// Empty: every event of the group.
        event: String,
        /// Words after the name, which must begin the matching probe's listing.
        words: Vec<String>,
    },
}

/// A command the kernel refuses: its errno and, when the kernel logs one, the `error_log`
/// entry's subsystem, message and caret position in the normalised command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeError {
    /// The write's errno.
    pub errno: i32,
    /// `None` for refusals the kernel does not log.
    pub logged: Option<LoggedError>,
}

/// The parts of an `error_log` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedError {
    /// `trace_uprobe` or `event_probe`.
    pub subsystem: &'static str,
    /// The message.
    pub message: &'static str,
    /// The command, its words joined by single spaces.
    pub command: String,
    /// Where the caret goes in `command`.
    pub position: usize,
}

impl LoggedError {
    /// The entry's text after the timestamp, as `tracing_log_err` prints it.
    pub fn entry_text(&self) -> String {
        crate::filter::render_error_log(self.subsystem, self.message, &self.command, self.position)
    }
}

impl ProbeError {
    /// A refusal the kernel does not log.
    pub fn silent(errno: i32) -> Self {
        ProbeError {
            errno,
            logged: None,
        }
    }
}

/// Collects what an error entry needs while a command is parsed.
struct Log<'a> {
    subsystem: &'static str,
    argv: &'a [&'a str],
}

impl Log<'_> {
    fn err(&self, index: usize, offset: usize, message: &'static str, errno: i32) -> ProbeError {
        let command = self.argv.join(" ");
        let position = if index >= self.argv.len() {
            command.len() + 1
        } else {
            self.argv[..index]
                .iter()
                .map(|w| w.len() + 1)
                .sum::<usize>()
                + offset
        };
        ProbeError {
            errno,
            logged: Some(LoggedError {
                subsystem: self.subsystem,
                message,
                command,
                position,
            }),
        }
    }

    fn inval(&self, index: usize, offset: usize, message: &'static str) -> ProbeError {
        self.err(index, offset, message, libc_errno::EINVAL)
    }
}

/// Errnos by name (Linux numbering), as the other languages of this crate use them.
pub use crate::filter::errno as libc_errno;

/// The lines of a write as `trace_parse_run_command` hands them on: split at newlines, each
/// cut at its first `#`. Empty lines are kept (they are no-ops).
pub fn command_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n')
        .map(|line| line.split('#').next().unwrap_or(""))
}

/// `is_good_name`: a C identifier.
pub fn is_good_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && bytes.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// `is_good_system_name`: a C identifier that may also contain `-`.
pub fn is_good_system_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b'-')
        && bytes.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// What the parser needs to know about the kernel: the attached event of an event probe
/// (whether it exists, and its fields' names and whether each holds a string), and for kprobes
/// its functions.
pub trait AttachTarget {
    /// The fields of `system/event`, or `None` if no such (non-probe) event exists.
    fn fields_of(&self, system: &str, event: &str) -> Option<Vec<(String, bool)>>;

    /// Whether the kernel has kprobes (`kprobe_events`).
    fn has_kprobes(&self) -> bool {
        false
    }

    /// How many of the kernel's functions are called `symbol` (`MODULE:NAME` names a module's).
    fn functions_named(&self, _symbol: &str) -> usize {
        0
    }

    /// Whether the kernel has synthetic events (`synthetic_events`).
    fn has_synthetic_events(&self) -> bool {
        false
    }

    /// Whether a synthetic event called `name` is defined.
    fn synthetic_event_exists(&self, _name: &str) -> bool {
        false
    }
}

/// Parses one command line (already cut at `#`). `Ok(None)` for a line with no words.
pub fn parse_command(
    line: &str,
    via: Via,
    targets: &dyn AttachTarget,
) -> Result<Option<ProbeCommand>, ProbeError> {
    let argv: Vec<&str> = line
        .split(|c: char| c.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    if via == Via::SyntheticEvents {
        return ProbeCommand::parse_synth(line, false, |name| targets.synthetic_event_exists(name));
    }
    let Some(first) = argv.first() else {
        return Ok(None);
    };
    if line.starts_with('-') || (via == Via::DynamicEvents && line.starts_with('!')) {
        return parse_remove(&argv).map(Some);
    }
    let define = |def: ProbeDef| Some(ProbeCommand::Define(def));
    if via == Via::DynamicEvents && line.starts_with("s:") && targets.has_synthetic_events() {
        return ProbeCommand::parse_synth(line, true, |name| targets.synthetic_event_exists(name));
    }
    match first.as_bytes()[0] {
        // `dynamic_events` offers a command to the kprobe parser first; a uprobe's place
        // makes it pass (`-ECANCELED`).
        b'p' | b'r' if via != Via::UprobeEvents && targets.has_kprobes() => {
            match ProbeDef::parse_kprobe(&argv, targets)? {
                Some(def) => Ok(define(def)),
                None if via == Via::DynamicEvents => parse_uprobe(&argv).map(define),
                None => Err(ProbeError::silent(libc_errno::EINVAL)),
            }
        }
        b'p' | b'r' if via != Via::KprobeEvents => parse_uprobe(&argv).map(define),
        b'e' if via == Via::DynamicEvents => {
            parse_eprobe(&argv, targets).map(|d| Some(ProbeCommand::Define(d)))
        }
        _ => Err(ProbeError::silent(libc_errno::EINVAL)),
    }
}

fn parse_remove(argv: &[&str]) -> Result<ProbeCommand, ProbeError> {
    let spec = argv[0]
        .split_once(':')
        .map(|(_, rest)| rest)
        .ok_or(ProbeError::silent(libc_errno::EINVAL))?;
    let (group, event) = match spec.split_once('/').or_else(|| spec.split_once('.')) {
        Some((group, event)) => (Some(group.to_string()), event.to_string()),
        None => (None, spec.to_string()),
    };
    if group.is_none() && event.is_empty() {
        return Err(ProbeError::silent(libc_errno::EINVAL));
    }
    Ok(ProbeCommand::Remove {
        group,
        event,
        words: argv[1..].iter().map(|w| w.to_string()).collect(),
    })
}

/// `[GROUP/]EVENT` after the command letter; `default_group` if none. Returns `None` for the
/// event when it is to be generated.
fn parse_event_name(
    log: &Log<'_>,
    text: &str,
    at: usize,
    default_group: &str,
) -> Result<(String, Option<String>), ProbeError> {
    let (group, event, event_at) = match text.find('/').or_else(|| text.find('.')) {
        Some(sep) => {
            let group = &text[..sep];
            if group.is_empty() {
                return Err(log.inval(0, at, "Group name is not specified"));
            }
            if group.len() + 1 > MAX_EVENT_NAME_LEN {
                return Err(log.inval(0, at, "Group name is too long"));
            }
            if !is_good_system_name(group) {
                return Err(log.inval(
                    0,
                    at,
                    "Group name must follow the same rules as C identifiers",
                ));
            }
            (group.to_string(), &text[sep + 1..], at + sep + 1)
        }
        None => {
            if text.is_empty() {
                return Err(log.inval(0, at, "Event name is not specified"));
            }
            (default_group.to_string(), text, at)
        }
    };
    if event.is_empty() {
        return Ok((group, None));
    }
    if event.len() >= MAX_EVENT_NAME_LEN {
        return Err(log.inval(0, event_at, "Event name is too long"));
    }
    if !is_good_name(event) {
        return Err(log.inval(
            0,
            event_at,
            "Event name must follow the same rules as C identifiers",
        ));
    }
    Ok((group, Some(event.to_string())))
}

fn kstrtoul(text: &str) -> Result<u64, NumberError> {
    kparse::kstrtoull(text.as_bytes(), 0)
}

fn parse_uprobe(argv: &[&str]) -> Result<ProbeDef, ProbeError> {
    let log = Log {
        subsystem: "trace_uprobe",
        argv,
    };
    if argv.len() < 2 {
        return Err(ProbeError::silent(libc_errno::EINVAL));
    }
    if argv.len() - 2 > MAX_ARGS {
        return Err(log.err(2, 0, "Too many arguments are specified", libc_errno::E2BIG));
    }
    let mut ret = argv[0].starts_with('r');
    let event_part = argv[0]
        .strip_prefix(|c| c == 'p' || c == 'r')
        .and_then(|r| r.strip_prefix(':'));
    let place = argv[1];
    if !place.contains('/') {
        return Err(ProbeError::silent(libc_errno::EINVAL));
    }
    let colon = place
        .rfind(':')
        .ok_or(ProbeError::silent(libc_errno::EINVAL))?;
    if !place[colon + 1..].starts_with(|c: char| c.is_ascii_digit()) {
        return Err(ProbeError::silent(libc_errno::EINVAL));
    }
    let path = &place[..colon];
    let mut rest = &place[colon + 1..];
    let rest_at = colon + 1;
    let mut ref_ctr = 0;
    if let Some(open) = rest.find('(') {
        let Some(close) = rest[open..].find(')').map(|c| open + c) else {
            return Err(log.inval(1, place.len(), "Reference counter brace is not closed"));
        };
        if close + 1 != rest.len() {
            return Err(log.inval(1, rest_at + close + 1, "Reference counter has wrong suffix"));
        }
        ref_ctr = kstrtoul(&rest[open + 1..close]).map_err(|e| {
            log.err(
                1,
                rest_at + open + 1,
                "Invalid reference counter offset",
                e.errno(),
            )
        })?;
        rest = &rest[..open];
    }
    if let Some(percent) = rest.find('%') {
        if &rest[percent..] != "%return" {
            return Err(log.inval(1, rest_at + percent, "Invalid probed address suffix"));
        }
        ret = true;
        rest = &rest[..percent];
    }
    let offset =
        kstrtoul(rest).map_err(|e| log.err(1, rest_at, "Invalid uprobe offset", e.errno()))?;
    let (group, event) = match event_part {
        Some(text) => parse_event_name(&log, text, 2, UPROBE_GROUP)?,
        None => (UPROBE_GROUP.to_string(), None),
    };
    let event = event.unwrap_or_else(|| default_uprobe_name(path, offset));
    let context = ArgContext::Uprobe { ret };
    let args = parse_args(&log, &argv[2..], &context)?;
    Ok(ProbeDef {
        group,
        event,
        kind: ProbeKind::Uprobe {
            path: path.to_string(),
            offset,
            ret,
            ref_ctr,
        },
        args,
    })
}

/// `p_<basename cut at the first . - or _>_0x<offset>`, at most 63 bytes.
fn default_uprobe_name(path: &str, offset: u64) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let tail = base.split(['.', '-', '_']).next().unwrap_or(base);
    let mut name = format!("p_{tail}_0x{offset:x}");
    // The kernel cuts bytes; cut at the last whole character within them.
    let mut end = name.len().min(MAX_EVENT_NAME_LEN - 1);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    name
}

fn parse_eprobe(argv: &[&str], targets: &dyn AttachTarget) -> Result<ProbeDef, ProbeError> {
    let log = Log {
        subsystem: "event_probe",
        argv,
    };
    if argv.len() < 2 {
        return Err(ProbeError::silent(libc_errno::EINVAL));
    }
    let event_part = argv[0].find(':').map(|c| (&argv[0][c + 1..], c + 1));
    let (group, event) = match event_part {
        Some((text, at)) => parse_event_name(&log, text, at, EPROBE_GROUP)?,
        None => (EPROBE_GROUP.to_string(), None),
    };
    let target = argv[1];
    let (system, attached) = match target.find('/').or_else(|| target.find('.')) {
        Some(sep) if sep > 0 && sep + 1 < target.len() => (&target[..sep], &target[sep + 1..]),
        _ => {
            return Err(log.inval(1, 0, "This requires both group and event name to attach"));
        }
    };
    let if_at = argv.iter().position(|w| *w == "if");
    let arg_words = &argv[2..if_at.unwrap_or(argv.len())];
    if arg_words.len() > MAX_ARGS {
        return Err(log.err(2, 0, "Too many arguments are specified", libc_errno::E2BIG));
    }
    let filter = match if_at {
        Some(at) if at + 1 == argv.len() => {
            return Err(log.inval(at, 0, "No filter rule after 'if'"));
        }
        Some(at) => Some(argv[at + 1..].join(" ")),
        None => None,
    };
    let Some(fields) = targets.fields_of(system, attached) else {
        return Err(log.err(1, 0, "Attached event does not exist", libc_errno::ENODEV));
    };
    let context = ArgContext::Eprobe { fields: &fields };
    let args = parse_args(&log, arg_words, &context)?;
    Ok(ProbeDef {
        group,
        event: event.unwrap_or_else(|| attached.to_string()),
        kind: ProbeKind::Eprobe {
            system: system.to_string(),
            event: attached.to_string(),
            filter,
        },
        args,
    })
}

/// What fetches are allowed in.
enum ArgContext<'a> {
    Uprobe {
        ret: bool,
    },
    /// `entry`: at a function's entry (`$argN` is there).
    Kprobe {
        ret: bool,
        entry: bool,
    },
    Eprobe {
        fields: &'a [(String, bool)],
    },
}

fn parse_args(
    log: &Log<'_>,
    words: &[&str],
    context: &ArgContext<'_>,
) -> Result<Vec<ProbeArg>, ProbeError> {
    let kprobe = matches!(context, ArgContext::Kprobe { .. });
    let mut args: Vec<ProbeArg> = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let index = i + 2;
        let (name, body, body_at) = match word.find('=') {
            Some(0) => return Err(log.inval(index, 0, "Argument name is not specified")),
            Some(eq) => {
                let name = &word[..eq];
                if name.len() > MAX_ARG_NAME_LEN {
                    return Err(log.inval(index, 0, "Argument name is too long"));
                }
                if !is_good_name(name) {
                    return Err(log.inval(
                        index,
                        0,
                        "Argument name must follow the same rules as C identifiers",
                    ));
                }
                (name.to_string(), &word[eq + 1..], eq + 1)
            }
            None => (format!("arg{}", i + 1), *word, 0),
        };
        if RESERVED_ARG_NAMES.contains(&name.as_str()) || args.iter().any(|a| a.name == name) {
            return Err(log.inval(index, 0, "This argument name is already used"));
        }
        if body.len() > MAX_ARGSTR_LEN {
            return Err(log.err(
                index,
                body_at,
                "Argument expression is too long",
                libc_errno::E2BIG,
            ));
        }
        if body.is_empty() {
            return Err(log.inval(index, body_at, "No argument expression"));
        }
        let (fetch_text, type_text) = match body.find(':') {
            Some(colon) => (
                &body[..colon],
                Some((&body[colon + 1..], body_at + colon + 1)),
            ),
            None => (body, None),
        };
        let fetch = parse_fetch(log, fetch_text, (index, body_at), context, 0)?;
        let forced_string = matches!(fetch, Fetch::Comm | Fetch::ImmediateString(_));
        let ty = match type_text {
            None if forced_string => ArgType::String,
            None => ArgType::DEFAULT,
            Some((text, type_at)) => {
                let ty = parse_type(log, text, (index, type_at), context)?;
                if forced_string && ty != ArgType::String && kprobe {
                    // Linux 6.1 refuses it without a log entry.
                    return Err(ProbeError::silent(libc_errno::EINVAL));
                }
                if forced_string && ty != ArgType::String {
                    return Err(log.inval(
                        index,
                        type_at,
                        "$comm and immediate-string only accepts string type",
                    ));
                }
                ty
            }
        };
        if ty == ArgType::String && !fetch.is_memory() {
            // Linux 6.1 puts the caret under the type.
            let at = match type_text {
                Some((_, type_at)) if kprobe => type_at,
                _ => body_at,
            };
            return Err(log.inval(index, at, "String accepts only memory argument"));
        }
        args.push(ProbeArg {
            name,
            text: body.to_string(),
            fetch,
            ty,
        });
    }
    Ok(args)
}

fn parse_type(
    log: &Log<'_>,
    text: &str,
    (index, at): (usize, usize),
    context: &ArgContext<'_>,
) -> Result<ArgType, ProbeError> {
    let int = |signed: bool, hex: bool, bits: &str| -> Option<ArgType> {
        let bytes = match bits {
            "8" => 1,
            "16" => 2,
            "32" => 4,
            "64" => 8,
            _ => return None,
        };
        Some(ArgType::Int { bytes, signed, hex })
    };
    let kprobe = matches!(context, ArgContext::Kprobe { .. });
    let ty = match text {
        // Linux 6.1 (the kernel kprobes follow here) has no `char`.
        "char" if kprobe => None,
        "char" => Some(ArgType::Char),
        "string" | "ustring" => Some(ArgType::String),
        "symbol" if kprobe => Some(ArgType::Symbol),
        "symstr" if kprobe => Some(ArgType::SymStr),
        "symbol" | "symstr" if matches!(context, ArgContext::Uprobe { .. }) => None,
        "symbol" => int(false, true, "64"),
        _ => match text.split_at_checked(1) {
            Some(("u", bits)) => int(false, false, bits),
            Some(("s", bits)) => int(true, false, bits),
            Some(("x", bits)) => int(false, true, bits),
            _ => None,
        },
    };
    // Arrays (`u32[4]`) and bitfields (`b4@2/32`) exist in the kernel but not in the
    // simulation: they are refused like an unknown type.
    ty.ok_or_else(|| log.inval(index, at, "Unknown type is specified"))
}

fn parse_fetch(
    log: &Log<'_>,
    text: &str,
    (index, at): (usize, usize),
    context: &ArgContext<'_>,
    depth: usize,
) -> Result<Fetch, ProbeError> {
    // Carets point into the argument: `at` is where `text` starts in word `index`.
    let err = |offset: usize, message: &'static str| log.inval(index, at + offset, message);
    let uprobe = matches!(context, ArgContext::Uprobe { .. });
    let kprobe = matches!(context, ArgContext::Kprobe { .. });
    let first = text.as_bytes().first().copied().unwrap_or(0);
    match first {
        b'%' => {
            let reg = &text[1..];
            if !uprobe && !kprobe {
                return Err(err(0, "Invalid $-valiable specified"));
            }
            if X86_REGISTERS.contains(&reg) {
                Ok(Fetch::Register(reg.to_string()))
            } else {
                Err(err(0, "Invalid register name"))
            }
        }
        // An event probe's unknown `$FIELD` is reported at the start of the argument.
        b'$' => parse_variable(&text[1..], context, err, |message| {
            log.inval(index, 0, message)
        }),
        b'@' => {
            let rest = &text[1..];
            if let Some(offset) = rest.strip_prefix('+') {
                if !uprobe {
                    return Err(err(0, "File offset is not available with kprobe"));
                }
                return kstrtoul(offset)
                    .map(Fetch::FileOffset)
                    .map_err(|_| err(0, "Invalid file offset value"));
            }
            if rest.starts_with(|c: char| c.is_ascii_digit()) {
                return kstrtoul(rest)
                    .map(Fetch::Address)
                    .map_err(|_| err(0, "Invalid memory address"));
            }
            if uprobe {
                Err(err(0, "Symbol is not available with uprobe"))
            } else if kprobe {
                // Looked up when the probe is registered.
                Ok(Fetch::Symbol(rest.to_string()))
            } else {
                // The simulated kernel has no symbols to resolve.
                Err(err(0, "Invalid memory address"))
            }
        }
        b'+' | b'-' => {
            if depth >= MAX_DEREF_DEPTH {
                return Err(err(0, "Dereference is too much nested"));
            }
            let Some(open) = text.find('(') else {
                return Err(err(0, "Dereference needs a brace"));
            };
            // `+|-[u]OFFS`: the `u` (user memory) sits between the sign and the digits.
            let number = &text[1..open];
            let (user, digits) = match number.strip_prefix('u') {
                Some(digits) => (true, digits),
                None => (false, number),
            };
            let magnitude = kstrtoul(digits).map_err(|_| err(0, "Invalid dereference offset"))?;
            if !text.ends_with(')') {
                return Err(err(text.len(), "Dereference brace is not closed"));
            }
            let inner = &text[open + 1..text.len() - 1];
            let base = parse_fetch(log, inner, (index, at + open + 1), context, depth + 1)?;
            if base == Fetch::Comm {
                return Err(err(open + 1, "$comm can not be dereferenced"));
            }
            let offset = magnitude as i64 * if first == b'-' { -1 } else { 1 };
            Ok(Fetch::Deref {
                offset,
                user,
                base: Box::new(base),
            })
        }
        b'\\' => {
            let rest = &text[1..];
            if let Some(string) = rest.strip_prefix('"') {
                return match string.strip_suffix('"') {
                    Some(s) => Ok(Fetch::ImmediateString(s.to_string())),
                    None => Err(err(0, "String is not closed with '\"'")),
                };
            }
            let value = match rest.strip_prefix('-') {
                Some(negative) => kstrtoul(negative).map(|v| (v as i64).wrapping_neg() as u64),
                None => kstrtoul(rest),
            };
            value
                .map(Fetch::Immediate)
                .map_err(|_| err(0, "Invalid immediate value"))
        }
        // Linux 6.1 has no BTF arguments.
        _ if is_good_name(text) && !kprobe => Err(err(0, "BTF is not available or not supported")),
        _ => Err(err(0, "Invalid fetch argument")),
    }
}

fn parse_variable(
    name: &str,
    context: &ArgContext<'_>,
    err: impl Fn(usize, &'static str) -> ProbeError,
    word_err: impl Fn(&'static str) -> ProbeError,
) -> Result<Fetch, ProbeError> {
    if name == "comm" || name == "COMM" {
        return Ok(Fetch::Comm);
    }
    match context {
        ArgContext::Uprobe { ret } => task_variable(name, *ret, None, err),
        ArgContext::Kprobe { ret, entry } => task_variable(name, *ret, Some(*entry), err),
        ArgContext::Eprobe { fields } => {
            if fields.iter().any(|(field, _)| field == name) {
                Ok(Fetch::Field(name.to_string()))
            } else {
                Err(word_err("Invalid $-valiable specified"))
            }
        }
    }
}

/// A uprobe's or kprobe's `$` variable other than `$comm`: `$retval`, `$stack[N]` and, for a
/// kprobe (`kprobe_entry` says whether it sits at a function's entry), `$argN`. Kprobes follow
/// Linux 6.1's `parse_probe_vars`, uprobes the current kernel's.
fn task_variable(
    name: &str,
    ret: bool,
    kprobe_entry: Option<bool>,
    err: impl Fn(usize, &'static str) -> ProbeError,
) -> Result<Fetch, ProbeError> {
    let invalid = "Invalid $-valiable specified";
    if name == "retval" {
        return if ret {
            Ok(Fetch::Retval)
        } else {
            Err(err(0, "$retval is not available on probe"))
        };
    }
    if let Some(n) = name.strip_prefix("stack") {
        if n.is_empty() {
            return Ok(Fetch::Stack(None));
        }
        return match (kparse::kstrtoull(n.as_bytes(), 10), kprobe_entry) {
            (Ok(n), None) => Ok(Fetch::Stack(Some(n))),
            (Ok(n), Some(_)) if n <= PARAM_MAX_STACK => Ok(Fetch::Stack(Some(n))),
            (_, None) => Err(err(0, invalid)),
            (_, Some(_)) => Err(err(0, "Invalid stack number")),
        };
    }
    if let Some(n) = name.strip_prefix("arg") {
        return match (kparse::kstrtoull(n.as_bytes(), 10), kprobe_entry) {
            (_, Some(false)) | (Err(_), _) => Err(err(0, invalid)),
            (Ok(0), _) => Err(err(0, "Invalid argument number")),
            (Ok(_), None) => Err(err(0, "$arg* can be used only on function entry or exit")),
            (Ok(n), Some(true)) if n > PARAM_MAX_STACK => Err(err(0, "Invalid argument number")),
            (Ok(n), Some(true)) => Ok(Fetch::Arg(n)),
        };
    }
    Err(err(0, invalid))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod kprobe_tests;

#[cfg(test)]
mod synth_tests;
