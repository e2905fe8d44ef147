//! The kernel's event filter language (`events/<sys>/<event>/filter`).
//!
//! The parser follows the kernel's own two passes (a bracket/quote scan, then a predicate
//! walk) so that error reasons, caret positions and errno values match what a 6.18 kernel
//! reports; the resulting [`Filter`] owns a small expression tree that can be evaluated on
//! synthetic records.

/// errno values used by the control files (Linux numbering), shared by every language here.
pub mod errno {
    /// Operation not permitted; the kernel leaks it for some filter syntax errors.
    pub const EPERM: i32 = 1;
    /// No such file or directory; the kernel returns it for an unclosed `(`.
    pub const ENOENT: i32 = 2;
    /// No such process; the kernel returns it for an unterminated quote.
    pub const ESRCH: i32 = 3;
    /// Argument list too long.
    pub const E2BIG: i32 = 7;
    /// Device or resource busy.
    pub const EBUSY: i32 = 16;
    /// File exists.
    pub const EEXIST: i32 = 17;
    /// No such device.
    pub const ENODEV: i32 = 19;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// Numerical argument out of domain; a hist expression divided by a constant 0.
    pub const EDOM: i32 = 33;
    /// Numerical result out of range.
    pub const ERANGE: i32 = 34;
    /// Illegal byte sequence; a kprobe inside an instruction.
    pub const EILSEQ: i32 = 84;
    /// Cannot assign requested address; a kprobe on a symbol several functions share.
    pub const EADDRNOTAVAIL: i32 = 99;
}

/// Longest write the kernel accepts on a `filter` file, in bytes (it rejects writes of a
/// page or more with EINVAL before parsing). Counts the trailing newline `echo` adds.
pub const MAX_FILTER_WRITE: usize = 4095;

/// Longest quoted string operand, in bytes; longer ones give "Operand too long".
pub const MAX_STRING_OPERAND: usize = 255;

/// Longest numeric operand, in bytes (the kernel's 24-byte number buffer).
pub const MAX_NUMBER_OPERAND: usize = 23;

/// CPU count assumed by [`parse`] when checking `CPUS{...}` lists.
pub const DEFAULT_NR_CPUS: u32 = 64;

/// What `cat` of a system `filter` file shows (the kernel never shows the system's text).
pub const SYSTEM_FILTER_TEXT: &str = "### global filter ###\n\
# Use this to set filters for multiple events.\n\
# Only events with the given fields will be affected.\n\
# If no events are modified, an error message will be displayed here\n";

/// Where [`FilterError::error_log_entry`] says the error came from.
const ERROR_LOG_LOCATION: &str = "event filter parse error";

/// A field value supplied to [`Filter::matches`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'v> {
    /// A signed number (only its low `size` bytes are compared, as the kernel does).
    Int(i64),
    /// An unsigned number.
    UInt(u64),
    /// A string field's contents, without the terminating NUL.
    Str(&'v str),
}

mod error;
mod eval;
mod parse;

pub(crate) use error::render_error_log;
pub use error::{FilterError, FilterErrorKind};
pub use eval::{glob_match, Filter};
pub use parse::{applies_to, parse, parse_for_system, parse_with_nr_cpus};
pub(crate) use parse::{is_kspace_char, parse_expression, parse_u64};

#[cfg(test)]
mod tests;
