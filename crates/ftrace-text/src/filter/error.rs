//! Why the kernel rejects a filter: its reasons, caret positions, errnos and `error_log` lines.

use super::{errno, ERROR_LOG_LOCATION};

/// The reasons the kernel gives for a rejected filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FilterErrorKind {
    /// Unknown comparison operator.
    #[error("Invalid operator")]
    InvalidOp,
    /// A `(` was never closed.
    #[error("Too many '('")]
    TooManyOpen,
    /// A `)` has no matching `(`.
    #[error("Too few '('")]
    TooManyClose,
    /// A quoted string was not terminated.
    #[error("Missing matching quote")]
    MissingQuote,
    /// `CPUS` not followed by `{`.
    #[error("Missing '{{'")]
    MissingBraceOpen,
    /// `CPUS{` not closed.
    #[error("Missing '}}'")]
    MissingBraceClose,
    /// A string or number operand is too long.
    #[error("Operand too long")]
    OperandTooLong,
    /// A number was compared with a string field.
    #[error("Expecting string field")]
    ExpectString,
    /// A string was compared with a numeric field.
    #[error("Expecting numeric field")]
    ExpectDigit,
    /// The operator does not apply to this field type.
    #[error("Illegal operation for field type")]
    IllegalFieldOp,
    /// No such field in the event.
    #[error("Field not found")]
    FieldNotFound,
    /// The number does not parse for the field's signedness.
    #[error("Illegal integer value")]
    IllegalIntval,
    /// Per-event failure of a system filter.
    #[error("Couldn't find or set field in one of a subsystem's events")]
    BadSubsysFilter,
    /// Junk after a predicate (e.g. a single `&` or a second predicate without `&&`).
    #[error("Too many terms in predicate expression")]
    TooManyPreds,
    /// Bad `CPUS{...}` list.
    #[error("Invalid cpulist")]
    InvalidCpulist,
    /// The value is neither a number nor a quoted string.
    #[error("Invalid value (did you forget quotes)?")]
    InvalidValue,
    /// `field.function == name` with a name we cannot resolve.
    #[error("Function not found")]
    NoFunction,
    /// Only negations, nothing to filter on.
    #[error("No filter found")]
    NoFilter,
    /// A failure the kernel reports without a reason ("Error: (0)"); carries the errno.
    #[error("Error")]
    Errno(i32),
    /// The write was a page or larger; rejected before parsing, nothing is logged.
    #[error("Filter too long")]
    WriteTooLarge,
}

/// A rejected filter: the kernel's reason, caret position and the text as stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (at byte {pos})")]
pub struct FilterError {
    pub(super) kind: FilterErrorKind,
    pub(super) pos: usize,
    pub(super) text: String,
}

impl FilterError {
    pub(super) fn new(kind: FilterErrorKind, pos: usize, text: &str) -> Self {
        Self {
            kind,
            pos,
            text: text.to_owned(),
        }
    }

    /// The reason.
    pub fn kind(&self) -> FilterErrorKind {
        self.kind
    }

    /// Caret position as the kernel logs it (a byte offset; it may point one past the
    /// end, as the kernel's does).
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The filter text as the kernel stored it (trailing whitespace removed).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The kernel's reason string, e.g. `Field not found`.
    pub fn reason(&self) -> String {
        self.kind.to_string()
    }

    /// errno the write fails with (the kernel is not always EINVAL here).
    pub fn errno(&self) -> i32 {
        use FilterErrorKind::*;
        match self.kind {
            TooManyOpen => errno::ENOENT,
            TooManyClose | TooManyPreds => errno::EPERM,
            MissingQuote => errno::ESRCH,
            Errno(e) => e,
            _ => errno::EINVAL,
        }
    }

    /// Whether the kernel replaced the event's filter with this error (it does for every
    /// parse error: the event becomes unfiltered and `cat filter` shows the error).
    pub fn replaces_filter(&self) -> bool {
        self.kind != FilterErrorKind::WriteTooLarge
    }

    /// What `cat filter` shows after this error, or `None` if the old filter stays.
    pub fn filter_file_text(&self) -> Option<String> {
        if !self.replaces_filter() {
            return None;
        }
        Some(match self.kind {
            FilterErrorKind::Errno(_) => format!("{}\nError: (0)\n\n", self.text),
            kind => {
                // The kernel clamps the caret to the end of the text in this view only.
                let col = self.pos.min(self.text.len());
                format!("{}\n{:col$}^\nparse_error: {kind}\n\n", self.text, "")
            }
        })
    }

    /// The entry the kernel appends to `error_log`, without the `[ seconds.micros] `
    /// timestamp prefix (the kernel prints it as `[{:>5}.{:06}] `). `None` when the kernel
    /// logs nothing.
    pub fn error_log_entry(&self) -> Option<String> {
        let (reason, pos) = match self.kind {
            FilterErrorKind::WriteTooLarge => return None,
            FilterErrorKind::Errno(_) => ("Error".to_owned(), 0),
            kind => (kind.to_string(), self.pos),
        };
        Some(render_error_log(
            ERROR_LOG_LOCATION,
            &reason,
            &self.text,
            pos,
        ))
    }
}

/// Renders one `error_log` entry (without timestamp) the way `tracing_log_err` does.
pub(crate) fn render_error_log(location: &str, reason: &str, command: &str, pos: usize) -> String {
    // "  Command: " is 11 columns wide; the caret is placed under byte `pos` of the command.
    let col = pos + 11;
    format!(
        "{location}: error: {reason}\n  Command: {command}\n{:col$}^\n",
        ""
    )
}
