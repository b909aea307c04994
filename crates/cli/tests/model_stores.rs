//! `--model` with the files other tools keep, end to end through the binary: an Ollama model
//! name resolved through a manifest store laid out as Ollama writes it (real files in a temp
//! dir, the blob a GGUF made by llama.cpp's converter), a `.gguf` file and a folder holding
//! one, a GGUF whose tokenizer is not ours, and `gpt-oss models` over a fake home with a
//! Hugging Face cache, an Ollama store and an LM Studio folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn gguf_fixture() -> Vec<u8> {
    std::fs::read(testdata().join("gguf/tiny-2of4-bf16.gguf")).unwrap()
}

/// The binary with a clean environment for model discovery: `home` as HOME, no HF/Ollama
/// overrides.
fn bin(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gpt-oss"));
    c.env("HOME", home)
        .env_remove("OLLAMA_MODELS")
        .env_remove("HF_HOME")
        .env_remove("HF_HUB_CACHE");
    c
}

fn generate(home: &Path, model: &str) -> Output {
    bin(home)
        .args([
            "generate",
            "--device",
            "cpu",
            "--temperature",
            "0",
            "--max-tokens",
            "6",
            "--tokens",
            "1,2,3,4",
        ])
        .args(["--model", model])
        .output()
        .unwrap()
}

fn ok_stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// An Ollama store under `root` holding `bytes` as model `library/NAME:TAG`.
fn ollama_store(root: &Path, name: &str, tag: &str, bytes: &[u8]) -> PathBuf {
    let manifest_dir = root.join("manifests/registry.ollama.ai/library").join(name);
    std::fs::create_dir_all(&manifest_dir).unwrap();
    std::fs::create_dir_all(root.join("blobs")).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111", "size": 10},
        "layers": [
            {"mediaType": "application/vnd.ollama.image.template",
             "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222", "size": 5},
            {"mediaType": "application/vnd.ollama.image.model",
             "digest": format!("sha256:{HEX}"), "size": bytes.len()},
        ]
    });
    std::fs::write(manifest_dir.join(tag), manifest.to_string()).unwrap();
    let blob = root.join(format!("blobs/sha256-{HEX}"));
    std::fs::write(&blob, bytes).unwrap();
    blob
}

#[test]
fn ollama_name_gguf_file_and_folder_give_the_safetensors_tokens() {
    let home = tempfile::tempdir().unwrap();
    let store = home.path().join("ollama-models");
    ollama_store(&store, "gpt-oss", "tiny", &gguf_fixture());
    // The same weights as safetensors (the bf16 GGUF is bit-identical, gguf_golden.rs).
    let reference = ok_stdout(&generate(
        home.path(),
        testdata().join("model/tiny-2of4/hf").to_str().unwrap(),
    ));
    let by_name = bin(home.path())
        .env("OLLAMA_MODELS", &store)
        .args([
            "generate",
            "--device",
            "cpu",
            "--temperature",
            "0",
            "--max-tokens",
            "6",
            "--tokens",
            "1,2,3,4",
        ])
        .args(["--model", "gpt-oss:tiny"])
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&by_name), reference);
    // Without OLLAMA_MODELS the default store is ~/.ollama/models.
    ollama_store(
        &home.path().join(".ollama/models"),
        "gpt-oss",
        "tiny",
        &gguf_fixture(),
    );
    assert_eq!(ok_stdout(&generate(home.path(), "gpt-oss:tiny")), reference);

    let file = testdata().join("gguf/tiny-2of4-bf16.gguf");
    assert_eq!(
        ok_stdout(&generate(home.path(), file.to_str().unwrap())),
        reference
    );
    let folder = home.path().join("one-gguf");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("model.gguf"), gguf_fixture()).unwrap();
    assert_eq!(
        ok_stdout(&generate(home.path(), folder.to_str().unwrap())),
        reference
    );
}

#[test]
fn unknown_ollama_name_says_where_it_looked() {
    let home = tempfile::tempdir().unwrap();
    let o = generate(home.path(), "gpt-oss:999b");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Ollama"), "{err}");
    assert!(
        err.contains("manifests/registry.ollama.ai/library/gpt-oss/999b"),
        "{err}"
    );
    assert!(err.contains("gpt-oss models"), "{err}");
}

#[test]
fn a_different_tokenizer_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let mut b = gguf_fixture();
    // Token 0 of o200k is "!": make it "#" (the first one-byte string after the tokens key).
    let key = b"tokenizer.ggml.tokens";
    let at = b.windows(key.len()).position(|w| w == key).unwrap();
    let tok0 = at + key.len() + 4 + 4 + 8 + 8;
    assert_eq!(b[tok0], b'!');
    b[tok0] = b'#';
    let p = home.path().join("other-tokenizer.gguf");
    std::fs::write(&p, &b).unwrap();
    let o = generate(home.path(), p.to_str().unwrap());
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("tokenizer is not o200k_harmony"), "{err}");
    assert!(err.contains("token 0"), "{err}");
}

#[test]
fn models_lists_hf_ollama_and_lmstudio() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // Hugging Face cache: snapshot files are links into blobs/.
    let repo = h.join(".cache/huggingface/hub/models--openai--gpt-oss-20b");
    let snap = repo.join("snapshots/abc123");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::write(repo.join("blobs/b1"), vec![0u8; 3000]).unwrap();
    std::os::unix::fs::symlink(
        repo.join("blobs/b1"),
        snap.join("model-00000-of-00001.safetensors"),
    )
    .unwrap();
    std::fs::write(snap.join("config.json"), "{}").unwrap();
    // Not gpt-oss: not listed.
    std::fs::create_dir_all(h.join(".cache/huggingface/hub/models--other--llama/snapshots/x"))
        .unwrap();
    ollama_store(&h.join(".ollama/models"), "gpt-oss", "20b", &gguf_fixture());
    let lm = h.join(".lmstudio/models/lmstudio-community/gpt-oss-20b-GGUF");
    std::fs::create_dir_all(&lm).unwrap();
    std::fs::write(lm.join("gpt-oss-20b-MXFP4.gguf"), gguf_fixture()).unwrap();

    let o = bin(h).args(["models", "--json"]).output().unwrap();
    let list: serde_json::Value = serde_json::from_str(&ok_stdout(&o)).unwrap();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{list:#}");
    let find = |src: &str| rows.iter().find(|r| r["source"] == src).unwrap().clone();
    let hf = find("huggingface");
    assert_eq!(hf["name"], "openai/gpt-oss-20b");
    assert_eq!(hf["format"], "safetensors");
    assert_eq!(hf["bytes"], 3000);
    assert_eq!(hf["model_arg"], snap.to_str().unwrap());
    let ol = find("ollama");
    assert_eq!(ol["name"], "gpt-oss:20b");
    assert_eq!(ol["model_arg"], "gpt-oss:20b");
    assert_eq!(ol["bytes"], gguf_fixture().len());
    let ls = find("lmstudio");
    assert_eq!(ls["format"], "gguf");
    assert!(ls["model_arg"]
        .as_str()
        .unwrap()
        .ends_with("gpt-oss-20b-MXFP4.gguf"));

    // The table names the same things, and the Ollama name it prints loads.
    let table = ok_stdout(&bin(h).arg("models").output().unwrap());
    assert!(
        table.contains("gpt-oss:20b") && table.contains("openai/gpt-oss-20b"),
        "{table}"
    );
    ok_stdout(&generate(h, "gpt-oss:20b"));

    // HF_HOME moves the cache.
    let other = tempfile::tempdir().unwrap();
    let o = bin(other.path())
        .env("HF_HOME", h.join(".cache/huggingface"))
        .args(["models", "--json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(&ok_stdout(&o)).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list:#}");
}
