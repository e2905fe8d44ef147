//! Expressions of a print fmt (`REC->field`, arithmetic, `?:`, casts, `__print_flags` ...) and their evaluation on a record.

use crate::record::FieldValue;
use crate::record::Record;
use std::borrow::Cow;
use std::fmt::Write as _;

use super::base::{fake_address, FieldInfo};
use super::value::{CInt, EvalError, Val};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    And,
    Or,
    Xor,
    Shl,
    Shr,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    LAnd,
    LOr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UnOp {
    Neg,
    Not,
    LNot,
}

/// Target of a cast: its size and signedness (`bool` normalizes to 0/1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CType {
    pub(super) size: u32,
    pub(super) signed: bool,
    pub(super) boolean: bool,
    pub(super) pointer: bool,
}

/// `{ value, "name" }` table of `__print_flags`/`__print_symbolic`.
pub(super) type Table = Vec<(u64, Box<str>)>;

#[derive(Debug, Clone)]
pub(super) enum Expr {
    Num(CInt),
    Str(Box<str>),
    /// `REC->field` for a scalar.
    Field(usize),
    /// `REC->field` for a string field, or `__get_str(field)`.
    FieldStr(usize),
    /// `REC->field` for a non-string array, or `__get_dynamic_array(field)`.
    FieldBytes(usize),
    /// `REC->field[i]` on an array of integers.
    Index(usize, Box<Expr>),
    /// `__get_dynamic_array_len(field)`.
    DynLen(usize),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    Cast(CType, Box<Expr>),
    Flags(Box<Expr>, Box<str>, Table),
    Symbolic(Box<Expr>, Table),
    /// `__print_hex` (`false`) / `__print_hex_str` (`true`).
    Hex(Box<Expr>, Box<Expr>, bool),
    /// `__print_array(array, count, elem_size)`.
    Array(Box<Expr>, Box<Expr>, Box<Expr>),
}

/// Evaluation context; the record, the fields and the compiled expressions all outlive the
/// values, so strings can be borrowed instead of copied.
pub(super) struct Ctx<'a> {
    pub(super) rec: Option<&'a Record>,
    pub(super) fields: &'a [FieldInfo],
}

impl<'a> Ctx<'a> {
    pub(super) fn field(&self, idx: usize) -> Result<&'a FieldValue, EvalError> {
        self.rec.and_then(|r| r.fields.get(idx)).ok_or(EvalError)
    }

    pub(super) fn eval(&self, e: &'a Expr) -> Result<Val<'a>, EvalError> {
        Ok(match e {
            Expr::Num(n) => Val::Int(*n),
            Expr::Str(s) => Val::Str(Cow::Borrowed(s)),
            Expr::Field(i) => {
                let f = &self.fields[*i];
                let bits = match self.field(*i)? {
                    // Only `char *` fields get here with a string: use a stable address.
                    FieldValue::Str(s) if f.pointer_string => {
                        fake_address(s.as_bytes(), 0xffff_8881_0000_0000)
                    }
                    v => v.as_bits().ok_or(EvalError)?,
                };
                Val::Int(CInt::from_sized(bits, f.size, f.signed))
            }
            Expr::FieldStr(i) => match self.field(*i)? {
                FieldValue::Str(s) => Val::Str(Cow::Borrowed(s)),
                FieldValue::Bytes(b) => Val::Bytes(b),
                _ => return Err(EvalError),
            },
            Expr::FieldBytes(i) => match self.field(*i)? {
                FieldValue::Bytes(b) => Val::Bytes(b),
                FieldValue::Str(s) => Val::Bytes(s.as_bytes()),
                _ => return Err(EvalError),
            },
            Expr::DynLen(i) => match self.field(*i)? {
                FieldValue::Bytes(b) => Val::Int(CInt::new(b.len() as u64, false, false)),
                FieldValue::Str(s) => Val::Int(CInt::new(s.len() as u64 + 1, false, false)),
                _ => return Err(EvalError),
            },
            Expr::Index(i, idx) => {
                let f = &self.fields[*i];
                let n = u64::from(f.array_len.filter(|&n| n > 0).ok_or(EvalError)?);
                let elem = (u64::from(f.size) / n) as usize;
                let b: &[u8] = match self.field(*i)? {
                    FieldValue::Bytes(b) => b,
                    FieldValue::Str(s) => s.as_bytes(),
                    _ => return Err(EvalError),
                };
                let k = self.eval(idx)?.int()?.bits;
                if k >= n || elem == 0 || elem > 8 {
                    return Err(EvalError);
                }
                // A string shorter than its array reads as the NULs that pad it.
                let start = k as usize * elem;
                let mut le = [0u8; 8];
                for (j, byte) in le.iter_mut().take(elem).enumerate() {
                    *byte = b.get(start + j).copied().unwrap_or(0);
                }
                Val::Int(CInt::from_sized(
                    u64::from_le_bytes(le),
                    elem as u32,
                    f.signed,
                ))
            }
            Expr::Unary(op, a) => {
                let a = self.eval(a)?.int()?;
                // Operands narrower than int were already promoted.
                Val::Int(match op {
                    UnOp::Neg => CInt::new(a.bits.wrapping_neg(), a.wide, a.signed),
                    UnOp::Not => CInt::new(!a.bits, a.wide, a.signed),
                    UnOp::LNot => CInt::int(i64::from(!a.is_true())),
                })
            }
            Expr::Binary(op, a, b) => {
                let a = self.eval(a)?.int()?;
                // && and || short-circuit like C.
                match op {
                    BinOp::LAnd if !a.is_true() => return Ok(Val::Int(CInt::int(0))),
                    BinOp::LOr if a.is_true() => return Ok(Val::Int(CInt::int(1))),
                    _ => {}
                }
                let b = self.eval(b)?.int()?;
                Val::Int(binary(*op, a, b)?)
            }
            Expr::Cond(c, t, f) => {
                if self.eval(c)?.int()?.is_true() {
                    self.eval(t)?
                } else {
                    self.eval(f)?
                }
            }
            Expr::Cast(ty, a) => match self.eval(a)? {
                Val::Int(x) => Val::Int(cast(*ty, x)),
                // Pointer casts of strings/arrays keep the pointee for %s / %pXX.
                v if ty.pointer => v,
                _ => return Err(EvalError),
            },
            Expr::Flags(v, sep, table) => {
                let mut flags = self.eval(v)?.int()?.bits;
                let mut s = String::new();
                let mut first = true;
                for (mask, name) in table {
                    if flags == 0 {
                        break;
                    }
                    if flags & mask != *mask {
                        continue;
                    }
                    flags &= !mask;
                    if !first {
                        s.push_str(sep);
                    }
                    first = false;
                    s.push_str(name);
                }
                if flags != 0 {
                    if !first {
                        s.push_str(sep);
                    }
                    let _ = write!(s, "0x{flags:x}");
                }
                Val::Str(Cow::Owned(s))
            }
            Expr::Symbolic(v, table) => {
                let v = self.eval(v)?.int()?.bits;
                match table.iter().find(|(k, _)| *k == v) {
                    Some((_, name)) => Val::Str(Cow::Borrowed(name)),
                    None => Val::Str(Cow::Owned(format!("0x{v:x}"))),
                }
            }
            Expr::Hex(buf, len, concat) => {
                let Val::Bytes(b) = self.eval(buf)? else {
                    return Err(EvalError);
                };
                let n = (self.eval(len)?.int()?.bits as usize).min(b.len());
                let mut s = String::with_capacity(n * 3);
                for (i, byte) in b[..n].iter().enumerate() {
                    if i > 0 && !concat {
                        s.push(' ');
                    }
                    let _ = write!(s, "{byte:02x}");
                }
                Val::Str(Cow::Owned(s))
            }
            Expr::Array(buf, count, el) => {
                let Val::Bytes(b) = self.eval(buf)? else {
                    return Err(EvalError);
                };
                let el = self.eval(el)?.int()?.bits as usize;
                if !matches!(el, 1 | 2 | 4 | 8) {
                    return Err(EvalError);
                }
                let count = (self.eval(count)?.int()?.bits as usize).min(b.len() / el);
                let mut s = String::from("{");
                for (i, c) in b.chunks_exact(el).take(count).enumerate() {
                    let mut le = [0u8; 8];
                    le[..el].copy_from_slice(c);
                    let sep = if i == 0 { "" } else { "," };
                    let _ = write!(s, "{sep}0x{:x}", u64::from_le_bytes(le));
                }
                s.push('}');
                Val::Str(Cow::Owned(s))
            }
        })
    }
}

pub(super) fn cast(ty: CType, x: CInt) -> CInt {
    if ty.boolean {
        return CInt::int(i64::from(x.is_true()));
    }
    CInt::from_sized(x.bits, ty.size, ty.signed)
}

/// C's usual arithmetic conversions for two promoted operands.
pub(super) fn common_type(a: CInt, b: CInt) -> (bool, bool) {
    if a.wide == b.wide {
        (a.wide, a.signed && b.signed)
    } else if a.wide {
        // long can hold every unsigned int, so the wide side's signedness wins.
        (true, a.signed)
    } else {
        (true, b.signed)
    }
}

pub(super) fn binary(op: BinOp, a: CInt, b: CInt) -> Result<CInt, EvalError> {
    use BinOp::*;
    if matches!(op, Shl | Shr) {
        // The result has the (promoted) left operand's type; the count is masked the way
        // x86 masks it instead of being undefined.
        let bits = if a.wide { 64 } else { 32 };
        let n = (b.bits % bits) as u32;
        let v = match op {
            Shl => a.bits << n,
            _ if a.signed => ((a.bits as i64) >> n) as u64,
            _ => a.bits >> n,
        };
        return Ok(CInt::new(v, a.wide, a.signed));
    }
    let (wide, signed) = common_type(a, b);
    let x = CInt::new(a.bits, wide, signed).bits;
    let y = CInt::new(b.bits, wide, signed).bits;
    let (xs, ys) = (x as i64, y as i64);
    let (xn, yn) = if wide {
        (xs, ys)
    } else {
        (i64::from(xs as i32), i64::from(ys as i32))
    };
    let cmp = |r: bool| CInt::int(i64::from(r));
    let ordered = |f: fn(&i128, &i128) -> bool| {
        let (p, q) = if signed {
            (i128::from(xn), i128::from(yn))
        } else {
            (i128::from(x), i128::from(y))
        };
        cmp(f(&p, &q))
    };
    Ok(match op {
        Add => CInt::new(x.wrapping_add(y), wide, signed),
        Sub => CInt::new(x.wrapping_sub(y), wide, signed),
        Mul => CInt::new(x.wrapping_mul(y), wide, signed),
        Div | Rem => {
            if y == 0 {
                return Err(EvalError);
            }
            let v = if signed {
                if op == Div {
                    xn.wrapping_div(yn) as u64
                } else {
                    xn.wrapping_rem(yn) as u64
                }
            } else if op == Div {
                x / y
            } else {
                x % y
            };
            CInt::new(v, wide, signed)
        }
        And => CInt::new(x & y, wide, signed),
        Or => CInt::new(x | y, wide, signed),
        Xor => CInt::new(x ^ y, wide, signed),
        Eq => cmp(x == y),
        Ne => cmp(x != y),
        Lt => ordered(i128::lt),
        Gt => ordered(i128::gt),
        Le => ordered(i128::le),
        Ge => ordered(i128::ge),
        LAnd => cmp(a.is_true() && b.is_true()),
        LOr => cmp(a.is_true() || b.is_true()),
        Shl | Shr => unreachable!("handled above"),
    })
}
