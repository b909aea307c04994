//! The model files people already have: resolving `--model NAME` through Ollama's manifest
//! store, and finding gpt-oss checkpoints in the Hugging Face cache, Ollama's store and LM
//! Studio's folders (`gpt-oss models`). Everything is read in place; nothing is copied.
//!
//! Layouts (as the tools write them):
//! - Ollama: `$OLLAMA_MODELS` (default `~/.ollama/models`)`/manifests/REGISTRY/NAMESPACE/NAME/TAG`
//!   is a JSON manifest whose layer of media type `application/vnd.ollama.image.model` names the
//!   GGUF blob by digest: `blobs/sha256-HEX`.
//! - Hugging Face: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`, holds
//!   `models--ORG--NAME/snapshots/REVISION/` folders (files are links into `blobs/`).
//! - LM Studio: `~/.lmstudio/models` and `~/.cache/lm-studio/models`, `PUBLISHER/MODEL/` folders
//!   holding GGUF (or safetensors) files.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Media type of the weights layer in an Ollama manifest.
const OLLAMA_MODEL_LAYER: &str = "application/vnd.ollama.image.model";

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// Ollama's models folder: `$OLLAMA_MODELS`, else `~/.ollama/models`.
pub fn ollama_root() -> Option<PathBuf> {
    match std::env::var_os("OLLAMA_MODELS").filter(|v| !v.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => home().map(|h| h.join(".ollama/models")),
    }
}

/// The Hugging Face hub cache folder.
pub fn hf_hub_root() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("HF_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p).join("hub"));
    }
    home().map(|h| h.join(".cache/huggingface/hub"))
}

/// LM Studio's model folders (both locations it has used).
pub fn lmstudio_roots() -> Vec<PathBuf> {
    home()
        .map(|h| {
            vec![
                h.join(".lmstudio/models"),
                h.join(".cache/lm-studio/models"),
            ]
        })
        .unwrap_or_default()
}

/// An Ollama model reference `[REGISTRY/][NAMESPACE/]NAME[:TAG]` split into its manifest path
/// parts, or None when `s` cannot be one (empty parts, `..`, more than three path segments).
fn ollama_ref(s: &str) -> Option<(String, String, String, String)> {
    let (path, tag) = match s.rsplit_once(':') {
        Some((p, t)) if !t.contains('/') => (p, t),
        _ => (s, "latest"),
    };
    let parts: Vec<&str> = path.split('/').collect();
    let ok = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    };
    if !parts.iter().all(|p| ok(p)) || !ok(tag) {
        return None;
    }
    let (registry, namespace, name) = match parts[..] {
        [name] => ("registry.ollama.ai", "library", name),
        [ns, name] => ("registry.ollama.ai", ns, name),
        [reg, ns, name] => (reg, ns, name),
        _ => return None,
    };
    Some((
        registry.to_string(),
        namespace.to_string(),
        name.to_string(),
        tag.to_string(),
    ))
}

/// The weights blob an Ollama manifest points at, with its size from the manifest.
fn ollama_blob(root: &Path, manifest: &Path) -> anyhow::Result<(PathBuf, u64)> {
    let text = std::fs::read(manifest)
        .with_context(|| format!("cannot read the Ollama manifest {}", manifest.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&text)
        .with_context(|| format!("the Ollama manifest {} is not JSON", manifest.display()))?;
    let layer = v["layers"]
        .as_array()
        .and_then(|ls| {
            ls.iter()
                .find(|l| l["mediaType"].as_str() == Some(OLLAMA_MODEL_LAYER))
        })
        .with_context(|| {
            format!(
                "the Ollama manifest {} has no model layer ({OLLAMA_MODEL_LAYER})",
                manifest.display()
            )
        })?;
    let digest = layer["digest"].as_str().unwrap_or_default();
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()));
    let Some(hex) = hex else {
        anyhow::bail!(
            "the Ollama manifest {} has a model layer with digest {digest:?}",
            manifest.display()
        );
    };
    let blob = root.join("blobs").join(format!("sha256-{hex}"));
    Ok((blob, layer["size"].as_u64().unwrap_or(0)))
}

/// Where `--model ARG` points: the path itself when it exists, else the GGUF blob of the Ollama
/// model named ARG (`gpt-oss:20b`) in `$OLLAMA_MODELS` / `~/.ollama/models`.
pub fn resolve(arg: &Path) -> anyhow::Result<PathBuf> {
    if arg.exists() {
        return Ok(arg.to_path_buf());
    }
    let text = arg.to_string_lossy();
    let Some((reg, ns, name, tag)) = ollama_ref(&text) else {
        anyhow::bail!("{} does not exist", arg.display());
    };
    let Some(root) = ollama_root() else {
        anyhow::bail!(
            "{} does not exist, and there is no Ollama store to look in (set OLLAMA_MODELS)",
            arg.display()
        );
    };
    let manifest = root
        .join("manifests")
        .join(&reg)
        .join(&ns)
        .join(&name)
        .join(&tag);
    if !manifest.is_file() {
        anyhow::bail!(
            "{} is not a file or folder, nor an Ollama model in {} (no manifest {}); \
             `gpt-oss models` lists the models found on this machine",
            arg.display(),
            root.display(),
            manifest.display()
        );
    }
    let (blob, _) = ollama_blob(&root, &manifest)?;
    if !blob.is_file() {
        anyhow::bail!(
            "the Ollama model {text} points at {}, which is missing (was `ollama pull` interrupted?)",
            blob.display()
        );
    }
    Ok(blob)
}

/// One model found on this machine.
#[derive(Debug, serde::Serialize)]
pub struct Found {
    /// `huggingface`, `ollama` or `lmstudio`.
    pub source: &'static str,
    /// The name the tool knows it by (`openai/gpt-oss-20b`, `gpt-oss:20b`, a file name).
    pub name: String,
    /// `gguf` or `safetensors`.
    pub format: &'static str,
    pub bytes: u64,
    /// What to pass to `--model`.
    pub model_arg: String,
}

fn is_gpt_oss(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("gpt-oss") || n.contains("gpt_oss") || n.contains("gptoss")
}

/// Files of `dir` (not recursive) with `ext`, sorted.
fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case(ext)))
        .collect();
    v.sort();
    v
}

fn size_of(files: &[PathBuf]) -> u64 {
    // metadata() follows the cache's links to the blobs.
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// A folder's models: each GGUF file on its own, or the folder's safetensors as one
/// checkpoint (looking into `original/` too, as `Model::load` does).
fn folder_models(source: &'static str, name: &str, dir: &Path, out: &mut Vec<Found>) {
    for g in files_with(dir, "gguf") {
        out.push(Found {
            source,
            name: format!(
                "{name}/{}",
                g.file_name()
                    .map(|f| f.to_string_lossy())
                    .unwrap_or_default()
            ),
            format: "gguf",
            bytes: size_of(std::slice::from_ref(&g)),
            model_arg: g.display().to_string(),
        });
    }
    let st = files_with(dir, "safetensors");
    if !st.is_empty() && dir.join("config.json").is_file() {
        out.push(Found {
            source,
            name: name.to_string(),
            format: "safetensors",
            bytes: size_of(&st),
            model_arg: dir.display().to_string(),
        });
    } else if dir.join("original").is_dir() {
        folder_models(
            source,
            &format!("{name}/original"),
            &dir.join("original"),
            out,
        );
    }
}

/// Every gpt-oss model in the Hugging Face cache, Ollama's store and LM Studio's folders.
pub fn discover() -> Vec<Found> {
    let mut out = vec![];
    if let Some(hub) = hf_hub_root() {
        for repo in subdirs(&hub) {
            let dir_name = repo
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default();
            let Some(id) = dir_name.strip_prefix("models--") else {
                continue;
            };
            let id = id.replace("--", "/");
            if !is_gpt_oss(&id) {
                continue;
            }
            // The newest snapshot (by modification time) is the one a fresh download made.
            let snap = subdirs(&repo.join("snapshots"))
                .into_iter()
                .max_by_key(|s| {
                    std::fs::metadata(s)
                        .and_then(|m| m.modified())
                        .unwrap_or(std::time::SystemTime::UNIX_EPOCH)
                });
            if let Some(snap) = snap {
                folder_models("huggingface", &id, &snap, &mut out);
            }
        }
    }
    if let Some(root) = ollama_root() {
        let manifests = root.join("manifests");
        for reg in subdirs(&manifests) {
            for ns in subdirs(&reg) {
                for model in subdirs(&ns) {
                    let model_name = model
                        .file_name()
                        .map(|f| f.to_string_lossy().to_string())
                        .unwrap_or_default();
                    if !is_gpt_oss(&model_name) {
                        continue;
                    }
                    for tag in std::fs::read_dir(&model).into_iter().flatten().flatten() {
                        let tag_path = tag.path();
                        let tag_name = tag.file_name().to_string_lossy().to_string();
                        let Ok((blob, size)) = ollama_blob(&root, &tag_path) else {
                            continue;
                        };
                        let bytes = std::fs::metadata(&blob).map(|m| m.len()).unwrap_or(size);
                        let reg_name = reg.file_name().map(|f| f.to_string_lossy().to_string());
                        let ns_name = ns.file_name().map(|f| f.to_string_lossy().to_string());
                        let name = match (reg_name.as_deref(), ns_name.as_deref()) {
                            (Some("registry.ollama.ai"), Some("library")) => {
                                format!("{model_name}:{tag_name}")
                            }
                            (Some("registry.ollama.ai"), Some(ns)) => {
                                format!("{ns}/{model_name}:{tag_name}")
                            }
                            (Some(r), Some(ns)) => format!("{r}/{ns}/{model_name}:{tag_name}"),
                            _ => continue,
                        };
                        out.push(Found {
                            source: "ollama",
                            model_arg: name.clone(),
                            name,
                            format: "gguf",
                            bytes,
                        });
                    }
                }
            }
        }
    }
    for root in lmstudio_roots() {
        for publisher in subdirs(&root) {
            for model in subdirs(&publisher) {
                let name = format!(
                    "{}/{}",
                    publisher.file_name().unwrap_or_default().to_string_lossy(),
                    model.file_name().unwrap_or_default().to_string_lossy()
                );
                if is_gpt_oss(&name) {
                    folder_models("lmstudio", &name, &model, &mut out);
                }
            }
        }
    }
    out
}

/// `1.2 GB`-style size.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_references() {
        let r = |s: &str| ollama_ref(s).map(|(a, b, c, d)| format!("{a}/{b}/{c}/{d}"));
        assert_eq!(
            r("gpt-oss:20b").as_deref(),
            Some("registry.ollama.ai/library/gpt-oss/20b")
        );
        assert_eq!(
            r("gpt-oss").as_deref(),
            Some("registry.ollama.ai/library/gpt-oss/latest")
        );
        assert_eq!(
            r("me/gpt-oss:q8").as_deref(),
            Some("registry.ollama.ai/me/gpt-oss/q8")
        );
        assert_eq!(r("../etc:passwd"), None);
        assert_eq!(r("/abs/path"), None);
        assert_eq!(r("a/b/c/d"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(13_761_000_000), "13.8 GB");
    }
}
