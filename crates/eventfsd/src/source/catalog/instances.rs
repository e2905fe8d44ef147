//! `mkdir`/`rmdir` under `instances/`: a new instance gets its own events state and buffer;
//! removing one with an open file is EBUSY, as on tracefs.

use eventfs_core::layout::DirKind;
use eventfs_core::tree::{NodeKind, NodeRef, Tree};
use eventfs_core::FsError;

use super::state::State;

/// `mkdir instances/<name>`.
pub fn make(state: &State, tree: &Tree, parent: NodeRef, name: &str) -> Result<(), FsError> {
    if parent.kind != NodeKind::Dir(DirKind::Instances) {
        return Err(FsError::Os(libc::EPERM));
    }
    let dir = tree.add_instance(name)?;
    state.instance(tree, dir, |_| ());
    Ok(())
}

/// `rmdir instances/<name>`.
pub fn remove(state: &State, tree: &Tree, parent: NodeRef, name: &str) -> Result<(), FsError> {
    if parent.kind != NodeKind::Dir(DirKind::Instances) {
        return Err(FsError::Os(libc::EPERM));
    }
    let (dir, _) = tree
        .instances()
        .into_iter()
        .find(|(_, n)| n == name)
        .ok_or(FsError::NotFound)?;
    if !state.remove_instance(tree.dir_ino(dir)) {
        return Err(FsError::Busy);
    }
    tree.remove_instance(name)?;
    state.prune(tree);
    Ok(())
}
