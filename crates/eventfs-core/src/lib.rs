//! eventfs-core: the metadata core of eventfsd.
//!
//! It knows the shape of tracefs's `events/` tree for one kernel's event catalog and nothing
//! about FUSE or virtio. Following the kernel's eventfs, only directories have metadata
//! ([`tree`]); the files of a directory come from one static table per directory kind
//! ([`layout`]). Per-node state exists only while a client holds a lookup reference to the node
//! ([`lookups`]); the metadata stays. [`catalog`] defines the catalog image (one is embedded),
//! [`snapshot`] builds one from a live tracefs, and [`control`] is the seam through which an
//! event source gives every other file its meaning.

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
