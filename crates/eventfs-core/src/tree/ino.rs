//! Node identity: an inode number is (generation, directory slot, file row), so it is unique,
//! stable, identical in readdir and stat, and never reused for a different node while the
//! slot's generation has not wrapped (65536 reuses of one slot). The root is FUSE's node 1.

/// A FUSE node id.
pub type Ino = u64;
/// Index of a directory slot in the metadata table.
pub type DirId = u32;

/// FUSE's fixed node id of the root directory.
pub const ROOT_INO: Ino = 1;
pub(super) const ROOT_DIR: DirId = 0;
pub(super) const EVENTS_DIR: DirId = 1;
pub(super) const INSTANCES_DIR: DirId = 2;
pub(super) const OPTIONS_DIR: DirId = 3;
pub(super) const INDEX_BITS: u32 = 40;
pub(super) const GEN_SHIFT: u32 = 48;

/// Splits an inode number into (directory index, generation, file slot + 1).
pub(super) fn decode_ino(ino: Ino) -> Option<(DirId, u16, u8)> {
    if ino == ROOT_INO {
        return Some((ROOT_DIR, 0, 0));
    }
    let index = (ino >> 8) & ((1 << INDEX_BITS) - 1);
    let index = u32::try_from(index.checked_sub(1)?).ok()?;
    Some((index, (ino >> GEN_SHIFT) as u16, ino as u8))
}

pub(super) fn encode_ino(dir: DirId, generation: u16, file_slot: Option<usize>) -> Ino {
    if dir == ROOT_DIR && file_slot.is_none() {
        return ROOT_INO;
    }
    let slot = file_slot.map_or(0, |s| s as u64 + 1);
    (u64::from(generation) << GEN_SHIFT) | ((u64::from(dir) + 1) << 8) | slot
}
