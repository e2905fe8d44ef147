//! Per-lookup state: the only per-node memory, created when the guest looks a node up and freed
//! when it forgets it.
//!
//! FUSE requires the server to count how often it handed out each node id and to keep the node
//! alive until the client forgets it that many times. We keep exactly that count and nothing else:
//! attributes and content are derived from the metadata on demand. The table is sharded so that
//! lookups from many worker threads do not queue on one lock.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

const SHARDS: usize = 16;

/// Inode numbers are already well spread in their low bits except for the file slot byte; a
/// multiplicative hash mixes the rest without the cost of SipHash.
#[derive(Default)]
struct InoHasher(u64);

impl Hasher for InoHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (v ^ (v >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Shard = HashMap<u64, u32, BuildHasherDefault<InoHasher>>;

/// Lookup counts of materialised nodes, keyed by inode number.
pub struct LookupCounts {
    shards: [Mutex<Shard>; SHARDS],
}

impl Default for LookupCounts {
    fn default() -> Self {
        LookupCounts {
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
        }
    }
}

impl LookupCounts {
    fn shard(&self, ino: u64) -> std::sync::MutexGuard<'_, Shard> {
        // The file-slot byte and the directory index vary fastest; fold both into the index.
        let index = ((ino >> 8) ^ ino) as usize % SHARDS;
        // A poisoned shard only means another thread panicked mid-update of a plain counter
        // map; the map itself is still consistent, so keep serving.
        self.shards[index]
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Adds one reference to `ino`, materialising it if it had none.
    pub fn remember(&self, ino: u64) {
        let mut shard = self.shard(ino);
        let count = shard.entry(ino).or_insert(0);
        *count = count.saturating_add(1);
    }

    /// Drops `count` references; frees the node's state when none remain. Returns false when the
    /// client forgot more than it was given (the excess is ignored: a confused or hostile guest
    /// must not make counts wrap).
    pub fn forget(&self, ino: u64, count: u64) -> bool {
        let mut shard = self.shard(ino);
        let Some(current) = shard.get_mut(&ino) else {
            return count == 0;
        };
        let exact = u64::from(*current) >= count;
        if exact && u64::from(*current) > count {
            *current -= count as u32;
            return true;
        }
        shard.remove(&ino);
        // Give memory back once a shard drains, so forgetting everything returns to baseline.
        if shard.len() * 4 < shard.capacity() {
            shard.shrink_to_fit();
        }
        exact
    }

    /// The current count of `ino` (0 when not materialised).
    pub fn count(&self, ino: u64) -> u32 {
        self.shard(ino).get(&ino).copied().unwrap_or(0)
    }

    /// Number of materialised nodes.
    pub fn len(&self) -> usize {
        (0..SHARDS)
            .map(|i| self.shards[i].lock().map(|s| s.len()).unwrap_or(0))
            .sum()
    }

    /// True when nothing is materialised.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every count (a new FUSE session starts from nothing).
    pub fn clear(&self) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            *shard = Shard::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact() {
        let t = LookupCounts::default();
        t.remember(5);
        t.remember(5);
        assert_eq!(t.count(5), 2);
        assert!(t.forget(5, 1));
        assert_eq!(t.count(5), 1);
        assert!(t.forget(5, 1));
        assert_eq!(t.count(5), 0);
        assert!(t.is_empty());
        // Over-forgetting is reported and does not underflow.
        t.remember(6);
        assert!(!t.forget(6, 3));
        assert_eq!(t.count(6), 0);
        assert!(!t.forget(7, 1));
    }
}
