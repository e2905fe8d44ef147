//! The snapshot buffer of an instance (`snapshot`, `per_cpu/cpuN/snapshot` and
//! `snapshot_raw`, the `snapshot` trigger), as `kernel/trace/trace.c` keeps it: a second
//! buffer that a snapshot swaps with the main one.
//!
//! Each instance always has the second ring (an empty ring costs nothing); `allocated` says
//! whether the guest allocated it, which decides what `snapshot` shows and whether a swap
//! happens. Like Debian's kernels (no `CONFIG_RING_BUFFER_ALLOW_SWAP`), a per-CPU file cannot
//! take a snapshot of its CPU alone.
//!
//! Reading `snapshot_raw` consumes the snapshot's pages, as the kernel's does.

use eventfs_core::tree::{DirId, Tree, ROOT_INO};
use eventfs_core::FsError;
use ftrace_text::{kparse, Ring};

use super::function_tracer;
use super::state::State;

/// What `cat snapshot` shows before the commands when the snapshot buffer is empty.
fn help(tracer: &str, allocated: bool, per_cpu: bool) -> String {
    let state = if allocated { "allocated" } else { "freed" };
    let commands = if per_cpu {
        "# echo 0 > snapshot : Invalid for per_cpu snapshot file.\n\
         # echo 1 > snapshot : Not supported with this kernel.\n\
         #                     Must use main snapshot file to allocate.\n\
         # echo 2 > snapshot : Clears this cpu's snapshot buffer (but does not allocate)\n"
    } else {
        "# echo 0 > snapshot : Clears and frees snapshot buffer\n\
         # echo 1 > snapshot : Allocates snapshot buffer, if not already allocated.\n\
         #                      Takes a snapshot of the main buffer.\n\
         # echo 2 > snapshot : Clears snapshot buffer (but does not allocate or free)\n"
    };
    format!(
        "# tracer: {tracer}\n#\n#\n# * Snapshot is {state} *\n#\n# Snapshot commands:\n{commands}\
         #                      (Doesn't have to be '2' works with any number that\n\
         #                       is not a '0' or '1')\n"
    )
}

/// Whether the simulated kernel has snapshots: its top level serves `snapshot`.
pub fn is_served(tree: &Tree) -> bool {
    tree.find(ROOT_INO, b"snapshot").is_ok()
}

/// The text of `snapshot` (`cpu: None`) or `per_cpu/cpuN/snapshot` of the instance of `dir`:
/// the snapshot buffer as `trace` shows the main one (`render` draws a buffer as `trace`),
/// or the commands while it is empty.
pub fn text(
    state: &State,
    tree: &Tree,
    dir: DirId,
    cpu: Option<u32>,
    render: impl FnOnce(&Ring, Option<u32>, &str) -> Vec<u8>,
) -> Vec<u8> {
    let (ring, allocated, tracer) = state.instance(tree, dir, |i| {
        let tracer = function_tracer::tracer_name(i);
        (i.snapshot.clone(), i.snapshot_allocated, tracer)
    });
    let empty = match cpu {
        Some(cpu) => ring.cpu_stats(cpu).entries == 0,
        None => ring.is_empty(),
    };
    if empty {
        help(tracer, allocated, cpu.is_some()).into_bytes()
    } else {
        render(&ring, cpu, tracer)
    }
}

/// A write to `snapshot` (`cpu: None`) or `per_cpu/cpuN/snapshot`: `0` frees and `1`
/// allocates and takes a snapshot (the top-level file only: EINVAL for a per-CPU one), any
/// other number clears the snapshot buffer (one CPU's for a per-CPU file) if it is
/// allocated. The value is read as `kstrtoul` reads it.
pub fn write(
    state: &State,
    tree: &Tree,
    dir: DirId,
    cpu: Option<u32>,
    data: &[u8],
) -> Result<(), FsError> {
    let value = kparse::kstrtoul_from_user(data)
        .map_err(|_| FsError::Invalid("snapshot: not a number".into()))?;
    state.instance(tree, dir, |i| match (value, cpu) {
        (0 | 1, Some(_)) => Err(FsError::Invalid(
            "snapshot: a per-CPU snapshot file can only clear (this kernel cannot swap one CPU)"
                .into(),
        )),
        (0, None) => {
            i.snapshot.clear();
            i.snapshot_allocated = false;
            Ok(())
        }
        (1, None) => {
            allocate(i);
            i.ring.swap_with(&i.snapshot, None);
            Ok(())
        }
        (_, cpu) => {
            if i.snapshot_allocated {
                i.snapshot.clear_cpus(cpu);
            }
            Ok(())
        }
    })
}

/// Allocates the snapshot buffer of the instance of `dir` (a snapshot trigger does when it
/// is set), at the main buffer's size.
pub fn allocate_for(state: &State, tree: &Tree, dir: DirId) {
    state.instance(tree, dir, allocate);
}

fn allocate(i: &mut super::state::InstanceState) {
    if !i.snapshot_allocated {
        i.snapshot.clear();
        for cpu in 0..i.ring.nr_cpus() {
            i.snapshot
                .resize_cpus(Some(cpu), i.ring.cpu_buffer_size_kb(cpu));
        }
        i.snapshot_allocated = true;
    }
}

/// A `snapshot` trigger fired in the instance of `dir`: swap, if the buffer is allocated.
pub fn take(state: &State, tree: &Tree, dir: DirId) {
    state.instance(tree, dir, |i| {
        if i.snapshot_allocated {
            i.ring.swap_with(&i.snapshot, None);
        }
    });
}
