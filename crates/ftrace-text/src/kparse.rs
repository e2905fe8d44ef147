//! How the kernel reads a write to a tracefs control file, byte for byte: `kstrtoul` numbers,
//! `isspace`, `strstrip`, C strings, and the token parser (`trace_get_user`) of `set_event`
//! and `set_event_pid`.
//!
//! A policy that checks a guest's write must read it exactly as the kernel will; these are
//! the kernel's rules (lib/kstrtox.c, lib/ctype.c, kernel/trace/trace.c), checked against a
//! live 6.18 kernel by eventfsd's differential tests.

use crate::filter::errno;

/// The kernel's `isspace`: the ASCII white space and, from its Latin-1 table, 0xA0.
pub fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0)
}

/// The bytes before the first NUL: what the kernel sees of a buffer it NUL-terminates.
pub fn c_str(data: &[u8]) -> &[u8] {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    &data[..end]
}

/// `strstrip`: without leading and trailing [`is_space`] bytes.
pub fn strstrip(data: &[u8]) -> &[u8] {
    let start = data
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(data.len());
    let end = data
        .iter()
        .rposition(|&b| !is_space(b))
        .map_or(start, |i| i + 1);
    &data[start..end.max(start)]
}

/// Why a number was refused, as the kernel's errno.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NumberError {
    /// Not a number (EINVAL).
    Invalid,
    /// Too large for 64 bits (ERANGE).
    Range,
}

impl NumberError {
    /// The errno the kernel returns.
    pub fn errno(self) -> i32 {
        match self {
            NumberError::Invalid => errno::EINVAL,
            NumberError::Range => errno::ERANGE,
        }
    }
}

/// `kstrtoull(s, base)` on a C string: an optional `+`, digits of the base (base 0 picks 16
/// for `0x`, 8 for a leading `0`, else 10), an optional `\n`, nothing else.
pub fn kstrtoull(s: &[u8], base: u32) -> Result<u64, NumberError> {
    let s = s.strip_prefix(b"+").unwrap_or(s);
    let (digits, radix) = match base {
        0 if s.len() > 1 && s[0] == b'0' && s[1].eq_ignore_ascii_case(&b'x') => (&s[2..], 16),
        0 if s.first() == Some(&b'0') => (s, 8),
        0 => (s, 10),
        16 if s.len() > 1 && s[0] == b'0' && s[1].eq_ignore_ascii_case(&b'x') => (&s[2..], 16),
        b => (s, b),
    };
    let mut value: u64 = 0;
    let mut used = 0;
    let mut overflow = false;
    for &c in digits {
        let Some(d) = (c as char).to_digit(radix) else {
            break;
        };
        match value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        used += 1;
    }
    if overflow {
        return Err(NumberError::Range);
    }
    if used == 0 {
        return Err(NumberError::Invalid);
    }
    match &digits[used..] {
        [] | [b'\n'] => Ok(value),
        _ => Err(NumberError::Invalid),
    }
}

/// `kstrtoul_from_user(buf, count, 10)`: the kernel copies at most 66 bytes (sign, 64 binary
/// digits, newline) into a NUL-terminated buffer, so a NUL or the 67th byte ends the number.
pub fn kstrtoul_from_user(data: &[u8]) -> Result<u64, NumberError> {
    const COPIED: usize = 1 + 64 + 1;
    kstrtoull(c_str(&data[..data.len().min(COPIED)]), 10)
}

/// The state `trace_get_user` keeps between writes to one open file: a token that a write
/// ended in the middle of is continued by the next write.
#[derive(Clone, Debug, Default)]
pub struct TokenParser {
    partial: Vec<u8>,
    cont: bool,
}

/// What one step of the token parser produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    /// A whole token, and the bytes of the write it consumed.
    Whole(Vec<u8>, usize),
    /// The write ended inside a token (kept for the next write); bytes consumed.
    Partial(usize),
    /// Only white space (or a NUL) was left; bytes consumed.
    Empty(usize),
}

impl TokenParser {
    /// Reads one token from `data` as `trace_get_user` does with a buffer of `size` bytes
    /// (tokens are at most `size - 1` long; longer ones are EINVAL).
    pub fn next(&mut self, data: &[u8], size: usize) -> Result<Token, NumberError> {
        let mut i = 0;
        if !self.cont {
            while i < data.len() && is_space(data[i]) {
                i += 1;
            }
            self.partial.clear();
            if i == data.len() || data[i] == 0 {
                return Ok(Token::Empty((i + 1).min(data.len())));
            }
        }
        while i < data.len() && !is_space(data[i]) && data[i] != 0 {
            if self.partial.len() + 1 >= size {
                return Err(NumberError::Invalid);
            }
            self.partial.push(data[i]);
            i += 1;
        }
        if i < data.len() {
            // Ended by a space or a NUL, which is consumed with it.
            self.cont = false;
            return Ok(Token::Whole(std::mem::take(&mut self.partial), i + 1));
        }
        self.cont = true;
        Ok(Token::Partial(i))
    }

    /// Whether the last write ended inside a token.
    pub fn in_token(&self) -> bool {
        self.cont
    }
}

/// Every whole token of one write, as `trace_pid_write` reads them: the write is parsed to its
/// end, and a token the write ends in is taken as whole.
pub fn tokens_of_write(data: &[u8], size: usize) -> Result<Vec<Vec<u8>>, NumberError> {
    let mut parser = TokenParser::default();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < data.len() {
        match parser.next(&data[at..], size)? {
            Token::Whole(t, used) => {
                tokens.push(t);
                at += used;
            }
            Token::Partial(used) => {
                tokens.push(std::mem::take(&mut parser.partial));
                at += used;
            }
            Token::Empty(used) => at += used.max(1),
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_kstrtoul_reads_them() {
        assert_eq!(kstrtoul_from_user(b"1"), Ok(1));
        assert_eq!(kstrtoul_from_user(b"01"), Ok(1));
        assert_eq!(kstrtoul_from_user(b"+1\n"), Ok(1));
        assert_eq!(kstrtoul_from_user(b"99999999\0junk"), Ok(99_999_999));
        assert_eq!(kstrtoul_from_user(b" 1"), Err(NumberError::Invalid));
        assert_eq!(kstrtoul_from_user(b"1 "), Err(NumberError::Invalid));
        assert_eq!(kstrtoul_from_user(b"1\n\n"), Err(NumberError::Invalid));
        assert_eq!(kstrtoul_from_user(b"0x10"), Err(NumberError::Invalid));
        assert_eq!(kstrtoul_from_user(b"-1"), Err(NumberError::Invalid));
        assert_eq!(kstrtoul_from_user(b""), Err(NumberError::Invalid));
        assert_eq!(
            kstrtoul_from_user(b"18446744073709551616"),
            Err(NumberError::Range)
        );
        // Only 66 bytes are copied: what follows them is never seen.
        let mut long = vec![b'0'; 66];
        long.push(b'1');
        assert_eq!(kstrtoul_from_user(&long), Ok(0));
    }

    #[test]
    fn base_zero_picks_the_radix_from_the_prefix() {
        assert_eq!(kstrtoull(b"0x10", 0), Ok(16));
        assert_eq!(kstrtoull(b"010", 0), Ok(8));
        assert_eq!(kstrtoull(b"0", 0), Ok(0));
        assert_eq!(kstrtoull(b"09", 0), Err(NumberError::Invalid));
        assert_eq!(kstrtoull(b"+7", 0), Ok(7));
    }

    #[test]
    fn space_is_the_kernels() {
        assert!(is_space(0xa0));
        assert!(is_space(0x0b));
        assert!(!is_space(0x85));
        assert_eq!(strstrip(b" \xa0nop\n"), b"nop");
        assert_eq!(strstrip(b"   "), b"");
        assert_eq!(c_str(b"a\0b"), b"a");
    }

    #[test]
    fn tokens_split_on_kernel_space_and_continue_across_writes() {
        let mut p = TokenParser::default();
        assert_eq!(
            p.next(b"sched:a\xa0b", 128),
            Ok(Token::Whole(b"sched:a".to_vec(), 8))
        );
        assert_eq!(p.next(b"sched:sch", 128), Ok(Token::Partial(9)));
        assert!(p.in_token());
        assert_eq!(
            p.next(b"ed_waking\n", 128),
            Ok(Token::Whole(b"sched:sched_waking".to_vec(), 10))
        );
        assert_eq!(p.next(b"  \n", 128), Ok(Token::Empty(3)));
        assert_eq!(p.next(&[b'x'; 200], 128), Err(NumberError::Invalid));
        assert_eq!(
            tokens_of_write(b"1 0x2\t03", 128).unwrap(),
            vec![b"1".to_vec(), b"0x2".to_vec(), b"03".to_vec()]
        );
    }
}
