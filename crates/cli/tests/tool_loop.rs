//! The tool loop end to end through the real binary and the built-in demo
//! model (greedy, so deterministic), which was trained (scripts/demo/data.py)
//! to call `functions.get_weather` for "What's the weather in CITY?",
//! `python` for large products, and `handoff.ask` for poems when the handoff
//! tool is declared. Checks that each call really runs (marker file, sandbox
//! output, a second `gpt-oss serve` acting as the cloud model), that
//! generation continues to an answer, that the API key never appears in any
//! output or log, and that unreachable tools become errors the model reads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gpt-oss"))
}

const WEATHER_TOOLS: &str = r#"[{"type":"function","function":{"name":"get_weather","description":"Get the current weather for a location.","parameters":{"type":"object","properties":{"location":{"type":"string","description":"The city name, e.g. Paris"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["location"]}}}]"#;

/// Writes the weather function definition into `dir`; the `--tools` argument.
fn weather_tools_file(dir: &std::path::Path) -> String {
    let tools = dir.join("tools.json");
    std::fs::write(&tools, WEATHER_TOOLS).expect("write tools");
    tools.to_string_lossy().into_owned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run_demo(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = bin();
    cmd.args(["run", "--temperature", "0"]).args(args);
    cmd.env_remove("OPENAI_API_KEY");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run gpt-oss")
}

/// A loopback port nothing listens on.
const FIXED_CLOSED_PORT: u16 = 9;

fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn bwrap_available() -> bool {
    Command::new("bwrap")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn function_call_is_answered_by_the_tool_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("called.txt");
    // The command records its input and name, then answers with a reading
    // the model cannot know from training.
    let command = format!(
        "cat > '{}'; echo \" name=$GPT_OSS_TOOL_NAME\" >> '{}'; echo '{{\"location\": \"Oslo\", \"temperature\": 17, \"unit\": \"celsius\", \"condition\": \"foggy\"}}'",
        marker.display(),
        marker.display()
    );
    let tools_arg = weather_tools_file(dir.path());
    let out = run_demo(
        &[
            "--tools",
            &tools_arg,
            "--tool-command",
            &command,
            "What's the weather in Oslo?",
        ],
        &[],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let called = std::fs::read_to_string(&marker).expect("the tool command ran");
    assert!(called.contains(r#""location":"Oslo""#), "{called}");
    assert!(called.contains("name=get_weather"), "{called}");
    assert!(stderr.contains("→ functions.get_weather: {"), "{stderr}");
    assert!(
        stderr.contains("← functions.get_weather: {\"location\": \"Oslo\", \"temperature\": 17"),
        "{stderr}"
    );
    // The answer uses the tool's reading.
    assert!(
        stdout.contains("17°C") && stdout.contains("foggy"),
        "{stdout}"
    );

    // --json: the transcript holds the call, the tool message (author = the
    // function, to assistant, on the call's channel) and the answer.
    let out = run_demo(
        &[
            "--json",
            "--tools",
            &tools_arg,
            "--tool-command",
            &command,
            "What's the weather in Oslo?",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["stop_reason"], "return");
    let messages = json["messages"].as_array().cloned().unwrap_or_default();
    let call = messages
        .iter()
        .find(|m| m["recipient"] == "functions.get_weather")
        .expect("a call message");
    let result_idx = messages
        .iter()
        .position(|m| m["role"] == "tool")
        .expect("a tool message");
    let result = &messages[result_idx];
    assert_eq!(result["name"], "functions.get_weather", "{result}");
    assert_eq!(result["recipient"], "assistant");
    assert_eq!(result["channel"], call["channel"]);
    let last = messages.last().expect("messages");
    assert_eq!(last["channel"], "final");
    assert!(result_idx < messages.len() - 1);

    // Usage covers both generations of the turn. The second one reuses the
    // first one's prompt and call from the cache (reused R2 >= P1), so only
    // a sum that includes the first prompt, computed in full, makes the
    // computed tokens (P1 + the tool message) exceed half the reused ones;
    // the second generation alone computes just the tool message.
    let usage = &json["usage"];
    let n = |k: &str| usage[k].as_u64().unwrap_or(0);
    assert_eq!(
        n("prompt_tokens"),
        n("reused_tokens") + n("computed_tokens"),
        "{usage}"
    );
    assert!(
        n("reused_tokens") > 0 && 2 * n("computed_tokens") > n("reused_tokens"),
        "{usage}"
    );
    assert!(n("completion_tokens") > n("reasoning_tokens"), "{usage}");
}

#[test]
fn function_calls_without_an_answer_or_beyond_the_round_limit_stop_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tools_arg = weather_tools_file(dir.path());
    let out = run_demo(&["--tools", &tools_arg, "Weather in Rome?"], &[]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the model called functions.get_weather")
            && stderr.contains("--tool-command"),
        "{stderr}"
    );

    let out = run_demo(
        &[
            "--tools",
            &tools_arg,
            "--tool-command",
            "echo '{}'",
            "--max-tool-rounds",
            "0",
            "Weather in Rome?",
        ],
        &[],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("--max-tool-rounds"), "{stderr}");

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"[{"type":"function","function":{"description":"no name"}}]"#,
    )
    .expect("write");
    let out = run_demo(&["--tools", &bad.to_string_lossy(), "hi"], &[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("has no \"name\""),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_hung_tool_command_is_stopped_at_its_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tools_arg = weather_tools_file(dir.path());
    // The command (and the background job it starts) would run for 5 minutes.
    let start = Instant::now();
    let out = run_demo(
        &[
            "--tools",
            &tools_arg,
            "--tool-command",
            "sleep 300 & sleep 300",
            "--tool-timeout",
            "1",
            "--max-tool-rounds",
            "1",
            "What's the weather in Oslo?",
        ],
        &[],
    );
    let elapsed = start.elapsed();
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "← functions.get_weather (error): [ERROR] the tool did not answer within 1 s and was stopped."
        ),
        "{stderr}"
    );
    assert!(elapsed < Duration::from_secs(120), "{elapsed:?}");

    let out = run_demo(
        &[
            "--tools",
            &tools_arg,
            "--tool-command",
            "cat",
            "--tool-timeout",
            "0",
            "hi",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--tool-timeout must be"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn python_calls_run_in_the_sandbox() {
    if !bwrap_available() {
        eprintln!("SKIPPED: bubblewrap (bwrap) is not installed; .ci/run installs it");
        return;
    }
    for (a, b) in [(48213u64, 3917u64), (7351, 86204)] {
        let out = run_demo(&["--python", "on", &format!("What is {a} * {b}?")], &[]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{stderr}");
        let product = (a * b).to_string();
        assert!(stderr.contains("→ python: print("), "{stderr}");
        // The printed value came back from the sandbox and the answer uses it.
        assert!(stderr.contains(&format!("← python: {product}")), "{stderr}");
        assert!(stdout.contains(&product), "{stdout}");
    }
}

/// A `gpt-oss serve` child whose stderr is collected in the background.
struct Server {
    child: Child,
    port: u16,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    fn start(args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut cmd = bin();
        cmd.args(["serve", "--port", "0", "--store", "none"])
            .args(args)
            .env_remove("OPENAI_API_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start gpt-oss serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = String::new();
            let mut sent = false;
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if !sent {
                    if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
                        let port: String =
                            rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                        if let Ok(p) = port.parse::<u16>() {
                            let _ = tx.send(p);
                            sent = true;
                        }
                    }
                }
                if let Ok(mut l) = sink.lock() {
                    l.push_str(&line);
                }
                line.clear();
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "server did not start: {}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                )
            });
        Server {
            child,
            port,
            stderr: log,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// POST JSON; (status, body).
    fn post(&self, path: &str, body: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read");
        let raw = text(&raw);
        let status = raw
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = raw.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
        (status, body.to_string())
    }

    /// POST a `/v1/responses` request expecting 200; (the response, its first output item of `item_type`).
    fn respond(
        &self,
        body: serde_json::Value,
        item_type: &str,
    ) -> (serde_json::Value, serde_json::Value) {
        let (status, response) = self.post("/v1/responses", &body.to_string());
        assert_eq!(status, 200, "{response}");
        let json: serde_json::Value = serde_json::from_str(&response).expect("response json");
        let item = json["output"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["type"] == item_type))
            .cloned()
            .unwrap_or_else(|| panic!("no {item_type} item: {json}"));
        (json, item)
    }

    /// Stop it and return everything it logged.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && Arc::strong_count(&self.stderr) > 1 {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stderr.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

const KEY: &str = "sk-test-FAKE-9f3a7c1e5b";

#[test]
fn handoff_is_answered_by_a_second_server_and_the_key_never_leaks() {
    // The "cloud": a second gpt-oss serve that demands the key.
    let cloud = Server::start(&["--api-key", KEY, "--model-name", "cloud-model"], &[]);

    // 1. The CLI hands the poem off; the cloud model's answer comes back.
    let out = run_demo(
        &[
            "--json",
            "--handoff",
            "on",
            "--handoff-url",
            &cloud.url(),
            "--handoff-model",
            "cloud-model",
            "Write a poem about the sea.",
        ],
        &[("OPENAI_API_KEY", KEY)],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("→ handoff.ask: {\"task\":\"Write a poem about the sea.\"}"),
        "{stderr}"
    );
    // The cloud demo model has no handoff tool, so it declines: that text
    // can only have come from the second server, which accepted the key.
    assert!(
        stderr.contains("← handoff.ask: Sorry, I am a small demo model"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("json transcript");
    assert_eq!(json["stop_reason"], "return", "{json}");
    let messages = json["messages"].as_array().cloned().unwrap_or_default();
    assert!(messages
        .iter()
        .any(|m| m["role"] == "tool" && m["name"] == "handoff.ask"));
    assert_eq!(
        messages.last().map(|m| m["channel"].clone()),
        Some("final".into())
    );
    for (what, s) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(!s.contains(KEY), "the key leaked into the client's {what}");
    }

    // 2. A wrong key: the cloud refuses; the model reads the error and goes on.
    let wrong = "sk-wrong-7d1c0b";
    let out = run_demo(
        &[
            "--handoff",
            "on",
            "--handoff-url",
            &cloud.url(),
            "Write a haiku about rain.",
        ],
        &[("OPENAI_API_KEY", wrong)],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "← handoff.ask (error): [ERROR] handoff failed: the remote model answered HTTP 401"
        ),
        "{stderr}"
    );
    assert!(!text(&out.stdout).contains(wrong) && !stderr.contains(wrong));

    // 3. The server runs handoff itself for /v1/responses `{"type": "handoff"}`.
    let local = Server::start(
        &[
            "--handoff",
            "on",
            "--handoff-url",
            &cloud.url(),
            "--handoff-model",
            "cloud-model",
        ],
        &[("OPENAI_API_KEY", KEY)],
    );
    let (json, call) = local.respond(
        serde_json::json!({
            "input": "Write a short poem about the moon.",
            "tools": [{"type": "handoff"}],
            "temperature": 0,
            "reasoning": {"effort": "medium"},
        }),
        "handoff_call",
    );
    assert_eq!(call["status"], "completed", "{call}");
    assert!(
        call["output"]
            .as_str()
            .is_some_and(|o| o.starts_with("Sorry, I am a small demo model")),
        "{call}"
    );
    assert_eq!(
        json["output"]
            .as_array()
            .and_then(|o| o.last())
            .map(|i| i["type"].clone()),
        Some("message".into()),
        "{json}"
    );
    assert!(!json.to_string().contains(KEY));

    let local_log = local.stop();
    let cloud_log = cloud.stop();
    for (what, log) in [("server", &local_log), ("cloud server", &cloud_log)] {
        assert!(!log.contains(KEY), "the key leaked into the {what} log");
        assert!(
            !log.contains(wrong),
            "the wrong key leaked into the {what} log"
        );
    }
}

#[test]
fn unreachable_tools_become_errors_the_model_reads() {
    // A fixed closed port (9, discard: no service listens on loopback here),
    // not a random one: the error text the model reads holds the URL, and the
    // demo model's continuation depends on its digits.
    let port = FIXED_CLOSED_PORT;
    let search = format!("http://127.0.0.1:{port}/search");
    let remote = format!("http://127.0.0.1:{port}/v1");
    // The same browser through the `tool` command: a clear error text.
    let out = bin()
        .args(["tool", "--browser", "web", "--search-url", &search])
        .args(["browser.search", r#"{"query": "volcanoes"}"#])
        .output()
        .expect("run gpt-oss tool");
    assert!(out.status.success());
    let browse = text(&out.stdout);
    assert!(
        browse.contains("Error during search for `volcanoes`: could not connect"),
        "{browse}"
    );

    // A conversation with both tools offline: the handoff fails, the model
    // reads the error and still answers; exit code 0.
    let out = run_demo(
        &[
            "--browser",
            "web",
            "--search-url",
            &search,
            "--handoff",
            "on",
            "--handoff-url",
            &remote,
            "--handoff-timeout",
            "10",
            "--json",
            "Write a poem about the sea.",
        ],
        &[],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("← handoff.ask (error): [ERROR] handoff failed: could not reach"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let messages = json["messages"].as_array().cloned().unwrap_or_default();
    let tool = messages
        .iter()
        .find(|m| m["role"] == "tool")
        .expect("the error went to the model");
    assert!(tool["content"][0]["text"]
        .as_str()
        .is_some_and(|t| t.contains("could not reach")));
    // After reading the error the model went on to a final answer (what it
    // says is up to the tiny demo model).
    let last = messages.last().cloned().unwrap_or_default();
    assert_eq!(last["channel"], "final", "{json}");
    assert!(last["content"][0]["text"]
        .as_str()
        .is_some_and(|t| !t.trim().is_empty()));
}

#[test]
fn serve_runs_code_interpreter_server_side() {
    if !bwrap_available() {
        eprintln!("SKIPPED: bubblewrap (bwrap) is not installed; .ci/run installs it");
        return;
    }
    let server = Server::start(&["--python", "on"], &[]);
    let (json, call) = server.respond(
        serde_json::json!({
            "input": "What is 48213 * 3917?",
            "tools": [{"type": "code_interpreter"}],
            "temperature": 0,
            "reasoning": {"effort": "medium"},
        }),
        "code_interpreter_call",
    );
    assert_eq!(call["code"], "print(48213 * 3917)");
    assert_eq!(call["outputs"][0]["type"], "logs");
    assert_eq!(call["outputs"][0]["logs"], "188850321\n");
    let answer = json["output"]
        .as_array()
        .and_then(|o| o.last())
        .expect("items");
    assert_eq!(answer["type"], "message", "{json}");
    assert!(answer["content"][0]["text"]
        .as_str()
        .is_some_and(|t| t.contains("188850321")));
    assert_eq!(json["status"], "completed");

    // Not enabled on this server: left out of the prompt (the answer still
    // comes), and the response lists only the tools it honoured.
    let body = serde_json::json!({"input": "hi", "max_output_tokens": 64, "tools": [{"type": "web_search"}]}).to_string();
    let (status, response) = server.post("/v1/responses", &body);
    assert_eq!(status, 200, "{response}");
    let json: serde_json::Value = serde_json::from_str(&response).unwrap_or_default();
    assert_eq!(json["tools"], serde_json::json!([]), "{response}");
    server.stop();
}

/// `gpt-oss chat` with its input piped: a function result typed by the
/// user, and a handoff shown and confirmed (then declined) before sending.
#[test]
fn chat_asks_for_function_results_and_handoff_consent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tools_arg = weather_tools_file(dir.path());
    let chat = |args: &[&str], input: &str| -> (String, String) {
        let mut child = bin()
            .args(["chat", "--temperature", "0"])
            .args(args)
            .env_remove("OPENAI_API_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chat");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write input");
        drop(stdin);
        let out = child.wait_with_output().expect("chat ends");
        assert!(out.status.success(), "{}", text(&out.stderr));
        (text(&out.stdout), text(&out.stderr))
    };

    let (stdout, _) = chat(
        &["--tools", &tools_arg],
        "What's the weather in Oslo?\n{\"location\": \"Oslo\", \"temperature\": 4, \"unit\": \"celsius\", \"condition\": \"snowy\"}\n/quit\n",
    );
    assert!(stdout.contains("tools: functions.get_weather"), "{stdout}");
    assert!(
        stdout.contains("the model called functions.get_weather"),
        "{stdout}"
    );
    assert!(
        stdout.contains("← functions.get_weather: {\"location\": \"Oslo\", \"temperature\": 4"),
        "{stdout}"
    );
    assert!(
        stdout.contains("4°C") && stdout.contains("snowy"),
        "{stdout}"
    );

    // The user says no: nothing is sent, the model reads why.
    let port = closed_port();
    let (stdout, _) = chat(
        &[
            "--handoff",
            "on",
            "--handoff-confirm",
            "--handoff-url",
            &format!("http://127.0.0.1:{port}/v1"),
        ],
        "Write a poem about the sea.\nn\n/quit\n",
    );
    assert!(
        stdout.contains("handoff: the model wants to send this task to"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  | Write a poem about the sea."),
        "{stdout}"
    );
    assert!(stdout.contains("send it? [y/N]"), "{stdout}");
    assert!(
        stdout.contains("← handoff.ask (error): [ERROR] handoff failed: the user declined"),
        "{stdout}"
    );
}
