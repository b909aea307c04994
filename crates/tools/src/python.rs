//! The `python` tool: runs the model's code with the system Python inside a
//! bubblewrap sandbox, one fresh process per call (stateless, like the
//! reference's docker backend, whose tool description we use verbatim).
//!
//! Isolation, layer by layer (see ARCHITECTURE.md for the measurements):
//! * bubblewrap (`bwrap`, Debian package `bubblewrap`) puts the process in new
//!   user, pid, net, ipc, uts and cgroup namespaces. The net namespace has
//!   only a downed loopback: no network at all. The mount namespace shows
//!   `/usr` (and the `/bin`, `/lib*` links) read-only, a fresh `/proc`, a
//!   minimal `/dev`, an empty tmpfs `/tmp`, the script read-only at
//!   `/tmp/script.py`, and the per-session scratch folder read-write at
//!   `/mnt/data` (the working directory). Nothing else of the host exists:
//!   not the repo, not `$HOME`, not `/etc/shadow`.
//! * When we run as root, the child drops to an unused uid/gid (one per tool
//!   instance, from 2000000 up) before exec'ing bwrap, so the kernel
//!   enforces RLIMIT_NPROC (it never does for root), one session's fork bomb
//!   cannot use up another's quota, and the sandbox holds no capability in
//!   the host namespace.
//! * setrlimit in the child before exec: CPU seconds, address space, file
//!   size, number of processes, open files, no core dumps.
//! * A wall clock: the child leads its own process group; on timeout or
//!   when the output cap is hit we SIGKILL the group. bwrap's pid-1 dies with
//!   its parent (`--die-with-parent`), and the kernel then kills every process
//!   left in the pid namespace, so daemonised or forked children die too.
//!
//! * A seccomp filter (`seccomp.rs`, installed by bwrap through
//!   `--add-seccomp-fd`) refuses kernel administration, ptrace, new
//!   namespaces, keyrings, eBPF, io_uring and non-unix sockets.
//!
//! Not done here: cgroup memory accounting; RLIMIT_AS bounds each process
//! instead.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gptoss_harmony::ToolNamespaceConfig;

use crate::{Error, Tool, ToolOutput};

/// Description the reference `PythonTool` declares for its stateless
/// backends, verbatim (it replaces harmony's "stateful Jupyter" text,
/// which would promise state this tool does not keep).
pub const STATELESS_DESCRIPTION: &str = "Use this tool to execute STATELESS Python code in your chain of thought. The code will not be shown to the user. This tool should be used for internal reasoning, but not for code that is intended to be visible to the user (e.g. when creating plots, tables, or files).\nWhen you send a message containing python code to python, it will be executed in a stateless docker container, and the stdout of that process will be returned to you. You have to use print statements to access the output.\n\nIMPORTANT: Your python environment is not shared between calls. You will have to pass your entire code each time.";

/// The reference's reply when a run printed nothing.
pub const NO_OUTPUT_WARNING: &str =
    "[WARN] No output available. Use print() to output anything to stdout to receive the output";

/// Where the scratch folder appears inside the sandbox.
pub const SANDBOX_SCRATCH: &str = "/mnt/data";

/// Limits and paths of the sandbox.
#[derive(Clone, Debug)]
pub struct PythonConfig {
    /// The interpreter, as seen from inside the sandbox. It must live under a
    /// directory that is mounted (`/usr` always is; add others to
    /// `extra_ro_binds`).
    pub python_bin: PathBuf,
    /// The bubblewrap binary (looked up in PATH when relative).
    pub bwrap_bin: PathBuf,
    /// Wall-clock limit of one call.
    pub timeout: Duration,
    /// CPU-time limit of one call (RLIMIT_CPU), seconds.
    pub cpu_seconds: u64,
    /// Address-space limit of each process (RLIMIT_AS), bytes.
    pub memory_bytes: u64,
    /// Largest file the code may write (RLIMIT_FSIZE), bytes.
    pub file_size_bytes: u64,
    /// Processes the sandbox uid may have at once (RLIMIT_NPROC).
    pub max_processes: u64,
    /// Output returned to the model; beyond it the run is killed.
    pub max_output_bytes: usize,
    /// Scratch folder shared by the calls of one session (mounted at
    /// `/mnt/data`). `None`: a private temporary folder, removed on drop.
    pub scratch_dir: Option<PathBuf>,
    /// Scratch contents above this total are wiped after a call.
    pub scratch_quota_bytes: u64,
    /// More host folders to show read-only at the same path (e.g. a venv).
    pub extra_ro_binds: Vec<PathBuf>,
    /// Install the seccomp filter (on by default; off only to compare).
    pub seccomp: bool,
}

impl Default for PythonConfig {
    fn default() -> Self {
        PythonConfig {
            python_bin: PathBuf::from("/usr/bin/python3"),
            bwrap_bin: PathBuf::from("bwrap"),
            timeout: Duration::from_secs(60),
            cpu_seconds: 60,
            memory_bytes: 2 << 30,
            file_size_bytes: 64 << 20,
            max_processes: 64,
            max_output_bytes: 64 << 10,
            scratch_dir: None,
            scratch_quota_bytes: 256 << 20,
            extra_ro_binds: Vec::new(),
            seccomp: true,
        }
    }
}

/// The sandboxed `python` tool of one session.
pub struct PythonTool {
    config: PythonConfig,
    /// Host folder mounted at `/mnt/data`.
    scratch: PathBuf,
    /// Host folder holding the script of the current call (never mounted
    /// writable); owns the temporary scratch when none was given.
    private: tempfile::TempDir,
    _scratch_tmp: Option<tempfile::TempDir>,
    /// The uid the sandbox drops to when we run as root.
    sandbox_uid: Option<u32>,
    /// Compiled seccomp programs (files in `private`), opened for bwrap at
    /// every call; empty when the filter is off.
    seccomp_files: Vec<PathBuf>,
}

/// How one run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Exited(i32),
    Signalled(i32),
    WallTimeout,
    OutputCap,
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// First uid of the range sandboxes run as when we are root. Each tool
/// instance takes its own uid so that RLIMIT_NPROC (counted per uid) of one
/// session's fork bomb cannot starve another session's sandbox.
const SANDBOX_UID_BASE: u32 = 2_000_000;
const SANDBOX_UID_SPAN: u32 = 1_000_000;

fn pick_sandbox_uid() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mix = std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(n.wrapping_mul(104_729));
    SANDBOX_UID_BASE + mix % SANDBOX_UID_SPAN
}

/// Processes the given uid owns now (from /proc), for the RLIMIT_NPROC of a
/// non-root user whose own processes count against it.
fn count_processes_of(uid: u32) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| e.metadata().map(|m| m.uid() == uid).unwrap_or(false))
        .count() as u64
}

impl PythonTool {
    pub fn new(config: PythonConfig) -> Result<Self, Error> {
        let private = tempfile::Builder::new()
            .prefix("gptoss-python-")
            .tempdir()
            .map_err(|e| Error::Io {
                path: std::env::temp_dir().display().to_string(),
                source: e,
            })?;
        let (scratch, scratch_tmp) = match &config.scratch_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| Error::Io {
                    path: dir.display().to_string(),
                    source: e,
                })?;
                (dir.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("gptoss-scratch-")
                    .tempdir()
                    .map_err(|e| Error::Io {
                        path: std::env::temp_dir().display().to_string(),
                        source: e,
                    })?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let sandbox_uid = running_as_root().then(pick_sandbox_uid);
        if let Some(uid) = sandbox_uid {
            // The sandbox runs as its own unprivileged uid: give it the
            // scratch folder.
            chown(&scratch, uid)?;
        }
        let seccomp_files = if config.seccomp {
            write_seccomp_files(private.path())?
        } else {
            Vec::new()
        };
        Ok(PythonTool {
            config,
            scratch,
            private,
            _scratch_tmp: scratch_tmp,
            sandbox_uid,
            seccomp_files,
        })
    }

    /// Host path of the scratch folder (`/mnt/data` inside).
    pub fn scratch_dir(&self) -> &Path {
        &self.scratch
    }

    pub fn config_ref(&self) -> &PythonConfig {
        &self.config
    }

    /// Whether the sandbox can start here (bwrap present and user
    /// namespaces usable). Returns the reason when not.
    pub fn check_available(&mut self) -> Result<(), String> {
        let out = self.run("print('ok')");
        if !out.is_error && out.text.trim() == "ok" {
            Ok(())
        } else {
            Err(out.text)
        }
    }

    fn bwrap_args(&self, script: &Path, seccomp_fds: &[i32]) -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = [
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--hostname",
            "sandbox",
            "--clearenv",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        .iter()
        .map(|s| (*s).into())
        .collect();
        // Merged-/usr systems have /bin, /lib... as links into /usr.
        for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            let p = Path::new(top);
            match std::fs::symlink_metadata(p) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(p) {
                        a.push("--symlink".into());
                        a.push(target.into_os_string());
                        a.push(top.into());
                    }
                }
                Ok(m) if m.is_dir() => {
                    a.push("--ro-bind".into());
                    a.push(top.into());
                    a.push(top.into());
                }
                _ => {}
            }
        }
        // Harmless system files some libraries read at start-up.
        for f in ["/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime"] {
            a.push("--ro-bind-try".into());
            a.push(f.into());
            a.push(f.into());
        }
        for dir in &self.config.extra_ro_binds {
            a.push("--ro-bind".into());
            a.push(dir.clone().into_os_string());
            a.push(dir.clone().into_os_string());
        }
        for (k, v) in [("--proc", "/proc"), ("--dev", "/dev"), ("--tmpfs", "/tmp")] {
            a.push(k.into());
            a.push(v.into());
        }
        a.push("--bind".into());
        a.push(self.scratch.clone().into_os_string());
        a.push(SANDBOX_SCRATCH.into());
        a.push("--ro-bind".into());
        a.push(script.as_os_str().to_owned());
        a.push("/tmp/script.py".into());
        // The root is bwrap's tmpfs; freeze it so that mount-point folders
        // it created (`/etc`, `/mnt`) are not writable.
        a.push("--remount-ro".into());
        a.push("/".into());
        a.push("--chdir".into());
        a.push(SANDBOX_SCRATCH.into());
        for fd in seccomp_fds {
            a.push("--add-seccomp-fd".into());
            a.push(fd.to_string().into());
        }
        for (k, v) in [
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("HOME", SANDBOX_SCRATCH),
            ("LANG", "C.UTF-8"),
            ("PYTHONUNBUFFERED", "1"),
            ("PYTHONDONTWRITEBYTECODE", "1"),
            ("PYTHONIOENCODING", "utf-8"),
            ("MPLBACKEND", "Agg"),
            ("OMP_NUM_THREADS", "1"),
            ("OPENBLAS_NUM_THREADS", "1"),
        ] {
            a.push("--setenv".into());
            a.push(k.into());
            a.push(v.into());
        }
        a.push("--".into());
        a.push(self.config.python_bin.clone().into_os_string());
        a.push("/tmp/script.py".into());
        a
    }

    /// Run `code` once in a fresh sandboxed interpreter; the text the model
    /// receives.
    pub fn run(&mut self, code: &str) -> ToolOutput {
        match self.run_inner(code) {
            Ok(out) => out,
            Err(msg) => ToolOutput::error("python", format!("[ERROR] {msg}")),
        }
    }

    fn run_inner(&mut self, code: &str) -> Result<ToolOutput, String> {
        let script = self.private.path().join("script.py");
        std::fs::write(&script, code).map_err(|e| format!("could not write the script: {e}"))?;

        let (reader, writer) =
            std::io::pipe().map_err(|e| format!("could not create a pipe: {e}"))?;
        let writer2 = writer
            .try_clone()
            .map_err(|e| format!("could not create a pipe: {e}"))?;
        // Opened per call: bwrap reads each program to its end.
        let seccomp: Vec<std::fs::File> = self
            .seccomp_files
            .iter()
            .map(std::fs::File::open)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("could not open the seccomp filter: {e}"))?;
        let seccomp_fds: Vec<i32> = seccomp
            .iter()
            .map(std::os::fd::AsRawFd::as_raw_fd)
            .collect();
        let mut cmd = Command::new(&self.config.bwrap_bin);
        cmd.args(self.bwrap_args(&script, &seccomp_fds))
            .stdin(Stdio::null())
            .stdout(Stdio::from(writer))
            .stderr(Stdio::from(writer2))
            .process_group(0);
        let limits = Limits {
            cpu: self.config.cpu_seconds.max(1),
            address_space: self.config.memory_bytes,
            file_size: self.config.file_size_bytes,
            nproc: match self.sandbox_uid {
                Some(_) => self.config.max_processes.max(4),
                // SAFETY: getuid has no preconditions and cannot fail.
                None => {
                    count_processes_of(unsafe { libc::getuid() }) + self.config.max_processes.max(4)
                }
            },
            drop_to: self.sandbox_uid,
        };
        // SAFETY: the closure runs in the forked child before exec and only
        // calls async-signal-safe functions (setrlimit, setgroups, setgid,
        // setuid); it allocates nothing and touches no locks.
        unsafe {
            cmd.pre_exec(move || limits.apply());
        }
        // SAFETY: as above: fcntl is async-signal-safe; the Vec was built
        // before the fork and is only read. The descriptors must survive the
        // exec into bwrap, which reads them.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &seccomp_fds {
                    if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let missing = || {
            format!(
                "python sandbox unavailable: bubblewrap (`{}`) is not installed or not on PATH; \
                 install it (Debian/Ubuntu: `apt-get install bubblewrap`, Fedora: `dnf install bubblewrap`)",
                self.config.bwrap_bin.display()
            )
        };
        if !program_exists(&self.config.bwrap_bin) {
            return Err(missing());
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
            Err(e) => {
                return Err(format!(
                    "could not start the python sandbox (`{}`): {e}",
                    self.config.bwrap_bin.display()
                ))
            }
        };
        // Close our copies of the pipe's write end so EOF arrives.
        drop(cmd);
        drop(seccomp);
        let pgid = child.id() as i32;

        let cap = self.config.max_output_bytes;
        let (tx, rx) = mpsc::channel::<bool>();
        let reader_thread = std::thread::spawn(move || {
            let mut reader = reader;
            let mut kept: Vec<u8> = Vec::new();
            let mut buf = [0u8; 16 * 1024];
            let mut overflow = false;
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let room = cap.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                        if n > room && !overflow {
                            overflow = true;
                            let _ = tx.send(true);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            let _ = tx.send(false);
            kept
        });

        let start = Instant::now();
        let mut ending: Option<Ending> = None;
        let mut status = None;
        loop {
            if status.is_none() {
                match child.try_wait() {
                    Ok(Some(s)) => status = Some(s),
                    Ok(None) => {}
                    Err(e) => return Err(format!("waiting for the sandbox failed: {e}")),
                }
            }
            let elapsed = start.elapsed();
            if status.is_none() && elapsed >= self.config.timeout {
                ending = Some(Ending::WallTimeout);
                kill_group(pgid);
                break;
            }
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(true) => {
                    ending = Some(Ending::OutputCap);
                    kill_group(pgid);
                    break;
                }
                Ok(false) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // EOF: every writer is gone; wait for the exit status.
                    if status.is_some() {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        let status = match status {
            Some(s) => s,
            None => child
                .wait()
                .map_err(|e| format!("waiting for the sandbox failed: {e}"))?,
        };
        // Anything still in the group (there should be nothing) goes too.
        kill_group(pgid);
        let kept = reader_thread.join().unwrap_or_default();

        let ending = ending.unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                // bwrap reports a signalled child as 128 + signal.
                (Some(c), _) if c > 128 && c < 128 + 65 => Ending::Signalled(c - 128),
                (Some(c), _) => Ending::Exited(c),
                (None, Some(sig)) => Ending::Signalled(sig),
                (None, None) => Ending::Exited(-1),
            }
        });

        let mut text = String::from_utf8_lossy(&kept).into_owned();
        let scratch_note = self.enforce_scratch_quota();
        let setup_failed = is_sandbox_setup_failure(&text);
        let (note, is_error) = match ending {
            _ if setup_failed => (
                Some(format!(
                    "[ERROR] python sandbox failed to start: {}",
                    text.trim()
                )),
                true,
            ),
            // 1 is Python's status for an uncaught exception: the traceback
            // is in the output and the tool itself worked.
            Ending::Exited(0) | Ending::Exited(1) => (None, false),
            Ending::Exited(c) => (Some(format!("[ERROR] Process exited with status {c}.")), true),
            Ending::Signalled(sig) => (Some(signal_note(sig, &self.config)), true),
            Ending::WallTimeout => (
                Some(format!(
                    "[ERROR] Execution timed out after {} seconds; the process was killed.",
                    fmt_secs(self.config.timeout)
                )),
                true,
            ),
            Ending::OutputCap => (
                Some(format!(
                    "[ERROR] Output exceeded {} bytes; the rest was discarded and the process was killed.",
                    self.config.max_output_bytes
                )),
                true,
            ),
        };
        if let Some(note) = note {
            if setup_failed {
                text.clear();
            }
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&note);
        }
        if let Some(n) = scratch_note {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&n);
        }
        if text.trim().is_empty() {
            text = NO_OUTPUT_WARNING.to_string();
        }
        Ok(ToolOutput {
            author: "python".to_string(),
            text,
            is_error,
        })
    }

    /// Wipe the scratch folder if it grew past the quota; a note for the
    /// model when it did.
    fn enforce_scratch_quota(&self) -> Option<String> {
        let used = dir_size(&self.scratch, 0);
        if used <= self.config.scratch_quota_bytes {
            return None;
        }
        if let Ok(entries) = std::fs::read_dir(&self.scratch) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() && !p.is_symlink() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
        Some(format!(
            "[ERROR] {SANDBOX_SCRATCH} held {used} bytes, over the {} byte quota; its files were deleted.",
            self.config.scratch_quota_bytes
        ))
    }
}

fn is_sandbox_setup_failure(text: &str) -> bool {
    text.starts_with("bwrap:")
}

fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s:.1}")
    }
}

fn signal_note(sig: i32, config: &PythonConfig) -> String {
    match sig {
        libc::SIGXCPU => format!(
            "[ERROR] CPU time limit of {} seconds exceeded; the process was killed.",
            config.cpu_seconds
        ),
        libc::SIGXFSZ => format!(
            "[ERROR] File size limit of {} bytes exceeded; the process was killed.",
            config.file_size_bytes
        ),
        libc::SIGKILL => {
            "[ERROR] The process was killed (SIGKILL), probably for using too much memory."
                .to_string()
        }
        libc::SIGSEGV => {
            "[ERROR] The process crashed (SIGSEGV), possibly out of memory.".to_string()
        }
        other => format!("[ERROR] The process was killed by signal {other}."),
    }
}

fn kill_group(pgid: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals the process group we
        // created for this child; it has no memory-safety preconditions.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

fn chown(path: &Path, uid: u32) -> Result<(), Error> {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })
}

fn dir_size(path: &Path, depth: usize) -> u64 {
    if depth > 32 {
        return 0;
    }
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            if let Ok(m) = e.path().symlink_metadata() {
                if m.is_dir() {
                    total += dir_size(&e.path(), depth + 1);
                } else {
                    total += m.len();
                }
            }
        }
    }
    total
}

/// Limits applied in the child between fork and exec.
#[derive(Clone, Copy)]
struct Limits {
    cpu: u64,
    address_space: u64,
    file_size: u64,
    nproc: u64,
    drop_to: Option<u32>,
}

impl Limits {
    fn apply(&self) -> std::io::Result<()> {
        fn set(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
            set_soft_hard(resource, value, value)
        }
        fn set_soft_hard(
            resource: libc::__rlimit_resource_t,
            soft: u64,
            hard: u64,
        ) -> std::io::Result<()> {
            let lim = libc::rlimit {
                rlim_cur: soft as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            // SAFETY: setrlimit reads the struct we pass; async-signal-safe.
            if unsafe { libc::setrlimit(resource, &lim) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        }
        // The kernel sends SIGKILL at the hard CPU limit and SIGXCPU at the
        // soft one; with both equal SIGKILL can win and the error would be
        // misreported, so the hard limit sits one second above.
        set_soft_hard(libc::RLIMIT_CPU, self.cpu, self.cpu.saturating_add(1))?;
        set(libc::RLIMIT_AS, self.address_space)?;
        set(libc::RLIMIT_FSIZE, self.file_size)?;
        set(libc::RLIMIT_NPROC, self.nproc)?;
        set(libc::RLIMIT_NOFILE, 256)?;
        set(libc::RLIMIT_CORE, 0)?;
        if let Some(id) = self.drop_to {
            // SAFETY: plain syscalls on the child's own credentials;
            // async-signal-safe; order matters (groups and gid before uid).
            unsafe {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(id) != 0
                    || libc::setuid(id) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        Ok(())
    }
}

impl Tool for PythonTool {
    fn name(&self) -> &str {
        "python"
    }

    fn config(&self) -> ToolNamespaceConfig {
        let mut c = ToolNamespaceConfig::python();
        c.description = Some(STATELESS_DESCRIPTION.to_string());
        c
    }

    fn call(&mut self, recipient: &str, content: &str) -> ToolOutput {
        if recipient != "python" {
            return ToolOutput::error(
                recipient,
                format!(
                    "Unknown function `{recipient}`: the python tool takes code sent to `python`."
                ),
            );
        }
        self.run(content)
    }
}

/// Writes the compiled seccomp programs into `dir`; their paths, in order.
fn write_seccomp_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let programs = crate::seccomp::sandbox_filters().map_err(Error::Config)?;
    let mut paths = Vec::new();
    for (i, bytes) in programs.iter().enumerate() {
        let path = dir.join(format!("seccomp-{i}.bpf"));
        std::fs::write(&path, bytes).map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        paths.push(path);
    }
    Ok(paths)
}

/// Whether `program` can be executed: a path to an executable file, or a
/// bare name found as an executable file on `PATH`. Checked before spawning
/// because exec through PATH reports a missing program as EACCES when some
/// PATH folder is unreadable, which reads like a sandbox failure.
fn program_exists(program: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 {
        return executable(program);
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| executable(&dir.join(program))))
        .unwrap_or(false)
}
