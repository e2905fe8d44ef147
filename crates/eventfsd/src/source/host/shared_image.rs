//! The host's event catalog, snapshotted once per kernel boot (and policy) and shared.
//!
//! Walking a tracefs instance reads every event's `format` and lists every event directory,
//! which makes the host kernel build eventfs inodes and dentries for all of them: the very
//! thing eventfs exists to avoid, and ~3 MB of `tracefs_inode_cache` per daemon. So the first
//! daemon after a boot walks a short-lived probe instance once, encodes what the policy shows
//! as a catalog image and publishes it in the store directory (`/run/eventfsd`, a tmpfs that
//! a reboot empties); every later daemon with the same policy maps that file read-only, so
//! its pages are shared between daemons like the embedded catalog's. What changed since the
//! snapshot (modules, dynamic events) each daemon's first rescan adds or removes.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use eventfs_core::catalog::{fnv1a64, RawCatalog};
use eventfs_core::tree::Image;

use super::error::HostError;
use super::host_catalog::{filtered_catalog, kernel_release};
use super::instance::{self, Tracefs, INSTANCE_PREFIX};
use super::policy::Policy;

/// Where daemons keep and find the shared snapshot by default.
pub const DEFAULT_STORE: &str = "/run/eventfsd";

/// Bumped when what goes into a snapshot changes, so that old files are not reused.
const SNAPSHOT_VERSION: u32 = 1;

/// The catalog image a host source serves, and where it came from.
#[derive(Clone, Debug)]
pub struct SharedImage {
    /// The image (mapped from the store, or owned when it could not be published).
    pub image: Image,
    /// The store file, when the image is shared through one.
    pub path: Option<PathBuf>,
    /// True when this daemon walked the host to build it.
    pub built: bool,
}

/// The store file for this boot, kernel and policy.
pub fn store_path(store: &Path, policy: &Policy) -> PathBuf {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let key = format!(
        "{SNAPSHOT_VERSION}|{}|{}|{}",
        boot_id.trim(),
        kernel_release(),
        policy.catalog_fingerprint()
    );
    store.join(format!("host-{:016x}.evcat", fnv1a64(key.as_bytes())))
}

/// Maps the store file if it is one we can trust: a regular file (not a symlink) owned by us,
/// writable by nobody else, holding a valid catalog.
fn map_trusted(path: &Path) -> io::Result<Image> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if !meta.is_file() || meta.uid() != euid || meta.mode() & 0o022 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "not a file of ours, or writable by others",
        ));
    }
    let image = Image::map(&file)?;
    RawCatalog::parse(&image).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(image)
}

/// Writes `bytes` as the store file: a private temporary file renamed over it, so that a
/// reader maps either the old file or the whole new one.
fn publish(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("evcat.{}.tmp", std::process::id()));
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_data());
    drop(file);
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Walks a short-lived probe instance into the catalog `policy` shows, encoded.
fn build(tracefs: &Tracefs, policy: &Policy, owner_pid: u32) -> Result<Vec<u8>, HostError> {
    // Named like a guest instance of this daemon, so a stale-instance reclaim takes it if we
    // die half-way.
    let name = format!("{INSTANCE_PREFIX}{owner_pid}.snapshot");
    let probe = instance::Instance::create(tracefs, &name)?;
    let built = filtered_catalog(&probe.dir, &tracefs.root, policy);
    drop(probe);
    let (catalog, ..) = built?;
    Ok(catalog.encode())
}

/// The shared image for `policy`: mapped from `store` when a daemon published it since this
/// boot, else built (walking a probe instance once) and published for the next daemons.
/// Failing to publish (a read-only or missing store) costs sharing, not service.
pub fn obtain(
    tracefs: &Tracefs,
    policy: &Policy,
    store: &Path,
    owner_pid: u32,
) -> Result<SharedImage, HostError> {
    let path = store_path(store, policy);
    match map_trusted(&path) {
        Ok(image) => {
            log::info!("host events from the shared snapshot {}", path.display());
            return Ok(SharedImage {
                image,
                path: Some(path),
                built: false,
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => log::warn!("shared snapshot {}: {e}; taking a new one", path.display()),
    }
    let bytes = build(tracefs, policy, owner_pid)?;
    match publish(&path, &bytes).and_then(|()| map_trusted(&path)) {
        Ok(image) => {
            log::info!("host events snapshotted into {}", path.display());
            Ok(SharedImage {
                image,
                path: Some(path),
                built: true,
            })
        }
        Err(e) => {
            log::warn!(
                "cannot share the host snapshot in {}: {e}; keeping it private",
                store.display()
            );
            Ok(SharedImage {
                image: Image::Owned(bytes.into_boxed_slice()),
                path: None,
                built: true,
            })
        }
    }
}
