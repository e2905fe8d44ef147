//! The tokenizer and parser of print-fmt expressions.

use super::base::{unsupported, FieldInfo, Unsupported};
use super::expr::{BinOp, CType, Ctx, Expr, Table, UnOp};
use super::printf::{parse_format, Kind, Seg};
use super::value::CInt;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok<'s> {
    Str(String),
    Num(CInt),
    Ident(&'s str),
    Punct(&'static str),
}

pub(super) const PUNCTS: &[&str] = &[
    "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "->", "+", "-", "*", "/", "%", "&", "|", "^",
    "~", "!", "<", ">", "?", ":", ",", "(", ")", "{", "}", "[", "]", ".",
];

pub(super) fn tokenize(s: &str) -> Result<Vec<Tok<'_>>, Unsupported> {
    let b = s.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'"' {
            let (text, end) = string_literal(s, i + 1)?;
            // Adjacent literals are one string, as in C.
            if let Some(Tok::Str(prev)) = toks.last_mut() {
                prev.push_str(&text);
            } else {
                toks.push(Tok::Str(text));
            }
            i = end;
        } else if c == b'\'' {
            let (text, end) = char_literal(s, i + 1)?;
            toks.push(Tok::Num(CInt::int(i64::from(text))));
            i = end;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            toks.push(Tok::Num(int_literal(&s[start..i])?));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            toks.push(Tok::Ident(&s[start..i]));
        } else if let Some(p) = PUNCTS.iter().find(|p| s[i..].starts_with(**p)) {
            toks.push(Tok::Punct(p));
            i += p.len();
        } else {
            return unsupported(format!("character {:?}", char::from(c)));
        }
    }
    Ok(toks)
}

/// One escape sequence starting after the backslash at `i`; returns the byte and the index
/// after it.
pub(super) fn escape(b: &[u8], i: usize) -> Result<(u8, usize), Unsupported> {
    let Some(&c) = b.get(i) else {
        return unsupported("unterminated escape");
    };
    Ok(match c {
        b'n' => (b'\n', i + 1),
        b't' => (b'\t', i + 1),
        b'r' => (b'\r', i + 1),
        b'a' => (7, i + 1),
        b'b' => (8, i + 1),
        b'f' => (12, i + 1),
        b'v' => (11, i + 1),
        b'x' => {
            let mut j = i + 1;
            let mut v: u32 = 0;
            while j < b.len() && b[j].is_ascii_hexdigit() && j < i + 3 {
                v = v * 16 + (b[j] as char).to_digit(16).unwrap_or(0);
                j += 1;
            }
            (v as u8, j)
        }
        b'0'..=b'7' => {
            let mut j = i;
            let mut v: u32 = 0;
            while j < b.len() && (b'0'..=b'7').contains(&b[j]) && j < i + 3 {
                v = v * 8 + u32::from(b[j] - b'0');
                j += 1;
            }
            (v as u8, j)
        }
        other => (other, i + 1),
    })
}

pub(super) fn string_literal(s: &str, mut i: usize) -> Result<(String, usize), Unsupported> {
    let b = s.as_bytes();
    let mut bytes = Vec::new();
    while i < b.len() {
        match b[i] {
            b'"' => {
                // Escapes can produce non-UTF-8 bytes; keep whatever is printable.
                let text = String::from_utf8_lossy(&bytes).into_owned();
                return Ok((text, i + 1));
            }
            b'\\' => {
                let (c, next) = escape(b, i + 1)?;
                bytes.push(c);
                i = next;
            }
            c => {
                bytes.push(c);
                i += 1;
            }
        }
    }
    unsupported("unterminated string")
}

pub(super) fn char_literal(s: &str, i: usize) -> Result<(u8, usize), Unsupported> {
    let b = s.as_bytes();
    let (c, next) = match b.get(i) {
        Some(b'\\') => escape(b, i + 1)?,
        Some(&c) => (c, i + 1),
        None => return unsupported("unterminated character"),
    };
    if b.get(next) != Some(&b'\'') {
        return unsupported("multi-character constant");
    }
    Ok((c, next + 1))
}

/// A C integer constant with its type (int, unsigned int, long, unsigned long).
pub(super) fn int_literal(t: &str) -> Result<CInt, Unsupported> {
    let lower = t.to_ascii_lowercase();
    let digits = lower.trim_end_matches(['u', 'l']);
    let suffix = &lower[digits.len()..];
    let (radix, body) = if let Some(h) = digits.strip_prefix("0x") {
        (16, h)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    let Ok(v) = u64::from_str_radix(body, radix) else {
        return unsupported(format!("number {t}"));
    };
    let unsigned = suffix.contains('u');
    let long = suffix.contains('l');
    // The first type of the C list that holds the value.
    let (wide, signed) = if !long && !unsigned && v <= i32::MAX as u64 {
        (false, true)
    } else if !long && (radix != 10 || unsigned) && v <= u64::from(u32::MAX) {
        (false, false)
    } else if !unsigned && v <= i64::MAX as u64 {
        (true, true)
    } else {
        (true, false)
    };
    Ok(CInt::new(v, wide, signed))
}

/// Integer typedefs that show up in print fmts: (name, size, signed).
pub(super) const TYPEDEFS: &[(&str, u32, bool)] = &[
    ("u8", 1, false),
    ("u16", 2, false),
    ("u32", 4, false),
    ("u64", 8, false),
    ("s8", 1, true),
    ("s16", 2, true),
    ("s32", 4, true),
    ("s64", 8, true),
    ("__u8", 1, false),
    ("__u16", 2, false),
    ("__u32", 4, false),
    ("__u64", 8, false),
    ("__s8", 1, true),
    ("__s16", 2, true),
    ("__s32", 4, true),
    ("__s64", 8, true),
    ("uint8_t", 1, false),
    ("uint16_t", 2, false),
    ("uint32_t", 4, false),
    ("uint64_t", 8, false),
    ("int8_t", 1, true),
    ("int16_t", 2, true),
    ("int32_t", 4, true),
    ("int64_t", 8, true),
    ("__le16", 2, false),
    ("__le32", 4, false),
    ("__le64", 8, false),
    ("__be16", 2, false),
    ("__be32", 4, false),
    ("__be64", 8, false),
    ("uint", 4, false),
    ("ulong", 8, false),
    ("ushort", 2, false),
    ("uchar", 1, false),
    ("size_t", 8, false),
    ("ssize_t", 8, true),
    ("uintptr_t", 8, false),
    ("pid_t", 4, true),
    ("uid_t", 4, false),
    ("gid_t", 4, false),
    ("gfp_t", 4, false),
    ("umode_t", 2, false),
    ("loff_t", 8, true),
    ("sector_t", 8, false),
    ("blkcnt_t", 8, false),
    ("dma_addr_t", 8, false),
    ("phys_addr_t", 8, false),
    ("resource_size_t", 8, false),
    ("dev_t", 4, false),
    ("ino_t", 8, false),
    ("time64_t", 8, true),
    ("ktime_t", 8, true),
    ("__kernel_rwf_t", 4, true),
    ("blk_opf_t", 4, false),
    ("blk_status_t", 1, false),
    ("fmode_t", 4, false),
    ("xfs_ino_t", 8, false),
    ("xfs_fsblock_t", 8, false),
    ("xfs_agblock_t", 4, false),
    ("xfs_agnumber_t", 4, false),
    ("xfs_extlen_t", 4, false),
    ("xfs_off_t", 8, true),
    ("xfs_daddr_t", 8, true),
    ("xfs_fileoff_t", 8, false),
    ("xfs_filblks_t", 8, false),
    ("xfs_rtblock_t", 8, false),
    ("xfs_nlink_t", 4, false),
    ("xfs_dablk_t", 4, false),
    ("xfs_dahash_t", 4, false),
    ("xfs_agino_t", 4, false),
    ("xfs_rfsblock_t", 8, false),
    ("xfs_fsize_t", 8, true),
];

/// Enum names the kernel leaves unresolved in some print fmts whose values are fixed by the
/// user-space ABI (so they cannot drift between kernels). Other unresolved names make the
/// event fall back rather than guess.
pub(super) const UAPI_CONSTANTS: &[(&str, i64)] = &[
    ("IOPRIO_CLASS_NONE", 0),
    ("IOPRIO_CLASS_RT", 1),
    ("IOPRIO_CLASS_BE", 2),
    ("IOPRIO_CLASS_IDLE", 3),
    ("IOPRIO_CLASS_INVALID", 7),
];

pub(super) fn is_type_word(w: &str) -> bool {
    matches!(
        w,
        "unsigned"
            | "signed"
            | "int"
            | "long"
            | "short"
            | "char"
            | "void"
            | "const"
            | "volatile"
            | "struct"
            | "enum"
            | "union"
            | "bool"
            | "_Bool"
    ) || TYPEDEFS.iter().any(|t| t.0 == w)
}

pub(super) struct Parser<'s, 'f> {
    pub(super) toks: Vec<Tok<'s>>,
    pub(super) pos: usize,
    pub(super) fields: &'f [FieldInfo],
}

impl<'s, 'f> Parser<'s, 'f> {
    pub(super) fn new(text: &'s str, fields: &'f [FieldInfo]) -> Result<Self, Unsupported> {
        Ok(Parser {
            toks: tokenize(text)?,
            pos: 0,
            fields,
        })
    }

    pub(super) fn peek(&self) -> Option<&Tok<'s>> {
        self.toks.get(self.pos)
    }

    pub(super) fn peek_at(&self, k: usize) -> Option<&Tok<'s>> {
        self.toks.get(self.pos + k)
    }

    pub(super) fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Tok::Punct(q)) if *q == p)
    }

    pub(super) fn eat(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(super) fn expect(&mut self, p: &str) -> Result<(), Unsupported> {
        if self.eat(p) {
            Ok(())
        } else {
            unsupported(format!("expected `{p}` at token {}", self.pos))
        }
    }

    /// The whole print fmt: the format string and its arguments, bound and type-checked.
    pub(super) fn print_fmt(mut self) -> Result<(Vec<Seg>, Vec<Expr>), Unsupported> {
        let Some(Tok::Str(fmt)) = self.peek().cloned() else {
            return unsupported("print fmt does not start with a string");
        };
        self.pos += 1;
        let (segs, kinds) = parse_format(&fmt)?;
        let mut args = Vec::new();
        while self.eat(",") {
            let (e, k) = self.expr()?;
            let want = kinds.get(args.len()).copied();
            match (want, k) {
                (Some(w), k) if compatible(w, k) => {}
                (Some(_), k) => return unsupported(format!("argument {} is {k:?}", args.len())),
                (None, _) => return unsupported("more arguments than conversions"),
            }
            args.push(e);
        }
        if self.peek().is_some() {
            return unsupported(format!("trailing tokens at {}", self.pos));
        }
        if args.len() != kinds.len() {
            return unsupported("fewer arguments than conversions");
        }
        Ok((segs, args))
    }

    pub(super) fn expr(&mut self) -> Result<(Expr, Kind), Unsupported> {
        let (c, kc) = self.binary(0)?;
        if !self.eat("?") {
            return Ok((c, kc));
        }
        if kc != Kind::Int {
            return unsupported("non-integer condition");
        }
        let (t, kt) = self.expr()?;
        self.expect(":")?;
        let (mut f, mut kf) = self.expr()?;
        let (mut t, mut kt) = (t, kt);
        // `cond ? __get_str(x) : NULL`: %s prints a NULL pointer as "(null)".
        let null =
            |e: &Expr, k| k == Kind::Int && const_eval(e, self.fields).is_some_and(|v| v.bits == 0);
        if kt == Kind::Str && null(&f, kf) {
            (f, kf) = (Expr::Str("(null)".into()), Kind::Str);
        } else if kf == Kind::Str && null(&t, kt) {
            (t, kt) = (Expr::Str("(null)".into()), Kind::Str);
        }
        if !compatible(kt, kf) {
            return unsupported("?: branches of different kinds");
        }
        Ok((Expr::Cond(Box::new(c), Box::new(t), Box::new(f)), kt))
    }

    pub(super) fn binop(&self) -> Option<(BinOp, u8)> {
        let Some(Tok::Punct(p)) = self.peek() else {
            return None;
        };
        Some(match *p {
            "||" => (BinOp::LOr, 1),
            "&&" => (BinOp::LAnd, 2),
            "|" => (BinOp::Or, 3),
            "^" => (BinOp::Xor, 4),
            "&" => (BinOp::And, 5),
            "==" => (BinOp::Eq, 6),
            "!=" => (BinOp::Ne, 6),
            "<" => (BinOp::Lt, 7),
            ">" => (BinOp::Gt, 7),
            "<=" => (BinOp::Le, 7),
            ">=" => (BinOp::Ge, 7),
            "<<" => (BinOp::Shl, 8),
            ">>" => (BinOp::Shr, 8),
            "+" => (BinOp::Add, 9),
            "-" => (BinOp::Sub, 9),
            "*" => (BinOp::Mul, 10),
            "/" => (BinOp::Div, 10),
            "%" => (BinOp::Rem, 10),
            _ => return None,
        })
    }

    /// Precedence climbing over C's binary operators (all left-associative).
    pub(super) fn binary(&mut self, min: u8) -> Result<(Expr, Kind), Unsupported> {
        let (mut lhs, mut kind) = self.unary()?;
        while let Some((op, prec)) = self.binop() {
            if prec <= min {
                break;
            }
            self.pos += 1;
            let (rhs, kr) = self.binary(prec)?;
            if kind != Kind::Int || kr != Kind::Int {
                return unsupported(format!("{op:?} on a non-integer"));
            }
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
            kind = Kind::Int;
        }
        Ok((lhs, kind))
    }

    pub(super) fn unary(&mut self) -> Result<(Expr, Kind), Unsupported> {
        let op = match self.peek() {
            Some(Tok::Punct("-")) => Some(UnOp::Neg),
            Some(Tok::Punct("~")) => Some(UnOp::Not),
            Some(Tok::Punct("!")) => Some(UnOp::LNot),
            Some(Tok::Punct("+")) => {
                self.pos += 1;
                return self.unary();
            }
            Some(Tok::Punct("&" | "*")) => return unsupported("address-of or dereference"),
            _ => None,
        };
        if let Some(op) = op {
            self.pos += 1;
            let (e, k) = self.unary()?;
            if k != Kind::Int {
                return unsupported("unary operator on a non-integer");
            }
            return Ok((Expr::Unary(op, Box::new(e)), Kind::Int));
        }
        if self.is_punct("(") && self.starts_type(1) {
            self.pos += 1;
            let ty = self.type_name()?;
            self.expect(")")?;
            let (mut e, mut k) = self.unary()?;
            // A `char *` field is a pointer: casting it to an integer reads the address.
            if let (Expr::FieldStr(i), false) = (&e, ty.pointer) {
                if self.fields[*i].pointer_string {
                    (e, k) = (Expr::Field(*i), Kind::Int);
                }
            }
            return match (k, ty.pointer) {
                (Kind::Int, _) => Ok((Expr::Cast(ty, Box::new(e)), Kind::Int)),
                (k, true) => Ok((Expr::Cast(ty, Box::new(e)), k)),
                _ => unsupported("integer cast of a string or array"),
            };
        }
        self.postfix()
    }

    /// True if the token `k` ahead begins a type name (so a `(` before it is a cast).
    pub(super) fn starts_type(&self, k: usize) -> bool {
        match self.peek_at(k) {
            Some(Tok::Ident(w)) => {
                is_type_word(w)
                    || (w.ends_with("_t")
                        && matches!(self.peek_at(k + 1), Some(Tok::Punct(")" | "*"))))
            }
            _ => false,
        }
    }

    pub(super) fn type_name(&mut self) -> Result<CType, Unsupported> {
        let mut words = Vec::new();
        let mut pointer = false;
        loop {
            match self.peek() {
                Some(Tok::Ident(w)) => words.push(*w),
                Some(Tok::Punct("*")) => pointer = true,
                _ => break,
            }
            self.pos += 1;
        }
        let words: Vec<&str> = words
            .into_iter()
            .filter(|w| !matches!(*w, "const" | "volatile"))
            .collect();
        if pointer {
            return Ok(CType {
                size: 8,
                signed: false,
                boolean: false,
                pointer: true,
            });
        }
        let ty = |size, signed| CType {
            size,
            signed,
            boolean: false,
            pointer: false,
        };
        if let [w] = words.as_slice() {
            if let Some(&(_, size, signed)) = TYPEDEFS.iter().find(|t| t.0 == *w) {
                return Ok(ty(size, signed));
            }
            if matches!(*w, "bool" | "_Bool") {
                return Ok(CType {
                    size: 1,
                    signed: false,
                    boolean: true,
                    pointer: false,
                });
            }
        }
        if words.first() == Some(&"enum") {
            return Ok(ty(4, true));
        }
        let mut signed = true;
        let mut size = 4;
        let mut longs = 0;
        for w in &words {
            match *w {
                "unsigned" => signed = false,
                "signed" | "int" => {}
                "long" => longs += 1,
                "short" => size = 2,
                "char" => size = 1,
                _ => return unsupported(format!("type `{}`", words.join(" "))),
            }
        }
        if longs > 0 {
            size = 8;
        }
        if words.is_empty() {
            return unsupported("empty type");
        }
        Ok(ty(size, signed))
    }

    pub(super) fn field_index(&self, name: &str) -> Result<usize, Unsupported> {
        match self.fields.iter().position(|f| &*f.name == name) {
            Some(i) => Ok(i),
            None => unsupported(format!("unknown field {name}")),
        }
    }

    /// `REC->name` (also `(REC)->name`), with an optional `[index]`.
    pub(super) fn rec_field(&mut self) -> Result<(Expr, Kind), Unsupported> {
        self.expect("->")?;
        let Some(Tok::Ident(name)) = self.peek().cloned() else {
            return unsupported("expected a field name after REC->");
        };
        self.pos += 1;
        let idx = self.field_index(name)?;
        let f = &self.fields[idx];
        if self.eat("[") {
            let (i, k) = self.expr()?;
            self.expect("]")?;
            if k != Kind::Int || f.dynamic || f.array_len.unwrap_or(0) == 0 {
                return unsupported(format!("indexing {name}"));
            }
            return Ok((Expr::Index(idx, Box::new(i)), Kind::Int));
        }
        if f.string {
            if f.dynamic {
                return unsupported(format!("REC->{name} on a dynamic string"));
            }
            return Ok((Expr::FieldStr(idx), Kind::Str));
        }
        if f.dynamic || f.array_len.is_some() || f.size > 8 || f.size == 0 {
            if f.dynamic {
                return unsupported(format!("REC->{name} on a dynamic array"));
            }
            return Ok((Expr::FieldBytes(idx), Kind::Bytes));
        }
        Ok((Expr::Field(idx), Kind::Int))
    }

    pub(super) fn postfix(&mut self) -> Result<(Expr, Kind), Unsupported> {
        let (e, k) = self.primary()?;
        if self.is_punct("[") || self.is_punct("->") || self.is_punct(".") {
            return unsupported("member access or indexing");
        }
        Ok((e, k))
    }

    pub(super) fn primary(&mut self) -> Result<(Expr, Kind), Unsupported> {
        let Some(tok) = self.peek().cloned() else {
            return unsupported("expression expected");
        };
        self.pos += 1;
        match tok {
            Tok::Num(n) => Ok((Expr::Num(n), Kind::Int)),
            Tok::Str(s) => Ok((Expr::Str(s.into()), Kind::Str)),
            Tok::Punct("(") => {
                // `(REC)->field` appears in some print fmts.
                if matches!(self.peek(), Some(Tok::Ident("REC")))
                    && matches!(self.peek_at(1), Some(Tok::Punct(")")))
                {
                    self.pos += 2;
                    return self.rec_field();
                }
                let e = self.expr()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Ident("REC") => self.rec_field(),
            Tok::Ident(name) if self.is_punct("(") => {
                self.pos += 1;
                self.call(name)
            }
            // x86-64's default base of the `struct page` array; only ever printed hashed.
            Tok::Ident("vmemmap_base") => Ok((
                Expr::Num(CInt::new(0xffff_ea00_0000_0000, true, false)),
                Kind::Int,
            )),
            Tok::Ident(name) => match UAPI_CONSTANTS.iter().find(|c| c.0 == name) {
                Some(&(_, v)) => Ok((Expr::Num(CInt::int(v)), Kind::Int)),
                None => unsupported(format!("identifier {name}")),
            },
            Tok::Punct(p) => unsupported(format!("unexpected `{p}`")),
        }
    }

    /// A field name as the argument of `__get_str(...)` and friends.
    pub(super) fn field_arg(&mut self) -> Result<usize, Unsupported> {
        let Some(Tok::Ident(name)) = self.peek().cloned() else {
            return unsupported("expected a field name");
        };
        self.pos += 1;
        self.field_index(name)
    }

    pub(super) fn call(&mut self, name: &str) -> Result<(Expr, Kind), Unsupported> {
        let r = match name {
            "__get_str" | "__get_rel_str" => {
                let idx = self.field_arg()?;
                if !self.fields[idx].string {
                    return unsupported(format!("{name} on a non-string"));
                }
                (Expr::FieldStr(idx), Kind::Str)
            }
            "__get_dynamic_array" | "__get_rel_dynamic_array" => {
                (Expr::FieldBytes(self.field_arg()?), Kind::Bytes)
            }
            "__get_dynamic_array_len" | "__get_rel_dynamic_array_len" => {
                (Expr::DynLen(self.field_arg()?), Kind::Int)
            }
            "__print_flags" | "__print_flags_u64" => {
                let v = self.int_arg()?;
                self.expect(",")?;
                let Some(Tok::Str(sep)) = self.peek().cloned() else {
                    return unsupported("__print_flags separator is not a string");
                };
                self.pos += 1;
                let table = self.table()?;
                (Expr::Flags(Box::new(v), sep.into(), table), Kind::Str)
            }
            "__print_symbolic" | "__print_symbolic_u64" => {
                let v = self.int_arg()?;
                let table = self.table()?;
                (Expr::Symbolic(Box::new(v), table), Kind::Str)
            }
            "__print_hex" | "__print_hex_str" => {
                let (buf, k) = self.expr()?;
                self.expect(",")?;
                let len = self.int_arg()?;
                if k != Kind::Bytes {
                    return unsupported(format!("{name} of a non-array"));
                }
                let concat = name == "__print_hex_str";
                (Expr::Hex(Box::new(buf), Box::new(len), concat), Kind::Str)
            }
            "__print_array" => {
                let (buf, k) = self.expr()?;
                self.expect(",")?;
                let count = self.int_arg()?;
                self.expect(",")?;
                let el = self.int_arg()?;
                if k != Kind::Bytes {
                    return unsupported("__print_array of a non-array");
                }
                (
                    Expr::Array(Box::new(buf), Box::new(count), Box::new(el)),
                    Kind::Str,
                )
            }
            "sizeof" => {
                if !self.starts_type(0) {
                    return unsupported("sizeof of an expression");
                }
                let ty = self.type_name()?;
                (
                    Expr::Num(CInt::new(u64::from(ty.size), true, false)),
                    Kind::Int,
                )
            }
            "__builtin_expect" => {
                let v = self.int_arg()?;
                self.expect(",")?;
                self.int_arg()?;
                (v, Kind::Int)
            }
            _ => return unsupported(format!("function {name}")),
        };
        self.expect(")")?;
        Ok(r)
    }

    pub(super) fn int_arg(&mut self) -> Result<Expr, Unsupported> {
        match self.expr()? {
            (e, Kind::Int) => Ok(e),
            _ => unsupported("integer argument expected"),
        }
    }

    /// `, { value, "name" }, ...` up to (not including) the closing parenthesis. A NULL
    /// name ends the table, as it ends the kernel's array.
    pub(super) fn table(&mut self) -> Result<Table, Unsupported> {
        let mut table = Vec::new();
        let mut ended = false;
        while self.eat(",") {
            self.expect("{")?;
            if self.eat("}") {
                continue;
            }
            let value = self.int_arg()?;
            self.expect(",")?;
            let name = match self.expr()? {
                (Expr::Str(s), _) => Some(s),
                (e, Kind::Int) if const_eval(&e, self.fields).is_some_and(|v| v.bits == 0) => None,
                _ => return unsupported("table name is not a string literal"),
            };
            self.expect("}")?;
            let Some(value) = const_eval(&value, self.fields) else {
                return unsupported("table value is not a constant");
            };
            match name {
                Some(n) if !ended => table.push((value.bits, n)),
                Some(_) => {}
                None => ended = true,
            }
        }
        Ok(table)
    }
}

/// Strings and arrays are both just memory to `%s` and the `%p` extensions.
pub(super) fn compatible(a: Kind, b: Kind) -> bool {
    a == b || (a != Kind::Int && b != Kind::Int)
}

/// Evaluates an expression that must not read the record.
pub(super) fn const_eval(e: &Expr, fields: &[FieldInfo]) -> Option<CInt> {
    let ctx = Ctx { rec: None, fields };
    ctx.eval(e).ok()?.int().ok()
}
