//! Start-up errors of the host source (serving errors reach the guest as errnos).

use eventfs_core::catalog::CatalogProblem;
use eventfs_core::snapshot::SnapshotError;

use super::policy::PolicyError;

/// Errors of the host source (start-up only; serving errors go to the guest as errnos).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// `--tracefs DIR` is not a tracefs mount.
    #[error("{0} is not a tracefs mount")]
    NotTracefs(String),
    /// A file system operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What we were doing.
        what: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The instance exists already; it is not ours, so it is left alone.
    #[error(
        "tracefs instance {0} already exists (not created by this daemon; pick another --instance)"
    )]
    InstanceExists(String),
    /// `--instance` is not a plain name.
    #[error("bad instance name {0:?}: use one path component without spaces")]
    BadInstanceName(String),
    /// The policy file is bad.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Reading the instance's events failed.
    #[error("snapshot of the host instance: {0}")]
    Snapshot(#[from] SnapshotError),
    /// The snapshot did not make a valid catalog (a bug).
    #[error("catalog of the host instance: {0}")]
    Catalog(#[from] CatalogProblem),
}
