//! Checkpoint files: finding them in a folder, memory-mapping them, and indexing their safetensors
//! headers (name -> file, dtype, shape, byte range). Tensor data is never copied here, except a
//! tensor whose bytes are not aligned for its element type (then once, into an aligned buffer).
//! What the tensors mean is `weights.rs`'s business.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensorError, SafeTensors};

use crate::error::LoadError;

/// Bytes of one checkpoint file: a read-only map, or an owned 8-byte-aligned copy.
pub(crate) enum Blob {
    Mapped(Mmap),
    Owned { words: Vec<u64>, len: usize },
}

impl Blob {
    /// Copies `bytes` into an 8-byte-aligned buffer.
    pub(crate) fn owned(bytes: &[u8]) -> Blob {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Blob::Owned {
            words,
            len: bytes.len(),
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Blob::Mapped(m) => m,
            Blob::Owned { words, len } => &bytemuck::cast_slice::<u64, u8>(words)[..*len],
        }
    }
}

/// Where one tensor lives.
#[derive(Clone, Debug)]
pub(crate) struct TensorEntry {
    pub blob: usize,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Absolute byte range inside the blob.
    pub start: usize,
    pub end: usize,
}

/// All tensors of a checkpoint, by name.
pub(crate) struct Store {
    pub blobs: Vec<Blob>,
    pub blob_names: Vec<String>,
    pub tensors: HashMap<String, TensorEntry>,
}

impl Store {
    pub(crate) fn new() -> Store {
        Store {
            blobs: vec![],
            blob_names: vec![],
            tensors: HashMap::new(),
        }
    }

    /// Adds one safetensors file's bytes and indexes its header.
    pub(crate) fn add(&mut self, name: String, blob: Blob) -> Result<(), LoadError> {
        let bytes = blob.bytes();
        let file_len = bytes.len();
        let trunc = |problem: String| LoadError::Truncated {
            file: name.clone(),
            problem,
        };
        let bad = |problem: String| LoadError::BadHeader {
            file: name.clone(),
            problem,
        };
        if file_len < 8 {
            return Err(trunc(format!(
                "{file_len} bytes, shorter than the 8-byte header length"
            )));
        }
        let mut len8 = [0u8; 8];
        len8.copy_from_slice(&bytes[..8]);
        let header_len = u64::from_le_bytes(len8);
        if header_len > 100_000_000 {
            return Err(bad(format!("header length {header_len} is implausible")));
        }
        if 8 + header_len as usize > file_len {
            return Err(trunc(format!(
                "header needs {} bytes but the file has {file_len}",
                8 + header_len
            )));
        }
        let (n, metadata) = match SafeTensors::read_metadata(bytes) {
            Ok(x) => x,
            Err(SafeTensorError::MetadataIncompleteBuffer) => {
                // Recompute what the header promises to say by how much the file is short/long.
                return Err(trunc(format!(
                    "the header describes tensor data that does not match the file length {file_len}"
                )));
            }
            Err(e) => return Err(bad(describe(&e))),
        };
        let data_start = 8 + n;
        let blob_idx = self.blobs.len();
        for (tname, info) in metadata.tensors() {
            let (s, e) = info.data_offsets;
            let entry = TensorEntry {
                blob: blob_idx,
                dtype: info.dtype,
                shape: info.shape.clone(),
                start: data_start + s,
                end: data_start + e,
            };
            if let Some(prev) = self.tensors.insert(tname.clone(), entry) {
                let other = self
                    .blob_names
                    .get(prev.blob)
                    .map_or("another file", |s| s.as_str());
                return Err(bad(format!("tensor `{tname}` also appears in {other}")));
            }
        }
        self.blobs.push(blob);
        self.blob_names.push(name);
        Ok(())
    }

    /// Makes sure `name`'s bytes are aligned to `align`; copies it into its own buffer if not.
    pub(crate) fn ensure_aligned(&mut self, name: &str, align: usize) {
        let Some(entry) = self.tensors.get(name) else {
            return;
        };
        let bytes = &self.blobs[entry.blob].bytes()[entry.start..entry.end];
        if (bytes.as_ptr() as usize).is_multiple_of(align) {
            return;
        }
        let copy = Blob::owned(bytes);
        let new_idx = self.blobs.len();
        let file = format!("{} (aligned copy)", self.blob_names[entry.blob]);
        let len = entry.end - entry.start;
        self.blobs.push(copy);
        self.blob_names.push(file);
        if let Some(e) = self.tensors.get_mut(name) {
            e.blob = new_idx;
            e.start = 0;
            e.end = len;
        }
    }

    pub(crate) fn bytes(&self, blob: usize, start: usize, end: usize) -> &[u8] {
        &self.blobs[blob].bytes()[start..end]
    }

    /// Drops `t`'s pages from this process's resident memory when its blob is a file mapping
    /// (the whole pages inside its byte range); the next read of them faults them back in from
    /// the file. Owned blobs are left as they are. Best effort: a failed advice changes nothing.
    pub(crate) fn release(&self, t: &crate::weights::DenseRef) {
        self.release_range(t.blob, t.start, t.byte_len());
    }

    /// As [`Store::release`], for the bytes `start .. start + len` of blob `blob`.
    pub(crate) fn release_range(&self, blob: usize, start: usize, len: usize) {
        let Blob::Mapped(m) = &self.blobs[blob] else {
            return;
        };
        const PAGE: usize = 4096;
        let end = start + len;
        let (first, last) = (start.div_ceil(PAGE) * PAGE, end / PAGE * PAGE);
        if last > first {
            // SAFETY: the map is a read-only MAP_SHARED file mapping (`map_file`), so after
            // MADV_DONTNEED the next access reads the same bytes back from the file (the loader's
            // standing assumption that the file is not rewritten while mapped); no reference
            // into the range is written through, and nothing else depends on the pages staying.
            let _ = unsafe {
                m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, first, last - first)
            };
        }
    }
}

fn describe(e: &SafeTensorError) -> String {
    match e {
        SafeTensorError::InvalidHeader(_) => "header is not UTF-8".into(),
        SafeTensorError::InvalidHeaderDeserialization(j) => {
            format!("header is not valid JSON: {j}")
        }
        SafeTensorError::InvalidOffset(t) => format!("tensor `{t}` has invalid data offsets"),
        SafeTensorError::TensorInvalidInfo => {
            "a tensor's shape and dtype disagree with its data offsets".into()
        }
        SafeTensorError::ValidationOverflow => "a tensor's shape overflows".into(),
        other => format!("{other:?}"),
    }
}

/// The files that make up a checkpoint folder.
pub(crate) struct CheckpointFiles {
    pub config: PathBuf,
    pub safetensors: Vec<PathBuf>,
}

/// Resolves `path` to a checkpoint folder: itself if it holds config.json, else its `original/`
/// subfolder; a path to a file means its folder.
pub(crate) fn find_files(path: &Path) -> Result<CheckpointFiles, LoadError> {
    let meta = std::fs::metadata(path).map_err(|e| LoadError::Io {
        path: path.into(),
        source: e,
    })?;
    let dir = if meta.is_file() {
        path.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    } else {
        path.to_path_buf()
    };
    let dir = if dir.join("config.json").is_file() {
        dir
    } else if dir.join("original").join("config.json").is_file() {
        dir.join("original")
    } else {
        return Err(LoadError::MissingFiles {
            dir,
            problem: "no config.json here nor in original/ (expected an `original/` folder or a \
                      Hugging Face folder with config.json and *.safetensors)"
                .into(),
        });
    };
    let index = dir.join("model.safetensors.index.json");
    let mut files: Vec<PathBuf> = vec![];
    if index.is_file() {
        let text = std::fs::read(&index).map_err(|e| LoadError::Io {
            path: index.clone(),
            source: e,
        })?;
        let v: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| LoadError::BadHeader {
                file: index.display().to_string(),
                problem: format!("not valid JSON: {e}"),
            })?;
        let Some(map) = v.get("weight_map").and_then(|m| m.as_object()) else {
            return Err(LoadError::BadHeader {
                file: index.display().to_string(),
                problem: "no `weight_map` object".into(),
            });
        };
        let mut names: Vec<&str> = map.values().filter_map(|f| f.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(LoadError::MissingFiles {
                dir,
                problem: format!(
                    "model.safetensors.index.json lists missing shard(s): {}",
                    missing.join(", ")
                ),
            });
        }
        files.extend(names.iter().map(|f| dir.join(f)));
    } else {
        let rd = std::fs::read_dir(&dir).map_err(|e| LoadError::Io {
            path: dir.clone(),
            source: e,
        })?;
        for entry in rd {
            let entry = entry.map_err(|e| LoadError::Io {
                path: dir.clone(),
                source: e,
            })?;
            let p = entry.path();
            if p.extension().is_some_and(|x| x == "safetensors") && p.is_file() {
                files.push(p);
            }
        }
        files.sort();
    }
    if files.is_empty() {
        return Err(LoadError::MissingFiles {
            dir,
            problem: "config.json is there but no *.safetensors weight files".into(),
        });
    }
    Ok(CheckpointFiles {
        config: dir.join("config.json"),
        safetensors: files,
    })
}

/// The GGUF file `path` means, if any: `path` itself when it is a file starting with the GGUF
/// magic (Ollama's blobs have no extension), or the one `*.gguf` file of a folder that holds no
/// config.json (neither here nor in `original/`). A folder with several GGUF files is an error
/// naming them; split GGUFs (`-00001-of-00003.gguf`) are not supported.
pub(crate) fn find_gguf(path: &Path) -> Result<Option<PathBuf>, LoadError> {
    let io = |e| LoadError::Io {
        path: path.into(),
        source: e,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        let mut magic = [0u8; 4];
        let mut f = File::open(path).map_err(io)?;
        let n = std::io::Read::read(&mut f, &mut magic).map_err(io)?;
        let named = path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("gguf"));
        return Ok((named || crate::gguf::has_magic(&magic[..n])).then(|| path.to_path_buf()));
    }
    if path.join("config.json").is_file() || path.join("original").join("config.json").is_file() {
        return Ok(None);
    }
    let mut found: Vec<PathBuf> = vec![];
    for entry in std::fs::read_dir(path).map_err(io)? {
        let p = entry.map_err(io)?.path();
        if p.is_file()
            && p.extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("gguf"))
        {
            found.push(p);
        }
    }
    found.sort();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(LoadError::MissingFiles {
            dir: path.into(),
            problem: format!(
                "it holds {} GGUF files ({}); pass the one to load with --model FILE                  (split GGUF files are not supported)",
                found.len(),
                found
                    .iter()
                    .filter_map(|p| p.file_name()?.to_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// Maps one file read-only.
pub(crate) fn map_file(path: &Path) -> Result<Blob, LoadError> {
    let f = File::open(path).map_err(|e| LoadError::Io {
        path: path.into(),
        source: e,
    })?;
    let len = f
        .metadata()
        .map_err(|e| LoadError::Io {
            path: path.into(),
            source: e,
        })?
        .len();
    if len < 8 {
        // Mapping an empty file fails on some systems; report what is wrong instead.
        return Err(LoadError::Truncated {
            file: display_name(path),
            problem: format!("{len} bytes, shorter than the 8-byte header length"),
        });
    }
    // SAFETY: the map is read-only and private to this process; like every mmap-based loader we
    // rely on the checkpoint file not being truncated or rewritten while the model is loaded.
    let m = unsafe { Mmap::map(&f) }.map_err(|e| LoadError::Io {
        path: path.into(),
        source: e,
    })?;
    Ok(Blob::Mapped(m))
}

pub(crate) fn dtype_name(d: Dtype) -> String {
    format!("{d:?}")
}

pub(crate) fn display_name(path: &Path) -> String {
    path.display().to_string()
}
