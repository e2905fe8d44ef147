//! The format string of a print fmt: literal text and conversions, with the arguments each takes.

use super::base::{unsupported, Unsupported};

/// `*` widths and precisions take an argument; the index is into the argument list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Count {
    None,
    Fixed(i64),
    Arg(usize),
}

/// Integer argument size a conversion reads (C's length modifiers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Len {
    Char,
    Short,
    Int,
    Long,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PtrKind {
    /// `%p`: hashed.
    Hashed,
    /// `%pS`, `%ps`, `%pB`, `%pF`, `%pf`: symbol lookup (we have no symbols).
    Symbol,
    /// `%pU[bBlL]`.
    Uuid { upper: bool, little: bool },
    /// `%pI4`/`%pi4`.
    Ip4 { padded: bool },
    /// `%pI6`/`%pi6`/`%pI6c`.
    Ip6 { colons: bool, compressed: bool },
    /// `%pM`/`%pMR`/`%pm`/`%pmR`.
    Mac { colons: bool, reversed: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Conv {
    Signed,
    Unsigned,
    Octal,
    Hex { upper: bool },
    Char,
    Str,
    Ptr(PtrKind),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Spec {
    pub(super) left: bool,
    pub(super) zero: bool,
    pub(super) plus: bool,
    pub(super) space: bool,
    pub(super) alt: bool,
    pub(super) width: Count,
    pub(super) prec: Count,
    pub(super) len: Len,
    pub(super) conv: Conv,
}

#[derive(Debug, Clone)]
pub(super) enum Seg {
    Lit(String),
    Conv { spec: Spec, arg: usize },
}

/// What kind of value an argument must evaluate to for a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Int,
    Str,
    Bytes,
}

/// Splits a format string into literal text and conversions, numbering the arguments each
/// conversion consumes. Returns the segments and the kinds the arguments must have.
pub(super) fn parse_format(fmt: &str) -> Result<(Vec<Seg>, Vec<Kind>), Unsupported> {
    let mut segs = Vec::new();
    let mut kinds = Vec::new();
    let mut lit = String::new();
    let b = fmt.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            let next = fmt[i..].find('%').map_or(fmt.len(), |n| i + n);
            lit.push_str(&fmt[i..next]);
            i = next;
            continue;
        }
        i += 1;
        if b.get(i) == Some(&b'%') {
            lit.push('%');
            i += 1;
            continue;
        }
        let mut spec = Spec {
            left: false,
            zero: false,
            plus: false,
            space: false,
            alt: false,
            width: Count::None,
            prec: Count::None,
            len: Len::Int,
            conv: Conv::Signed,
        };
        while let Some(&c) = b.get(i) {
            match c {
                b'-' => spec.left = true,
                b'0' => spec.zero = true,
                b'+' => spec.plus = true,
                b' ' => spec.space = true,
                b'#' => spec.alt = true,
                _ => break,
            }
            i += 1;
        }
        let number = |i: &mut usize, kinds: &mut Vec<Kind>| -> Count {
            if b.get(*i) == Some(&b'*') {
                *i += 1;
                kinds.push(Kind::Int);
                return Count::Arg(kinds.len() - 1);
            }
            let start = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            if start == *i {
                Count::None
            } else {
                Count::Fixed(fmt[start..*i].parse().unwrap_or(i64::MAX).min(4096))
            }
        };
        spec.width = number(&mut i, &mut kinds);
        if b.get(i) == Some(&b'.') {
            i += 1;
            spec.prec = match number(&mut i, &mut kinds) {
                Count::None => Count::Fixed(0),
                c => c,
            };
        }
        // Length modifiers: everything that is not char/short/int is 64 bits on x86-64.
        loop {
            match b.get(i) {
                Some(b'h') => {
                    spec.len = if spec.len == Len::Short {
                        Len::Char
                    } else {
                        Len::Short
                    }
                }
                Some(b'l' | b'L' | b'z' | b'Z' | b't' | b'j' | b'q') => spec.len = Len::Long,
                _ => break,
            }
            i += 1;
        }
        let Some(&c) = b.get(i) else {
            return unsupported("format ends inside a conversion");
        };
        i += 1;
        let kind;
        spec.conv = match c {
            b'd' | b'i' => {
                kind = Kind::Int;
                Conv::Signed
            }
            b'u' => {
                kind = Kind::Int;
                Conv::Unsigned
            }
            b'o' => {
                kind = Kind::Int;
                Conv::Octal
            }
            b'x' | b'X' => {
                kind = Kind::Int;
                Conv::Hex { upper: c == b'X' }
            }
            b'c' => {
                kind = Kind::Int;
                Conv::Char
            }
            b's' => {
                kind = Kind::Str;
                Conv::Str
            }
            b'p' => {
                // The kernel takes every alphanumeric after %p as the extension.
                let start = i;
                while b.get(i).is_some_and(u8::is_ascii_alphanumeric) {
                    i += 1;
                }
                let ext = &fmt[start..i];
                let (k, p) = match ext {
                    "" => (Kind::Int, PtrKind::Hashed),
                    "S" | "s" | "B" | "F" | "f" | "SR" | "sR" | "BR" => {
                        (Kind::Int, PtrKind::Symbol)
                    }
                    "U" | "Ub" | "UB" | "Ul" | "UL" => (
                        Kind::Bytes,
                        PtrKind::Uuid {
                            upper: ext.ends_with(['B', 'L']),
                            little: ext.ends_with(['l', 'L']),
                        },
                    ),
                    "I4" | "i4" => (
                        Kind::Bytes,
                        PtrKind::Ip4 {
                            padded: ext == "i4",
                        },
                    ),
                    "I6" | "i6" | "I6c" => (
                        Kind::Bytes,
                        PtrKind::Ip6 {
                            colons: ext != "i6",
                            compressed: ext == "I6c",
                        },
                    ),
                    "M" | "MR" | "m" | "mR" => (
                        Kind::Bytes,
                        PtrKind::Mac {
                            colons: ext.starts_with('M'),
                            reversed: ext.ends_with('R'),
                        },
                    ),
                    _ => return unsupported(format!("%p{ext}")),
                };
                kind = k;
                Conv::Ptr(p)
            }
            _ => return unsupported(format!("conversion %{}", char::from(c))),
        };
        kinds.push(kind);
        if !lit.is_empty() {
            segs.push(Seg::Lit(std::mem::take(&mut lit)));
        }
        segs.push(Seg::Conv {
            spec,
            arg: kinds.len() - 1,
        });
    }
    if !lit.is_empty() {
        segs.push(Seg::Lit(lit));
    }
    Ok((segs, kinds))
}
