//! Low-level pseudo-terminal and process-session plumbing for the terminal tool: opening a
//! PTY pair with libc, wiring a child process to the slave side as its controlling terminal
//! (new session, `TIOCSCTTY`), non-blocking reads and writes on the master through tokio's
//! `AsyncFd`, the terminal modes the tool relies on, and signalling or listing the
//! processes of a session. It knows nothing about bash, markers or observations, and it must
//! not spawn tasks, keep state between calls or block on anything but short syscalls.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;

use tokio::io::unix::AsyncFd;

/// A freshly opened PTY pair; the slave end is handed to exactly one child process.
#[derive(Debug)]
pub struct PtyPair {
    /// The master end, kept by the parent.
    pub master: OwnedFd,
    /// The slave end; the parent must drop its copy once the child has started.
    pub slave: OwnedFd,
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl PtyPair {
    /// Opens a new PTY pair of `cols`×`rows` cells with the modes described in
    /// [`set_shell_modes`].
    pub fn open(cols: u16, rows: u16) -> io::Result<Self> {
        // SAFETY: plain libc calls on a descriptor we own; every return value is checked.
        let master = unsafe {
            let fd = cvt(libc::posix_openpt(
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            ))?;
            OwnedFd::from_raw_fd(fd)
        };
        let mfd = master.as_raw_fd();
        // SAFETY: `mfd` is a valid PTY master for the duration of these calls.
        unsafe {
            cvt(libc::grantpt(mfd))?;
            cvt(libc::unlockpt(mfd))?;
        }
        let mut name = [0 as libc::c_char; 128];
        // SAFETY: the buffer is writable and its length is passed along.
        let rc = unsafe { libc::ptsname_r(mfd, name.as_mut_ptr(), name.len()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: ptsname_r succeeded, so `name` holds a NUL-terminated path.
        let path = unsafe { CStr::from_ptr(name.as_ptr()) };
        // SAFETY: `path` is a valid C string; the returned descriptor is checked.
        let slave = unsafe {
            let fd = cvt(libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            ))?;
            OwnedFd::from_raw_fd(fd)
        };
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer we pass.
        cvt(unsafe { libc::ioctl(mfd, libc::TIOCSWINSZ, &ws) })?;
        set_shell_modes(slave.as_raw_fd())?;
        Ok(Self { master, slave })
    }

    /// Makes the slave end the stdin, stdout, stderr and controlling terminal of the
    /// process `cmd` will start, in a new session of which that process is the leader.
    pub fn attach(&self, cmd: &mut tokio::process::Command) -> io::Result<()> {
        cmd.stdin(Stdio::from(self.slave.try_clone()?))
            .stdout(Stdio::from(self.slave.try_clone()?))
            .stderr(Stdio::from(self.slave.try_clone()?));
        // SAFETY: the closure only makes async-signal-safe syscalls (setsid, ioctl) and
        // allocates nothing. std runs it in the child after stdio is in place, so fd 0 is
        // the slave by then.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(())
    }
}

/// Canonical input with signals (so `\x03` becomes SIGINT for the foreground job), CR→NL
/// on input, UTF-8 erase, and no echo: commands typed into the shell must not come back as
/// output, and flow control is off so a stray `\x13` cannot freeze the terminal.
pub fn set_shell_modes(fd: libc::c_int) -> io::Result<()> {
    // SAFETY: an all-zero termios is a valid value for tcgetattr to overwrite.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is a terminal descriptor and `t` is writable.
    cvt(unsafe { libc::tcgetattr(fd, &mut t) })?;
    t.c_lflag |= libc::ICANON | libc::ISIG | libc::IEXTEN;
    t.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ECHOE | libc::ECHOK | libc::ECHOCTL);
    t.c_iflag |= libc::ICRNL | libc::IUTF8;
    t.c_iflag &= !(libc::IXON | libc::IXOFF | libc::INLCR | libc::IGNCR);
    t.c_oflag |= libc::OPOST | libc::ONLCR;
    // SAFETY: `t` came from tcgetattr and was only adjusted flag by flag.
    cvt(unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) })?;
    Ok(())
}

/// The master end of a PTY, registered with the tokio reactor of the current thread.
#[derive(Debug)]
pub struct PtyMaster {
    fd: AsyncFd<OwnedFd>,
}

impl PtyMaster {
    /// Switches `master` to non-blocking mode and registers it with the current reactor.
    pub fn new(master: OwnedFd) -> io::Result<Self> {
        let raw = master.as_raw_fd();
        // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
        unsafe {
            let flags = cvt(libc::fcntl(raw, libc::F_GETFL))?;
            cvt(libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
        }
        // SAFETY: `OwnedFd` keeps the descriptor open and unchanged for as long as the
        // `AsyncFd` owns it.
        let fd = unsafe { AsyncFd::register(master) }.map_err(io::Error::from)?;
        Ok(Self { fd })
    }

    /// Reads what the terminal printed. `Ok(0)` means the slave side is gone (every
    /// process holding it has exited), which Linux reports on the master as EIO.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            let res = guard.try_io(|fd| {
                // SAFETY: `buf` is valid for `buf.len()` writable bytes.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n.unsigned_abs())
                }
            });
            match res {
                Ok(Ok(n)) => return Ok(n),
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes once without waiting; returns how many bytes the terminal took.
    pub fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        // SAFETY: `data` is valid for `data.len()` readable bytes.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n.unsigned_abs())
        }
    }

    /// Writes all of `data`, waiting while the terminal's input queue is full.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| {
                // SAFETY: `data` is valid for `data.len()` readable bytes.
                let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n.unsigned_abs())
                }
            }) {
                Ok(Ok(n)) => data = &data[n.min(data.len())..],
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }

    /// The process group that currently owns the terminal (the shell itself when it is
    /// waiting for a command, otherwise the foreground job).
    pub fn foreground_pgrp(&self) -> Option<libc::pid_t> {
        // SAFETY: on Linux tcgetpgrp on a PTY master reports the slave's foreground group.
        let pg = unsafe { libc::tcgetpgrp(self.fd.as_raw_fd()) };
        (pg > 0).then_some(pg)
    }

    /// Re-applies [`set_shell_modes`]; a program may have switched echo back on and exited.
    pub fn reset_modes(&self) -> io::Result<()> {
        set_shell_modes(self.fd.as_raw_fd())
    }
}

/// Sends `sig` to one process; a process that is already gone is not an error.
pub fn signal_pid(pid: libc::pid_t, sig: libc::c_int) {
    if pid > 0 {
        // SAFETY: kill(2) with a positive pid has no memory-safety preconditions.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Sends `sig` to a whole process group; a group that is already gone is not an error.
pub fn signal_group(pgid: libc::pid_t, sig: libc::c_int) {
    if pgid > 1 {
        // SAFETY: killpg(2) with a group id above 1 has no memory-safety preconditions.
        unsafe { libc::killpg(pgid, sig) };
    }
}

/// Whether a process with this pid exists (zombies included), as `kill(pid, 0)` sees it.
pub fn pid_exists(pid: libc::pid_t) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// One process of a session, as read from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionMember {
    /// Its pid.
    pub pid: libc::pid_t,
    /// Whether it has exited and only waits to be reaped by its parent.
    pub zombie: bool,
}

/// Every process whose session id is `sid`, the session leader included. Reads `/proc`;
/// it is a handful of small reads per process, so callers on async threads should keep
/// it off hot paths.
pub fn session_members(sid: libc::pid_t) -> Vec<SessionMember> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<libc::pid_t>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((state, session)) = parse_stat(&stat)
            && session == sid
        {
            out.push(SessionMember {
                pid,
                zombie: state == 'Z',
            });
        }
    }
    out
}

/// Extracts `(state, session)` from a `/proc/<pid>/stat` line. The command name is in
/// parentheses and may itself contain spaces or parentheses, so fields are counted from
/// the last `)`.
fn parse_stat(stat: &str) -> Option<(char, libc::pid_t)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let _pgrp = fields.next()?;
    let session = fields.next()?.parse().ok()?;
    Some((state, session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "4242 (we ird) (x)) S 1 4242 4240 34816 4242 4194560 0 0";
        assert_eq!(parse_stat(line), Some(('S', 4240)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_session_contains_this_process() {
        // SAFETY: getsid(0) only queries the calling process.
        let sid = unsafe { libc::getsid(0) };
        let me = std::process::id() as libc::pid_t;
        assert!(session_members(sid).iter().any(|m| m.pid == me));
        assert!(pid_exists(me));
    }

    #[test]
    fn opens_a_pty_pair() {
        let pair = PtyPair::open(80, 24).expect("pty");
        assert!(pair.master.as_raw_fd() >= 0 && pair.slave.as_raw_fd() >= 0);
    }
}
