//! `gpt-oss serve --store`: a store file it cannot use stops the start with
//! an error naming the file (before the model loads), never a panic; the
//! default file goes under the user's data folder (here a temporary HOME).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn serve(args: &[&str], home: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpt-oss"));
    cmd.args(["serve", "--port", "0"])
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_DATA_HOME")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

#[test]
fn unusable_store_files_are_clear_start_up_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.sqlite3");
    std::fs::write(&garbage, "not a database at all\n".repeat(100)).expect("write");
    let cases = [
        (garbage.clone(), "file is not a database"),
        // A folder where the file should be.
        (dir.path().to_path_buf(), "cannot open the response store"),
    ];
    for (path, want) in cases {
        let out = serve(&["--store", &path.to_string_lossy()], dir.path())
            .output()
            .expect("gpt-oss runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains(want), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        // The model was never loaded: the store is checked first.
        assert!(!err.contains("serving"), "{err}");
    }
}

#[test]
fn default_store_is_under_the_data_folder_and_none_writes_nothing() {
    let home = tempfile::tempdir().expect("tempdir");
    let file = home.path().join(".local/share/gpt-oss/responses.sqlite3");
    for (args, want) in [
        (
            &[][..],
            format!("responses stored in SQLite {}", file.display()),
        ),
        (
            &["--store", "none"][..],
            "responses stored in memory".to_string(),
        ),
    ] {
        let _ = std::fs::remove_dir_all(home.path().join(".local"));
        let mut child = serve(args, home.path())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gpt-oss serve starts");
        let stderr = child.stderr.take().expect("stderr");
        // Read in a thread, so a silent server fails the test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut log = String::new();
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            log.push_str(&line);
            log.push('\n');
            if line.starts_with("responses stored") {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(log.contains(&want), "{log}");
        assert_eq!(file.exists(), args.is_empty(), "{log}");
    }
}
