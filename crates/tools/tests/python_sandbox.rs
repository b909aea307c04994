//! The python tool in the real bubblewrap sandbox: normal code works, and
//! every escape attempt fails with a tool error while the tool keeps
//! working. Skipped (with a note) where `bwrap` or `/usr/bin/python3` is
//! missing; .ci/run installs the `bubblewrap` Debian package.

use std::time::{Duration, Instant};

use gptoss_tools::python::{PythonConfig, PythonTool, NO_OUTPUT_WARNING};
use gptoss_tools::Tool;

fn sandbox() -> Option<PythonTool> {
    let config = PythonConfig {
        timeout: Duration::from_secs(2),
        cpu_seconds: 2,
        memory_bytes: 512 << 20,
        file_size_bytes: 1 << 20,
        max_processes: 32,
        max_output_bytes: 4096,
        ..PythonConfig::default()
    };
    if !config.python_bin.exists() {
        eprintln!(
            "note: skipping sandbox test: {} missing",
            config.python_bin.display()
        );
        return None;
    }
    let mut tool = PythonTool::new(config).expect("create python tool");
    match tool.check_available() {
        Ok(()) => Some(tool),
        Err(why) => {
            eprintln!("note: skipping sandbox test: sandbox unavailable: {why}");
            None
        }
    }
}

/// The tool still answers normally after an attack.
fn still_works(tool: &mut PythonTool) {
    let out = tool.call("python", "print(6*7)");
    assert_eq!(out.text, "42\n", "tool broken after attack: {out:?}");
    assert!(!out.is_error);
}

#[test]
fn runs_code_and_reports_errors() {
    let Some(mut tool) = sandbox() else { return };
    let out = tool.call(
        "python",
        "import sys\nprint('hi'); print(sys.version_info[0])",
    );
    assert_eq!(out.text, "hi\n3\n");
    assert_eq!(out.author, "python");

    let out = tool.call("python", "x = 1");
    assert_eq!(out.text, NO_OUTPUT_WARNING);

    let out = tool.call("python", "1/0");
    assert!(out.text.contains("ZeroDivisionError"), "{out:?}");
    assert!(out.text.contains("/tmp/script.py"), "{out:?}");

    // Stateless: nothing survives between calls except files in /mnt/data.
    let out = tool.call("python", "print(x)");
    assert!(out.text.contains("NameError"), "{out:?}");
    let out = tool.call(
        "python",
        "open('/mnt/data/keep.txt','w').write('kept')\nprint('ok')",
    );
    assert_eq!(out.text, "ok\n");
    let out = tool.call("python", "print(open('keep.txt').read())");
    assert_eq!(out.text, "kept\n");
    assert!(tool.scratch_dir().join("keep.txt").exists());
}

#[test]
fn no_network() {
    let Some(mut tool) = sandbox() else { return };
    let code = "import socket\ntry:\n    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n    s.settimeout(1)\n    s.connect(('1.1.1.1', 80))\n    print('CONNECTED')\nexcept OSError as e:\n    print('blocked:', e)\n";
    let out = tool.call("python", code);
    assert!(out.text.starts_with("blocked:"), "{out:?}");
    assert!(!out.text.contains("CONNECTED"));
    // Without the seccomp filter the socket opens, and the empty net
    // namespace alone still blocks the connection.
    let mut unfiltered = PythonTool::new(PythonConfig {
        seccomp: false,
        ..tool.config_ref().clone()
    })
    .expect("create python tool");
    let out = unfiltered.call("python", code);
    assert!(out.text.starts_with("blocked:"), "{out:?}");
    assert!(!out.text.contains("Operation not permitted"), "{out:?}");
    // Loopback of the host is not reachable either (own net namespace).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let code = format!("import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n    print('CONNECTED')\nexcept OSError as e:\n    print('blocked:', e)\n");
    let out = tool.call("python", &code);
    assert!(out.text.starts_with("blocked:"), "{out:?}");
    still_works(&mut tool);
}

#[test]
fn host_files_are_invisible() {
    let Some(mut tool) = sandbox() else { return };
    let repo_file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    assert!(std::path::Path::new(repo_file).exists());
    for path in [
        "/etc/shadow",
        "/etc/passwd",
        repo_file,
        "/root/.bashrc",
        "/work",
    ] {
        let code = format!(
            "import os\ntry:\n    print(open({path:?}).read()[:50])\n    print('READ')\nexcept OSError as e:\n    print('denied:', type(e).__name__)\nprint(os.path.exists({path:?}))\n"
        );
        let out = tool.call("python", &code);
        assert!(out.text.starts_with("denied:"), "{path}: {out:?}");
        assert!(out.text.ends_with("False\n"), "{path}: {out:?}");
    }
    let out = tool.call("python", "import os\nprint(sorted(os.listdir('/')))");
    assert!(
        !out.text.contains("work") && !out.text.contains("root"),
        "{out:?}"
    );
    still_works(&mut tool);
}

#[test]
fn cannot_write_outside_scratch() {
    let Some(mut tool) = sandbox() else { return };
    for path in [
        "/usr/evil.txt",
        "/etc/evil.txt",
        "/evil.txt",
        "/proc/sys/kernel/hostname",
    ] {
        let code = format!(
            "try:\n    open({path:?}, 'w').write('x')\n    print('WROTE')\nexcept OSError as e:\n    print('denied:', type(e).__name__)\n"
        );
        let out = tool.call("python", &code);
        assert!(out.text.starts_with("denied:"), "{path}: {out:?}");
    }
    assert!(!std::path::Path::new("/usr/evil.txt").exists());
    // /tmp inside is a private tmpfs: writable but gone after the call.
    let out = tool.call("python", "open('/tmp/t','w').write('x'); print('ok')");
    assert_eq!(out.text, "ok\n");
    let out = tool.call("python", "import os; print(os.path.exists('/tmp/t'))");
    assert_eq!(out.text, "False\n");
    // Files are capped in size (RLIMIT_FSIZE = 1 MiB here).
    let out = tool.call(
        "python",
        "open('big','wb').write(b'x'*(2<<20)); print('WROTE')",
    );
    assert!(out.text.contains("File too large"), "{out:?}");
    assert!(!out.text.starts_with("WROTE"), "{out:?}");
    still_works(&mut tool);
}

#[test]
fn fork_bomb_is_contained() {
    let Some(mut tool) = sandbox() else { return };
    let start = Instant::now();
    let code = "import os\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            import time; time.sleep(30); os._exit(0)\n        n += 1\nexcept OSError as e:\n    print('fork failed after', n, type(e).__name__)\n";
    let out = tool.call("python", code);
    assert!(out.text.contains("fork failed after"), "{out:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
    still_works(&mut tool);
}

#[test]
fn memory_bomb_is_stopped() {
    let Some(mut tool) = sandbox() else { return };
    let out = tool.call("python", "x = bytearray(10 * 1024**3)\nprint('ALLOCATED')");
    assert!(out.text.contains("MemoryError"), "{out:?}");
    assert!(!out.text.contains("ALLOCATED"));
    still_works(&mut tool);
}

#[test]
fn infinite_loop_is_killed() {
    let Some(mut tool) = sandbox() else { return };
    let start = Instant::now();
    let out = tool.call(
        "python",
        "print('start', flush=True)\nwhile True:\n    pass\n",
    );
    let took = start.elapsed();
    assert!(out.is_error, "{out:?}");
    assert!(out.text.starts_with("start\n"), "{out:?}");
    assert!(
        out.text.contains("timed out") || out.text.contains("CPU time limit"),
        "{out:?}"
    );
    assert!(took < Duration::from_secs(6), "took {took:?}");
    // A sleeping loop uses no CPU: only the wall clock can stop it, and it
    // kills forked children too.
    let start = Instant::now();
    let out = tool.call(
        "python",
        "import os, time\nif os.fork() == 0:\n    time.sleep(100)\ntime.sleep(100)",
    );
    assert!(out.text.contains("timed out after 2 seconds"), "{out:?}");
    assert!(start.elapsed() < Duration::from_secs(6));
    still_works(&mut tool);
}

#[test]
fn huge_output_is_capped() {
    let Some(mut tool) = sandbox() else { return };
    let start = Instant::now();
    let out = tool.call(
        "python",
        "import sys\nsys.stdout.write('x' * (100 * 1024 * 1024))",
    );
    assert!(out.is_error, "{out:?}");
    assert!(out.text.contains("Output exceeded 4096 bytes"), "{out:?}");
    assert!(out.text.len() < 4096 + 200);
    assert!(start.elapsed() < Duration::from_secs(6));
    still_works(&mut tool);
}

#[test]
fn missing_bwrap_is_a_clear_error() {
    let config = PythonConfig {
        bwrap_bin: "/nonexistent/bwrap".into(),
        ..PythonConfig::default()
    };
    let mut tool = PythonTool::new(config).expect("create python tool");
    let out = tool.call("python", "print(1)");
    assert!(out.is_error);
    assert!(out.text.contains("bubblewrap"), "{out:?}");

    // A bare name not on PATH: found missing before exec (which can report
    // it as "Permission denied"), and the message says what to install.
    let config = PythonConfig {
        bwrap_bin: "gptoss-no-such-bwrap".into(),
        ..PythonConfig::default()
    };
    let mut tool = PythonTool::new(config).expect("create python tool");
    let out = tool.call("python", "print(1)");
    assert!(out.is_error);
    assert!(
        out.text.contains("apt-get install bubblewrap") && out.text.contains("not installed"),
        "{out:?}"
    );
}

#[test]
fn declared_like_the_reference() {
    let tool = PythonTool::new(PythonConfig::default()).expect("create python tool");
    let c = tool.config();
    assert_eq!(c.name, "python");
    assert!(c.tools.is_empty());
    let d = c.description.unwrap_or_default();
    assert!(d.starts_with("Use this tool to execute STATELESS Python code"));
    assert!(d.ends_with("You will have to pass your entire code each time."));
}

/// The seccomp filter refuses what namespaces alone would allow (a socket
/// inside the empty net namespace, ptrace of oneself, a new user namespace)
/// while threads and subprocesses (clone, clone3's ENOSYS fallback) work.
#[test]
fn seccomp_filter_refuses_privileged_calls_and_keeps_threads() {
    let Some(mut tool) = sandbox() else { return };
    let probe = r#"
import ctypes, errno, socket, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
def err(rc):
    return errno.errorcode.get(ctypes.get_errno(), '?') if rc == -1 else 'ok'
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    print('inet: ok')
except OSError as e:
    print('inet:', errno.errorcode.get(e.errno))
print('unix:', 'ok' if socket.socket(socket.AF_UNIX) else '?')
print('ptrace:', err(libc.ptrace(0, 0, 0, 0)))
print('unshare:', err(libc.unshare(0x10000000)))
box = []
t = threading.Thread(target=lambda: box.append(1)); t.start(); t.join()
print('thread:', box)
print('subprocess:', subprocess.run(['/usr/bin/true']).returncode)
"#;
    let out = tool.call("python", probe);
    assert!(!out.is_error, "{out:?}");
    for want in [
        "inet: EPERM",
        "unix: ok",
        "ptrace: EPERM",
        "unshare: EPERM",
        "thread: [1]",
        "subprocess: 0",
    ] {
        assert!(
            out.text.contains(want),
            "missing {want:?} in {:?}",
            out.text
        );
    }
    still_works(&mut tool);
}
