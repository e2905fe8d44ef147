//! eventfsd: a vhost-user virtio-fs daemon serving a tracefs/eventfs-shaped tree.
//!
//! Layers, as in crosvm/virtiofsd: [`fs`] gives FUSE semantics over eventfs-core's tree (the
//! protocol itself is fuse-backend-rs's `Server`); [`vhost_user`] and [`fusedev`] are the two
//! transports; [`stats`] holds the counters; [`cli`] the command line.

#![warn(missing_docs)]

pub mod cli;
pub mod fs;

pub mod source;
pub mod stats;
pub mod transport;
