//! eventfsd: a vhost-user virtio-fs daemon serving a tracefs/eventfs-shaped tree.
//!
//! Layers, as in virtiofsd: the [`transport`]s (vhost-user for a QEMU guest, /dev/fuse for a
//! host mount) carry FUSE requests to fuse-backend-rs's protocol server; [`fs`] gives them
//! their file system meaning over eventfs-core's tree; a [`source`] (the simulated catalog
//! kernel or the host's tracefs) gives control files theirs. [`stats`] owns every counter,
//! [`cli`] the command line, [`wake`] the main thread's sleep, and [`sandbox`] confines the daemon once it has opened what it
//! needs. See `docs/architecture.md`.

#![warn(missing_docs)]

pub mod cli;
pub mod fs;
pub mod heap;
pub mod sandbox;
pub mod source;
pub mod stats;
pub mod transport;
pub mod wake;
