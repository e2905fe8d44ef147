//! What every part of the renderer shares: the owned description of a format field, why a
//! print fmt is unsupported, and stand-in addresses for pointers.

use crate::format::{self, Field};

/// What the interpreter could not handle; kept so the daemon can log why an event falls
/// back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unsupported(pub(super) String);

pub(super) fn unsupported<T>(why: impl Into<String>) -> Result<T, Unsupported> {
    Err(Unsupported(why.into()))
}

/// An owned copy of what rendering needs from a format field.
#[derive(Debug, Clone)]
pub(super) struct FieldInfo {
    pub(super) name: Box<str>,
    pub(super) size: u32,
    pub(super) signed: bool,
    pub(super) common: bool,
    pub(super) string: bool,
    pub(super) pointer_string: bool,
    pub(super) dynamic: bool,
    /// Element count for `name[N]` arrays (`Some(0)` for `name[]`).
    pub(super) array_len: Option<u32>,
}

impl FieldInfo {
    pub(super) fn new(f: &Field<'_>) -> Self {
        FieldInfo {
            name: f.name.into(),
            size: f.size,
            signed: f.signed,
            common: f.common,
            string: format::is_string(f),
            pointer_string: format::is_string(f) && f.ty.ends_with('*'),
            dynamic: f.ty.contains("__data_loc") || f.ty.contains("__rel_loc"),
            array_len: f.array_len,
        }
    }
}

/// A stable, plausible-looking address standing in for a pointer we only have contents of.
pub(super) fn fake_address(bytes: &[u8], base: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    base | ((h & 0xff_ffff_ffff) << 3 & 0xfff_ffff_fff0)
}
