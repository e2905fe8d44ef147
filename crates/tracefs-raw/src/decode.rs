//! Splitting a page into events (libtraceevent's `kbuffer-parse.c` rules) and an event's
//! payload into values (its `format`).

use crate::layout::{EventFormat, FieldDef, PageLayout};

/// One data event of a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Absolute time stamp: the page's, plus every delta and extend up to this event.
    pub ts: u64,
    /// The payload (padded to 4 bytes).
    pub payload: Vec<u8>,
}

impl Event {
    /// The event id (`common_type`, the payload's first u16).
    pub fn id(&self) -> Option<u16> {
        Some(u16::from_le_bytes(self.payload.get(..2)?.try_into().ok()?))
    }
}

/// A decoded page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// The page header's time stamp.
    pub timestamp: u64,
    /// Bytes of event data (`commit` without its flags).
    pub data_len: usize,
    /// Events were lost before this page; `Some(n)` when the count is stored.
    pub missed: Option<Option<u64>>,
    /// Its data events, in order.
    pub events: Vec<Event>,
}

const TYPE_PADDING: u32 = 29;
const TYPE_TIME_EXTEND: u32 = 30;
const TYPE_TIME_STAMP: u32 = 31;
const MISSED_EVENTS: u64 = 1 << 31;
const MISSED_STORED: u64 = 1 << 30;
const COMMIT_MASK: u64 = (1 << 27) - 1;

fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

fn word(data: &[u8], at: usize) -> Result<u32, String> {
    data.get(at..at + 4)
        .map(|w| le(w) as u32)
        .ok_or_else(|| format!("event header at {at} runs past the data"))
}

/// Decodes one page laid out as `layout` says. Errors name the first inconsistency.
pub fn decode_page(page: &[u8], layout: &PageLayout) -> Result<Page, String> {
    if page.len() != layout.page_size() {
        return Err(format!(
            "page of {} bytes, header_page says {}",
            page.len(),
            layout.page_size()
        ));
    }
    let (ts_off, ts_size) = layout.timestamp;
    let (commit_off, commit_size) = layout.commit;
    let timestamp = le(&page[ts_off..ts_off + ts_size]);
    let commit = le(&page[commit_off..commit_off + commit_size]);
    let data_len = (commit & COMMIT_MASK) as usize;
    let data = &page[layout.data.0..];
    if data_len > data.len() {
        return Err(format!("commit {data_len} exceeds the page's data"));
    }
    let missed = (commit & MISSED_EVENTS != 0).then(|| {
        (commit & MISSED_STORED != 0)
            .then(|| data.get(data_len..data_len + 8).map(le))
            .flatten()
    });
    let data = &data[..data_len];
    let mut ts = timestamp;
    let mut at = 0;
    let mut events = Vec::new();
    while at < data_len {
        let header = word(data, at)?;
        let type_len = header & 31;
        let delta = u64::from(header >> 5);
        match type_len {
            TYPE_PADDING => {
                if delta == 0 {
                    break; // the rest of the page is padding
                }
                at += 4 + word(data, at + 4)? as usize;
            }
            TYPE_TIME_EXTEND => {
                ts += (u64::from(word(data, at + 4)?) << 27) + delta;
                at += 8;
            }
            TYPE_TIME_STAMP => {
                ts = (u64::from(word(data, at + 4)?) << 27) | delta;
                at += 8;
            }
            data_type => {
                // type_len 0: the length (+4) is in the next word; 1..=28: it is type_len * 4.
                let (header, len) = if data_type == 0 {
                    let word = word(data, at + 4)? as usize;
                    let len = word
                        .checked_sub(4)
                        .ok_or_else(|| format!("event at {at}: length word {word} < 4"))?;
                    (8, len)
                } else {
                    (4, data_type as usize * 4)
                };
                ts += delta;
                let payload = data
                    .get(at + header..at + header + len)
                    .ok_or_else(|| format!("event at {at}: {len} bytes past the data"))?;
                events.push(Event {
                    ts,
                    payload: payload.to_vec(),
                });
                at += header + len;
            }
        }
    }
    Ok(Page {
        timestamp,
        data_len,
        missed,
        events,
    })
}

/// One field's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A signed number.
    Int(i64),
    /// An unsigned number.
    UInt(u64),
    /// Text, up to its NUL.
    Text(String),
    /// Other bytes.
    Bytes(Vec<u8>),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::UInt(v) => write!(f, "{v}"),
            Value::Text(s) => write!(f, "{s}"),
            Value::Bytes(b) => {
                for byte in b {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }
    }
}

fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Reads one field of a payload; errors when the field or its data lie outside it.
pub fn field_value(payload: &[u8], field: &FieldDef) -> Result<Value, String> {
    // A flexible array (`char buf[]`, size 0) runs to the end of the payload.
    let end = if field.array && field.size == 0 {
        payload.len()
    } else {
        field.offset + field.size
    };
    let raw = payload
        .get(field.offset..end)
        .ok_or_else(|| format!("{} lies past the payload", field.name))?;
    if field.is_dynamic() {
        let loc = le(raw.get(..4).ok_or("short __data_loc")?) as usize;
        let mut offset = loc & 0xffff;
        if field.ty.starts_with("__rel_loc") {
            offset += field.offset + 4;
        }
        let len = loc >> 16;
        let data = payload
            .get(offset..offset + len)
            .ok_or_else(|| format!("{}: data at {offset}+{len} past the payload", field.name))?;
        return Ok(if field.is_text() {
            Value::Text(text(data))
        } else {
            Value::Bytes(data.to_vec())
        });
    }
    if field.is_text() {
        return Ok(Value::Text(text(raw)));
    }
    if field.array || field.size > 8 {
        return Ok(Value::Bytes(raw.to_vec()));
    }
    let bits = le(raw);
    Ok(if field.signed {
        let shift = 64 - 8 * field.size as u32;
        Value::Int(((bits << shift) as i64) >> shift)
    } else {
        Value::UInt(bits)
    })
}

/// Every field of an event's payload, by the event's format.
pub fn fields(payload: &[u8], format: &EventFormat) -> Result<Vec<(String, Value)>, String> {
    format
        .fields
        .iter()
        .map(|f| Ok((f.name.clone(), field_value(payload, f)?)))
        .collect()
}
