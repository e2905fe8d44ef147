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

/// What [`next_token`] found at the start of a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token<'a> {
    /// A token, and the bytes of the write it consumed (with the space or NUL that ended it).
    Word(&'a [u8], usize),
    /// Only white space up to a NUL or the end; bytes consumed.
    Empty(usize),
}

/// Reads one token from `data` as `trace_get_user` does with a fresh parser of `size` bytes
/// (`set_event` and `set_event_pid` both make one per write, so a token ends with the write;
/// tokens of `size` bytes or more are EINVAL).
pub fn next_token(data: &[u8], size: usize) -> Result<Token<'_>, NumberError> {
    let start = data
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(data.len());
    if start == data.len() || data[start] == 0 {
        return Ok(Token::Empty((start + 1).min(data.len())));
    }
    let len = data[start..]
        .iter()
        .position(|&b| is_space(b) || b == 0)
        .unwrap_or(data.len() - start);
    if len >= size {
        return Err(NumberError::Invalid);
    }
    let end = start + len;
    Ok(Token::Word(&data[start..end], (end + 1).min(data.len())))
}

/// The kernel's buffer for one `set_event` or `set_event_pid` token (EVENT_BUF_SIZE + 1).
pub const TOKEN_BUFFER: usize = 128;

/// The pids of one write to `set_event_pid` or `set_event_notrace_pid`, as `trace_pid_write`
/// reads them: white-space separated tokens, each a number in any base `kstrtoul` takes
/// (`0x10`, `010`), and a pid.
pub fn pids_of_write(data: &[u8]) -> Result<Vec<u32>, NumberError> {
    tokens_of_write(data, TOKEN_BUFFER)?
        .iter()
        .map(|t| match kstrtoull(t, 0) {
            Ok(v) if v <= i32::MAX as u64 => Ok(v as u32),
            _ => Err(NumberError::Invalid),
        })
        .collect()
}

/// Every token of one write, as `trace_pid_write` reads them.
pub fn tokens_of_write(data: &[u8], size: usize) -> Result<Vec<&[u8]>, NumberError> {
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < data.len() {
        match next_token(&data[at..], size)? {
            Token::Word(t, used) => {
                tokens.push(t);
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
    fn tokens_split_on_kernel_space_and_end_with_the_write() {
        assert_eq!(
            next_token(b"sched:a\xa0b", 128),
            Ok(Token::Word(b"sched:a", 8))
        );
        // A fresh parser per write: a token the write ends in is whole.
        assert_eq!(
            next_token(b"  sched:sch", 128),
            Ok(Token::Word(b"sched:sch", 11))
        );
        assert_eq!(next_token(b"  \n", 128), Ok(Token::Empty(3)));
        assert_eq!(next_token(b" \0x", 128), Ok(Token::Empty(2)));
        assert_eq!(
            next_token(&[b'x'; 127], 128),
            Ok(Token::Word(&[b'x'; 127], 127))
        );
        assert_eq!(next_token(&[b'x'; 200], 128), Err(NumberError::Invalid));
        assert_eq!(
            tokens_of_write(b"1 0x2\t03", 128).unwrap(),
            vec![&b"1"[..], b"0x2", b"03"]
        );
    }
}
