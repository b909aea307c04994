//! GGUF golden test: the files in testdata/gguf/ were made by llama.cpp's own converter
//! (`convert_hf_to_gguf.py`, scripts/gguf/convert_golden.sh) from the golden checkpoints'
//! Hugging Face folders. Loaded here, they must give:
//! - bf16: the same weights as the safetensors checkpoint (MXFP4 experts repacked from ggml's
//!   block order, gate/up re-interleaved), so logits identical bit for bit to the HF
//!   safetensors path, within 2e-3 of the float32 reference, and the same greedy sequence;
//! - q8_0: 8-bit weights from the file's Q8_0 blocks, logits within the bound docs/numerics.md
//!   gives `--weights-q8` (`Q8W_VS_BF16` times the reference's own bf16 deviation, as in
//!   golden.rs); their greedy sequence is reported against the safetensors `--weights-q8` one
//!   (the converter rounds scales to f16, ours are f32, so the weights differ in the last bits).
//!
//! Every case runs on the exact expert path.

use std::path::{Path, PathBuf};

mod golden_files;
use golden_files::{materialize, read_npy};

use gptoss_model::{ExpertPath, Layout, LogitsFor, Model};

const TOL: f32 = 2e-3;
const Q8W_VS_BF16: f64 = 3.0;
const CASES: [&str; 3] = ["tiny-2of4", "tiny-4of8-sharded", "window128"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

struct Case {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    golden: serde_json::Value,
}

impl Case {
    fn open(name: &str) -> Case {
        let tmp = tempfile::tempdir().unwrap();
        materialize(&root().join("model").join(name), tmp.path());
        let dir = tmp.path().to_path_buf();
        let golden =
            serde_json::from_slice(&std::fs::read(dir.join("golden.json")).unwrap()).unwrap();
        Case {
            _tmp: tmp,
            dir,
            golden,
        }
    }

    fn ids(&self, k: &str) -> Vec<u32> {
        self.golden[k]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_u64().unwrap() as u32).collect())
            .unwrap_or_default()
    }
}

fn logits(model: &Model, tokens: &[u32]) -> Vec<f32> {
    let mut cache = model.new_cache(tokens.len() + 64);
    model.forward(tokens, &mut cache, LogitsFor::All).unwrap()
}

fn greedy(model: &Model, prompt: &[u32], steps: usize) -> Vec<u32> {
    let mut cache = model.new_cache(prompt.len() + steps + 8);
    let mut last = model.forward(prompt, &mut cache, LogitsFor::Last).unwrap();
    let mut out = vec![];
    for _ in 0..steps {
        let best = last
            .iter()
            .enumerate()
            .fold(0, |b, (i, &v)| if v > last[b] { i } else { b }) as u32;
        out.push(best);
        last = model.forward(&[best], &mut cache, LogitsFor::Last).unwrap();
    }
    out
}

fn diffs(got: &[f32], want: &[f32]) -> (f32, f64) {
    assert_eq!(got.len(), want.len());
    let max = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let mean = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs() as f64)
        .sum::<f64>()
        / got.len() as f64;
    (max, mean)
}

fn load_gguf(name: &str, ty: &str) -> Model {
    let p = root().join("gguf").join(format!("{name}-{ty}.gguf"));
    let mut m = Model::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    m.set_expert_path(ExpertPath::Exact);
    assert_eq!(m.layout(), Layout::Gguf);
    m
}

#[test]
fn bf16_gguf_matches_safetensors_and_reference() {
    for name in CASES {
        let case = Case::open(name);
        let tokens = case.ids("tokens");
        let (_, want) = read_npy(&case.dir.join("logits_f32.npy"));
        let mut st = Model::load(&case.dir.join("hf")).unwrap();
        st.set_expert_path(ExpertPath::Exact);
        let gg = load_gguf(name, "bf16");
        assert_eq!(
            gg.config(),
            st.config(),
            "{name}: config from the GGUF metadata"
        );
        assert!(!gg.weights_q8());
        let got = logits(&gg, &tokens);
        let (max, mean) = diffs(&got, &want);
        assert!(max <= TOL, "{name}: max abs diff {max:.3e} > {TOL}");
        assert!(
            got == logits(&st, &tokens),
            "{name}: bf16 GGUF logits differ from the safetensors checkpoint's"
        );
        let prompt = case.ids("greedy_prompt");
        let expected = case.ids("greedy_f32");
        let g = greedy(&gg, &prompt, expected.len());
        assert_eq!(g, greedy(&st, &prompt, expected.len()), "{name}: greedy");
        assert_eq!(g, expected, "{name}: greedy vs the reference");
        eprintln!(
            "{name} bf16: max {max:.3e} mean {mean:.3e}, greedy {} steps equal",
            g.len()
        );
    }
}

#[test]
fn q8_0_gguf_within_the_weights_q8_bound() {
    for name in CASES {
        let case = Case::open(name);
        let tokens = case.ids("tokens");
        let (_, want) = read_npy(&case.dir.join("logits_f32.npy"));
        let gg = load_gguf(name, "q8_0");
        assert!(
            gg.weights_q8(),
            "{name}: Q8_0 matrices run on the 8-bit path"
        );
        let got = logits(&gg, &tokens);
        let (max, mean) = diffs(&got, &want);
        let bf16_mean = case.golden["agreement"]["torch_bf16_vs_torch_f32_mean_abs"]
            .as_f64()
            .unwrap();
        let bf16_max = case.golden["agreement"]["torch_bf16_vs_torch_f32_max_abs"]
            .as_f64()
            .unwrap();
        assert!(
            mean <= Q8W_VS_BF16 * bf16_mean && max as f64 <= Q8W_VS_BF16 * bf16_max,
            "{name}: mean/max {mean:.3e}/{max:.3e} vs reference bf16 {bf16_mean:.3e}/{bf16_max:.3e}"
        );
        let mut st = Model::load(&case.dir.join("hf")).unwrap();
        st.set_expert_path(ExpertPath::Exact);
        st.set_weights_q8(true).unwrap();
        let prompt = case.ids("greedy_prompt");
        let n = case.ids("greedy_f32").len();
        let (a, b) = (greedy(&gg, &prompt, n), greedy(&st, &prompt, n));
        let same = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        eprintln!(
            "{name} q8_0: max {max:.3e} mean {mean:.3e} (reference bf16 {bf16_max:.3e}/{bf16_mean:.3e}), \
             greedy equal to safetensors --weights-q8 for {same}/{n} steps"
        );
        // Turning 8-bit weights off keeps them: the file has no other form.
        let mut gg = gg;
        gg.set_weights_q8(false).unwrap();
        assert!(gg.weights_q8());
        assert!(gg.gpu_unsupported().is_some());
    }
}
