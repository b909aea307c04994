//! `gpt-oss finetune` end to end on the built-in demo model: the adapter is written in PEFT's
//! format and changes what `logits --lora` computes; a run stopped part way and resumed ends
//! with the same adapter, byte for byte, as an uninterrupted one; bad data and settings are
//! errors that say what is wrong.

use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gpt-oss"))
}

const CONVERSATIONS: [&str; 4] = [
    r#"{"messages": [{"role": "user", "content": "What is 12 * 3?"}, {"role": "assistant", "content": "12 * 3 = 36", "reasoning_content": "12*3. Digits 1 2 and 3."}]}"#,
    r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 7 + 5?"}, {"role": "assistant", "content": "7 + 5 = 12"}]}"#,
    r#"{"messages": [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "2 + 2 = 4", "thinking": "2+2."}]}"#,
    r#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "What is 9 * 9?"}, {"role": "assistant", "content": "9 * 9 = 81"}]}"#,
];

fn write_data(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data.jsonl");
    std::fs::write(&data, CONVERSATIONS.join("\n\n") + "\n").unwrap();
    data
}

fn finetune(data: &Path, out: &Path, extra: &[&str]) -> Output {
    bin()
        .args(["finetune", "--lr", "1e-2", "--batch-tokens", "1"])
        .args(["--holdout", "0", "--seed", "3", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn ok(run: &Output) -> String {
    let err = String::from_utf8_lossy(&run.stderr).to_string();
    assert!(run.status.success(), "{err}");
    err
}

/// assets/demo-model unpacked into `dir/demo` (what the commands use when given no --model).
fn demo(dir: &Path) -> std::path::PathBuf {
    use std::io::Read;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/demo-model");
    let dst = dir.join("demo");
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::copy(src.join("config.json"), dst.join("config.json")).unwrap();
    let gz = std::fs::read(src.join("model.safetensors.gz")).unwrap();
    let mut raw = vec![];
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    std::fs::write(dst.join("model.safetensors"), raw).unwrap();
    dst
}

fn top_logits(model: &Path, lora: Option<&Path>) -> String {
    let mut cmd = bin();
    cmd.args([
        "logits",
        "--tokens",
        "200006,1428,200008",
        "--top",
        "3",
        "--model",
    ]);
    cmd.arg(model);
    if let Some(l) = lora {
        cmd.arg("--lora").arg(l);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn finetune_writes_an_adapter_that_loads_and_changes_the_logits() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_data(dir.path());
    let out = dir.path().join("adapter");
    let log = dir.path().join("run.csv");
    let err = ok(&finetune(&data, &out, &["--log", log.to_str().unwrap()]));
    assert!(err.contains("adapter written to"), "{err}");
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(cfg["r"], 8);
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["target_modules"].as_array().unwrap().len(), 4);
    // one step per conversation (--batch-tokens 1): a header and four rows
    let csv = std::fs::read_to_string(&log).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.starts_with("step,epoch,loss,lr,"), "{csv}");
    let png = std::fs::read(dir.path().join("run.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let model = demo(dir.path());
    assert_ne!(top_logits(&model, None), top_logits(&model, Some(&out)));
}

#[test]
fn a_resumed_run_ends_with_the_same_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_data(dir.path());
    let (whole, parts) = (dir.path().join("whole"), dir.path().join("parts"));
    let epochs = [
        "--epochs",
        "2",
        "--targets",
        "attn+experts",
        "--expert-layers",
        "1",
    ];
    ok(&finetune(&data, &whole, &epochs));
    let stopped = ok(&finetune(
        &data,
        &parts,
        &[&epochs[..], &["--stop-after-step", "5"]].concat(),
    ));
    assert!(stopped.contains("stopped after step 5"), "{stopped}");
    assert!(!parts.join("adapter_model.safetensors").exists());
    let resumed = ok(&finetune(
        &data,
        &parts,
        &[&epochs[..], &["--resume"]].concat(),
    ));
    assert!(resumed.contains("resuming from step 5 of 8"), "{resumed}");
    let a = std::fs::read(whole.join("adapter_model.safetensors")).unwrap();
    let b = std::fs::read(parts.join("adapter_model.safetensors")).unwrap();
    assert!(
        a == b,
        "the resumed adapter differs from the uninterrupted one"
    );

    // other settings are refused, naming them
    let other = finetune(
        &data,
        &parts,
        &[&epochs[..], &["--resume", "--alpha", "8"]].concat(),
    );
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success());
    assert!(
        err.contains("other settings") && err.contains("alpha"),
        "{err}"
    );
}

#[test]
fn bad_data_and_settings_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bad.jsonl");
    std::fs::write(
        &data,
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]}\n{\"messages\": [{\"role\": \"user\", \"content\": \"no answer\"}]}\n",
    )
    .unwrap();
    let out = dir.path().join("a");
    let run = finetune(&data, &out, &[]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        err.contains("bad.jsonl line 2") && err.contains("no assistant message"),
        "{err}"
    );
    let good = write_data(dir.path());
    for (extra, expect) in [
        (
            &["--targets", "attn+experts", "--expert-layers", "9"][..],
            "the model has 4 layers",
        ),
        (
            &["--expert-layers", "1"][..],
            "needs --targets attn+experts",
        ),
        (&["--rank", "0"][..], "--rank must be at least 1"),
        (&["--resume"][..], "no checkpoint"),
        (&["--log", "x.txt"][..], ".csv or .jsonl"),
    ] {
        let run = finetune(&good, &out, extra);
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{extra:?}");
        assert!(err.contains(expect), "{extra:?}: {err}");
    }
}

fn testdata() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// A float32 .npy file's values.
fn read_npy(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    bytes[10 + hlen..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// `src` copied into `dst`, *.gz files unpacked.
fn materialize(src: &Path, dst: &Path) {
    use std::io::Read;
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if let Some(stem) = name.strip_suffix(".gz") {
            let mut raw = vec![];
            flate2::read::GzDecoder::new(std::fs::File::open(&p).unwrap())
                .read_to_end(&mut raw)
                .unwrap();
            std::fs::write(dst.join(stem), raw).unwrap();
        } else {
            std::fs::copy(&p, dst.join(name)).unwrap();
        }
    }
}

/// The round trip of scripts/golden/lora/finetune_roundtrip.py: an adapter written by our
/// finetune, loaded by peft, gives logits.npy there; here, our `logits --lora` with the
/// committed adapter and with one trained again with the same flags give the same logits.
#[test]
fn finetuned_adapters_give_peft_s_logits() {
    let dir = tempfile::tempdir().unwrap();
    let golden_dir = testdata().join("lora/finetune");
    let g: serde_json::Value =
        serde_json::from_slice(&std::fs::read(golden_dir.join("golden.json")).unwrap()).unwrap();
    let prompt: Vec<String> = g["prompt"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.to_string())
        .collect();
    let flags: Vec<&str> = g["finetune_flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let want = read_npy(&golden_dir.join("logits.npy"));
    let cols: Vec<usize> = g["logit_columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap() as usize)
        .collect();
    let model = dir.path().join("hf");
    materialize(&testdata().join("model/real-vocab/hf"), &model);
    let again = dir.path().join("again");
    ok(&bin()
        .args(["finetune", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(golden_dir.join("data.jsonl"))
        .arg("--out")
        .arg(&again)
        .args(&flags)
        .output()
        .unwrap());
    for adapter in [golden_dir.join("adapter"), again] {
        let out = dir.path().join("logits.npy");
        ok(&bin()
            .args(["logits", "--device", "cpu", "--model"])
            .arg(&model)
            .arg("--lora")
            .arg(&adapter)
            .args(["--tokens", &prompt.join(","), "--out"])
            .arg(&out)
            .output()
            .unwrap());
        let all = read_npy(&out);
        let vocab = all.len() / prompt.len();
        let got: Vec<f32> = all
            .chunks_exact(vocab)
            .flat_map(|row| cols.iter().map(|&c| row[c]))
            .collect();
        assert_eq!(got.len(), want.len());
        let d = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d <= 2e-3, "{}: max abs diff {d}", adapter.display());
        eprintln!("{}: max abs diff to peft {d:.2e}", adapter.display());
    }
}
