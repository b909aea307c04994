//! End-to-end test of `gpt-oss chat` in a real terminal: tmux runs the
//! binary in a pseudo-terminal; the test types with `send-keys` and reads
//! the screen with `capture-pane`. Model: the real-vocabulary golden
//! checkpoint (testdata/model/real-vocab, random weights with the full
//! o200k_harmony vocabulary), so the output is gibberish, but every path is
//! real: tokenizer, harmony rendering and parsing, engine, terminal I/O.
//!
//! Skipped, with a note, when tmux is not installed (CI installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("running tmux")
    }

    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-J", "-t", "main", "-S", "-5000"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn type_line(&self, text: &str) {
        self.run(&["send-keys", "-t", "main", "-l", text]);
        self.run(&["send-keys", "-t", "main", "Enter"]);
    }

    fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            if start.elapsed() > timeout {
                panic!("timed out waiting for {what}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn pane_exit_status(&self) -> Option<String> {
        let out = self.run(&[
            "display-message",
            "-p",
            "-t",
            "main",
            "#{pane_dead} #{pane_dead_status}",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // "1 STATUS" once the pane is dead; a bare "1" when tmux has no
        // status to report (the process ended by a signal).
        match text.split_once(' ') {
            Some(("1", status)) => Some(status.to_string()),
            None if text == "1" => Some(String::new()),
            _ => None,
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// Unpack testdata/model/real-vocab/original (gzipped weights) into `dir`.
fn unpack_real_vocab(dir: &Path) {
    let src =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/model/real-vocab/original");
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if let Some(stem) = name.strip_suffix(".gz") {
            let mut input = flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap());
            let mut output = std::fs::File::create(dir.join(stem)).unwrap();
            std::io::copy(&mut input, &mut output).unwrap();
        } else {
            std::fs::copy(&path, dir.join(&name)).unwrap();
        }
    }
}

fn count(screen: &str, needle: &str) -> usize {
    screen.matches(needle).count()
}

/// The text after the last line that starts with `>>> {input}`.
fn after_input<'a>(screen: &'a str, input: &str) -> &'a str {
    let marker = format!(">>> {input}");
    match screen.rfind(&marker) {
        Some(i) => &screen[i + marker.len()..],
        None => "",
    }
}

/// The `(N computed, M reused)` numbers of the last timing line.
fn last_reuse(screen: &str) -> (usize, usize) {
    let line = screen
        .lines()
        .rev()
        .find(|l| l.contains("[prompt "))
        .expect("a timing line");
    let inner = &line[line.find('(').unwrap() + 1..line.find(')').unwrap()];
    let mut numbers = inner
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let computed = numbers.next().unwrap().parse().unwrap();
    let reused = numbers.next().unwrap().parse().unwrap();
    (computed, reused)
}

#[test]
fn chat_in_a_real_terminal() {
    if Command::new("tmux")
        .arg("-V")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        println!(
            "note: tmux is not installed; skipping the terminal end-to-end test of `gpt-oss chat`"
        );
        return;
    }
    let model_dir = tempfile::tempdir().unwrap();
    unpack_real_vocab(model_dir.path());
    let bin = env!("CARGO_BIN_EXE_gpt-oss");
    let command = format!(
        "exec '{bin}' chat --model '{}' --effort none --seed 7 --max-tokens 40 --context 4096",
        model_dir.path().display()
    );
    let tmux = Tmux {
        socket: format!("gptoss-e2e-{}", std::process::id()),
    };
    let started = tmux.run(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-s",
        "main",
        "-x",
        "160",
        "-y",
        "50",
        &command,
        ";",
        "set-option",
        "-t",
        "main",
        "remain-on-exit",
        "on",
    ]);
    assert!(
        started.status.success(),
        "tmux new-session failed: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    let long = Duration::from_secs(120);

    // 1. banner and prompt
    tmux.wait_for("the banner and prompt", long, |s| {
        s.contains("gpt-oss chat:") && s.contains(">>> ")
    });

    // 2. a message: streamed answer, then the timing line and a new prompt
    tmux.type_line("Hello there");
    let screen = tmux.wait_for("the first timing line", long, |s| {
        count(s, "[prompt ") == 1 && s.trim_end().ends_with(">>>")
    });
    let answer = after_input(&screen, "Hello there");
    let answer = &answer[..answer.find("[prompt ").unwrap()];
    assert!(!answer.trim().is_empty(), "no answer text:\n{screen}");
    assert!(screen.contains("generated 40 tokens"), "{screen}");
    assert!(screen.contains("cut at --max-tokens"), "{screen}");
    let (computed, reused) = last_reuse(&screen);
    assert_eq!(reused, 0);
    assert!(computed > 0);

    // 3. a second turn reuses the first from the KV cache
    tmux.type_line("And again");
    let screen = tmux.wait_for("the second timing line", long, |s| {
        count(s, "[prompt ") == 2 && s.trim_end().ends_with(">>>")
    });
    let (computed2, reused2) = last_reuse(&screen);
    assert!(
        reused2 >= computed,
        "second turn reused {reused2}, first prompt was {computed}:\n{screen}"
    );
    assert!(computed2 < reused2, "{screen}");

    // 4. Ctrl-C stops an unlimited answer while it streams; the chat goes on
    tmux.type_line("/max-tokens none");
    tmux.wait_for("/max-tokens to answer", long, |s| {
        s.contains("max tokens: none")
    });
    tmux.type_line("Tell me more");
    // streamed: text is on screen while the answer is still being written
    tmux.wait_for("streamed output", long, |s| {
        let rest = after_input(s, "Tell me more");
        rest.trim().chars().count() > 20 && !rest.contains("[prompt ")
    });
    tmux.run(&["send-keys", "-t", "main", "C-c"]);
    let screen = tmux.wait_for("the stopped answer", long, |s| {
        s.contains("stopped (Ctrl-C)") && s.trim_end().ends_with(">>>")
    });
    assert_eq!(
        tmux.pane_exit_status(),
        None,
        "the chat exited on Ctrl-C:\n{screen}"
    );

    // 5. commands; a new conversation reuses the system prefix from the cache
    tmux.type_line("/reset");
    tmux.wait_for("/reset", long, |s| {
        s.contains("new conversation (effort none)")
    });
    tmux.type_line("/max-tokens 5");
    tmux.wait_for("/max-tokens 5", long, |s| s.contains("max tokens: 5"));
    tmux.type_line("Hi");
    let screen = tmux.wait_for("an answer after Ctrl-C and /reset", long, |s| {
        count(s, "[prompt ") == 4 && s.trim_end().ends_with(">>>")
    });
    assert!(screen.contains("generated 5 tokens"), "{screen}");
    let (_, reused4) = last_reuse(&screen);
    assert!(reused4 > 0, "{screen}");
    tmux.type_line("/effort high");
    tmux.wait_for("/effort", long, |s| s.contains("effort: high"));
    tmux.type_line("Hi again");
    let screen = tmux.wait_for("an answer with effort high", long, |s| {
        count(s, "[prompt ") == 5 && s.trim_end().ends_with(">>>")
    });
    assert!(screen.contains("generated 5 tokens"), "{screen}");

    // 6. /quit leaves with status 0
    tmux.type_line("/quit");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = tmux.pane_exit_status() {
            break Some(status);
        }
        // If the server went away with the pane (remain-on-exit not honoured
        // by this tmux), the chat still left; its status is then unknown.
        let alive = tmux.run(&["has-session", "-t", "main"]).status.success();
        if !alive {
            break None;
        }
        assert!(
            start.elapsed() < long,
            "chat did not exit after /quit:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    if let Some(status) = status.filter(|s| !s.is_empty()) {
        assert_eq!(status, "0", "exit status after /quit");
    }
}
