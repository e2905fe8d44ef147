//! What a probe definition creates: its event's `format` (fields packed after the probe's
//! own head, as `traceprobe_define_arg_fields` lays them out, and the `print fmt` of
//! `__set_print_fmt`), the line `uprobe_events`/`dynamic_events` list it with, and the text
//! `trace` shows for its records (the kernel prints probe events with their own output
//! function, not the print fmt).

use std::fmt::Write;

use super::synth::{fields_listing, synth_format};
use super::{ArgType, Fetch, ProbeArg, ProbeDef, ProbeKind};

/// Where an event probe's record gets each argument's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeValueSource {
    /// A field of the attached event's record.
    Field(String),
    /// The current task's name.
    Comm,
    /// A constant.
    Immediate(u64),
    /// A constant string.
    ImmediateString(String),
    /// Memory or registers the simulation does not have: a made-up value.
    Generated,
}

/// The texts a definition produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeLayout {
    /// The whole `format` file.
    pub format: String,
    /// The print fmt `trace` renders records with (`"(0x%lx) a=%u", REC->__probe_ip, ...`).
    pub display_fmt: String,
}

impl ArgType {
    /// Type name in the `format` file, size, and whether it is signed.
    fn field(self) -> (&'static str, u32, bool) {
        match self {
            ArgType::Int { bytes, signed, .. } => {
                let name = match (bytes, signed) {
                    (1, false) => "u8",
                    (2, false) => "u16",
                    (4, false) => "u32",
                    (_, false) => "u64",
                    (1, true) => "s8",
                    (2, true) => "s16",
                    (4, true) => "s32",
                    (_, true) => "s64",
                };
                (name, u32::from(bytes), signed)
            }
            ArgType::Char => ("u8", 1, false),
            ArgType::Symbol => ("u64", 8, false),
            ArgType::String | ArgType::SymStr => ("__data_loc char[]", 4, true),
        }
    }

    /// Its conversion in a print fmt.
    fn print_conversion(self) -> &'static str {
        match self {
            ArgType::Int {
                bytes: 8,
                signed: false,
                hex: false,
            } => "%Lu",
            ArgType::Int {
                bytes: 8,
                signed: true,
                ..
            } => "%Ld",
            ArgType::Int {
                bytes: 8,
                hex: true,
                ..
            } => "0x%Lx",
            ArgType::Int { signed: true, .. } => "%d",
            ArgType::Int { hex: true, .. } => "0x%x",
            ArgType::Int { .. } => "%u",
            ArgType::Char => "'%c'",
            ArgType::Symbol => "%pS",
            ArgType::String | ArgType::SymStr => "\\\"%s\\\"",
        }
    }

    /// Its argument in a print fmt.
    fn print_argument(self, name: &str) -> String {
        match self {
            ArgType::String | ArgType::SymStr => format!("__get_str({name})"),
            _ => format!("REC->{name}"),
        }
    }
}

impl ProbeArg {
    fn source(&self) -> ProbeValueSource {
        match &self.fetch {
            Fetch::Field(field) => ProbeValueSource::Field(field.clone()),
            Fetch::Comm => ProbeValueSource::Comm,
            Fetch::Immediate(value) => ProbeValueSource::Immediate(*value),
            Fetch::ImmediateString(text) => ProbeValueSource::ImmediateString(text.clone()),
            _ => ProbeValueSource::Generated,
        }
    }
}

impl ProbeDef {
    /// Whether this is a return uprobe or kretprobe.
    pub fn is_return(&self) -> bool {
        matches!(
            self.kind,
            ProbeKind::Uprobe { ret: true, .. } | ProbeKind::Kprobe { ret: true, .. }
        )
    }

    /// The probe's own fields after the common ones, and the print fmt's head and its
    /// arguments: `(%lx)` for an entry probe, `(%lx <- %lx)` for a return one, nothing for an
    /// event probe.
    fn head(&self) -> (&'static [&'static str], &'static str, &'static str) {
        if matches!(self.kind, ProbeKind::Eprobe { .. }) {
            return (&[], "", "");
        }
        match self.is_return() {
            false => (&["__probe_ip"], "(%lx)", ", REC->__probe_ip"),
            true => (
                &["__probe_func", "__probe_ret_ip"],
                "(%lx <- %lx)",
                ", REC->__probe_func, REC->__probe_ret_ip",
            ),
        }
    }

    /// ` NAME=FMT ...` and `, REC->NAME ...` of the arguments.
    fn args_print(&self) -> (String, String) {
        let mut conversions = String::new();
        let mut arguments = String::new();
        for arg in &self.args {
            let _ = write!(conversions, " {}={}", arg.name, arg.ty.print_conversion());
            let _ = write!(arguments, ", {}", arg.ty.print_argument(&arg.name));
        }
        (conversions, arguments)
    }

    /// The event's `format` file (with id `id`) and the fmt `trace` renders it with.
    pub fn layout(&self, id: u32) -> ProbeLayout {
        if let ProbeKind::Synthetic { fields } = &self.kind {
            let (format, display_fmt) = synth_format(&self.event, id, fields);
            return ProbeLayout {
                format,
                display_fmt,
            };
        }
        let mut format = format!(
            "name: {}\nID: {id}\nformat:\n\
             \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
             \tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
             \tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
             \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n",
            self.event
        );
        let (head_fields, head_fmt, head_args) = self.head();
        let mut offset = 8;
        for field in head_fields {
            let _ = writeln!(
                format,
                "\tfield:unsigned long {field};\toffset:{offset};\tsize:8;\tsigned:0;"
            );
            offset += 8;
        }
        for arg in &self.args {
            let (ty, size, signed) = arg.ty.field();
            let _ = writeln!(
                format,
                "\tfield:{ty} {};\toffset:{offset};\tsize:{size};\tsigned:{};",
                arg.name,
                u8::from(signed)
            );
            offset += size;
        }
        let (conversions, arguments) = self.args_print();
        let _ = writeln!(
            format,
            "\nprint fmt: \"{head_fmt}{conversions}\"{head_args}{arguments}"
        );
        // The kernel's own output for probes (`print_uprobe_event`, `print_eprobe_event`).
        let (display_head_text, display_head_args) = match &self.kind {
            ProbeKind::Uprobe { ret: false, .. } => ("(0x%lx)".to_string(), ", REC->__probe_ip"),
            ProbeKind::Uprobe { ret: true, .. } => (
                "(0x%lx <- 0x%lx)".to_string(),
                ", REC->__probe_ret_ip, REC->__probe_func",
            ),
            ProbeKind::Eprobe { system, event, .. } => (format!("({system}.{event})"), ""),
            // Laid out above.
            ProbeKind::Synthetic { .. } => (String::new(), ""),
            // `(symbol+offset/size)` is not a print fmt: the daemon writes that head itself
            // (`print_kprobe_event`), so the fmt holds the arguments alone.
            ProbeKind::Kprobe { .. } => (String::new(), ""),
        };
        ProbeLayout {
            format,
            display_fmt: format!(
                "\"{display_head_text}{conversions}\"{display_head_args}{arguments}"
            ),
        }
    }

    /// Where each argument's value comes from, in field order.
    pub fn value_sources(&self) -> Vec<(String, ProbeValueSource)> {
        self.args
            .iter()
            .map(|arg| (arg.name.clone(), arg.source()))
            .collect()
    }

    /// The line `uprobe_events` and `dynamic_events` list it with.
    pub fn listing(&self) -> String {
        let mut line = match &self.kind {
            ProbeKind::Uprobe {
                path,
                offset,
                ret,
                ref_ctr,
            } => {
                let letter = if *ret { 'r' } else { 'p' };
                let mut line = format!(
                    "{letter}:{}/{} {path}:0x{offset:016x}",
                    self.group, self.event
                );
                if *ref_ctr != 0 {
                    let _ = write!(line, "(0x{ref_ctr:x})");
                }
                line
            }
            ProbeKind::Eprobe { system, event, .. } => {
                format!("e:{}/{} {system}.{event}", self.group, self.event)
            }
            ProbeKind::Synthetic { fields } => {
                format!(
                    "s:{}/{}\t{}",
                    self.group,
                    self.event,
                    fields_listing(fields)
                )
            }
            ProbeKind::Kprobe {
                symbol,
                offset,
                ret,
                maxactive,
            } => {
                let mut line = String::from(if *ret { "r" } else { "p" });
                if let (true, Some(n)) = (*ret, maxactive) {
                    let _ = write!(line, "{n}");
                }
                let _ = write!(line, ":{}/{} {symbol}", self.group, self.event);
                if *offset != 0 {
                    let _ = write!(line, "+{offset}");
                }
                line
            }
        };
        for arg in &self.args {
            let _ = write!(line, " {}={}", arg.name, arg.text);
        }
        line
    }

    /// Whether another probe may join this one's event (the kernel's multi-probe append):
    /// the same kind and return-ness, and the same argument names and types.
    pub fn same_event_shape(&self, other: &ProbeDef) -> Result<(), ShapeMismatch> {
        let appendable = matches!(
            (&self.kind, &other.kind),
            (ProbeKind::Uprobe { .. }, ProbeKind::Uprobe { .. })
                | (ProbeKind::Kprobe { .. }, ProbeKind::Kprobe { .. })
        );
        if !appendable {
            return Err(ShapeMismatch::NotAppendable);
        }
        if self.is_return() != other.is_return() {
            return Err(ShapeMismatch::ProbeType);
        }
        let first_different = self
            .args
            .iter()
            .zip(&other.args)
            .position(|(a, b)| a.name != b.name || a.ty != b.ty)
            .or((self.args.len() != other.args.len())
                .then(|| self.args.len().min(other.args.len())));
        match first_different {
            Some(at) => Err(ShapeMismatch::Arguments(at)),
            None => Ok(()),
        }
    }

    /// Whether `other` probes the same place with the same argument texts.
    pub fn same_probe(&self, other: &ProbeDef) -> bool {
        self.kind == other.kind
            && self.args.len() == other.args.len()
            && self
                .args
                .iter()
                .zip(&other.args)
                .all(|(a, b)| a.text == b.text)
    }
}

/// Why a probe cannot join an existing event of the same name.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ShapeMismatch {
    /// Event probes never share an event.
    NotAppendable,
    /// Entry and return probes differ.
    ProbeType,
    /// Argument names or types differ, from this argument (counted from 0) on.
    Arguments(usize),
}
