//! How the simulated kernel reads a guest's write: the length limit, text, and `0`/`1`.

use eventfs_core::control::MAX_CONTROL_WRITE;
use eventfs_core::FsError;

/// Parses an `enable`-style write as the kernel does (`kstrtoul_from_user`: `01`, `+1` and
/// `1\0...` are 1; ` 1` is not a number), then 0 or 1.
pub fn parse_enable(data: &[u8]) -> Result<bool, FsError> {
    match ftrace_text::kparse::kstrtoul_from_user(data) {
        Ok(0) => Ok(false),
        Ok(1) => Ok(true),
        _ => Err(FsError::Invalid(format!(
            "enable accepts 0 or 1, got {:?}",
            String::from_utf8_lossy(data)
        ))),
    }
}

/// A write as text; the kernel refuses a page or more.
pub fn written_text(data: &[u8]) -> Result<&str, FsError> {
    if data.len() > MAX_CONTROL_WRITE {
        return Err(FsError::Invalid(format!(
            "write of {} bytes exceeds the {MAX_CONTROL_WRITE}-byte limit",
            data.len()
        )));
    }
    std::str::from_utf8(data).map_err(|_| FsError::Invalid("not UTF-8".into()))
}

/// Parses a `buffer_size_kb` write: a size in KiB, 1 ..= 1 GiB (a simulated buffer must not
/// be able to claim the host's memory).
pub fn parse_kb(text: &str) -> Result<usize, FsError> {
    let value = text.trim();
    value
        .parse::<usize>()
        .ok()
        .filter(|&kb| kb > 0 && kb <= 1 << 20)
        .ok_or_else(|| FsError::Invalid(format!("buffer_size_kb {value:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enable_values() {
        assert!(parse_enable(b"1\n").unwrap());
        assert!(parse_enable(b"01").unwrap());
        assert!(parse_enable(b"+1").unwrap());
        assert!(parse_enable(b"1\0junk").unwrap());
        assert!(!parse_enable(b"0").unwrap());
        assert!(parse_enable(b" 0 ").is_err());
        assert!(parse_enable(b"2").is_err());
        assert!(parse_enable(b"").is_err());
    }

    #[test]
    fn text_limit_is_a_page_minus_one() {
        assert!(written_text(&[b'a'; MAX_CONTROL_WRITE]).is_ok());
        assert!(written_text(&[b'a'; MAX_CONTROL_WRITE + 1]).is_err());
        assert!(written_text(&[0xff]).is_err());
    }
}
