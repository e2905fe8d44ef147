//! Synthetic trace records and a deterministic generator that fills them from a format.
//!
//! The catalog source has no live kernel behind it, so "events" are made up: a record holds
//! one value per field of the event's `format` (common fields included), typed from the
//! field's declaration so that the print fmt renders and filters evaluate the way they would
//! on a real record.

use std::mem::size_of;

use crate::filter::Value;
use crate::format::{self, Field};

/// `common_flags` bit: interrupts were disabled (`d`).
pub const FLAG_IRQS_OFF: u8 = 0x01;
/// `common_flags` bit: a lazy reschedule is pending (`l`).
pub const FLAG_NEED_RESCHED_LAZY: u8 = 0x02;
/// `common_flags` bit: a reschedule is pending (`n`/`N`).
pub const FLAG_NEED_RESCHED: u8 = 0x04;
/// `common_flags` bit: in hard interrupt context (`h`).
pub const FLAG_HARDIRQ: u8 = 0x08;
/// `common_flags` bit: in softirq context (`s`).
pub const FLAG_SOFTIRQ: u8 = 0x10;
/// `common_flags` bit: preemption is pending (`p`/`N`).
pub const FLAG_PREEMPT_RESCHED: u8 = 0x20;
/// `common_flags` bit: in NMI context (`z`).
pub const FLAG_NMI: u8 = 0x40;
/// `common_flags` bit: bottom halves were disabled (`b`).
pub const FLAG_BH_OFF: u8 = 0x80;

/// Symbol the kernel's `trace_marker` records point at; `print` records render it as their
/// first word.
pub const MARKER_SYMBOL: &str = "tracing_mark_write";
/// Fake text address stored in a marker record's `ip` field.
pub const MARKER_IP: u64 = 0xffff_ffff_8128_4d60;

/// One field's value in a [`Record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// A signed integer field, already sign-extended from the field's size.
    Int(i64),
    /// An unsigned integer field (also pointers), already truncated to the field's size.
    UInt(u64),
    /// A string field (`char x[N]`, `__data_loc char[]`, `char *`), without the NUL.
    Str(Box<str>),
    /// Any other array, as the raw little-endian bytes a kernel record would hold.
    Bytes(Box<[u8]>),
}

impl FieldValue {
    /// Heap bytes owned by this value (beyond its inline size).
    fn heap_size(&self) -> usize {
        match self {
            FieldValue::Str(s) => s.len(),
            FieldValue::Bytes(b) => b.len(),
            FieldValue::Int(_) | FieldValue::UInt(_) => 0,
        }
    }

    /// The value as integer bits, if it is a number.
    pub fn as_bits(&self) -> Option<u64> {
        match *self {
            FieldValue::Int(i) => Some(i as u64),
            FieldValue::UInt(u) => Some(u),
            _ => None,
        }
    }
}

/// One synthetic event occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Timestamp in nanoseconds of the trace clock.
    pub ts_ns: u64,
    /// CPU the event "happened" on.
    pub cpu: u32,
    /// Current task's pid (`common_pid`).
    pub pid: i32,
    /// Current task's name, as `comm`/`COMM` in filters and the line's `TASK` column.
    pub comm: Box<str>,
    /// `common_flags`, with the kernel's bit layout (`FLAG_*`).
    pub flags: u8,
    /// `common_preempt_count`: preemption depth in the low nibble, migrate-disable depth in
    /// the high nibble.
    pub preempt_count: u8,
    /// The event's id (`common_type`).
    pub event_id: u32,
    /// One value per field of the event's format, in format order, common fields included.
    pub fields: Box<[FieldValue]>,
}

impl Record {
    /// Bytes this record occupies in memory: the struct plus everything it owns on the heap.
    ///
    /// The ring buffer budgets with this number, so memory stays bounded by
    /// `buffer_size_kb` however large the strings in the records are.
    pub fn heap_size(&self) -> usize {
        size_of::<Record>()
            + self.comm.len()
            + self.fields.len() * size_of::<FieldValue>()
            + self.fields.iter().map(FieldValue::heap_size).sum::<usize>()
    }

    /// A `trace_marker` write, as the kernel's `ftrace/print` event (`ip`, `buf` after the
    /// common fields). `text` is stored without its trailing newline; the renderer prints it
    /// as `tracing_mark_write: <text>`.
    #[allow(clippy::too_many_arguments)]
    pub fn marker(
        print_event_id: u32,
        ts_ns: u64,
        cpu: u32,
        pid: i32,
        comm: &str,
        flags: u8,
        preempt_count: u8,
        text: &str,
    ) -> Record {
        let text = text.strip_suffix('\n').unwrap_or(text);
        Record {
            ts_ns,
            cpu,
            pid,
            comm: comm.into(),
            flags,
            preempt_count,
            event_id: print_event_id,
            fields: Box::new([
                FieldValue::UInt(u64::from(print_event_id & 0xffff)),
                FieldValue::UInt(u64::from(flags)),
                FieldValue::UInt(u64::from(preempt_count)),
                FieldValue::Int(i64::from(pid)),
                FieldValue::UInt(MARKER_IP),
                FieldValue::Str(text.into()),
            ]),
        }
    }

    /// A stack entry (`ftrace/kernel_stack`, whose format is `int size; unsigned long
    /// caller[8]` after the common fields) of the task and context of `context`, holding
    /// `frames` (at most 8, the rest `ULONG_MAX` as in an unfilled kernel entry).
    pub fn kernel_stack(stack_event_id: u32, context: &Record, frames: &[u64]) -> Record {
        let frames = &frames[..frames.len().min(8)];
        let mut caller = Vec::with_capacity(64);
        for slot in 0..8 {
            let ip = frames.get(slot).copied().unwrap_or(u64::MAX);
            caller.extend_from_slice(&ip.to_le_bytes());
        }
        Record {
            event_id: stack_event_id,
            fields: Box::new([
                FieldValue::UInt(u64::from(stack_event_id & 0xffff)),
                FieldValue::UInt(u64::from(context.flags)),
                FieldValue::UInt(u64::from(context.preempt_count)),
                FieldValue::Int(i64::from(context.pid)),
                FieldValue::Int(frames.len() as i64),
                FieldValue::Bytes(caller.into()),
            ]),
            ts_ns: context.ts_ns,
            cpu: context.cpu,
            pid: context.pid,
            comm: context.comm.clone(),
            flags: context.flags,
            preempt_count: context.preempt_count,
        }
    }

    /// The value of field `name` for a filter, `fields` being the event's format fields (the
    /// ones the record was generated from).
    ///
    /// Uses the filter module's canonical names: `common_cpu` and `comm` are the generic
    /// fields (they win over event fields of the same name, as in the kernel), everything
    /// else is looked up in the format. Non-string arrays have no filter value.
    pub fn value_of<'r>(&'r self, fields: &[Field<'_>], name: &str) -> Option<Value<'r>> {
        match name {
            "common_cpu" => return Some(Value::Int(i64::from(self.cpu))),
            "comm" => return Some(Value::Str(&self.comm)),
            "common_pid" => return Some(Value::Int(i64::from(self.pid))),
            _ => {}
        }
        let idx = fields.iter().position(|f| f.name == name)?;
        match self.fields.get(idx)? {
            FieldValue::Int(i) => Some(Value::Int(*i)),
            FieldValue::UInt(u) => Some(Value::UInt(*u)),
            FieldValue::Str(s) => Some(Value::Str(s)),
            FieldValue::Bytes(_) => None,
        }
    }

    /// The value of the field called `name`, `fields` being the event's format fields.
    pub fn field<'r>(&'r self, fields: &[Field<'_>], name: &str) -> Option<&'r FieldValue> {
        let idx = fields.iter().position(|f| f.name == name)?;
        self.fields.get(idx)
    }
}

/// SplitMix64: tiny, fast, and good enough to make varied but reproducible values.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (`n > 0`); the modulo bias is irrelevant for fake data.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `1/n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A made-up task: records of one task carry the same pid and comm.
#[derive(Debug, Clone, Copy)]
struct Task {
    pid: i32,
    comm: &'static str,
}

const TASK_NAMES: &[&str] = &[
    "bash",
    "systemd",
    "sshd",
    "cat",
    "kworker/0:1",
    "kworker/u8:2",
    "rcu_preempt",
    "ksoftirqd/0",
    "journald",
    "ls",
    "qemu-system-x86",
    "sleep",
];
const DEVICE_NAMES: &[&str] = &["vda", "sda", "nvme0n1", "eth0", "lo", "virtio0", "dm-0"];
const PATHS: &[&str] = &[
    "/usr/bin/ls",
    "/etc/passwd",
    "/usr/lib/libc.so.6",
    "/tmp/out.txt",
    "/proc/self/stat",
    "/var/log/syslog",
];

/// Deterministic producer of plausible records: the same seed and the same sequence of calls
/// give the same records.
#[derive(Debug, Clone)]
pub struct Generator {
    rng: SplitMix64,
    now_ns: u64,
    nr_cpus: u32,
    tasks: Vec<Task>,
}

impl Generator {
    /// A generator for one CPU.
    pub fn new(seed: u64) -> Self {
        Self::with_cpus(seed, 1)
    }

    /// A generator spreading records over `nr_cpus` CPUs (at least one).
    pub fn with_cpus(seed: u64, nr_cpus: u32) -> Self {
        let mut rng = SplitMix64(seed);
        let nr_cpus = nr_cpus.max(1);
        // pid 0 is the idle task of CPU 0; the others get pids in a realistic range.
        let mut tasks = vec![Task {
            pid: 0,
            comm: "swapper/0",
        }];
        for &comm in TASK_NAMES {
            let pid = 1 + rng.below(40_000) as i32;
            tasks.push(Task { pid, comm });
        }
        Generator {
            // Start a while after "boot", like a real system's trace clock.
            now_ns: 1_000_000_000 + rng.below(1_000_000_000),
            rng,
            nr_cpus,
            tasks,
        }
    }

    /// Current trace clock value (the timestamp of the last record).
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Moves the trace clock forward to `ns` (never backwards), so that records made later in
    /// real time carry later timestamps.
    pub fn advance_to(&mut self, ns: u64) {
        self.now_ns = self.now_ns.max(ns);
    }

    /// A deterministic number in `0..n` (`n > 0`) from the generator's stream, for callers
    /// that schedule records (when each one happens).
    pub fn below(&mut self, n: u64) -> u64 {
        self.rng.below(n.max(1))
    }

    /// A plausible kernel call chain of 4 to 8 return addresses in kernel text, innermost
    /// first.
    pub fn call_chain(&mut self) -> Vec<u64> {
        let depth = 4 + self.rng.below(5);
        (0..depth)
            .map(|_| 0xffff_ffff_8100_0000 + (self.rng.below(0x00ff_ffff) & !0xf))
            .collect()
    }

    /// Makes one record of event `event_id` whose format has `fields`; its timestamp is a
    /// little after the previous one.
    pub fn record(&mut self, event_id: u32, fields: &[Field<'_>]) -> Record {
        let ts = self.now_ns + 1_000 + self.rng.below(50_000);
        self.record_at(ts, event_id, fields)
    }

    /// Makes one record of event `event_id` that happened at `ts_ns` (the clock moves to it,
    /// never backwards).
    pub fn record_at(&mut self, ts_ns: u64, event_id: u32, fields: &[Field<'_>]) -> Record {
        self.now_ns = self.now_ns.max(ts_ns);
        let cpu = self.rng.below(u64::from(self.nr_cpus)) as u32;
        let task = self.rng.pick(&self.tasks);
        let mut flags = 0;
        if self.rng.one_in(4) {
            flags |= FLAG_IRQS_OFF;
        }
        if self.rng.one_in(8) {
            flags |= FLAG_HARDIRQ | FLAG_IRQS_OFF;
        } else if self.rng.one_in(8) {
            flags |= FLAG_SOFTIRQ;
        }
        if self.rng.one_in(16) {
            flags |= FLAG_NEED_RESCHED;
        }
        let preempt_count = if self.rng.one_in(3) {
            1 + self.rng.below(2) as u8
        } else {
            0
        };
        let values = fields
            .iter()
            .map(|f| match f.name {
                "common_type" => FieldValue::UInt(u64::from(event_id) & mask(f.size)),
                "common_flags" => FieldValue::UInt(u64::from(flags)),
                "common_preempt_count" => FieldValue::UInt(u64::from(preempt_count)),
                "common_pid" => FieldValue::Int(i64::from(task.pid)),
                _ => self.value(f),
            })
            .collect();
        Record {
            ts_ns: self.now_ns,
            cpu,
            pid: task.pid,
            comm: task.comm.into(),
            flags,
            preempt_count,
            event_id,
            fields: values,
        }
    }

    /// A plausible value for one (non-common) field, chosen by its type and name.
    fn value(&mut self, f: &Field<'_>) -> FieldValue {
        // `unsigned char`/`u8` arrays are usually binary (MAC and IP addresses, UUIDs) even
        // though filters treat them as strings.
        let binary = f.ty.contains("unsigned char") || matches!(f.ty, "u8" | "__u8");
        if format::is_string(f) && !(binary && f.array_len.is_some_and(|n| n > 0)) {
            let max = match f.array_len {
                Some(n) if n > 0 => n as usize - 1,
                _ => usize::MAX,
            };
            let mut s = self.string_for(f.name).to_owned();
            s.truncate(max);
            return FieldValue::Str(s.into());
        }
        let dynamic = f.ty.contains("__data_loc") || f.ty.contains("__rel_loc");
        if dynamic || f.array_len.is_some() || f.size > 8 || f.size == 0 {
            let len = if dynamic || f.size == 0 {
                8 * self.rng.below(5) as usize
            } else {
                f.size as usize
            };
            let bytes: Vec<u8> = (0..len).map(|_| self.rng.next() as u8).collect();
            return FieldValue::Bytes(bytes.into());
        }
        let raw = self.number_for(f);
        let bits = raw & mask(f.size);
        if f.signed {
            let shift = 64 - 8 * f.size;
            FieldValue::Int(((bits << shift) as i64) >> shift)
        } else {
            FieldValue::UInt(bits)
        }
    }

    fn string_for(&mut self, name: &str) -> &'static str {
        if name.contains("comm") || name.contains("task") {
            self.rng.pick(&self.tasks).comm
        } else if name.contains("file") || name.contains("path") {
            self.rng.pick(PATHS)
        } else if name.contains("dev") || name.contains("name") || name.contains("driver") {
            self.rng.pick(DEVICE_NAMES)
        } else {
            self.rng.pick(TASK_NAMES)
        }
    }

    /// Raw number (before truncation to the field's size) shaped by the field name, so that
    /// pids look like pids, addresses like kernel addresses, and sizes like sizes.
    fn number_for(&mut self, f: &Field<'_>) -> u64 {
        let n = f.name;
        let r = &mut self.rng;
        if f.size == 1 && (f.ty.contains("bool") || n.starts_with("is_")) {
            return r.below(2);
        }
        if n.contains("pid") || n.contains("tgid") {
            let t = r.below(self.tasks.len() as u64) as usize;
            return self.tasks[t].pid as u64;
        }
        if n.contains("prio") {
            return if r.one_in(4) { r.below(100) } else { 120 };
        }
        if n.contains("cpu") {
            return r.below(u64::from(self.nr_cpus));
        }
        if n == "vec" {
            return r.below(10);
        }
        if n.contains("irq") {
            return r.below(64);
        }
        if n == "ret" || n.contains("err") {
            return if r.one_in(5) {
                (-(1 + r.below(30) as i64)) as u64
            } else {
                0
            };
        }
        if n.contains("addr")
            || n.contains("ptr")
            || n == "ip"
            || n.contains("call_site")
            || n.ends_with("_ip")
            || f.ty.contains('*')
        {
            return 0xffff_8881_0000_0000 | (r.below(1 << 28) << 4);
        }
        if n.contains("len") || n.contains("size") || n.contains("bytes") || n.contains("count") {
            return 1 << r.below(16);
        }
        if n == "prev_state" {
            // One task state at a time (R, S, D, T, I), as `__trace_sched_switch_state` reports.
            return r.pick(&[0u64, 1, 1, 1, 2, 4, 0x80]);
        }
        if n.contains("flags") || n.contains("state") || n.contains("mask") {
            return if r.one_in(3) { 0 } else { r.next() & 0x1ff };
        }
        if n == "dev" {
            // MKDEV as the kernel encodes it in trace fields (major << 20 | minor).
            return (r.pick(&[8u64, 252, 253, 259]) << 20) | r.below(16);
        }
        if n.contains("sector") || n.contains("ino") || n.contains("index") {
            return r.below(1 << 24);
        }
        if r.one_in(8) {
            r.next()
        } else {
            r.below(1000)
        }
    }
}

/// All-ones mask for a field of `size` bytes.
fn mask(size: u32) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * size)) - 1
    }
}
