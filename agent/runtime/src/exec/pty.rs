//! Pseudo-terminals for `kubectl exec -t`: the agent keeps the master (copying it to and from the
//! stream) and hands the slave to `edge-shim --exec --tty`, which makes it the command's
//! controlling terminal.
//!
//! The pty is made in the agent's (host) devpts, so inside the container the slave has no name:
//! `isatty` holds and job control works, but `tty` prints "not a tty".

use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;

#[derive(Debug, thiserror::Error)]
pub enum PtyError {
    #[error("{0}: {1}")]
    Os(&'static str, #[source] std::io::Error),
}

fn os(what: &'static str) -> impl FnOnce(rustix::io::Errno) -> PtyError {
    move |e| PtyError::Os(what, e.into())
}

/// A new pty pair (master, slave), both close-on-exec and neither made our controlling terminal.
pub fn open() -> Result<(OwnedFd, OwnedFd), PtyError> {
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .map_err(os("opening /dev/ptmx"))?;
    rustix::pty::grantpt(&master).map_err(os("grantpt"))?;
    rustix::pty::unlockpt(&master).map_err(os("unlockpt"))?;
    let name = rustix::pty::ptsname(&master, Vec::new()).map_err(os("ptsname"))?;
    let slave = rustix::fs::open(name.as_c_str(), OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC, Mode::empty())
        .map_err(os("opening the pty slave"))?;
    Ok((master, slave))
}

/// Sets the terminal size; the kernel sends SIGWINCH to the terminal's foreground process group.
pub fn resize(master: BorrowedFd, cols: u16, rows: u16) -> Result<(), PtyError> {
    let size = Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    rustix::termios::tcsetwinsize(master, size).map_err(os("setting the window size"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn resize_is_seen_on_the_slave() {
        let (master, slave) = open().unwrap();
        for (cols, rows) in [(80, 24), (200, 50), (1, 1)] {
            resize(master.as_fd(), cols, rows).unwrap();
            let got = rustix::termios::tcgetwinsize(&slave).unwrap();
            assert_eq!((got.ws_col, got.ws_row), (cols, rows));
        }
        assert!(rustix::termios::isatty(&slave));
    }

    #[test]
    fn bytes_flow_between_master_and_slave() {
        let (master, slave) = open().unwrap();
        let mut slave = std::fs::File::from(slave);
        let mut master = std::fs::File::from(master);
        slave.write_all(b"out\n").unwrap();
        let mut buf = [0u8; 16];
        let n = master.read(&mut buf).unwrap();
        // The line discipline turns \n into \r\n on output by default.
        assert_eq!(&buf[..n], b"out\r\n");
    }
}
