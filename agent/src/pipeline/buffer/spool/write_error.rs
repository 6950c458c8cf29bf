//! Why a write to the spool's directory failed, as the spool decides on it: a full disk (wait,
//! drop or evict as `when_full` says, give the spare's space to data, rewrite the cursor in
//! place) or any other I/O error. Also the `reason` label of the counters that count failures.

use std::io;

/// Why an append (or a cursor write) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// The file system is full (ENOSPC, EDQUOT).
    NoSpace,
    /// Any other I/O error.
    Io,
}

impl WriteError {
    pub fn of(e: &io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => WriteError::NoSpace,
            _ => WriteError::Io,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            WriteError::NoSpace => "disk_full",
            WriteError::Io => "io",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_and_edquot_are_a_full_disk() {
        assert_eq!(
            WriteError::of(&io::Error::from_raw_os_error(libc::ENOSPC)),
            WriteError::NoSpace
        );
        assert_eq!(
            WriteError::of(&io::Error::from_raw_os_error(libc::EDQUOT)),
            WriteError::NoSpace
        );
        assert_eq!(
            WriteError::of(&io::Error::from_raw_os_error(libc::EIO)),
            WriteError::Io
        );
    }
}
