//! eventfs-core: the metadata of a tracefs `events/` tree, as the kernel's eventfs keeps it.
//! Only directories have a record ([`tree`]); their files come from one static table per
//! directory kind ([`layout`]); per-node state lives only while the client holds a lookup
//! ([`lookups`]). [`catalog`] is the image it is built from ([`snapshot`] takes one from a live
//! tracefs). What a control file does is not known here: [`control`] is the seam to a source.

#![warn(missing_docs)]

pub mod catalog;
pub mod control;
pub mod error;
pub mod layout;
pub mod lookups;
pub mod snapshot;
pub mod tree;

pub use error::FsError;
pub use tree::{Attr, DirEntry, Ino, NodeKind, NodeRef, SetAttr, Tree, TreeConfig, ROOT_INO};
