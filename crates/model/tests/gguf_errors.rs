//! Damaged GGUF files: each kind of damage gives its own named `LoadError`, never a panic, and
//! a property test mutates bytes of a real (converter-made) file's header and checks the parser
//! and the loader only ever return errors.

mod gguf_files;

use gguf_files::{join, split, testdata, write};
use gptoss_model::gguf::{GgufError, GgufFile, MetaValue};
use gptoss_model::{LoadError, Model};
use proptest::prelude::*;

const FIXTURE: &str = "tiny-2of4-bf16.gguf";

fn fixture() -> Vec<u8> {
    std::fs::read(testdata().join(FIXTURE)).expect("run scripts/gguf/convert_golden.sh")
}

fn load(bytes: &[u8]) -> Result<Model, LoadError> {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "m.gguf", bytes);
    Model::load(&p)
}

fn expect_err(bytes: &[u8]) -> LoadError {
    match load(bytes) {
        Ok(_) => panic!("a damaged file loaded"),
        Err(e) => e,
    }
}

#[test]
fn rewritten_fixture_still_loads() {
    // The writer the other tests damage files with is faithful.
    let p = split(&fixture());
    let m = load(&join(&p)).expect("re-emitted fixture loads");
    assert_eq!(m.config().num_hidden_layers, 4);
}

#[test]
fn bad_magic() {
    let mut b = fixture();
    b[..4].copy_from_slice(b"GGML");
    // A file named .gguf without the magic is a GGUF problem, not "no config.json".
    let e = expect_err(&b);
    assert!(
        matches!(
            e,
            LoadError::Gguf {
                problem: GgufError::BadMagic(_),
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn wrong_version() {
    let mut b = fixture();
    b[4..8].copy_from_slice(&7u32.to_le_bytes());
    let e = expect_err(&b);
    assert!(
        matches!(
            e,
            LoadError::Gguf {
                problem: GgufError::Version(7),
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("version 7"), "{e}");
}

#[test]
fn truncated_header() {
    let b = fixture();
    let e = expect_err(&b[..200]);
    assert!(
        matches!(
            e,
            LoadError::Gguf {
                problem: GgufError::Truncated(_),
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn truncated_data_is_a_tensor_out_of_bounds() {
    let b = fixture();
    let e = expect_err(&b[..b.len() - 100]);
    assert!(
        matches!(
            e,
            LoadError::Gguf {
                problem: GgufError::OutOfBounds { .. },
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn tensor_out_of_bounds() {
    let mut p = split(&fixture());
    let t = p
        .tensors
        .iter_mut()
        .find(|t| t.name == "blk.1.attn_sinks.weight")
        .unwrap();
    t.offset_shift = 1 << 40;
    let e = expect_err(&join(&p));
    match e {
        LoadError::Gguf {
            problem: GgufError::OutOfBounds { name, .. },
            ..
        } => assert_eq!(name, "blk.1.attn_sinks.weight"),
        other => panic!("{other}"),
    }
}

#[test]
fn unknown_type_names_tensor_and_type() {
    let mut p = split(&fixture());
    let t = p
        .tensors
        .iter_mut()
        .find(|t| t.name == "blk.0.attn_q.weight")
        .unwrap();
    t.ty = 12; // Q4_K
    let e = expect_err(&join(&p));
    assert!(
        matches!(&e, LoadError::UnsupportedTensorType { name, ty } if name == "blk.0.attn_q.weight" && ty == "Q4_K"),
        "{e}"
    );
    assert!(e.to_string().contains("Q4_K"), "{e}");
}

#[test]
fn missing_tensor() {
    let mut p = split(&fixture());
    p.tensors.retain(|t| t.name != "blk.2.ffn_up_exps.weight");
    let e = expect_err(&join(&p));
    assert!(
        matches!(&e, LoadError::MissingTensor { name } if name == "blk.2.ffn_up_exps.weight"),
        "{e}"
    );
}

#[test]
fn wrong_shape() {
    let mut p = split(&fixture());
    let t = p
        .tensors
        .iter_mut()
        .find(|t| t.name == "blk.3.attn_sinks.weight")
        .unwrap();
    t.shape = vec![2];
    t.data.truncate(8);
    let e = expect_err(&join(&p));
    assert!(
        matches!(&e, LoadError::WrongShape { name, expected, found } if name == "blk.3.attn_sinks.weight" && expected == &vec![4] && found == &vec![2]),
        "{e}"
    );
}

#[test]
fn other_architecture() {
    let mut p = split(&fixture());
    for (k, v) in &mut p.metadata {
        if k == "general.architecture" {
            *v = MetaValue::String("llama".into());
        }
    }
    let e = expect_err(&join(&p));
    assert!(
        matches!(&e, LoadError::BadConfig { field, .. } if field == "general.architecture"),
        "{e}"
    );
}

#[test]
fn missing_metadata_names_the_key() {
    let mut p = split(&fixture());
    p.metadata.retain(|(k, _)| k != "gpt-oss.expert_count");
    let e = expect_err(&join(&p));
    assert!(
        matches!(&e, LoadError::BadConfig { field, .. } if field == "gpt-oss.expert_count"),
        "{e}"
    );
}

/// Bytes of the fixture up to the end of its tensor infos (the part the parser reads).
fn header_len(b: &[u8]) -> usize {
    let f = GgufFile::parse(b).unwrap();
    f.tensors.iter().map(|t| t.start).min().unwrap_or(b.len())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    /// Random byte edits anywhere in the header, and random cuts: the parser returns Ok or an
    /// error, never panics, never allocates what the file cannot hold.
    #[test]
    fn header_parser_never_panics(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
    ) {
        let mut b = fixture();
        let h = header_len(&b);
        for (i, v) in edits {
            let at = i.index(h);
            b[at] = v;
        }
        if do_cut {
            b.truncate(cut.index(b.len()));
        }
        let _ = GgufFile::parse(&b);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// The whole loader (config, binding, repacking) on mutated files: errors, never panics.
    #[test]
    fn loader_never_panics(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut b = fixture();
        let h = header_len(&b);
        for (i, v) in edits {
            let at = i.index(h);
            b[at] = v;
        }
        let _ = load(&b);
    }
}
