//! Errors of tree operations, each mapping to the errno tracefs would return.

/// A failed tree or control-file operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    /// No such name or node (ENOENT).
    #[error("no such file or directory")]
    NotFound,
    /// The node existed but was removed (ENOENT for lookups; callers holding an open handle
    /// report ENODEV instead, see [`FsError::for_open_handle`]).
    #[error("node was removed")]
    Removed,
    /// The event behind an open handle is gone (ENODEV).
    #[error("event was removed")]
    NoDevice,
    /// A path component is longer than 255 bytes (ENAMETOOLONG).
    #[error("name longer than 255 bytes")]
    NameTooLong,
    /// Directory operation on a file (ENOTDIR).
    #[error("not a directory")]
    NotDir,
    /// File operation on a directory (EISDIR).
    #[error("is a directory")]
    IsDir,
    /// The name already exists (EEXIST).
    #[error("already exists")]
    Exists,
    /// Bad value written or bad request (EINVAL), with the reason for the log.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The resource is in use (EBUSY).
    #[error("resource busy")]
    Busy,
    /// Any other errno, e.g. forwarded from the host kernel.
    #[error("os error {0}")]
    Os(i32),
}

impl FsError {
    /// The errno to return to the client.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound | FsError::Removed => libc::ENOENT,
            FsError::NoDevice => libc::ENODEV,
            FsError::NameTooLong => libc::ENAMETOOLONG,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::Exists => libc::EEXIST,
            FsError::Invalid(_) => libc::EINVAL,
            FsError::Busy => libc::EBUSY,
            FsError::Os(errno) => *errno,
        }
    }

    /// The error as seen through a handle opened before: a removed node is ENODEV, like tracefs
    /// reports for files of a removed event.
    pub fn for_open_handle(self) -> FsError {
        match self {
            FsError::Removed | FsError::NotFound => FsError::NoDevice,
            other => other,
        }
    }
}

impl From<FsError> for std::io::Error {
    fn from(e: FsError) -> std::io::Error {
        std::io::Error::from_raw_os_error(e.errno())
    }
}
