//! Processes of the bash API: how a command is spawned (its shell, its own
//! session and process group, a sanitized environment, piped output, no
//! stdin), how its group is signalled, and how a group left behind by a
//! crashed server is recognised and killed.
//!
//! No actors and no storage here.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::Path;
use std::process::Stdio;

use super::event_log::ProcessMark;

/// The shell that runs commands: bash when installed, else `/bin/sh` (the
/// reference's shell).
pub fn shell_program() -> &'static str {
    if Path::new("/bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    }
}

/// Variables a command must not inherit: the server's keys.
fn is_withheld(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    name == "SESSION_API_KEY" || name.starts_with("OH_SESSION_API_KEYS") || name == "OH_SECRET_KEY"
}

/// The server's environment minus its keys.
pub fn sanitized_env(
    base: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    base.into_iter().filter(|(k, _)| !is_withheld(k)).collect()
}

/// Whether the server has a controlling terminal (started from an
/// interactive shell rather than by a service manager or in a container).
pub fn has_controlling_terminal() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| std::fs::File::open("/dev/tty").is_ok())
}

/// Starts `shell -c command` in `cwd`, leading a new process group (so the
/// group can be signalled as a whole) with no controlling terminal, with
/// stdout and stderr piped and stdin empty.
pub fn spawn(shell: &str, command: &str, cwd: &Path) -> io::Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(shell);
    cmd.arg("-c")
        .arg(command)
        .current_dir(cwd)
        .env_clear()
        .envs(sanitized_env(std::env::vars_os()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if has_controlling_terminal() {
        // A new session, so that a command reading /dev/tty (a password
        // prompt) fails at once instead of stopping on SIGTTIN until its
        // timeout.
        // SAFETY: the closure runs between fork and exec and only calls
        // setsid(2), which is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    } else {
        // With no terminal to lose, a process group is enough, and it keeps
        // the standard library on its posix_spawn path (no fork of the
        // server's address space): about 3 ms less per command.
        cmd.process_group(0);
    }
    cmd.spawn()
}

/// Sends `sig` to a process group; a group that is gone is not an error.
pub fn signal_group(pgid: i32, sig: libc::c_int) {
    if pgid > 1 {
        // SAFETY: killpg(2) with a group id above 1 has no memory-safety
        // preconditions.
        unsafe { libc::killpg(pgid, sig) };
    }
}

/// Whether any process of the group still exists (zombies included).
pub fn group_alive(pgid: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::killpg(pgid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Start time of a process in clock ticks since boot (`/proc/<pid>/stat`
/// field 22), `None` when it does not exist.
pub fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_ticks(&stat)
}

/// Field 22 of a stat line. The command name is in parentheses and may
/// contain spaces, so fields are counted from the last `)`.
fn parse_start_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Kills a process group recorded by a previous server process, if its
/// leader is still the very process that was recorded.
pub fn kill_leftover_group(mark: ProcessMark) {
    if start_ticks(mark.pgid) == Some(mark.start_ticks) {
        log::warn!(
            "killing process group {} left running by the previous server process",
            mark.pgid
        );
        signal_group(mark.pgid, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_withheld() {
        let env = sanitized_env(
            [
                ("PATH", "/bin"),
                ("SESSION_API_KEY", "a"),
                ("OH_SESSION_API_KEYS_0", "b"),
                ("OH_SESSION_API_KEYS", "[\"c\"]"),
                ("OH_SECRET_KEY", "d"),
                ("OH_OTHER", "e"),
            ]
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        );
        let names: Vec<_> = env.iter().map(|(k, _)| k.to_string_lossy()).collect();
        assert_eq!(names, ["PATH", "OH_OTHER"]);
    }

    #[test]
    fn start_ticks_of_odd_names() {
        let line = "42 (a) b) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 777 1000 10";
        assert_eq!(parse_start_ticks(line), Some(777));
        assert_eq!(parse_start_ticks("garbage"), None);
        assert!(start_ticks(std::process::id() as i32).is_some());
    }
}
