//! tracefs-raw: reads tracefs's binary ring-buffer pages the way perfetto's and libtraceevent's
//! readers do, written from the text the kernel publishes (`events/header_page`, each event's
//! `format`) and nothing of eventfsd's: it is the oracle the tests hold eventfsd's
//! `trace_pipe_raw` against.
//!
//! - [`layout`] reads `header_page` and `format` files;
//! - [`decode`] splits a page into events and an event's payload into field values.

#![warn(missing_docs)]

pub mod decode;
pub mod layout;

pub use decode::{decode_page, field_value, fields, Event, Page, Value};
pub use layout::{EventFormat, FieldDef, PageLayout};
