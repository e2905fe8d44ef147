//! The catalog image loader on arbitrary bytes. First byte even: the rest is the whole image.
//! Odd: the rest is a body, given a valid header (length and checksum) so mutations reach the
//! record parser instead of stopping at the checksum. What loads is walked like a guest would.
#![no_main]

use eventfs_core::catalog::{Catalog, RawCatalog};
use eventfs_core::tree::Image;
use eventfs_core::{NodeKind, Tree, TreeConfig, ROOT_INO};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let image = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        eventfsd_fuzz::image_from_body(rest)
    };
    let raw_ok = RawCatalog::parse(&image).is_ok();
    if let Ok(catalog) = Catalog::decode(&image) {
        // Decoding is stable: what decodes re-encodes to the same catalog.
        let again = Catalog::decode(&catalog.encode()).expect("re-encoded image decodes");
        assert_eq!(again, catalog);
    }
    let tree = Tree::from_image(
        Image::Owned(image.into_boxed_slice()),
        TreeConfig::default(),
    );
    assert_eq!(
        raw_ok,
        tree.is_ok(),
        "the tree accepts exactly the valid images"
    );
    let Ok(tree) = tree else {
        return;
    };
    walk(&tree, ROOT_INO, 0);
    if tree.add_instance("fuzz").is_ok() {
        tree.remove_instance("fuzz").unwrap();
    }
    tree.reset();
    assert_eq!(tree.materialised(), 0);
});

/// Lists every directory (readdirplus-style: each entry looked up and read), bounded.
fn walk(tree: &Tree, dir: u64, depth: usize) {
    if depth > 6 {
        return;
    }
    let mut children = Vec::new();
    tree.readdir(dir, 0, &mut |e| {
        if !e.is_dot {
            children.push((e.name.to_vec(), e.attr.node.ino, e.attr.node.kind));
        }
        children.len() < 4096
    })
    .unwrap();
    for (name, ino, kind) in children {
        let attr = tree
            .lookup(dir, &name)
            .expect("listed entries can be looked up");
        assert_eq!(attr.node.ino, ino, "readdir and lookup agree");
        match kind {
            NodeKind::Dir(_) => walk(tree, ino, depth + 1),
            NodeKind::File(k) if k.is_immutable() => {
                let size = tree.with_static_content(ino, |c| c.len() as u64).unwrap();
                assert_eq!(size, attr.size, "immutable files report their real size");
            }
            NodeKind::File(_) => {}
        }
    }
}
