//! `gpt-oss index` and `gpt-oss tool` end to end through the real binary:
//! the printed text is exactly the tool message, and the handoff API key
//! (given through OPENAI_API_KEY) never appears in stdout or stderr.

#[path = "../../tools/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gpt-oss"))
}

fn corpus() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/corpus")
}

#[test]
fn index_then_browse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = dir.path().join("idx");
    let out = bin()
        .arg("index")
        .arg(corpus())
        .arg("--out")
        .arg(&index)
        .output()
        .expect("run gpt-oss index");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("indexed 5 documents (0 skipped)"));

    let out = bin()
        .args(["tool", "--index"])
        .arg(&index)
        .args(["browser.search", r#"{"query": "Hekla eruptions"}"#])
        .output()
        .expect("run gpt-oss tool");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("[0] Hekla eruptions\n**viewing lines [0 - "),
        "{text}"
    );
    assert!(text.contains("L4:   * 【0†volcanoes†corpus】"), "{text}");
    // Not a terminal: nothing is added after the message text.
    assert!(!text.ends_with('\n'), "{text:?}");

    let out = bin()
        .args(["tool", "browser.search", r#"{"query": "x"}"#])
        .output()
        .expect("run gpt-oss tool");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --index"));
}

#[test]
fn python_from_stdin() {
    if Command::new("bwrap").arg("--version").output().is_err() {
        eprintln!("note: skipping: bwrap (Debian package bubblewrap) is not installed");
        return;
    }
    let mut child = bin()
        .args(["tool", "python", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run gpt-oss tool");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"print(sum(range(10)))\n").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "45\n");
}

#[test]
fn handoff_never_prints_the_key() {
    const KEY: &str = "sk-cli-test-91b2c3d4e5f60718-SECRET";
    let server = common::Server::start(|req| {
        // Echo the Authorization header back in an error, as APIs do.
        let auth = req.header("authorization").unwrap_or("").to_string();
        common::Response::new(
            401,
            "application/json",
            serde_json::json!({"error": {"message": format!("bad key {auth}")}}).to_string(),
        )
    });
    let out = bin()
        .env("OPENAI_API_KEY", KEY)
        .args([
            "tool",
            "handoff.ask",
            r#"{"task": "hello"}"#,
            "--handoff-url",
        ])
        .arg(server.url("/v1"))
        .args(["--handoff-model", "m"])
        .output()
        .expect("run gpt-oss tool");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("HTTP 401"), "{stdout}");
    assert!(stdout.contains("bad key Bearer <redacted>"), "{stdout}");
    assert!(
        stderr.contains("handoff: sending 5 characters to m at http://127.0.0.1:"),
        "{stderr}"
    );
    let reqs = server
        .requests
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    for text in [&stdout, &stderr] {
        assert!(!text.contains(KEY), "key leaked: {text}");
        assert!(!text.contains("91b2c3d4e5f60718"), "key leaked: {text}");
    }
}
