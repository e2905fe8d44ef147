//! Ring-buffer pages in the kernel's binary layout: what `per_cpu/cpuN/trace_pipe_raw` returns.
//!
//! The layout is the one `events/header_page` and `events/header_event` describe on x86_64
//! (`kernel/trace/ring_buffer.c`): a 16-byte page header (u64 time stamp, u64 commit), then
//! events of a 4-byte header (`type_len:5, time_delta:27`) and a payload padded to 4 bytes,
//! laid out by the event's `format`.

use crate::format::{self, Field};
use crate::record::{FieldValue, Record};

/// Size of one ring-buffer page (the sub-buffer `header_page` declares on 4 KiB-page kernels).
pub const PAGE_SIZE: usize = 4096;
/// Bytes before the event data: `timestamp` and `commit`.
pub const PAGE_HEADER_SIZE: usize = 16;
/// Room for event data in one page.
pub const PAGE_DATA_SIZE: usize = PAGE_SIZE - PAGE_HEADER_SIZE;
/// `commit` flag: events were lost between the previous page read and this one.
pub const MISSED_EVENTS: u64 = 1 << 31;
/// `commit` flag: the number of lost events is stored as a u64 right after the data.
pub const MISSED_STORED: u64 = 1 << 30;
/// `type_len` of a padding event.
pub const TYPE_PADDING: u32 = 29;
/// `type_len` of a time extend (the delta did not fit 27 bits).
pub const TYPE_TIME_EXTEND: u32 = 30;
/// Largest `type_len` of a data event whose length is in the header (`type_len * 4` bytes).
pub const TYPE_DATA_MAX: u32 = 28;
/// Bits of `time_delta` in an event header.
pub const TIME_DELTA_BITS: u32 = 27;

/// How one field of a record is stored in its payload.
#[derive(Copy, Clone, Debug)]
enum Slot {
    /// A number of `size` bytes at `offset`.
    Number { offset: usize, size: usize },
    /// A fixed array (`char comm[16]`, `u8 addr[6]`) of `size` bytes at `offset`.
    Inline { offset: usize, size: usize },
    /// `__data_loc`: a u32 `(len << 16) | offset from the payload start` at `offset`.
    DataLoc { offset: usize },
    /// `__rel_loc`: as `DataLoc`, the offset counted from the end of the u32 itself.
    RelLoc { offset: usize },
    /// A flexible array (`char buf[]`, size 0) at the end: its bytes follow the fixed part.
    Tail,
}

/// Where each field of one event goes in its binary payload, built once from its `format`.
#[derive(Clone, Debug)]
pub struct PayloadLayout {
    slots: Vec<Slot>,
    /// Bytes of the fixed part (end of the last field).
    fixed_size: usize,
}

impl PayloadLayout {
    /// The layout of records generated from `fields` (the event's whole format, in order).
    pub fn new(fields: &[Field<'_>]) -> PayloadLayout {
        let slots = fields
            .iter()
            .map(|f| {
                let (offset, size) = (f.offset as usize, f.size as usize);
                if f.ty.contains("__data_loc") {
                    Slot::DataLoc { offset }
                } else if f.ty.contains("__rel_loc") {
                    Slot::RelLoc { offset }
                } else if f.array_len == Some(0) && size == 0 {
                    Slot::Tail
                } else if f.array_len.is_some() || size > 8 {
                    Slot::Inline { offset, size }
                } else {
                    Slot::Number { offset, size }
                }
            })
            .collect();
        let fixed_size = fields
            .iter()
            .map(|f| (f.offset + f.size) as usize)
            .max()
            .unwrap_or(0);
        PayloadLayout { slots, fixed_size }
    }

    /// The layout of an event from its `format` text.
    pub fn from_format(format_text: &str) -> PayloadLayout {
        let fields: Vec<Field<'_>> = format::fields(format_text).collect();
        PayloadLayout::new(&fields)
    }

    /// Appends the payload of `record` to `out`, padded to 4 bytes.
    pub fn encode(&self, record: &Record, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + self.fixed_size, 0);
        for (slot, value) in self.slots.iter().zip(record.fields.iter()) {
            match (*slot, value) {
                (Slot::Number { offset, size }, _) => {
                    let bits = value.as_bits().unwrap_or(0).to_le_bytes();
                    let size = size.min(8);
                    out[start + offset..start + offset + size].copy_from_slice(&bits[..size]);
                }
                (Slot::Inline { offset, size }, FieldValue::Str(s)) => {
                    // NUL-terminated within the array, as strscpy leaves it.
                    let n = s.len().min(size.saturating_sub(1));
                    out[start + offset..start + offset + n].copy_from_slice(&s.as_bytes()[..n]);
                }
                (Slot::Inline { offset, size }, FieldValue::Bytes(b)) => {
                    let n = b.len().min(size);
                    out[start + offset..start + offset + n].copy_from_slice(&b[..n]);
                }
                (Slot::Inline { offset, size }, number) => {
                    let bits = number.as_bits().unwrap_or(0).to_le_bytes();
                    let n = size.min(8);
                    out[start + offset..start + offset + n].copy_from_slice(&bits[..n]);
                }
                (Slot::Tail, FieldValue::Str(s)) => {
                    out.extend_from_slice(s.as_bytes());
                    out.push(0);
                }
                (Slot::Tail, FieldValue::Bytes(b)) => out.extend_from_slice(b),
                (Slot::Tail, _) => {}
                (Slot::DataLoc { offset } | Slot::RelLoc { offset }, value) => {
                    let data_start = out.len() - start;
                    match value {
                        FieldValue::Str(s) => {
                            out.extend_from_slice(s.as_bytes());
                            out.push(0);
                        }
                        FieldValue::Bytes(b) => out.extend_from_slice(b),
                        FieldValue::Int(_) | FieldValue::UInt(_) => {}
                    }
                    let len = (out.len() - start - data_start).min(0xffff);
                    let base = if matches!(slot, Slot::RelLoc { .. }) {
                        offset + 4
                    } else {
                        0
                    };
                    let loc = ((len as u32) << 16) | (data_start - base) as u32;
                    out[start + offset..start + offset + 4].copy_from_slice(&loc.to_le_bytes());
                }
            }
        }
        out.resize(start + (out.len() - start).next_multiple_of(4), 0);
    }
}

/// Builds one ring-buffer page from records in time order.
pub struct PageBuilder {
    page: Vec<u8>,
    /// Time stamp of the last event written (the base of the next delta).
    last_ts: u64,
    payload: Vec<u8>,
}

impl Default for PageBuilder {
    fn default() -> Self {
        PageBuilder::new()
    }
}

impl PageBuilder {
    /// An empty page.
    pub fn new() -> PageBuilder {
        PageBuilder {
            page: vec![0; PAGE_HEADER_SIZE],
            last_ts: 0,
            payload: Vec::new(),
        }
    }

    /// Bytes of event data written so far.
    pub fn data_len(&self) -> usize {
        self.page.len() - PAGE_HEADER_SIZE
    }

    /// True when no event has been written.
    pub fn is_empty(&self) -> bool {
        self.data_len() == 0
    }

    /// Writes `record` with `layout`; returns false, writing nothing, when it does not fit.
    /// The first record sets the page's time stamp.
    pub fn push(&mut self, record: &Record, layout: &PayloadLayout) -> bool {
        self.payload.clear();
        layout.encode(record, &mut self.payload);
        let len = self.payload.len();
        let header = if len > TYPE_DATA_MAX as usize * 4 {
            8
        } else {
            4
        };
        let first = self.is_empty();
        let delta = if first {
            0
        } else {
            record.ts_ns.saturating_sub(self.last_ts)
        };
        let extend = if delta >> TIME_DELTA_BITS != 0 { 8 } else { 0 };
        if self.data_len() + extend + header + len > PAGE_DATA_SIZE {
            return false;
        }
        if first {
            self.page[..8].copy_from_slice(&record.ts_ns.to_le_bytes());
        }
        let mut delta = delta;
        if extend != 0 {
            let low = (delta & ((1 << TIME_DELTA_BITS) - 1)) as u32;
            self.put_u32(TYPE_TIME_EXTEND | (low << 5));
            self.put_u32((delta >> TIME_DELTA_BITS) as u32);
            delta = 0;
        }
        if header == 8 {
            self.put_u32((delta as u32) << 5);
            self.put_u32(len as u32 + 4);
        } else {
            self.put_u32((len / 4) as u32 | ((delta as u32) << 5));
        }
        self.page.extend_from_slice(&self.payload);
        // A record older than its predecessor (never made here) is stored with delta 0.
        self.last_ts = if first {
            record.ts_ns
        } else {
            self.last_ts.max(record.ts_ns)
        };
        true
    }

    fn put_u32(&mut self, word: u32) {
        self.page.extend_from_slice(&word.to_le_bytes());
    }

    /// The finished page: `commit` holds the data length, with the missed-events flags when
    /// `lost` records were dropped before it (the count stored after the data when it fits),
    /// and the rest is zero, as the kernel hands pages to user space.
    pub fn finish(mut self, lost: u64) -> Vec<u8> {
        let data = self.data_len();
        let mut commit = data as u64;
        if lost > 0 {
            commit |= MISSED_EVENTS;
            if PAGE_DATA_SIZE - data >= 8 {
                self.page.extend_from_slice(&lost.to_le_bytes());
                commit |= MISSED_STORED;
            }
        }
        self.page[8..16].copy_from_slice(&commit.to_le_bytes());
        self.page.resize(PAGE_SIZE, 0);
        self.page
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Field;
    use crate::Generator;
    use eventfs_core::catalog::{Catalog, EMBEDDED};
    use tracefs_raw::{decode_page, EventFormat, PageLayout, Value};

    fn catalog() -> Catalog {
        Catalog::decode(EMBEDDED).expect("embedded catalog decodes")
    }

    fn page_layout(cat: &Catalog) -> PageLayout {
        PageLayout::parse(&cat.header_page).expect("header_page parses")
    }

    /// What the independent decoder reads must be what the record holds.
    fn assert_same(record: &Record, fields: &[Field<'_>], decoded: &[(String, Value)], what: &str) {
        for (field, (value, (name, got))) in fields.iter().zip(record.fields.iter().zip(decoded)) {
            assert_eq!(field.name, name, "{what}");
            let expected = match value {
                FieldValue::Int(i) => Value::Int(*i),
                FieldValue::UInt(u) if field.signed => {
                    let shift = 64 - 8 * field.size.min(8);
                    Value::Int(((*u << shift) as i64) >> shift)
                }
                FieldValue::UInt(u) => Value::UInt(*u),
                FieldValue::Str(s) => {
                    let max = match field.array_len {
                        Some(n) if n > 0 => field.size as usize - 1,
                        _ => usize::MAX,
                    };
                    Value::Text(s.chars().take(max).collect())
                }
                FieldValue::Bytes(b) => Value::Bytes(b.to_vec()),
            };
            match (&expected, got) {
                // A fixed binary array decodes at its full size, zero-padded.
                (Value::Bytes(want), Value::Bytes(have)) if field.array_len.is_some() => {
                    assert_eq!(
                        &have[..want.len().min(have.len())],
                        &want[..want.len().min(have.len())],
                        "{what}.{name}"
                    )
                }
                // Pointers to strings (`const char *`) are addresses in a binary record.
                (Value::Text(_), Value::UInt(_) | Value::Int(_)) => {}
                _ => assert_eq!(&expected, got, "{what}.{name}"),
            }
        }
    }

    #[test]
    fn every_catalog_event_round_trips_through_an_independent_decoder() {
        let cat = catalog();
        let layout = page_layout(&cat);
        assert_eq!(layout.page_size(), PAGE_SIZE);
        assert_eq!(layout.data, (PAGE_HEADER_SIZE, PAGE_DATA_SIZE));
        let mut gen = Generator::with_cpus(3, 2);
        let mut checked = 0;
        for system in &cat.systems {
            for event in &system.events {
                let fields: Vec<Field<'_>> = crate::format::fields(&event.format).collect();
                let payload_layout = PayloadLayout::new(&fields);
                let theirs = EventFormat::parse(&event.format).expect("format parses");
                let mut builder = PageBuilder::new();
                let records: Vec<Record> = (0..3).map(|_| gen.record(event.id, &fields)).collect();
                for r in &records {
                    assert!(builder.push(r, &payload_layout), "{}", event.name);
                }
                let page = builder.finish(0);
                let decoded = decode_page(&page, &layout).unwrap();
                assert_eq!(decoded.events.len(), 3, "{}", event.name);
                assert_eq!(decoded.missed, None);
                for (r, e) in records.iter().zip(&decoded.events) {
                    assert_eq!(e.ts, r.ts_ns, "{}", event.name);
                    assert_eq!(u32::from(e.id().unwrap()), event.id & 0xffff);
                    let values = tracefs_raw::fields(&e.payload, &theirs).unwrap();
                    assert_same(r, &fields, &values, &event.name);
                }
                checked += 1;
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    fn print_format(cat: &Catalog) -> String {
        cat.systems
            .iter()
            .flat_map(|s| &s.events)
            .find(|e| e.name == "print")
            .unwrap()
            .format
            .clone()
    }

    #[test]
    fn long_payloads_time_extends_full_pages_and_missed_events() {
        let cat = catalog();
        let layout = page_layout(&cat);
        let format = print_format(&cat);
        let payload_layout = PayloadLayout::from_format(&format);
        // A payload over 112 bytes takes the length word (type_len 0).
        let long = Record::marker(5, 1_000, 0, 1, "sh", 0, 0, &"x".repeat(300));
        // A gap over 2^27 ns needs a time extend.
        let late = Record::marker(5, 1_000 + (5 << 27) + 7, 0, 1, "sh", 0, 0, "late");
        let mut builder = PageBuilder::new();
        assert!(builder.push(&long, &payload_layout));
        assert!(builder.push(&late, &payload_layout));
        let page = builder.finish(3);
        let word = |at: usize| u32::from_le_bytes(page[at..at + 4].try_into().unwrap());
        assert_eq!(word(16) & 31, 0, "long payload: type_len 0");
        let decoded = decode_page(&page, &layout).unwrap();
        assert_eq!(decoded.missed, Some(Some(3)));
        assert_eq!(decoded.events.len(), 2);
        assert_eq!(decoded.events[0].ts, 1_000);
        assert_eq!(decoded.events[1].ts, late.ts_ns);
        let theirs = EventFormat::parse(&format).unwrap();
        let buf = |e: &tracefs_raw::Event| {
            tracefs_raw::fields(&e.payload, &theirs)
                .unwrap()
                .into_iter()
                .find(|(n, _)| n == "buf")
                .unwrap()
                .1
        };
        assert_eq!(buf(&decoded.events[0]), Value::Text("x".repeat(300)));
        assert_eq!(buf(&decoded.events[1]), Value::Text("late".into()));

        // A page fills up: the refused record is not written and the page stays valid.
        let mut builder = PageBuilder::new();
        let mut n = 0u64;
        while builder.push(
            &Record::marker(5, 10 + n, 0, 1, "sh", 0, 0, "fill"),
            &payload_layout,
        ) {
            n += 1;
        }
        assert!(builder.data_len() <= PAGE_DATA_SIZE);
        // No room left for the stored count: only the flag says events were lost.
        let full = PAGE_DATA_SIZE - builder.data_len() < 8;
        let decoded = decode_page(&builder.finish(2), &layout).unwrap();
        assert_eq!(decoded.events.len() as u64, n);
        assert_eq!(decoded.missed, Some(if full { None } else { Some(2) }));
    }
}
