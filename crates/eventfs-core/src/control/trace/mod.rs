//! The trace buffer of the catalog source: synthetic records, a byte-bounded ring per
//! instance, and ftrace's text output (`trace`, `trace_pipe`).
//!
//! Data plane only: nothing here knows about files or instances. The daemon owns one
//! [`Ring`] per instance, keeps a [`CompiledFmt`] per event, pushes [`Record`]s made by a
//! [`Generator`] (or [`Record::marker`] for `trace_marker` writes) when events are enabled and
//! their filters match ([`Record::value_of`]), and renders lines with
//! [`CompiledFmt::render_line`] after [`trace_header`].

// Both places this module lives in (the crate's `control` module and the scratch crate used
// to develop it) have `format` and `filter` as siblings of `trace`.
use super::{filter, format};

pub mod record;
pub mod render;
pub mod ring;

#[cfg(test)]
mod tests;

pub use record::{FieldValue, Generator, Record};
pub use render::{
    print_fmt_text, render_context, render_line, trace_header, CompiledFmt, RenderOutcome,
};
pub use ring::{Ring, DEFAULT_BUFFER_SIZE_KB};
