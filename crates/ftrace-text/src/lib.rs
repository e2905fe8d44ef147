//! ftrace-text: the languages of tracefs's text files, with no file system attached.
//!
//! - [`format`] reads an event's `format` file (fields, offsets, `print fmt`);
//! - [`functions`] holds a kernel's traceable functions and reads `set_ftrace_filter`;
//! - [`filter`] parses and evaluates the predicate language of `filter` files, with the
//!   kernel's error texts;
//! - [`kparse`] reads numbers, white space and tokens of a write as the kernel does;
//! - [`trigger`] parses `trigger` commands (`traceon`, `enable_event`, `hist` ...);
//! - [`probe`] parses dynamic probe definitions (`uprobe_events`, `dynamic_events`) and lays
//!   out the events they create;
//! - [`record`] holds one event occurrence and generates plausible ones from a format;
//! - [`page`] lays records out in the kernel's binary ring-buffer pages (`trace_pipe_raw`);
//! - [`ring`] is a byte-bounded per-CPU trace buffer of records;
//! - [`render`] prints records as the kernel's `trace` text, interpreting each print fmt.
//!
//! The catalog source of eventfsd builds its simulated kernel on these; the fuzz targets
//! exercise the parsers directly.

#![warn(missing_docs)]

pub mod filter;
pub mod format;
pub mod functions;
pub mod kparse;
pub mod page;
pub mod probe;
pub mod record;
pub mod render;
pub mod ring;
pub mod trigger;

pub use record::{FieldValue, Generator, Record};
pub use render::{
    print_fmt_text, render_context, render_line, trace_header, CompiledFmt, RenderOutcome,
};
pub use ring::{CpuStats, Ring, DEFAULT_BUFFER_SIZE_KB};
