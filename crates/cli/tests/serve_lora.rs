//! `gpt-oss serve --lora NAME=DIR` end to end, over real HTTP: the tiny real-vocabulary
//! checkpoint (testdata/model/real-vocab) served with two random PEFT adapters
//! (testdata/lora/serve, made by scripts/lora/random_adapter.py). /v1/models and /api/tags list
//! the base and `base:a`, `base:b`; greedy answers under `base`, `base:a` and `base:b` differ,
//! are the same when the three run side by side in one batch, and are what `gpt-oss generate
//! --lora` makes of the same prompt; an unknown adapter gets each API's not-found error; a
//! wrong adapter stops the start with its name, folder and problem.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const NAME: &str = "tiny";
const MAX_TOKENS: usize = 12;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gpt-oss"))
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn adapter(name: &str) -> PathBuf {
    testdata()
        .join("lora/serve")
        .join(format!("real-vocab-{name}"))
}

/// testdata/model/real-vocab/original with its weights gunzipped, in a temporary folder.
fn checkpoint() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = testdata().join("model/real-vocab/original");
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let gz = std::fs::File::open(src.join("model.safetensors.gz")).unwrap();
    let mut bytes = vec![];
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut bytes)
        .unwrap();
    std::fs::write(dir.path().join("model.safetensors"), bytes).unwrap();
    dir
}

/// A running `gpt-oss serve`, killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(model: &Path, loras: &[String]) -> Server {
    let mut cmd = bin();
    cmd.args(["serve", "--device", "cpu", "--port", "0", "--store", "none"])
        .args([
            "--model-name",
            NAME,
            "--experts",
            "exact",
            "--context",
            "1024",
        ])
        .arg("--model")
        .arg(model);
    for l in loras {
        cmd.args(["--lora", l]);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
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
        if let Some(rest) = line.strip_prefix(&format!("serving {NAME} on ")) {
            let base = rest.split_whitespace().next().unwrap().to_string();
            return Server { child, base };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server did not start:\n{log}");
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

fn post(base: &str, path: &str, body: &Value) -> (u16, Value) {
    let r = client()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn get(base: &str, path: &str) -> Value {
    let r = client().get(format!("{base}{path}")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().unwrap()
}

const QUESTION: &str = "Name a color.";

/// A greedy Chat Completions answer: (model echoed, reasoning, content).
fn chat(base: &str, model: &str) -> (String, String, String) {
    let (status, r) = post(
        base,
        "/v1/chat/completions",
        &json!({"model": model, "messages": [{"role": "user", "content": QUESTION}],
                "temperature": 0, "max_tokens": MAX_TOKENS, "reasoning_effort": "low"}),
    );
    assert_eq!(status, 200, "{model}: {r}");
    let m = &r["choices"][0]["message"];
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    (
        text(&r["model"]),
        text(&m["reasoning_content"]),
        text(&m["content"]),
    )
}

#[test]
fn several_adapters_are_served_side_by_side() {
    let model = checkpoint();
    let server = serve(
        model.path(),
        &[
            format!("a={}", adapter("a").display()),
            format!("b={}", adapter("b").display()),
        ],
    );
    let base = server.base.as_str();
    let model_dir = model.path();

    let ids: Vec<String> = get(base, "/v1/models")["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["tiny", "tiny:a", "tiny:b"]);
    let tags: Vec<String> = get(base, "/api/tags")["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tags, ["tiny", "tiny:a", "tiny:b"]);
    assert_eq!(get(base, "/v1/models/tiny:b")["id"], "tiny:b");

    // One at a time, then all three at once (one batched decode step holds rows under the
    // base, adapter a and adapter b): the same answers.
    let models = ["tiny", "tiny:a", "tiny:b"];
    let alone: Vec<_> = models.iter().map(|m| chat(base, m)).collect();
    let together: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = models
            .iter()
            .map(|m| s.spawn(move || chat(base, m)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(alone, together);
    for (m, (echo, ..)) in models.iter().zip(&alone) {
        assert_eq!(echo, m);
    }
    for (x, y) in [(0, 1), (0, 2), (1, 2)] {
        assert_ne!(
            (&alone[x].1, &alone[x].2),
            (&alone[y].1, &alone[y].2),
            "{} and {} answer alike",
            models[x],
            models[y]
        );
    }

    // Unknown adapters: each API's own not-found error, naming the model.
    let (status, r) = post(
        base,
        "/v1/chat/completions",
        &json!({"model": "tiny:nope", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(status, 404, "{r}");
    assert_eq!(r["error"]["code"], "model_not_found", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tiny:nope"),
        "{r}"
    );
    let (status, r) = post(
        base,
        "/v1/responses",
        &json!({"model": "tiny:nope", "input": "hi"}),
    );
    assert_eq!(status, 404, "{r}");
    assert_eq!(r["error"]["code"], "model_not_found", "{r}");
    let (status, r) = post(
        base,
        "/api/chat",
        &json!({"model": "tiny:nope", "messages": [{"role": "user", "content": "hi"}], "stream": false}),
    );
    assert_eq!(status, 404, "{r}");
    assert!(r["error"].as_str().unwrap().contains("tiny:nope"), "{r}");
    let (status, r) = post(
        base,
        "/v1/messages",
        &json!({"model": "tiny:nope", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(status, 404, "{r}");
    assert_eq!(r["type"], "error", "{r}");
    assert_eq!(r["error"]["type"], "not_found_error", "{r}");

    // The other APIs reach the adapter too: Ollama's chat under tiny:a answers as it does
    // under Chat Completions (same prompt: one user turn, low effort).
    let (status, r) = post(
        base,
        "/api/chat",
        &json!({"model": "tiny:a", "messages": [{"role": "user", "content": QUESTION}],
                "stream": false, "think": "low",
                "options": {"temperature": 0, "num_predict": MAX_TOKENS}}),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["model"], "tiny:a");
    assert_eq!(
        r["message"]["content"].as_str().unwrap_or(""),
        alone[1].2,
        "{r}"
    );
    let (status, r) = post(
        base,
        "/v1/responses",
        &json!({"model": "tiny:b", "input": QUESTION, "temperature": 0,
                "max_output_tokens": MAX_TOKENS, "reasoning": {"effort": "low"}}),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["model"], "tiny:b");

    // What `gpt-oss generate --lora` makes of the prompt the server renders (effort none: the
    // answer starts in the final channel, so every generated token up to the first control
    // token is answer text). The server masks the control tokens harmony does not allow at a
    // point (this random model proposes some), so from the first one `generate` picks on, the
    // two part ways: the server's answer starts with `generate`'s.
    let mut answers = vec![];
    for (model, lora) in [("tiny:a", Some("a")), ("tiny:b", Some("b")), ("tiny", None)] {
        let (status, r) = post(
            base,
            "/v1/chat/completions",
            &json!({"model": model, "messages": [{"role": "user", "content": QUESTION}],
                    "temperature": 0, "max_tokens": MAX_TOKENS, "reasoning_effort": "none"}),
        );
        assert_eq!(status, 200, "{r}");
        let content = r["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let want = generate_answer(model_dir, lora);
        assert!(
            !want.is_empty() && content.starts_with(&want),
            "{model}: the server says {content:?}, `gpt-oss generate` {want:?}"
        );
        answers.push(want);
    }
    assert_ne!(answers[0], answers[1]);
    assert_ne!(answers[0], answers[2]);
}

/// The answer text of `gpt-oss generate` (greedy, exact experts, with `--lora` when given) on
/// the server's rendering of QUESTION at effort none: the generated tokens up to the first
/// control token, decoded.
fn generate_answer(model_dir: &Path, lora: Option<&str>) -> String {
    let spec = gptoss_server::prompt::PromptSpec {
        history: vec![gptoss_harmony::Message::from_role_and_content(
            gptoss_harmony::Role::User,
            QUESTION,
        )],
        effort: gptoss_chat::Effort::None,
        ..Default::default()
    };
    let prompt = gptoss_server::prompt::build(&spec).unwrap().tokens;
    let ids: Vec<String> = prompt.iter().map(u32::to_string).collect();
    let mut cmd = bin();
    cmd.args(["generate", "--device", "cpu", "--experts", "exact"])
        .args(["--temperature", "0", "--stop", "200002,200012"])
        .args([
            "--max-tokens",
            &MAX_TOKENS.to_string(),
            "--tokens",
            &ids.join(","),
        ])
        .arg("--model")
        .arg(model_dir);
    if let Some(name) = lora {
        cmd.arg("--lora").arg(adapter(name));
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tokens: Vec<u32> = serde_json::from_slice(&out.stdout).unwrap();
    let text: Vec<u32> = tokens
        .into_iter()
        .take_while(|&t| t < gptoss_harmony::tokenizer::FIRST_SPECIAL_ID)
        .collect();
    gptoss_harmony::Tokenizer::o200k_harmony()
        .decode_utf8(&text)
        .unwrap()
}

#[test]
fn a_wrong_adapter_stops_the_start_with_its_name() {
    let model = checkpoint();
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        // The tiny-2of4 golden adapter: other shapes.
        (
            vec![format!(
                "bad={}",
                testdata().join("lora/tiny-2of4/adapter").display()
            )],
            vec!["bad".into(), "tiny-2of4".into(), "is for layer 2".into()],
        ),
        (
            vec![format!("gone={}", adapter("missing").display())],
            vec![
                "gone".into(),
                "real-vocab-missing".into(),
                "not a folder".into(),
            ],
        ),
        (
            vec![
                format!("a={}", adapter("a").display()),
                format!("a={}", adapter("b").display()),
            ],
            vec!["twice".into()],
        ),
        (
            vec![
                adapter("a").display().to_string(),
                adapter("b").display().to_string(),
            ],
            vec!["only one".into()],
        ),
        (
            vec![format!("latest={}", adapter("a").display())],
            vec!["latest".into()],
        ),
    ];
    for (loras, wants) in cases {
        let mut cmd = bin();
        cmd.args(["serve", "--device", "cpu", "--port", "0", "--store", "none"])
            .arg("--model")
            .arg(model.path());
        for l in &loras {
            cmd.args(["--lora", l]);
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{loras:?}: {err}");
        assert!(!err.contains("serving"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        for want in wants {
            assert!(err.contains(&want), "{loras:?}: `{want}` not in {err}");
        }
    }
}
