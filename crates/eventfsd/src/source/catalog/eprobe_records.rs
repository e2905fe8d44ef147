//! The records of event probes: each is made from the record of the event it is attached to,
//! whose task, context and field values it takes (`trace_eprobe.c`'s `process_fetch_insn`).

use ftrace_text::{format, FieldValue, Record};

use super::state;

/// An event probe's record takes the task and context of the record it was made from, and
/// each argument from its source.
pub fn fill_probe_record(
    probe: &mut Record,
    probe_fields: &[format::Field<'_>],
    from: &Record,
    from_fields: &[format::Field<'_>],
    attachment: &state::Attachment,
) {
    use ftrace_text::probe::ProbeValueSource as Source;
    probe.cpu = from.cpu;
    probe.pid = from.pid;
    probe.comm = from.comm.clone();
    probe.flags = from.flags;
    // Written from inside the event's trigger: one preemption level deeper (d..2. -> d..3.).
    probe.preempt_count = (from.preempt_count & 0xf0) | ((from.preempt_count & 0xf) + 1).min(0xf);
    for (slot, field) in probe_fields.iter().enumerate() {
        let value = match field.name {
            "common_flags" => FieldValue::UInt(u64::from(from.flags)),
            "common_preempt_count" => FieldValue::UInt(u64::from(probe.preempt_count)),
            "common_pid" => FieldValue::Int(i64::from(from.pid)),
            name => match attachment.sources.iter().find(|(n, _)| n == name) {
                Some((_, Source::Field(source))) => match from.field(from_fields, source) {
                    Some(FieldValue::Str(s)) if format::is_string(field) => {
                        FieldValue::Str(s.clone())
                    }
                    Some(v) => match v.as_bits() {
                        Some(bits) => sized(bits, field),
                        None => continue,
                    },
                    None => continue,
                },
                Some((_, Source::Comm)) => FieldValue::Str(from.comm.clone()),
                Some((_, Source::Immediate(v))) => sized(*v, field),
                Some((_, Source::ImmediateString(s))) => FieldValue::Str(s.as_str().into()),
                _ => continue,
            },
        };
        probe.fields[slot] = value;
    }
}

/// An integer cut to a field's size, signed if the field is.
fn sized(bits: u64, field: &format::Field<'_>) -> FieldValue {
    let width = field.size.min(8) * 8;
    let masked = if width >= 64 {
        bits
    } else {
        bits & ((1 << width) - 1)
    };
    if field.signed && width < 64 && masked >> (width - 1) & 1 == 1 {
        FieldValue::Int((masked | !((1 << width) - 1)) as i64)
    } else if field.signed {
        FieldValue::Int(masked as i64)
    } else {
        FieldValue::UInt(masked)
    }
}
