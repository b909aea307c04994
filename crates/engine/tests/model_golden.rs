//! The engine on real checkpoints (testdata/model/<case>, made by
//! scripts/golden/model from OpenAI's float32 torch reference):
//! - greedy generation reproduces the reference's `greedy_f32` exactly
//!   (window128's continuation crosses its 128-position sliding window);
//! - incremental decoding through the session (one token at a time, with
//!   the KV cache) gives the reference's logits and those of one full
//!   forward pass, at every length including past the window;
//! - prefix reuse on the real cache (rollback with sliding-window
//!   snapshots) gives the same logits as computing from scratch.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use gptoss_engine::{LanguageModel, LogitsFor, Sampler, SamplingParams, Session, StopConditions};
use gptoss_model::{ExpertPath, Model};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/model")
}

struct Case {
    name: String,
    golden: serde_json::Value,
    model: Model,
    _dir: tempfile::TempDir,
    case_dir: PathBuf,
}

/// Copy `<case>/original` to a temporary folder, gunzipping `*.gz`.
fn load_case(name: &str) -> Case {
    let case_dir = testdata().join(name);
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case_dir.join("golden.json")).unwrap())
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(case_dir.join("original")).unwrap() {
        let path = entry.unwrap().path();
        let file_name = path.file_name().unwrap().to_string_lossy().to_string();
        if let Some(stem) = file_name.strip_suffix(".gz") {
            let mut input = flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap());
            let mut output = std::fs::File::create(dir.path().join(stem)).unwrap();
            std::io::copy(&mut input, &mut output).unwrap();
        } else {
            std::fs::copy(&path, dir.path().join(&file_name)).unwrap();
        }
    }
    let mut model = Model::load(dir.path()).unwrap();
    // Greedy equality with the f32 reference holds on the exact expert path; the int8 path's
    // deviation is measured in crates/model/tests/golden.rs (golden_logits_int8).
    model.set_expert_path(ExpertPath::Exact);
    Case {
        name: name.to_string(),
        golden,
        model,
        _dir: dir,
        case_dir,
    }
}

fn ids(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

/// The reference logits, f32 [n_tokens, vocab] (a .npy, maybe gzipped).
fn reference_logits(case: &Case) -> Vec<f32> {
    let name = case.golden["logits_f32"].as_str().unwrap();
    let shape = ids(&case.golden["logits_f32_shape"]);
    let n = shape[0] as usize * shape[1] as usize;
    let path = case.case_dir.join(name);
    let gz = if name.ends_with(".gz") {
        path.clone()
    } else {
        case.case_dir.join(format!("{name}.gz"))
    };
    let bytes = if path.exists() && !name.ends_with(".gz") {
        std::fs::read(&path).unwrap()
    } else {
        let mut out = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(std::fs::File::open(gz).unwrap()),
            &mut out,
        )
        .unwrap();
        out
    };
    assert_eq!(&bytes[1..6], b"NUMPY");
    // '<f4', C order: the data is the last n * 4 bytes after the header.
    let data = &bytes[bytes.len() - n * 4..];
    data.chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

const CASES: [&str; 4] = ["tiny-2of4", "tiny-4of8-sharded", "window128", "real-vocab"];

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn greedy_generation_reproduces_the_float32_reference() {
    for name in CASES {
        let case = load_case(name);
        let prompt = ids(&case.golden["greedy_prompt"]);
        let expected = ids(&case.golden["greedy_f32"]);
        assert!(
            expected.len() >= 32,
            "{name}: golden continuation too short"
        );
        // Prefill in one batch, in small chunks, and one token at a time:
        // each path must give the same continuation.
        for chunk in [usize::MAX, 3, 1] {
            let mut session = Session::new(&case.model, prompt.len() + expected.len()).unwrap();
            session.set_prefill_chunk(chunk);
            let mut sampler = Sampler::new(SamplingParams::greedy()).unwrap();
            let stop = StopConditions {
                max_tokens: Some(expected.len()),
                stop_tokens: vec![],
            };
            let generation = session
                .generate(&prompt, &stop, &mut sampler, None, |_| {
                    ControlFlow::Continue(())
                })
                .unwrap();
            assert_eq!(
                generation.tokens, expected,
                "{}: greedy continuation (prefill chunk {chunk})",
                case.name
            );
        }
    }
}

#[test]
fn incremental_decoding_matches_full_forward_and_reference_logits() {
    for name in ["tiny-2of4", "window128", "real-vocab"] {
        let case = load_case(name);
        let tokens = ids(&case.golden["tokens"]);
        let reference = reference_logits(&case);
        let vocab = case.model.vocab_size();
        let window = case.golden["config"]["sliding_window"].as_u64().unwrap() as usize;

        // One full forward over the whole sequence.
        let mut cache = case.model.new_cache(tokens.len());
        let mut full = Vec::new();
        LanguageModel::forward(&case.model, &tokens, &mut cache, LogitsFor::All, &mut full)
            .unwrap();

        // Incremental: each longer prompt reuses the cache and computes one token.
        let mut session = Session::new(&case.model, tokens.len()).unwrap();
        let mut worst_full = 0.0f32;
        let mut worst_ref = 0.0f32;
        for n in 1..=tokens.len() {
            let stats = session.prefill(&tokens[..n], None).unwrap();
            assert_eq!(
                stats.computed_tokens, 1,
                "{name}: length {n} recomputed more than one token"
            );
            let row = &full[(n - 1) * vocab..n * vocab];
            let reference_row = &reference[(n - 1) * vocab..n * vocab];
            worst_full = worst_full.max(max_abs_diff(session.last_logits(), row));
            worst_ref = worst_ref.max(max_abs_diff(session.last_logits(), reference_row));
        }
        println!("{name}: {} positions (window {window}): incremental vs full {worst_full:.2e}, vs reference {worst_ref:.2e}", tokens.len());
        assert!(
            tokens.len() > window,
            "{name}: the sequence must pass the window"
        );
        assert!(
            worst_full < 1e-4,
            "{name}: incremental vs full forward differ by {worst_full}"
        );
        assert!(
            worst_ref < 2e-4,
            "{name}: incremental vs reference differ by {worst_ref}"
        );
    }
}

/// Logits of the last position of `tokens` computed from scratch.
fn fresh_last_logits(model: &Model, tokens: &[u32]) -> Vec<f32> {
    let mut session = Session::new(model, tokens.len()).unwrap();
    session.prefill(tokens, None).unwrap();
    session.last_logits().to_vec()
}

#[test]
fn prefix_reuse_on_the_real_cache_equals_recomputing() {
    let case = load_case("window128");
    let model = &case.model;
    let prompt = ids(&case.golden["greedy_prompt"]);
    let mut session = Session::new(model, 512).unwrap();
    let mut sampler = Sampler::new(SamplingParams::greedy()).unwrap();
    let stop = StopConditions {
        max_tokens: Some(40),
        stop_tokens: vec![],
    };
    let first = session
        .generate(&prompt, &stop, &mut sampler, None, |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(session.cached_tokens().len(), prompt.len() + 39);

    // A second turn: everything cached is reused, only the new tokens run.
    let mut turn2 = prompt.clone();
    turn2.extend_from_slice(&first.tokens[..39]);
    let new_tokens = [5u32, 17, 200, 33, 2];
    turn2.extend_from_slice(&new_tokens);
    let stats = session.prefill(&turn2, None).unwrap();
    assert_eq!(stats.reused_tokens, prompt.len() + 39);
    assert_eq!(stats.computed_tokens, new_tokens.len());
    let d = max_abs_diff(session.last_logits(), &fresh_last_logits(model, &turn2));
    assert!(
        d < 1e-4,
        "second turn logits differ from a fresh computation by {d}"
    );

    // Diverge at 120, inside the first turn's generated part, after the
    // rings wrapped (144 > 128 positions): the snapshot after the prompt
    // plus the live rings cover the window, so 120 positions are kept.
    let mut turn3 = turn2[..120].to_vec();
    turn3.extend_from_slice(&[7, 8, 9]);
    let stats = session.prefill(&turn3, None).unwrap();
    assert_eq!(stats.reused_tokens + stats.computed_tokens, turn3.len());
    assert!(
        stats.reused_tokens >= prompt.len(),
        "kept only {}",
        stats.reused_tokens
    );
    let d = max_abs_diff(session.last_logits(), &fresh_last_logits(model, &turn3));
    assert!(
        d < 1e-4,
        "after rollback the logits differ from a fresh computation by {d}"
    );

    // Diverge early, before every snapshot: recomputed from scratch, still right.
    let turn4 = [1u32, 2, 3, 4];
    let stats = session.prefill(&turn4, None).unwrap();
    assert_eq!(stats.reused_tokens, 0);
    let d = max_abs_diff(session.last_logits(), &fresh_last_logits(model, &turn4));
    assert!(d < 1e-4, "{d}");
}
