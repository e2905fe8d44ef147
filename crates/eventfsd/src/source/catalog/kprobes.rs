//! Kprobes of the simulated kernel: where each kprobe event's probes sit (functions of the
//! catalog's list), how often they fire (each probed function at its rate in the profile,
//! `function:NAME`), what their records' own fields hold, `kprobe_profile`, and the head of
//! their `trace` lines, which the kernel prints with symbols (`print_kprobe_event`:
//! `(vfs_read+0x0/0x40)`; `print_kretprobe_event`: `(caller+0x1c/0x40 <- vfs_read)`).

use std::fmt::Write as _;
use std::sync::Mutex;

use ftrace_text::functions::{FunctionTable, FUNCTION_STRIDE};
use ftrace_text::probe::FENTRY_CALL_LEN;
use ftrace_text::{format, FieldValue, Generator, Record};

use super::profile::RateProfile;
use super::state::lock;

/// One probe of a kprobe event (an event has several when probes were appended to it).
struct Site {
    /// The event's id.
    id: u32,
    /// The event's name (`kprobe_profile` lists it).
    name: String,
    /// The probed function's line in the function list.
    function: u32,
    /// Bytes into it.
    offset: u64,
    /// A kretprobe.
    ret: bool,
    /// Times it fired (`nhit`).
    hits: u64,
}

/// Every kprobe, in creation order (the order `kprobe_profile` lists them).
#[derive(Default)]
pub struct Kprobes {
    sites: Mutex<Vec<Site>>,
}

impl Kprobes {
    /// A probe of event `id` (`name`) on function `function` at `offset`.
    pub fn add(&self, id: u32, name: &str, function: u32, offset: u64, ret: bool) {
        lock(&self.sites).push(Site {
            id,
            name: name.to_string(),
            function,
            offset,
            ret,
            hits: 0,
        });
    }

    /// Removes the probe of event `id` on `function` at `offset`.
    pub fn remove(&self, id: u32, function: u32, offset: u64) {
        let mut sites = lock(&self.sites);
        if let Some(at) = sites
            .iter()
            .position(|s| s.id == id && s.function == function && s.offset == offset)
        {
            sites.remove(at);
        }
    }

    /// Whether event `id` is a kprobe's: if so, whether a kretprobe's, and its name.
    pub fn describe(&self, id: u32) -> Option<(bool, String)> {
        lock(&self.sites)
            .iter()
            .find(|s| s.id == id)
            .map(|s| (s.ret, s.name.clone()))
    }

    /// How often event `id` fires: the sum of its probed functions' rates (`None` if it is
    /// not a kprobe's). `functions` is asked for only then (it loads the function list).
    pub fn rate<'f>(
        &self,
        id: u32,
        functions: impl FnOnce() -> &'f FunctionTable,
        profile: &RateProfile,
    ) -> Option<f64> {
        let sites = lock(&self.sites);
        let mut of_event = sites.iter().filter(|s| s.id == id).peekable();
        of_event.peek()?;
        let functions = functions();
        Some(
            of_event
                .map(|s| profile.rate_of("function", functions.name(s.function).unwrap_or("")))
                .sum(),
        )
    }

    /// Fills the probe's own fields of a record of event `id` (which of its probes fired is
    /// drawn), and counts the hit; nothing for an event that is not a kprobe's (`functions`
    /// is asked for only when it is).
    pub fn fill<'f>(
        &self,
        id: u32,
        record: &mut Record,
        fields: &[format::Field<'_>],
        functions: impl FnOnce() -> &'f FunctionTable,
        generator: &mut Generator,
    ) {
        let mut sites = lock(&self.sites);
        let count = sites.iter().filter(|s| s.id == id).count() as u64;
        if count == 0 {
            return;
        }
        let functions = functions();
        let pick = generator.below(count) as usize;
        let Some(site) = sites.iter_mut().filter(|s| s.id == id).nth(pick) else {
            return;
        };
        site.hits += 1;
        let entry = FunctionTable::address(site.function);
        // A caller somewhere in the list, returned to past its call instruction.
        let caller = generator.below(functions.len().max(1) as u64) as u32;
        let ret_ip = FunctionTable::address(caller)
            + FENTRY_CALL_LEN
            + generator.below(FUNCTION_STRIDE - FENTRY_CALL_LEN);
        for (field, value) in fields.iter().zip(record.fields.iter_mut()) {
            match field.name {
                "__probe_ip" => *value = FieldValue::UInt(entry + site.offset),
                "__probe_func" => *value = FieldValue::UInt(entry),
                "__probe_ret_ip" => *value = FieldValue::UInt(ret_ip),
                _ => {}
            }
        }
    }

    /// `kprobe_profile`: each probe's event, hits and misses (none are missed here).
    pub fn profile_text(&self) -> String {
        lock(&self.sites)
            .iter()
            .map(|s| format!("  {:<44} {:>15} {:>15}\n", s.name, s.hits, 0))
            .collect()
    }
}

/// Where a probe's own fields are in its records: right after the four common fields
/// (`__probe_ip`, or `__probe_func` then `__probe_ret_ip`), as its format lays them out.
const PROBE_HEAD_SLOT: usize = 4;

/// The `(...)` head of a kprobe record's `trace` line: the probed place as `%pS`, and for a
/// kretprobe the return address as `%pS` before ` <- ` and the function as `%ps`.
pub fn render_head(record: &Record, ret: bool, functions: &FunctionTable, out: &mut String) {
    let value = |slot: usize| {
        record
            .fields
            .get(PROBE_HEAD_SLOT + slot)
            .and_then(FieldValue::as_bits)
            .unwrap_or(0)
    };
    out.push('(');
    if ret {
        symbol(functions, value(1), true, out);
        out.push_str(" <- ");
        symbol(functions, value(0), false, out);
    } else {
        symbol(functions, value(0), true, out);
    }
    out.push(')');
}

/// `%pS` (`with_offset`: `name+0xOFF/0xSIZE [module]`) or `%ps` (`name [module]`) of an
/// address of the simulated text; the address in hex outside it.
fn symbol(functions: &FunctionTable, address: u64, with_offset: bool, out: &mut String) {
    let Some((line, offset)) = functions.containing(address) else {
        let _ = write!(out, "0x{address:x}");
        return;
    };
    let (name, module) = match line.split_once(' ') {
        Some((name, module)) => (name, Some(module)),
        None => (line, None),
    };
    out.push_str(name);
    if with_offset {
        let _ = write!(out, "+0x{offset:x}/0x{FUNCTION_STRIDE:x}");
    }
    if let Some(module) = module {
        out.push(' ');
        out.push_str(module);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "schedule\nvfs_read\nkvm_exit [kvm]\n";

    #[test]
    fn heads_print_symbols_with_offset_and_size() {
        let functions = FunctionTable::parse(LIST);
        let mut out = String::new();
        symbol(&functions, FunctionTable::address(1), true, &mut out);
        out.push('|');
        symbol(&functions, FunctionTable::address(2) + 0x1c, true, &mut out);
        out.push('|');
        symbol(&functions, FunctionTable::address(2), false, &mut out);
        out.push('|');
        symbol(&functions, 0x1234, true, &mut out);
        assert_eq!(
            out,
            "vfs_read+0x0/0x40|kvm_exit+0x1c/0x40 [kvm]|kvm_exit [kvm]|0x1234"
        );
    }

    #[test]
    fn profile_lists_every_probe_with_its_hits() {
        let kprobes = Kprobes::default();
        kprobes.add(7, "multi", 1, 0, false);
        kprobes.add(7, "multi", 0, 0, false);
        kprobes.add(8, "myr", 1, 0, true);
        assert_eq!(kprobes.describe(8), Some((true, "myr".to_string())));
        assert_eq!(kprobes.describe(9), None);
        let profile = RateProfile::uniform(10.0)
            .with_overrides("function:vfs_read 60\nfunction:schedule 400\n")
            .unwrap();
        let functions = FunctionTable::parse(LIST);
        assert_eq!(kprobes.rate(7, || &functions, &profile), Some(460.0));
        assert_eq!(kprobes.rate(9, || &functions, &profile), None);
        kprobes.remove(7, 0, 0);
        assert_eq!(kprobes.rate(7, || &functions, &profile), Some(60.0));
        let text = kprobes.profile_text();
        assert_eq!(
            text,
            format!(
                "  multi{}{:>16}{:>16}\n  myr{}{:>16}{:>16}\n",
                " ".repeat(39),
                0,
                0,
                " ".repeat(41),
                0,
                0
            )
        );
    }
}
