//! The format tools end to end through the real binary: `tokenize`,
//! `detokenize`, `render` (against an openai-harmony fixture) and `parse`
//! (strict failure exit code, lenient warnings).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn gpt_oss(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpt-oss"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gpt-oss");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).expect("write stdin");
        }
    }
    child.wait_with_output().expect("wait gpt-oss")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

#[test]
fn tokenize_and_detokenize() {
    let o = gpt_oss(&["tokenize", "What is 2 + 2?"], None);
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim(), "[4827,382,220,17,659,220,17,30]");

    // Specials are text unless allowed.
    let o = gpt_oss(&["tokenize", "--allow-special"], Some("<|start|>user"));
    assert_eq!(stdout(&o).trim(), "[200006,1428]");
    let o = gpt_oss(&["tokenize"], Some("<|start|>"));
    assert_ne!(stdout(&o).trim(), "[200006]");

    let o = gpt_oss(&["detokenize", "[200006, 1428, 200008]"], None);
    assert_eq!(stdout(&o), "<|start|>user<|message|>\n");
    let o = gpt_oss(&["detokenize", "4827,382"], None);
    assert_eq!(stdout(&o), "What is\n");
    let o = gpt_oss(&["detokenize", "1,abc"], None);
    assert!(!o.status.success());
    let o = gpt_oss(&["detokenize", "999999999"], None);
    assert!(!o.status.success());
}

#[test]
fn render_matches_openai_harmony_fixture() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/harmony/render.json");
    let fx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json");
    let case = fx["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["name"] == "example2_function_tools")
        .expect("example2 case");
    let dir = std::env::temp_dir().join(format!("gptoss-render-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let conv = dir.join("conv.json");
    std::fs::write(&conv, case["conversation"].to_string()).expect("write conv");
    let conv = conv.to_str().expect("utf-8 path");

    let o = gpt_oss(&["render", "--input", conv], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ids: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("ids json");
    assert_eq!(ids, case["completion"]);

    let o = gpt_oss(&["render", "--input", conv, "--for", "training"], None);
    let ids: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("ids json");
    assert_eq!(ids, case["training"]);

    let o = gpt_oss(&["render", "--input", conv, "--text"], None);
    assert!(stdout(&o).ends_with("<|start|>assistant\n"));

    let o = gpt_oss(
        &[
            "render",
            "--input",
            dir.join("missing.json").to_str().unwrap_or(""),
        ],
        None,
    );
    assert!(!o.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn parse_strict_and_lenient() {
    // <|channel|>final<|message|>4<|return|>
    let o = gpt_oss(
        &[
            "parse",
            "--tokens",
            "200005,17196,200008,19,200002",
            "--strict",
        ],
        None,
    );
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"messages": [{"role": "assistant", "name": null,
            "content": [{"type": "text", "text": "4"}], "channel": "final"}]})
    );

    // Header cut off by <|end|>: strict fails, lenient recovers with a warning.
    let tokens = "200005,12606,815,32949,200007";
    let o = gpt_oss(&["parse", "--tokens", tokens, "--strict"], None);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("error"));
    let o = gpt_oss(&["parse", "--tokens", tokens], None);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning"));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["messages"][0]["channel"], "commentary");
}
