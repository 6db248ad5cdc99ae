//! The crate's error type: what went wrong building, sending, or in the kernel's answer.

use std::io;

/// A failure of one message inside a batch, as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageError {
    /// Position of the message in the batch (0 = first message after BATCH_BEGIN).
    pub index: usize,
    /// The netlink sequence number the kernel echoed back.
    pub seq: u32,
    /// What the message did, e.g. `NEWRULE inet edge-proxy svc-a`.
    pub what: String,
    /// The errno (positive), e.g. `libc::ENOENT`.
    pub errno: i32,
    /// The extended-ack text, when the kernel gave one.
    pub detail: Option<String>,
}

impl std::fmt::Display for MessageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "message #{} (seq {}) {}: {}",
            self.index,
            self.seq,
            self.what,
            io::Error::from_raw_os_error(self.errno)
        )?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name the kernel would refuse: empty, too long, or with a NUL byte.
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName { what: &'static str, name: String, reason: &'static str },
    /// A set element whose key or data does not fit the set's declared lengths.
    #[error("set {set}: {reason}")]
    InvalidElement { set: String, reason: String },
    /// The kernel rejected the batch; nothing in it was applied. The first failing message
    /// is named; `others` counts further failures in the same batch.
    #[error("nf_tables rejected the batch: {first}{}", if *others > 0 { format!(" (and {others} more)") } else { String::new() })]
    Rejected { first: MessageError, others: usize },
    /// The kernel refused the batch as a whole (e.g. commit-time validation), without naming
    /// a message.
    #[error("nf_tables rejected the batch at commit: {}", io::Error::from_raw_os_error(*errno))]
    CommitFailed { errno: i32 },
    /// A dump request failed.
    #[error("nf_tables dump of {what} failed: {}", io::Error::from_raw_os_error(*errno))]
    DumpFailed { what: &'static str, errno: i32 },
    /// The socket failed (open, sendmsg, recv).
    #[error("netlink socket: {context}: {source}")]
    Io { context: &'static str, source: io::Error },
    /// A reply the crate could not parse.
    #[error("malformed netlink reply: {0}")]
    Decode(String),
}

impl Error {
    pub(crate) fn io(context: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { context, source }
    }

    /// The errno of a kernel rejection, if this is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Rejected { first, .. } => Some(first.errno),
            Error::CommitFailed { errno } | Error::DumpFailed { errno, .. } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
