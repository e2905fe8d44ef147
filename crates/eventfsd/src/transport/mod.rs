//! The transports that carry FUSE requests to the filesystem: [`vhost_user`] (a QEMU guest
//! over virtio-fs) and [`fusedev`] (a host mount through /dev/fuse), both following the
//! same [`reply`] policy.

pub mod fusedev;
pub mod reply;
pub mod vhost_user;
