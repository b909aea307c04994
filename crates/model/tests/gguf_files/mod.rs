//! GGUF fixtures for the tests: the files llama.cpp's converter made from the golden
//! checkpoints (testdata/gguf/, scripts/gguf/), and a writer that re-emits a parsed file with
//! changes, for the damaged-file tests. The writer follows the GGUF v3 layout (little-endian,
//! u64 counts, 32-byte alignment); a file it writes from an unchanged parse loads like the
//! original (tested), so the damage is the only difference.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use gptoss_model::gguf::{GgmlType, GgufFile, MetaValue};

pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/gguf")
}

/// One tensor to write: name, row-major shape, ggml type id, bytes.
#[derive(Clone, Debug)]
pub struct OutTensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub ty: u32,
    pub data: Vec<u8>,
    /// Added to the data offset written in the tensor info (damage).
    pub offset_shift: u64,
}

pub struct Parts {
    pub version: u32,
    pub metadata: Vec<(String, MetaValue)>,
    pub tensors: Vec<OutTensor>,
}

fn type_id(t: GgmlType) -> u32 {
    match t {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q8_0 => 8,
        GgmlType::Bf16 => 30,
        GgmlType::Mxfp4 => 39,
        GgmlType::Other(id) => id,
    }
}

/// A parsed file's pieces (metadata sorted by key for a stable order).
pub fn split(bytes: &[u8]) -> Parts {
    let f = GgufFile::parse(bytes).expect("fixture parses");
    let mut metadata: Vec<(String, MetaValue)> = f.metadata.clone().into_iter().collect();
    metadata.sort_by(|a, b| a.0.cmp(&b.0));
    let tensors = f
        .tensors
        .iter()
        .map(|t| OutTensor {
            name: t.name.clone(),
            shape: t.shape.iter().map(|&d| d as u64).collect(),
            ty: type_id(t.ty),
            data: bytes[t.start..t.start + t.len].to_vec(),
            offset_shift: 0,
        })
        .collect();
    Parts {
        version: f.version,
        metadata,
        tensors,
    }
}

fn value_type(v: &MetaValue) -> u32 {
    match v {
        MetaValue::U8(_) => 0,
        MetaValue::I8(_) => 1,
        MetaValue::U16(_) => 2,
        MetaValue::I16(_) => 3,
        MetaValue::U32(_) => 4,
        MetaValue::I32(_) => 5,
        MetaValue::F32(_) => 6,
        MetaValue::Bool(_) => 7,
        MetaValue::String(_) => 8,
        MetaValue::Array(_) => 9,
        MetaValue::U64(_) => 10,
        MetaValue::I64(_) => 11,
        MetaValue::F64(_) => 12,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &MetaValue) {
    match v {
        MetaValue::U8(x) => out.push(*x),
        MetaValue::I8(x) => out.push(*x as u8),
        MetaValue::U16(x) => out.extend(x.to_le_bytes()),
        MetaValue::I16(x) => out.extend(x.to_le_bytes()),
        MetaValue::U32(x) => out.extend(x.to_le_bytes()),
        MetaValue::I32(x) => out.extend(x.to_le_bytes()),
        MetaValue::F32(x) => out.extend(x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(u8::from(*x)),
        MetaValue::String(s) => put_str(out, s),
        MetaValue::Array(a) => {
            let elem = a.first().map_or(4, value_type);
            out.extend(elem.to_le_bytes());
            out.extend((a.len() as u64).to_le_bytes());
            for x in a {
                put_value(out, x);
            }
        }
        MetaValue::U64(x) => out.extend(x.to_le_bytes()),
        MetaValue::I64(x) => out.extend(x.to_le_bytes()),
        MetaValue::F64(x) => out.extend(x.to_le_bytes()),
    }
}

/// Serializes `p` as a GGUF file.
pub fn join(p: &Parts) -> Vec<u8> {
    const ALIGN: usize = 32;
    let mut out = b"GGUF".to_vec();
    out.extend(p.version.to_le_bytes());
    out.extend((p.tensors.len() as u64).to_le_bytes());
    out.extend((p.metadata.len() as u64).to_le_bytes());
    for (k, v) in &p.metadata {
        put_str(&mut out, k);
        out.extend(value_type(v).to_le_bytes());
        put_value(&mut out, v);
    }
    let mut offset = 0usize;
    let mut offsets = vec![];
    for t in &p.tensors {
        put_str(&mut out, &t.name);
        out.extend((t.shape.len() as u32).to_le_bytes());
        for d in t.shape.iter().rev() {
            out.extend(d.to_le_bytes());
        }
        out.extend(t.ty.to_le_bytes());
        out.extend((offset as u64 + t.offset_shift).to_le_bytes());
        offsets.push(offset);
        offset = (offset + t.data.len()).div_ceil(ALIGN) * ALIGN;
    }
    out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
    let base = out.len();
    for (t, off) in p.tensors.iter().zip(offsets) {
        out.resize(base + off, 0);
        out.extend(&t.data);
    }
    out
}

/// Writes `bytes` as `name` in `dir` and returns the path.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}
