//! The event catalog: systems and events of one kernel, and its on-disk image.
//!
//! A catalog file is a small binary image (little endian):
//!
//! ```text
//! magic "EVFSCAT\0" | version u32 | reserved u32 | body_len u64 | fnv1a64(body) u64
//! body: str kernel_release, str header_page, str header_event,
//!       str README, str available_tracers, str trace_clock,
//!       str available_filter_functions (version 3 only),
//!       u32 noptions, per option: str name, u32 default (0/1),
//!       u32 nsystems,
//!       per system: str name, u32 file_mask, u32 nevents,
//!         per event: str name, u32 id, u32 file_mask, str format
//! str = u32 length + UTF-8 bytes
//! ```
//!
//! The tree never copies names or `format` texts out of the image: it keeps byte spans into it,
//! so the embedded catalog costs no heap at all beyond the per-directory metadata.

use std::path::Path;

use crate::layout::{all_files, EVENT_FILES, OPTIONS, SYSTEM_FILES};

/// Magic bytes at the start of every catalog file.
pub const MAGIC: &[u8; 8] = b"EVFSCAT\0";
/// The catalog image version this build writes: 3 added `available_filter_functions`.
pub const VERSION: u32 = 3;
/// The oldest version this build reads (a version 2 image has no function list).
pub const MIN_VERSION: u32 = 2;
/// Size of the fixed header before the body.
pub const HEADER_LEN: usize = 32;
/// Longest name tracefs (and FUSE) allows for one path component.
pub const NAME_MAX: usize = 255;

/// The catalog of this machine's kernel, embedded in the binary (see `catalog/README.md`).
pub static EMBEDDED: &[u8] = include_bytes!("../catalog/default.evcat");

/// What is wrong with a catalog image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CatalogProblem {
    /// Too short to even hold the header.
    #[error("truncated: {0} bytes is shorter than the {HEADER_LEN}-byte header")]
    TooShort(usize),
    /// The magic bytes do not match.
    #[error("not an eventfs catalog (bad magic)")]
    BadMagic,
    /// Written by a different format version.
    #[error("unsupported catalog version {found} (this build reads versions {MIN_VERSION} to {VERSION})")]
    Version {
        /// Version found in the header.
        found: u32,
    },
    /// Body shorter or longer than the header says.
    #[error("truncated or padded: header announces {expected} body bytes, file has {found}")]
    Length {
        /// Body length from the header.
        expected: u64,
        /// Body bytes present.
        found: u64,
    },
    /// Checksum over the body does not match.
    #[error("corrupt: checksum mismatch (expected {expected:#018x}, computed {computed:#018x})")]
    Checksum {
        /// Checksum from the header.
        expected: u64,
        /// Checksum of the bytes present.
        computed: u64,
    },
    /// The body ends in the middle of a record.
    #[error("corrupt: body ends inside {0}")]
    Truncated(&'static str),
    /// A structural rule is broken (bad name, duplicate, bad UTF-8, trailing bytes...).
    #[error("corrupt: {0}")]
    Invalid(String),
}

/// A catalog that could not be loaded, naming where it came from.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The file could not be read.
    #[error("catalog {path}: {source}")]
    Io {
        /// File that was read.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The bytes are not a valid catalog.
    #[error("catalog {path}: {problem}")]
    Bad {
        /// File (or `<embedded>`) the image came from.
        path: String,
        /// What is wrong.
        problem: CatalogProblem,
    },
}

/// A byte range inside a catalog image.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// Offset from the start of the image.
    pub off: u32,
    /// Length in bytes.
    pub len: u32,
}

impl Span {
    /// The bytes of this span inside `image`.
    pub fn get(self, image: &[u8]) -> &[u8] {
        &image[self.off as usize..self.off as usize + self.len as usize]
    }
}

/// One event as decoded from an image: spans into the image, no copies.
#[derive(Clone, Debug)]
pub struct RawEvent {
    /// Event name.
    pub name: Span,
    /// Event id.
    pub id: u32,
    /// Presence bitmask over [`EVENT_FILES`].
    pub files: u16,
    /// The exact `format` text.
    pub format: Span,
}

/// One system as decoded from an image.
#[derive(Clone, Debug)]
pub struct RawSystem {
    /// System name.
    pub name: Span,
    /// Presence bitmask over [`SYSTEM_FILES`].
    pub files: u16,
    /// Its events, in image order.
    pub events: Vec<RawEvent>,
}

/// A validated catalog image, decoded into spans.
#[derive(Clone, Debug)]
pub struct RawCatalog {
    /// `uname -r` of the kernel the snapshot came from.
    pub kernel_release: Span,
    /// Content of `events/header_page`.
    pub header_page: Span,
    /// Content of `events/header_event`.
    pub header_event: Span,
    /// Content of `README`.
    pub readme: Span,
    /// Content of `available_tracers`.
    pub available_tracers: Span,
    /// Content of `trace_clock` (the default clock in brackets).
    pub trace_clock: Span,
    /// Content of `available_filter_functions` (empty when the kernel did not show it).
    pub functions: Span,
    /// Which rows of [`OPTIONS`] the kernel has.
    pub options: u64,
    /// Default value of each option row (bit set = 1).
    pub option_defaults: u64,
    /// Systems in image order.
    pub systems: Vec<RawSystem>,
}

/// An owned catalog, used to build images (snapshot tool, tests) and to inspect them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    /// `uname -r` of the kernel the snapshot came from.
    pub kernel_release: String,
    /// Content of `events/header_page`.
    pub header_page: String,
    /// Content of `events/header_event`.
    pub header_event: String,
    /// Content of `README`.
    pub readme: String,
    /// Content of `available_tracers`.
    pub available_tracers: String,
    /// Content of `trace_clock`.
    pub trace_clock: String,
    /// Content of `available_filter_functions` (one function per line, `name [module]` for a
    /// module's; empty when the kernel did not show it).
    pub functions: String,
    /// Trace options (`options/<name>`) and their default values.
    pub options: Vec<(String, bool)>,
    /// Systems, in the order they are listed.
    pub systems: Vec<SystemEntry>,
}

/// A system of an owned [`Catalog`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SystemEntry {
    /// System name (directory name under `events/`).
    pub name: String,
    /// Presence bitmask over [`SYSTEM_FILES`].
    pub files: u16,
    /// Events of the system.
    pub events: Vec<EventEntry>,
}

/// An event of an owned [`Catalog`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventEntry {
    /// Event name (directory name under `events/<sys>/`).
    pub name: String,
    /// Event id (`id` file, `ID:` line of `format`).
    pub id: u32,
    /// Presence bitmask over [`EVENT_FILES`].
    pub files: u16,
    /// The exact `format` text.
    pub format: String,
}

/// 64-bit FNV-1a: tiny, dependency-free, good enough to catch corruption (not an adversary).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Checks a single path component as tracefs would accept it.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name != b"."
        && name != b".."
        && !name.iter().any(|&b| b == b'/' || b == 0)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<usize, CatalogProblem> {
        let start = self.pos;
        let end = start
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(CatalogProblem::Truncated(what))?;
        self.pos = end;
        Ok(start)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, CatalogProblem> {
        let at = self.take(4, what)?;
        Ok(u32::from_le_bytes(
            self.bytes[at..at + 4].try_into().unwrap(),
        ))
    }

    fn str(&mut self, what: &'static str) -> Result<Span, CatalogProblem> {
        let len = self.u32(what)? as usize;
        let at = self.take(len, what)?;
        if std::str::from_utf8(&self.bytes[at..at + len]).is_err() {
            return Err(CatalogProblem::Invalid(format!("{what} is not UTF-8")));
        }
        Ok(Span {
            off: at as u32,
            len: len as u32,
        })
    }

    fn name(&mut self, what: &'static str) -> Result<Span, CatalogProblem> {
        let span = self.str(what)?;
        if !valid_name(span.get(self.bytes)) {
            return Err(CatalogProblem::Invalid(format!(
                "{what} {:?} is not a valid file name",
                String::from_utf8_lossy(span.get(self.bytes))
            )));
        }
        Ok(span)
    }
}

impl RawCatalog {
    /// Validates `image` completely (header, checksum, every record) and returns its spans.
    pub fn parse(image: &[u8]) -> Result<RawCatalog, CatalogProblem> {
        if image.len() < HEADER_LEN {
            return Err(CatalogProblem::TooShort(image.len()));
        }
        if &image[..8] != MAGIC {
            return Err(CatalogProblem::BadMagic);
        }
        let word = |at: usize| u32::from_le_bytes(image[at..at + 4].try_into().unwrap());
        let dword = |at: usize| u64::from_le_bytes(image[at..at + 8].try_into().unwrap());
        let version = word(8);
        if !(MIN_VERSION..=VERSION).contains(&version) {
            return Err(CatalogProblem::Version { found: version });
        }
        let body = &image[HEADER_LEN..];
        if dword(16) != body.len() as u64 {
            return Err(CatalogProblem::Length {
                expected: dword(16),
                found: body.len() as u64,
            });
        }
        if image.len() > u32::MAX as usize {
            return Err(CatalogProblem::Invalid("image larger than 4 GiB".into()));
        }
        let computed = fnv1a64(body);
        if dword(24) != computed {
            return Err(CatalogProblem::Checksum {
                expected: dword(24),
                computed,
            });
        }

        let mut cur = Cursor {
            bytes: image,
            pos: HEADER_LEN,
        };
        let kernel_release = cur.str("kernel release")?;
        let header_page = cur.str("header_page")?;
        let header_event = cur.str("header_event")?;
        let readme = cur.str("README")?;
        let available_tracers = cur.str("available_tracers")?;
        let trace_clock = cur.str("trace_clock")?;
        let functions = if version >= 3 {
            cur.str("available_filter_functions")?
        } else {
            Span { off: 0, len: 0 }
        };
        let (mut options, mut option_defaults) = (0u64, 0u64);
        let noptions = cur.u32("option count")?;
        for _ in 0..noptions {
            let name = cur.str("option name")?;
            let default = cur.u32("option default")?;
            let name_bytes = name.get(image);
            let row = OPTIONS
                .iter()
                .position(|o| o.name.as_bytes() == name_bytes)
                .ok_or_else(|| {
                    CatalogProblem::Invalid(format!(
                        "unknown trace option {:?}",
                        String::from_utf8_lossy(name_bytes)
                    ))
                })?;
            if default > 1 {
                return Err(CatalogProblem::Invalid(format!("option default {default}")));
            }
            options |= 1 << row;
            option_defaults |= u64::from(default) << row;
        }
        let nsystems = cur.u32("system count")?;
        let mut systems = Vec::new();
        for _ in 0..nsystems {
            let name = cur.name("system name")?;
            let files = cur.u32("system file mask")?;
            if u64::from(files) & !all_files(SYSTEM_FILES) != 0 {
                return Err(CatalogProblem::Invalid(format!(
                    "system file mask {files:#x}"
                )));
            }
            let nevents = cur.u32("event count")?;
            // Each event needs at least 16 bytes; refuse counts the body cannot hold before
            // reserving memory for them.
            if nevents as usize > (image.len() - cur.pos) / 16 {
                return Err(CatalogProblem::Truncated("event list"));
            }
            let mut events = Vec::with_capacity(nevents as usize);
            for _ in 0..nevents {
                let name = cur.name("event name")?;
                let id = cur.u32("event id")?;
                let files = cur.u32("event file mask")?;
                if u64::from(files) & !all_files(EVENT_FILES) != 0 {
                    return Err(CatalogProblem::Invalid(format!(
                        "event file mask {files:#x}"
                    )));
                }
                let format = cur.str("event format")?;
                events.push(RawEvent {
                    name,
                    id,
                    files: files as u16,
                    format,
                });
            }
            let mut names: Vec<&[u8]> = events.iter().map(|e| e.name.get(image)).collect();
            names.sort_unstable();
            if let Some(dup) = names.windows(2).find(|w| w[0] == w[1]) {
                return Err(CatalogProblem::Invalid(format!(
                    "duplicate event {:?} in system {:?}",
                    String::from_utf8_lossy(dup[0]),
                    String::from_utf8_lossy(name.get(image))
                )));
            }
            systems.push(RawSystem {
                name,
                files: files as u16,
                events,
            });
        }
        if cur.pos != image.len() {
            return Err(CatalogProblem::Invalid(format!(
                "{} trailing bytes after the last system",
                image.len() - cur.pos
            )));
        }
        let mut names: Vec<&[u8]> = systems.iter().map(|s| s.name.get(image)).collect();
        names.sort_unstable();
        if let Some(dup) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(CatalogProblem::Invalid(format!(
                "duplicate system {:?}",
                String::from_utf8_lossy(dup[0])
            )));
        }
        Ok(RawCatalog {
            kernel_release,
            header_page,
            header_event,
            readme,
            available_tracers,
            trace_clock,
            functions,
            options,
            option_defaults,
            systems,
        })
    }
}

fn text(image: &[u8], span: Span) -> String {
    // parse() checked UTF-8 for every span.
    String::from_utf8_lossy(span.get(image)).into_owned()
}

impl Catalog {
    /// Decodes and validates an image into an owned catalog.
    pub fn decode(image: &[u8]) -> Result<Catalog, CatalogProblem> {
        let raw = RawCatalog::parse(image)?;
        Ok(Catalog {
            kernel_release: text(image, raw.kernel_release),
            header_page: text(image, raw.header_page),
            header_event: text(image, raw.header_event),
            readme: text(image, raw.readme),
            available_tracers: text(image, raw.available_tracers),
            trace_clock: text(image, raw.trace_clock),
            functions: text(image, raw.functions),
            options: OPTIONS
                .iter()
                .enumerate()
                .filter(|(row, _)| raw.options & (1 << row) != 0)
                .map(|(row, o)| (o.name.to_string(), raw.option_defaults & (1 << row) != 0))
                .collect(),
            systems: raw
                .systems
                .iter()
                .map(|s| SystemEntry {
                    name: text(image, s.name),
                    files: s.files,
                    events: s
                        .events
                        .iter()
                        .map(|e| EventEntry {
                            name: text(image, e.name),
                            id: e.id,
                            files: e.files,
                            format: text(image, e.format),
                        })
                        .collect(),
                })
                .collect(),
        })
    }

    /// Encodes the catalog into an image that [`RawCatalog::parse`] accepts.
    pub fn encode(&self) -> Vec<u8> {
        fn put_str(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        let mut body = Vec::new();
        put_str(&mut body, &self.kernel_release);
        put_str(&mut body, &self.header_page);
        put_str(&mut body, &self.header_event);
        put_str(&mut body, &self.readme);
        put_str(&mut body, &self.available_tracers);
        put_str(&mut body, &self.trace_clock);
        put_str(&mut body, &self.functions);
        body.extend_from_slice(&(self.options.len() as u32).to_le_bytes());
        for (name, default) in &self.options {
            put_str(&mut body, name);
            body.extend_from_slice(&u32::from(*default).to_le_bytes());
        }
        body.extend_from_slice(&(self.systems.len() as u32).to_le_bytes());
        for system in &self.systems {
            put_str(&mut body, &system.name);
            body.extend_from_slice(&u32::from(system.files).to_le_bytes());
            body.extend_from_slice(&(system.events.len() as u32).to_le_bytes());
            for event in &system.events {
                put_str(&mut body, &event.name);
                body.extend_from_slice(&event.id.to_le_bytes());
                body.extend_from_slice(&u32::from(event.files).to_le_bytes());
                put_str(&mut body, &event.format);
            }
        }
        let mut image = Vec::with_capacity(HEADER_LEN + body.len());
        image.extend_from_slice(MAGIC);
        image.extend_from_slice(&VERSION.to_le_bytes());
        image.extend_from_slice(&0u32.to_le_bytes());
        image.extend_from_slice(&(body.len() as u64).to_le_bytes());
        image.extend_from_slice(&fnv1a64(&body).to_le_bytes());
        image.extend_from_slice(&body);
        image
    }

    /// Number of events over all systems.
    pub fn event_count(&self) -> usize {
        self.systems.iter().map(|s| s.events.len()).sum()
    }
}

/// Reads a catalog file and validates it, with errors naming the file.
pub fn load_file(path: &Path) -> Result<Vec<u8>, CatalogError> {
    let bytes = std::fs::read(path).map_err(|source| CatalogError::Io {
        path: path.display().to_string(),
        source,
    })?;
    RawCatalog::parse(&bytes).map_err(|problem| CatalogError::Bad {
        path: path.display().to_string(),
        problem,
    })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_2_images_have_no_function_list() {
        let mut catalog = sample();
        catalog.functions.clear();
        let v3 = catalog.encode();
        // The same image as version 2 wrote it: no function list after trace_clock.
        let raw = RawCatalog::parse(&v3).unwrap();
        let at = raw.functions.off as usize;
        let mut body = v3[HEADER_LEN..at - 4].to_vec();
        body.extend_from_slice(&v3[at..]);
        let mut v2 = v3[..HEADER_LEN].to_vec();
        v2[8..12].copy_from_slice(&2u32.to_le_bytes());
        v2[16..24].copy_from_slice(&(body.len() as u64).to_le_bytes());
        v2[24..32].copy_from_slice(&fnv1a64(&body).to_le_bytes());
        v2.extend_from_slice(&body);
        assert_eq!(Catalog::decode(&v2).unwrap(), catalog);
        assert_eq!(Catalog::decode(&sample().encode()).unwrap(), sample());
    }

    pub(crate) fn sample() -> Catalog {
        Catalog {
            kernel_release: "6.0-test".into(),
            header_page: "\tfield: u64 timestamp;\n".into(),
            header_event: "# compressed entry header\n".into(),
            readme: "tracing mini-HOWTO:\n".into(),
            available_tracers: "nop\n".into(),
            trace_clock: "[local] global\n".into(),
            functions: "schedule\nvfs_read\nkvm_init [kvm]\n".into(),
            options: vec![("overwrite".into(), true), ("raw".into(), false)],
            systems: vec![SystemEntry {
                name: "sched".into(),
                files: 0b11,
                events: vec![EventEntry {
                    name: "sched_switch".into(),
                    id: 7,
                    files: 0b11111,
                    format: "name: sched_switch\nID: 7\nformat:\n".into(),
                }],
            }],
        }
    }

    #[test]
    fn round_trip() {
        let cat = sample();
        let image = cat.encode();
        assert_eq!(Catalog::decode(&image).unwrap(), cat);
    }

    #[test]
    fn embedded_catalog_is_valid() {
        let cat = Catalog::decode(EMBEDDED).expect("embedded catalog must parse");
        assert!(cat.systems.len() > 50, "{} systems", cat.systems.len());
        assert!(cat.event_count() > 1000);
    }

    #[test]
    fn refuses_bad_images_with_a_reason() {
        let image = sample().encode();
        assert_eq!(
            RawCatalog::parse(&image[..10]).unwrap_err(),
            CatalogProblem::TooShort(10)
        );
        let mut bad = image.clone();
        bad[0] = b'X';
        assert_eq!(
            RawCatalog::parse(&bad).unwrap_err(),
            CatalogProblem::BadMagic
        );
        let mut bad = image.clone();
        bad[8] = 9;
        assert_eq!(
            RawCatalog::parse(&bad).unwrap_err(),
            CatalogProblem::Version { found: 9 }
        );
        assert!(matches!(
            RawCatalog::parse(&image[..image.len() - 3]).unwrap_err(),
            CatalogProblem::Length { .. }
        ));
        let mut bad = image.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x20;
        assert!(matches!(
            RawCatalog::parse(&bad).unwrap_err(),
            CatalogProblem::Checksum { .. }
        ));
    }

    #[test]
    fn refuses_structurally_bad_bodies_even_with_a_valid_checksum() {
        let mut cat = sample();
        let dup = cat.systems[0].events[0].clone();
        cat.systems[0].events.push(dup);
        let err = RawCatalog::parse(&cat.encode()).unwrap_err();
        assert!(err.to_string().contains("duplicate event"), "{err}");

        let mut cat = sample();
        cat.systems[0].name = "a/b".into();
        assert!(RawCatalog::parse(&cat.encode())
            .unwrap_err()
            .to_string()
            .contains("not a valid"));

        let mut cat = sample();
        cat.systems[0].events[0].files = 0x100;
        assert!(RawCatalog::parse(&cat.encode()).is_err());
    }

    #[test]
    fn load_file_names_the_file() {
        let dir = std::env::temp_dir().join(format!("evcat-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.evcat");
        std::fs::write(&path, b"EVFSCAT\0garbage").unwrap();
        let err = load_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.evcat") && err.contains("truncated"),
            "{err}"
        );
        let missing = load_file(&dir.join("missing.evcat"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("missing.evcat"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
