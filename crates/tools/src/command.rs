//! The caller's own tool command (`--tool-command`): `sh -c CMD` with the
//! call's arguments on stdin, bounded by a wall clock and an output cap.
//!
//! The command leads its own process group, so a timeout or an overflowing
//! output kills everything it started (a `sleep` it forked included) and the
//! pipes close; a hung tool can never hang the conversation. Unlike the python
//! tool this is not a sandbox: the user chose the command and it runs with
//! their rights.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Limits for one run.
#[derive(Clone, Debug)]
pub struct CommandLimits {
    /// Wall-clock limit; on expiry the process group is killed.
    pub timeout: Duration,
    /// Most bytes kept from stdout (and, separately, from stderr); more
    /// output kills the process group.
    pub max_output_bytes: usize,
}

impl Default for CommandLimits {
    fn default() -> Self {
        CommandLimits {
            timeout: Duration::from_secs(60),
            max_output_bytes: 1 << 20,
        }
    }
}

/// How the command ended.
#[derive(Debug)]
pub enum CommandEnd {
    /// It exited on its own (successfully or not).
    Exited(ExitStatus),
    /// It ran past [`CommandLimits::timeout`] and was killed.
    TimedOut,
    /// It wrote more than [`CommandLimits::max_output_bytes`] and was killed.
    OutputCap,
}

/// What one run produced (output lossily decoded as UTF-8, capped).
#[derive(Debug)]
pub struct CommandRun {
    pub end: CommandEnd,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Run `sh -c cmd` with `env` added, `stdin` written to its standard input.
/// Errors only when the shell cannot be started or waited for.
pub fn run_shell_command(
    cmd: &str,
    env: &[(&str, &str)],
    stdin: &str,
    limits: &CommandLimits,
) -> std::io::Result<CommandRun> {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so the whole tree can be killed at once.
        .process_group(0);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn()?;
    let pgid = child.id() as i32;
    let start = Instant::now();

    if let Some(mut pipe) = child.stdin.take() {
        let input = stdin.to_string();
        // A writer thread: a command that never reads its stdin must not
        // block us while its output fills the other pipes.
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let overflow = Arc::new(AtomicBool::new(false));
    let stdout_reader = child
        .stdout
        .take()
        .map(|pipe| spawn_capped_reader(pipe, limits.max_output_bytes, overflow.clone()));
    let stderr_reader = child
        .stderr
        .take()
        .map(|pipe| spawn_capped_reader(pipe, limits.max_output_bytes, overflow.clone()));

    let end = loop {
        if let Some(status) = child.try_wait()? {
            break CommandEnd::Exited(status);
        }
        if overflow.load(Ordering::Relaxed) {
            kill_group(pgid);
            child.wait()?;
            break CommandEnd::OutputCap;
        }
        if start.elapsed() >= limits.timeout {
            kill_group(pgid);
            child.wait()?;
            break CommandEnd::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    // Whatever the shell left running in its group (a background job holding
    // the pipes open) goes too, so the readers see EOF.
    kill_group(pgid);
    let collect = |reader: Option<std::thread::JoinHandle<Vec<u8>>>| {
        reader
            .and_then(|r| r.join().ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    };
    Ok(CommandRun {
        end,
        stdout: collect(stdout_reader),
        stderr: collect(stderr_reader),
        elapsed,
    })
}

/// Reads a pipe to its end, keeping at most `cap` bytes; sets `overflow`
/// when there was more.
fn spawn_capped_reader(
    mut pipe: impl Read + Send + 'static,
    cap: usize,
    overflow: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = cap.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                    if n > room {
                        overflow.store(true, Ordering::Relaxed);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        kept
    })
}

fn kill_group(pgid: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals the process group this
        // module created for the child; it has no memory-safety preconditions.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(timeout_ms: u64, cap: usize) -> CommandLimits {
        CommandLimits {
            timeout: Duration::from_millis(timeout_ms),
            max_output_bytes: cap,
        }
    }

    #[test]
    fn passes_stdin_env_and_collects_output() {
        let run = run_shell_command(
            "printf 'in=%s name=%s' \"$(cat)\" \"$TOOL\"; echo oops >&2",
            &[("TOOL", "get_weather")],
            r#"{"location":"Oslo"}"#,
            &CommandLimits::default(),
        )
        .expect("run");
        assert!(matches!(run.end, CommandEnd::Exited(s) if s.success()));
        assert_eq!(run.stdout, r#"in={"location":"Oslo"} name=get_weather"#);
        assert_eq!(run.stderr.trim(), "oops");
    }

    #[test]
    fn reports_a_failing_exit_status() {
        let run = run_shell_command("exit 3", &[], "", &CommandLimits::default()).expect("run");
        assert!(matches!(run.end, CommandEnd::Exited(s) if s.code() == Some(3)));
    }

    #[test]
    fn a_hung_command_and_its_children_are_killed_at_the_timeout() {
        // The background sleep holds stdout open: without the group kill the
        // reader would wait for it for 30 s.
        let run = run_shell_command(
            "sleep 30 & echo started; sleep 30",
            &[],
            "",
            &limits(300, 1 << 20),
        )
        .expect("run");
        assert!(matches!(run.end, CommandEnd::TimedOut), "{:?}", run.end);
        assert_eq!(run.stdout.trim(), "started");
        assert!(run.elapsed < Duration::from_secs(10), "{:?}", run.elapsed);
    }

    #[test]
    fn endless_output_is_capped_and_killed() {
        let run = run_shell_command("yes", &[], "", &limits(20_000, 4096)).expect("run");
        assert!(matches!(run.end, CommandEnd::OutputCap), "{:?}", run.end);
        assert_eq!(run.stdout.len(), 4096);
    }

    #[test]
    fn a_command_that_ignores_stdin_does_not_block() {
        let big = "x".repeat(1 << 20);
        let run = run_shell_command("echo done", &[], &big, &limits(20_000, 1 << 20)).expect("run");
        assert!(matches!(run.end, CommandEnd::Exited(s) if s.success()));
        assert_eq!(run.stdout.trim(), "done");
    }
}
