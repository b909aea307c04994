//! The GGUF container (llama.cpp's single-file format, versions 2 and 3): header, metadata
//! key/values, tensor infos and the aligned data section, parsed from the bytes of a memory map.
//! Nothing here knows gpt-oss; `gguf_load.rs` maps the names onto the model.
//!
//! Why our own parser rather than a crate: the format is small (a few hundred lines here) and we
//! need exactly three things a crate would have to give us — zero-copy byte ranges inside our own
//! `memmap2` map (so MXFP4 experts stay in the page cache), the MXFP4 type id (39, added to ggml
//! in 2025), and an error per damage that names the tensor or key instead of a panic. candle's
//! `candle_core::quantized::gguf_file` reads through `io::Read + Seek` into its own tensor
//! types and brings the whole candle tensor stack (gemm, its own dtypes) as a dependency;
//! `gguf` 0.1.2 (2023, unmaintained) and `gguf-rs` read through `io::Read` and know neither
//! MXFP4 nor our error contract. Every length read from the file is checked against the bytes
//! left before anything is allocated, so a damaged header cannot ask for a huge allocation
//! (property-tested in `tests/gguf_errors.rs`).

use std::collections::HashMap;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<MetaValue>),
}

impl MetaValue {
    /// An integer value of any width, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A number of any type as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            MetaValue::I8(v) => Some(v.into()),
            MetaValue::I16(v) => Some(v.into()),
            MetaValue::I32(v) => Some(v.into()),
            MetaValue::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// ggml tensor types, by their on-disk id (ggml.h `enum ggml_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    Q8_0,
    Bf16,
    /// ggml's MXFP4 block: one E8M0 scale byte, then 16 bytes of E2M1 pairs (byte j: element j
    /// in the low nibble, element j + 16 in the high one).
    Mxfp4,
    /// Any other id (K-quants, I-quants, integer types, ...): not loadable, named in errors.
    Other(u32),
}

impl GgmlType {
    pub fn from_id(id: u32) -> GgmlType {
        match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            8 => GgmlType::Q8_0,
            30 => GgmlType::Bf16,
            39 => GgmlType::Mxfp4,
            other => GgmlType::Other(other),
        }
    }

    /// (elements per block, bytes per block); None for types we do not read.
    pub fn block(self) -> Option<(usize, usize)> {
        match self {
            GgmlType::F32 => Some((1, 4)),
            GgmlType::F16 | GgmlType::Bf16 => Some((1, 2)),
            GgmlType::Q8_0 => Some((32, 34)),
            GgmlType::Mxfp4 => Some((32, 17)),
            GgmlType::Other(_) => None,
        }
    }

    /// ggml's name of the type (`Q4_K`, ...), for error messages.
    pub fn name(self) -> String {
        const NAMES: [&str; 40] = [
            "F32",
            "F16",
            "Q4_0",
            "Q4_1",
            "Q4_2",
            "Q4_3",
            "Q5_0",
            "Q5_1",
            "Q8_0",
            "Q8_1",
            "Q2_K",
            "Q3_K",
            "Q4_K",
            "Q5_K",
            "Q6_K",
            "Q8_K",
            "IQ2_XXS",
            "IQ2_XS",
            "IQ3_XXS",
            "IQ1_S",
            "IQ4_NL",
            "IQ3_S",
            "IQ2_S",
            "IQ4_XS",
            "I8",
            "I16",
            "I32",
            "I64",
            "F64",
            "IQ1_M",
            "BF16",
            "Q4_0_4_4",
            "Q4_0_4_8",
            "Q4_0_8_8",
            "TQ1_0",
            "TQ2_0",
            "IQ4_NL_4_4",
            "IQ4_NL_4_8",
            "IQ4_NL_8_8",
            "MXFP4",
        ];
        let id = match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q8_0 => 8,
            GgmlType::Bf16 => 30,
            GgmlType::Mxfp4 => 39,
            GgmlType::Other(id) => id,
        };
        match NAMES.get(id as usize) {
            Some(n) => (*n).to_string(),
            None => format!("type {id}"),
        }
    }
}

/// One tensor's description and where its bytes lie in the file.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    /// Row-major shape (GGUF stores the fastest dimension first; this is reversed).
    pub shape: Vec<usize>,
    pub ty: GgmlType,
    /// Absolute byte offset in the file.
    pub start: usize,
    /// Bytes the tensor spans (0 for types we do not read: they are rejected when bound).
    pub len: usize,
}

/// A parsed GGUF file (the bytes stay in the caller's map).
#[derive(Debug)]
pub struct GgufFile {
    pub version: u32,
    pub metadata: HashMap<String, MetaValue>,
    pub tensors: Vec<TensorInfo>,
    pub by_name: HashMap<String, usize>,
}

/// What is wrong with a GGUF file's structure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GgufError {
    #[error("not a GGUF file (magic {0:02x?}, expected \"GGUF\")")]
    BadMagic([u8; 4]),
    #[error("GGUF version {0} is not supported (2 or 3)")]
    Version(u32),
    #[error("the file ends {0}")]
    Truncated(String),
    #[error("{0}")]
    Header(String),
    #[error("tensor `{name}` lies outside the file: bytes {start}..{end} of {file_len}")]
    OutOfBounds {
        name: String,
        start: u64,
        end: u64,
        file_len: usize,
    },
}

/// Largest dimension count ggml supports.
const MAX_DIMS: u32 = 4;
/// Deepest array nesting accepted (gguf writers emit flat arrays; this stops a crafted file).
const MAX_NESTING: u32 = 2;

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], GgufError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(GgufError::Truncated(format!(
                "inside {what} (needs {n} bytes at offset {}, the file has {})",
                self.pos,
                self.bytes.len()
            ))),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count that promises at least `min_each` bytes per item: more than the bytes left is
    /// damage, caught before any allocation.
    fn count(&mut self, min_each: usize, what: &str) -> Result<usize, GgufError> {
        let n = self.u64(what)?;
        let left = (self.bytes.len() - self.pos) as u64;
        if n.saturating_mul(min_each.max(1) as u64) > left {
            return Err(GgufError::Truncated(format!(
                "inside {what}: it promises {n} items, more than the {left} bytes left"
            )));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let n = self.count(1, what)?;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| GgufError::Header(format!("{what} is not UTF-8")))
    }

    fn value(&mut self, ty: u32, what: &str, depth: u32) -> Result<MetaValue, GgufError> {
        Ok(match ty {
            0 => MetaValue::U8(self.array::<1>(what)?[0]),
            1 => MetaValue::I8(self.array::<1>(what)?[0] as i8),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(what)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(what)?)),
            4 => MetaValue::U32(self.u32(what)?),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(what)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(what)?)),
            7 => match self.array::<1>(what)?[0] {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                b => return Err(GgufError::Header(format!("{what}: bool byte {b}"))),
            },
            8 => MetaValue::String(self.string(what)?),
            9 => {
                if depth >= MAX_NESTING {
                    return Err(GgufError::Header(format!("{what}: arrays nested too deep")));
                }
                let elem = self.u32(what)?;
                let min = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8..=12 => 8,
                    _ => {
                        return Err(GgufError::Header(format!(
                            "{what}: unknown array element type {elem}"
                        )))
                    }
                };
                let n = self.count(min, what)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.value(elem, what, depth + 1)?);
                }
                MetaValue::Array(v)
            }
            10 => MetaValue::U64(self.u64(what)?),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(what)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(what)?)),
            other => {
                return Err(GgufError::Header(format!(
                    "{what}: unknown value type {other}"
                )))
            }
        })
    }
}

impl GgufFile {
    /// Parses the header of `bytes` (a whole file) and checks every tensor of a type we read lies
    /// inside it. Never panics on any input.
    pub fn parse(bytes: &[u8]) -> Result<GgufFile, GgufError> {
        let mut r = Reader { bytes, pos: 0 };
        let magic: [u8; 4] = r.array("the magic")?;
        if &magic != b"GGUF" {
            return Err(GgufError::BadMagic(magic));
        }
        let version = r.u32("the version")?;
        if version != 2 && version != 3 {
            return Err(GgufError::Version(version));
        }
        // Minimum bytes per tensor info: name length 8, dims 4, one dim 8, type 4, offset 8.
        let n_tensors = r.count(32, "the tensor count")?;
        let n_kv = r.count(13, "the metadata count")?;
        let mut metadata = HashMap::new();
        for i in 0..n_kv {
            let key = r.string(&format!("metadata key {i}"))?;
            let ty = r.u32(&format!("the type of metadata `{key}`"))?;
            let v = r.value(ty, &format!("metadata `{key}`"), 0)?;
            if metadata.insert(key.clone(), v).is_some() {
                return Err(GgufError::Header(format!("metadata `{key}` appears twice")));
            }
        }
        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a as usize,
                _ => {
                    return Err(GgufError::Header(format!(
                        "general.alignment {v:?} is not a power of two"
                    )))
                }
            },
        };
        let mut raw = Vec::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let name = r.string(&format!("the name of tensor {i}"))?;
            let what = format!("the info of tensor `{name}`");
            let n_dims = r.u32(&what)?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(GgufError::Header(format!(
                    "tensor `{name}` has {n_dims} dimensions (1 to {MAX_DIMS})"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(r.u64(&what)?);
            }
            let ty = GgmlType::from_id(r.u32(&what)?);
            let offset = r.u64(&what)?;
            raw.push((name, dims, ty, offset));
        }
        let data_start = r.pos.div_ceil(alignment) * alignment;
        let mut tensors = Vec::with_capacity(raw.len());
        let mut by_name = HashMap::new();
        for (name, dims, ty, offset) in raw {
            if !offset.is_multiple_of(alignment as u64) {
                return Err(GgufError::Header(format!(
                    "tensor `{name}` data offset {offset} is not a multiple of the alignment {alignment}"
                )));
            }
            let mut n_elems: u64 = 1;
            for &d in &dims {
                n_elems = n_elems.checked_mul(d).ok_or_else(|| {
                    GgufError::Header(format!("tensor `{name}` shape {dims:?} overflows"))
                })?;
            }
            let len = match ty.block() {
                Some((per_block, block_bytes)) => {
                    if !dims[0].is_multiple_of(per_block as u64) {
                        return Err(GgufError::Header(format!(
                            "tensor `{name}`: row length {} is not a multiple of the {} block size {per_block}",
                            dims[0],
                            ty.name()
                        )));
                    }
                    (n_elems / per_block as u64).saturating_mul(block_bytes as u64)
                }
                None => 0,
            };
            let start = (data_start as u64).saturating_add(offset);
            let end = start.saturating_add(len);
            if end > bytes.len() as u64 {
                return Err(GgufError::OutOfBounds {
                    name,
                    start,
                    end,
                    file_len: bytes.len(),
                });
            }
            let shape: Vec<usize> = dims.iter().rev().map(|&d| d as usize).collect();
            if by_name.insert(name.clone(), tensors.len()).is_some() {
                return Err(GgufError::Header(format!("tensor `{name}` appears twice")));
            }
            tensors.push(TensorInfo {
                name,
                shape,
                ty,
                start: start as usize,
                len: len as usize,
            });
        }
        Ok(GgufFile {
            version,
            metadata,
            tensors,
            by_name,
        })
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    pub fn meta(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }
}

/// Whether `bytes` start like a GGUF file.
pub fn has_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(b"GGUF")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_follow_ggml() {
        assert_eq!(GgmlType::from_id(12).name(), "Q4_K");
        assert_eq!(GgmlType::from_id(39), GgmlType::Mxfp4);
        assert_eq!(GgmlType::from_id(30).name(), "BF16");
        assert_eq!(GgmlType::from_id(1000).name(), "type 1000");
    }

    #[test]
    fn empty_and_short_inputs_are_errors() {
        assert!(matches!(GgufFile::parse(b""), Err(GgufError::Truncated(_))));
        assert!(matches!(
            GgufFile::parse(b"GGML\x03\0\0\0"),
            Err(GgufError::BadMagic(_))
        ));
        assert!(matches!(
            GgufFile::parse(b"GGUF\x01\0\0\0"),
            Err(GgufError::Version(1))
        ));
    }
}
