//! Memory and speed of the metadata core on the embedded catalog.
//!
//! `cargo run --release -p eventfs-core --example footprint` prints `key=value` lines. Heap is
//! counted by a global allocator wrapper, so the numbers are exact for this process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use eventfs_core::catalog::EMBEDDED;
use eventfs_core::{Ino, NodeKind, Tree, TreeConfig, ROOT_INO};

struct Counting;
static HEAP: AtomicIsize = AtomicIsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP.fetch_add(layout.size() as isize, Relaxed);
        ALLOCS.fetch_add(1, Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP.fetch_sub(layout.size() as isize, Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HEAP.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        ALLOCS.fetch_add(1, Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn heap() -> isize {
    HEAP.load(Relaxed)
}

/// Every (parent, name, ino, is_dir) of the tree, gathered up front so that walking allocations do
/// not pollute the measured sections.
fn all_entries(tree: &Tree) -> Vec<(Ino, Vec<u8>, Ino, bool)> {
    let mut out = Vec::new();
    let mut stack = vec![ROOT_INO];
    while let Some(dir) = stack.pop() {
        tree.readdir(dir, 2, &mut |e| {
            let is_dir = matches!(e.attr.node.kind, NodeKind::Dir(_));
            out.push((dir, e.name.to_vec(), e.attr.node.ino, is_dir));
            if is_dir {
                stack.push(e.attr.node.ino);
            }
            true
        })
        .unwrap();
    }
    out
}

fn main() {
    let before = heap();
    let tree = Tree::embedded(TreeConfig::default());
    let metadata_heap = heap() - before;
    let (systems, events, dirs, files) = tree.counts();

    let entries = all_entries(&tree);
    let baseline = heap();
    for (parent, name, _, _) in &entries {
        tree.lookup(*parent, name).unwrap();
    }
    let materialised = tree.materialised();
    let per_node = (heap() - baseline) as f64 / materialised as f64;
    for (_, _, ino, _) in &entries {
        tree.forget(*ino, 1);
    }
    let after_forget = heap() - baseline;

    // Static reads after warm-up: the node stays looked up (as the guest's dcache keeps it), so
    // a read is lookup + getattr + content + forget of the extra reference.
    let statics: Vec<_> = entries
        .iter()
        .filter(|(_, name, _, _)| name == b"format" || name == b"id")
        .take(2000)
        .collect();
    for (parent, name, _, _) in &statics {
        tree.lookup(*parent, name).unwrap();
    }
    let allocs_before = ALLOCS.load(Relaxed);
    let mut bytes = 0usize;
    for (parent, name, _, _) in &statics {
        let attr = tree.lookup(*parent, name).unwrap();
        let attr = tree.getattr(attr.node.ino).unwrap();
        bytes += tree
            .with_static_content(attr.node.ino, |b| black_box(b).len())
            .unwrap();
        tree.forget(attr.node.ino, 1);
    }
    let allocs_per_read = (ALLOCS.load(Relaxed) - allocs_before) as f64 / statics.len() as f64;
    black_box(bytes);
    tree.reset();

    let rounds = 20;
    let start = Instant::now();
    for _ in 0..rounds {
        for (parent, name, _, _) in &entries {
            black_box(tree.find(*parent, name).unwrap());
        }
    }
    let lookup_ns = start.elapsed().as_nanos() as f64 / (rounds * entries.len()) as f64;

    let dir_inos: Vec<Ino> = std::iter::once(ROOT_INO)
        .chain(entries.iter().filter(|e| e.3).map(|e| e.2))
        .collect();
    let start = Instant::now();
    let mut listed = 0usize;
    for _ in 0..rounds {
        for &dir in &dir_inos {
            tree.readdir(dir, 0, &mut |e| {
                black_box(e.name);
                listed += 1;
                true
            })
            .unwrap();
        }
    }
    let readdir_ns = start.elapsed().as_nanos() as f64 / listed as f64;

    println!("systems={systems}");
    println!("events={events}");
    println!("dirs={dirs}");
    println!("files={files}");
    println!("catalog_image_bytes={}", EMBEDDED.len());
    println!("metadata_heap_bytes={metadata_heap}");
    println!("materialised_nodes={materialised}");
    println!("bytes_per_materialised_node={per_node:.1}");
    println!("heap_after_forget_all_bytes={after_forget}");
    println!("allocs_per_static_read={allocs_per_read}");
    println!("lookup_ns={lookup_ns:.0}");
    println!("readdir_entry_ns={readdir_ns:.0}");
}
