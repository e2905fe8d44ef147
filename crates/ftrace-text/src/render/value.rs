//! C integer values after the usual promotions, and formatting them as the kernel's printf does (`number()`, the `%p` extensions).

use std::borrow::Cow;
use std::fmt::Write as _;

use super::printf::{Conv, Count, Len, PtrKind, Spec};

/// A C integer after the usual promotions: `int`, `unsigned int`, `long` or `unsigned long`.
/// `bits` always holds the value converted to 64 bits (sign-extended when signed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CInt {
    pub(super) bits: u64,
    pub(super) wide: bool,
    pub(super) signed: bool,
}

impl CInt {
    pub(super) fn new(bits: u64, wide: bool, signed: bool) -> CInt {
        let bits = if wide {
            bits
        } else if signed {
            bits as i32 as i64 as u64
        } else {
            u64::from(bits as u32)
        };
        CInt { bits, wide, signed }
    }

    pub(super) fn int(v: i64) -> CInt {
        CInt::new(v as u64, false, true)
    }

    /// A value read from `size` bytes, promoted the way C promotes it in an expression.
    pub(super) fn from_sized(bits: u64, size: u32, signed: bool) -> CInt {
        let size = size.clamp(1, 8);
        let shift = 64 - 8 * size;
        let ext = if signed {
            (((bits << shift) as i64) >> shift) as u64
        } else {
            (bits << shift) >> shift
        };
        match size {
            1..=3 => CInt::new(ext, false, true),
            4 => CInt::new(ext, false, signed),
            _ => CInt::new(ext, true, signed),
        }
    }

    pub(super) fn is_true(self) -> bool {
        self.bits != 0
    }
}

#[derive(Debug, Clone)]
pub(super) enum Val<'r> {
    Int(CInt),
    Str(Cow<'r, str>),
    Bytes(&'r [u8]),
}

/// Why a record could not be rendered with its print fmt.
#[derive(Debug)]
pub(super) struct EvalError;

impl<'r> Val<'r> {
    pub(super) fn int(&self) -> Result<CInt, EvalError> {
        match self {
            Val::Int(i) => Ok(*i),
            _ => Err(EvalError),
        }
    }
}

/// Appends one converted argument.
pub(super) fn format_conv(spec: &Spec, v: &Val<'_>, out: &mut String) -> Result<(), EvalError> {
    let width = match spec.width {
        Count::Fixed(n) => n.max(0) as usize,
        _ => 0,
    };
    let prec = match spec.prec {
        Count::Fixed(n) => Some(n.max(0) as usize),
        _ => None,
    };
    match spec.conv {
        Conv::Str => {
            let owned;
            let s: &str = match v {
                Val::Str(s) => s,
                Val::Bytes(b) => {
                    // A char array: up to its first NUL, like the kernel's string().
                    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                    owned = String::from_utf8_lossy(&b[..end]);
                    &owned
                }
                Val::Int(_) => return Err(EvalError),
            };
            let s = match prec {
                Some(p) if p < s.len() => {
                    let mut end = p;
                    while !s.is_char_boundary(end) {
                        end -= 1;
                    }
                    &s[..end]
                }
                _ => s,
            };
            pad(out, s, width, spec.left);
        }
        Conv::Char => {
            let c = char::from(v.int()?.bits as u8);
            let mut buf = [0u8; 4];
            pad(out, c.encode_utf8(&mut buf), width, spec.left);
        }
        Conv::Ptr(kind) => {
            let text = format_pointer(kind, v)?;
            if spec.width == Count::None && kind == PtrKind::Hashed {
                out.push_str(&text);
            } else {
                pad(out, &text, width, spec.left);
            }
        }
        Conv::Signed | Conv::Unsigned | Conv::Octal | Conv::Hex { .. } => {
            let x = v.int()?;
            format_int(spec, x.bits, width, prec, out);
        }
    }
    Ok(())
}

pub(super) fn pad(out: &mut String, s: &str, width: usize, left: bool) {
    let fill = width.saturating_sub(s.chars().count());
    if !left {
        out.extend(std::iter::repeat_n(' ', fill));
    }
    out.push_str(s);
    if left {
        out.extend(std::iter::repeat_n(' ', fill));
    }
}

/// Integer conversions with the kernel's `number()` rules: the length modifier picks how
/// many bits of the argument are read, `#` always adds the prefix (even for 0), and the
/// width counts sign and prefix.
pub(super) fn format_int(
    spec: &Spec,
    bits: u64,
    width: usize,
    prec: Option<usize>,
    out: &mut String,
) {
    let signed = spec.conv == Conv::Signed;
    let (mag, neg) = match (spec.len, signed) {
        (Len::Char, true) => signed_mag(i64::from(bits as i8)),
        (Len::Short, true) => signed_mag(i64::from(bits as i16)),
        (Len::Int, true) => signed_mag(i64::from(bits as i32)),
        (Len::Long, true) => signed_mag(bits as i64),
        (Len::Char, false) => (u64::from(bits as u8), false),
        (Len::Short, false) => (u64::from(bits as u16), false),
        (Len::Int, false) => (u64::from(bits as u32), false),
        (Len::Long, false) => (bits, false),
    };
    let digits = match spec.conv {
        Conv::Octal => format!("{mag:o}"),
        Conv::Hex { upper: true } => format!("{mag:X}"),
        Conv::Hex { upper: false } => format!("{mag:x}"),
        _ => mag.to_string(),
    };
    let sign = if !signed {
        ""
    } else if neg {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    let prefix = match (spec.alt, spec.conv) {
        (true, Conv::Hex { upper: false }) => "0x",
        (true, Conv::Hex { upper: true }) => "0X",
        (true, Conv::Octal) => "0",
        _ => "",
    };
    let body_len = digits.len().max(prec.unwrap_or(0));
    let fill = width.saturating_sub(body_len + sign.len() + prefix.len());
    if spec.left {
        out.push_str(sign);
        out.push_str(prefix);
    } else if spec.zero {
        out.push_str(sign);
        out.push_str(prefix);
        out.extend(std::iter::repeat_n('0', fill));
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(sign);
        out.push_str(prefix);
    }
    out.extend(std::iter::repeat_n('0', body_len - digits.len()));
    out.push_str(&digits);
    if spec.left {
        out.extend(std::iter::repeat_n(' ', fill));
    }
}

pub(super) fn signed_mag(v: i64) -> (u64, bool) {
    (v.unsigned_abs(), v < 0)
}

pub(super) fn format_pointer(kind: PtrKind, v: &Val<'_>) -> Result<String, EvalError> {
    let bytes = |n: usize| match v {
        Val::Bytes(b) if b.len() >= n => Ok(&b[..n]),
        Val::Str(s) if s.len() >= n => Ok(&s.as_bytes()[..n]),
        _ => Err(EvalError),
    };
    Ok(match kind {
        PtrKind::Hashed => {
            let p = v.int()?.bits;
            // NULL and error pointers are printed raw; others as a 32-bit hash, as the
            // kernel does so trace output does not leak addresses.
            if p == 0 || p >= (-4095i64) as u64 {
                format!("{p:016x}")
            } else {
                format!("{:016x}", hash_pointer(p))
            }
        }
        PtrKind::Symbol => format!("0x{:x}", v.int()?.bits),
        PtrKind::Uuid { upper, little } => {
            let b = bytes(16)?;
            // The little-endian variants swap the first three groups.
            let order: [usize; 16] = if little {
                [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15]
            } else {
                std::array::from_fn(|i| i)
            };
            let mut s = String::with_capacity(36);
            for (i, &j) in order.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    s.push('-');
                }
                if upper {
                    let _ = write!(s, "{:02X}", b[j]);
                } else {
                    let _ = write!(s, "{:02x}", b[j]);
                }
            }
            s
        }
        PtrKind::Ip4 { padded } => {
            let b = bytes(4)?;
            let parts: Vec<String> = b
                .iter()
                .map(|x| {
                    if padded {
                        format!("{x:03}")
                    } else {
                        x.to_string()
                    }
                })
                .collect();
            parts.join(".")
        }
        PtrKind::Ip6 { colons, compressed } => {
            let b = bytes(16)?;
            let words: Vec<u16> = b
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            if compressed {
                ip6_compressed(&words)
            } else if colons {
                let w: Vec<String> = words.iter().map(|w| format!("{w:04x}")).collect();
                w.join(":")
            } else {
                words.iter().map(|w| format!("{w:04x}")).collect()
            }
        }
        PtrKind::Mac { colons, reversed } => {
            let b = bytes(6)?;
            let mut v: Vec<u8> = b.to_vec();
            if reversed {
                v.reverse();
            }
            let parts: Vec<String> = v.iter().map(|x| format!("{x:02x}")).collect();
            parts.join(if colons { ":" } else { "" })
        }
    })
}

/// `%pI6c`: the longest run (of two or more) zero words becomes `::`, words lose leading
/// zeros, and v4-mapped addresses end in dotted quad.
pub(super) fn ip6_compressed(w: &[u16]) -> String {
    let v4_mapped = w[..5].iter().all(|&x| x == 0) && w[5] == 0xffff;
    let n = if v4_mapped { 6 } else { 8 };
    let (mut best, mut best_len, mut i) = (0, 0, 0);
    while i < n {
        if w[i] == 0 {
            let start = i;
            while i < n && w[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                best = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    if best_len < 2 {
        best_len = 0;
    }
    let mut s = String::new();
    let mut i = 0;
    while i < n {
        if best_len > 0 && i == best {
            s.push_str("::");
            i += best_len;
            continue;
        }
        if !s.is_empty() && !s.ends_with(':') {
            s.push(':');
        }
        let _ = write!(s, "{:x}", w[i]);
        i += 1;
    }
    if v4_mapped {
        if !s.ends_with(':') {
            s.push(':');
        }
        let _ = write!(
            s,
            "{}.{}.{}.{}",
            w[6] >> 8,
            w[6] & 0xff,
            w[7] >> 8,
            w[7] & 0xff
        );
    }
    s
}

/// Stand-in for the kernel's keyed pointer hash: stable, 32 bits.
pub(super) fn hash_pointer(p: u64) -> u64 {
    let mut z = p.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) & 0xffff_ffff
}
