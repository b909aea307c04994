//! The unembedding product (logits = rms(x) · Uᵀ) with exact zero-row skipping. A checkpoint
//! whose unembedding has mostly all-zero rows (the demo model trains 2,084 of 201,088 rows and
//! leaves the rest exactly 0) gets, at load, a compact copy of its nonzero rows; a step then
//! multiplies by that small matrix and writes 0.0 for every other token. This owns the detection
//! and the two projection shapes (one [n, vocab] matrix, or one buffer per sequence); the norm
//! and the rest of the forward pass live in `forward.rs`, the kernels in `gptoss-backend`.
//!
//! Why it is exact: a backend dot product of an all-zero (±0) row with a finite activation row
//! is +0.0 (the accumulators start at +0.0, +0.0 + ±0.0 = +0.0, and the epilogue adds +0.0), and
//! each output's value depends only on its own weight row and the activations (the kernels are
//! row- and batch-invariant), so the nonzero rows give the same bits in the compact matrix. If
//! an activation is not finite (0·inf = NaN), the dense product runs instead, so the result is
//! bit-identical to the dense path in every case.
//!
//! Detection cost: a dense checkpoint is recognised from 256 sampled rows (a few MB read even
//! for gpt-oss-120b's 1.2 GB unembedding), so it keeps the normal path at no noticeable load
//! time or memory; only a table whose sample is at least half zero rows is scanned fully.

use gptoss_backend::{bf16, matmul_f32_bf16w, matmul_f32_f32w};

use crate::checkpoint::Store;
use crate::weights::{DenseRef, DenseView};

/// Rows sampled (evenly spaced) to decide whether a full scan is worth it.
const SAMPLE_ROWS: usize = 256;

/// The nonzero rows of the unembedding, kept compact, when at most half the rows are nonzero.
#[derive(Default)]
pub(crate) struct ZeroRowSkip {
    sparse: Option<Sparse>,
}

struct Sparse {
    /// token ids of the nonzero rows, ascending
    ids: Vec<u32>,
    /// [ids.len(), hidden], the rows `ids` of the unembedding in the stored dtype
    w: Compact,
}

enum Compact {
    Bf16(Vec<bf16>),
    F32(Vec<f32>),
}

/// Whether every element of the row is +0.0 or -0.0 (either gives a +0.0 logit).
fn row_is_zero_bf16(row: &[bf16]) -> bool {
    // An OR over all bits vectorises; no early exit needed (rows are short).
    row.iter().fold(0u16, |acc, x| acc | x.to_bits()) & 0x7fff == 0
}

fn row_is_zero_f32(row: &[f32]) -> bool {
    row.iter().fold(0u32, |acc, x| acc | x.to_bits()) & 0x7fff_ffff == 0
}

impl ZeroRowSkip {
    /// Detects the zero rows of `unembedding` (f32/bf16 [vocab, hidden]); keeps the dense path
    /// (nothing stored) unless at least half the rows are exactly zero.
    pub fn detect(store: &Store, unembedding: &DenseRef, vocab: usize, hidden: usize) -> Self {
        if vocab == 0 || hidden == 0 {
            return ZeroRowSkip::default();
        }
        let view = unembedding.view(store);
        // Q8_0 (a GGUF file) runs on the 8-bit path, which has its own compact form.
        if matches!(view, DenseView::Q8_0) {
            return ZeroRowSkip::default();
        }
        let is_zero = |r: usize| match &view {
            DenseView::Bf16(w) => row_is_zero_bf16(&w[r * hidden..(r + 1) * hidden]),
            DenseView::F32(w) => row_is_zero_f32(&w[r * hidden..(r + 1) * hidden]),
            DenseView::Q8_0 => false,
        };
        // Cheap look first: a dense table shows up in the sample and is never scanned whole.
        let n_sample = SAMPLE_ROWS.min(vocab);
        let sample_zero = (0..n_sample)
            .filter(|&i| is_zero(i * vocab / n_sample))
            .count();
        if sample_zero * 2 < n_sample {
            return ZeroRowSkip::default();
        }
        let ids: Vec<u32> = (0..vocab)
            .filter(|&r| !is_zero(r))
            .map(|r| r as u32)
            .collect();
        if ids.len() * 2 > vocab {
            return ZeroRowSkip::default();
        }
        let w = match &view {
            DenseView::Bf16(w) => Compact::Bf16(gather(w, &ids, hidden)),
            DenseView::F32(w) => Compact::F32(gather(w, &ids, hidden)),
            DenseView::Q8_0 => return ZeroRowSkip::default(),
        };
        ZeroRowSkip {
            sparse: Some(Sparse { ids, w }),
        }
    }

    /// Number of nonzero rows when the zero-row path is in use, None for the dense path.
    pub fn nonzero_rows(&self) -> Option<usize> {
        self.sparse.as_ref().map(|s| s.ids.len())
    }

    /// Token ids of the nonzero rows (ascending) when the zero-row path is in use.
    pub fn nonzero_ids(&self) -> Option<&[u32]> {
        self.sparse.as_ref().map(|s| &s.ids[..])
    }

    /// Drops the compact copy: every product takes the dense path.
    pub fn disable(&mut self) {
        self.sparse = None;
    }

    /// logits f32 [n, vocab] = hn f32 [n, hidden] · Uᵀ (`unembedding` is [vocab, hidden]).
    pub fn project(
        &self,
        store: &Store,
        unembedding: &DenseRef,
        hn: &[f32],
        logits: &mut [f32],
        scratch: &mut Vec<f32>,
        vocab: usize,
    ) {
        let hidden = unembedding.n_elems / vocab.max(1);
        match self.usable(hn) {
            Some(s) => s.write(hn, scratch, hidden, logits.chunks_exact_mut(vocab)),
            None => match unembedding.view(store) {
                DenseView::Bf16(w) => matmul_f32_bf16w(hn, w, None, logits, hidden, vocab),
                DenseView::F32(w) => matmul_f32_f32w(hn, w, None, logits, hidden, vocab),
                // A Q8_0 unembedding always runs on the 8-bit path (`Model::set_weights_q8`).
                DenseView::Q8_0 => logits.fill(f32::NAN),
            },
        }
    }

    /// As [`ZeroRowSkip::project`], row t of the result written to `outs[t]` (f32 [vocab] each).
    pub fn project_each(
        &self,
        store: &Store,
        unembedding: &DenseRef,
        hn: &[f32],
        outs: &mut [&mut [f32]],
        scratch: &mut Vec<f32>,
        vocab: usize,
    ) {
        let hidden = unembedding.n_elems / vocab.max(1);
        use gptoss_backend::{matmul_f32_bf16w_each, matmul_f32_f32w_each};
        match self.usable(hn) {
            Some(s) => s.write(hn, scratch, hidden, outs.iter_mut().map(|o| &mut **o)),
            None => match unembedding.view(store) {
                DenseView::Bf16(w) => matmul_f32_bf16w_each(hn, w, None, outs, hidden, vocab),
                DenseView::F32(w) => matmul_f32_f32w_each(hn, w, None, outs, hidden, vocab),
                DenseView::Q8_0 => outs.iter_mut().for_each(|o| o.fill(f32::NAN)),
            },
        }
    }

    /// The compact path, when present and exact for these activations (all finite).
    fn usable(&self, hn: &[f32]) -> Option<&Sparse> {
        self.sparse
            .as_ref()
            .filter(|_| hn.iter().all(|v| v.is_finite()))
    }
}

impl Sparse {
    /// Token t's logits into the t-th of `outs` (f32 [vocab] each): the product with the
    /// nonzero rows (f32 [n, ids.len()] in `scratch`), scattered to their ids, 0.0 elsewhere.
    fn write<'o>(
        &self,
        hn: &[f32],
        scratch: &mut Vec<f32>,
        hidden: usize,
        outs: impl Iterator<Item = &'o mut [f32]>,
    ) {
        let k = self.ids.len();
        let n = hn.len() / hidden;
        let compact = crate::cache::sized(scratch, n * k);
        if k > 0 {
            match &self.w {
                Compact::Bf16(w) => matmul_f32_bf16w(hn, w, None, compact, hidden, k),
                Compact::F32(w) => matmul_f32_f32w(hn, w, None, compact, hidden, k),
            }
        }
        for (t, out) in outs.enumerate() {
            out.fill(0.0);
            for (&id, &l) in self.ids.iter().zip(&compact[t * k..(t + 1) * k]) {
                out[id as usize] = l;
            }
        }
    }
}

/// The rows `ids` of `w` ([_, hidden]) one after another.
fn gather<T: Copy>(w: &[T], ids: &[u32], hidden: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(ids.len() * hidden);
    for &id in ids {
        let r = id as usize;
        out.extend_from_slice(&w[r * hidden..(r + 1) * hidden]);
    }
    out
}

#[cfg(test)]
mod tests {
    use gptoss_backend::{matmul_f32_bf16w, matmul_f32_f32w};

    use crate::synth::{self, RawTensor, SynthLayout};
    use crate::weights::DenseView;
    use crate::Model;

    /// The tiny synthetic model with unembedding rows `zero(r)` set to ±0, stored as `dtype`.
    fn model_with_zero_rows(dtype: &'static str, zero: impl Fn(usize) -> bool) -> Model {
        let c = synth::tiny_config();
        let mut tensors = synth::checkpoint_tensors(&c, 5, SynthLayout::Original);
        let u: &mut RawTensor = tensors
            .iter_mut()
            .find(|t| t.name == "unembedding.weight")
            .unwrap();
        let h = c.hidden_size;
        let mut vals: Vec<f32> = u
            .data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect();
        for r in (0..c.vocab_size).filter(|&r| zero(r)) {
            for (i, v) in vals[r * h..(r + 1) * h].iter_mut().enumerate() {
                // Mix +0.0 and -0.0: both are zero rows.
                *v = if (r + i) % 3 == 0 { -0.0 } else { 0.0 };
            }
        }
        u.dtype = dtype;
        u.data = match dtype {
            "F32" => vals.iter().flat_map(|v| v.to_le_bytes()).collect(),
            _ => vals
                .iter()
                .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                .collect(),
        };
        let bytes = synth::safetensors_bytes(&tensors);
        Model::from_memory(c.to_original_json().as_bytes(), bytes).unwrap()
    }

    /// The dense product the zero-row path must reproduce bit for bit.
    fn dense(m: &Model, hn: &[f32]) -> Vec<f32> {
        let (h, v) = (m.config.hidden_size, m.config.vocab_size);
        let mut out = vec![0.0; hn.len() / h * v];
        match m.weights.unembedding.view(&m.store) {
            DenseView::Bf16(w) => matmul_f32_bf16w(hn, w, None, &mut out, h, v),
            DenseView::F32(w) => matmul_f32_f32w(hn, w, None, &mut out, h, v),
            DenseView::Q8_0 => unreachable!("the synthetic models are bf16/f32"),
        }
        out
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Activation rows: mixed signs, all negative (products -0.0), tiny and huge values, and
    /// non-finite ones (which must fall back to the dense NaN semantics).
    fn activations(h: usize) -> Vec<Vec<f32>> {
        let mixed: Vec<f32> = (0..h)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.31)
            .collect();
        let negative: Vec<f32> = (0..h).map(|i| -1.0 - i as f32 * 0.01).collect();
        let extreme: Vec<f32> = (0..h)
            .map(|i| if i % 2 == 0 { 3.0e38 } else { -1.0e-40 })
            .collect();
        let mut nan = mixed.clone();
        nan[h / 2] = f32::NAN;
        let mut inf = negative.clone();
        inf[1] = f32::NEG_INFINITY;
        vec![mixed, negative, extreme, nan, inf]
    }

    #[test]
    fn zero_row_path_is_bit_identical_to_the_dense_product() {
        let zero = |r: usize| r % 5 != 2 && r != 96; // 20 nonzero rows of 97, incl. the first
        for dtype in ["BF16", "F32"] {
            let m = model_with_zero_rows(dtype, zero);
            let (h, v) = (m.config.hidden_size, m.config.vocab_size);
            let nonzero = (0..v).filter(|&r| !zero(r)).count();
            assert_eq!(m.zero_rows.nonzero_rows(), Some(nonzero), "{dtype}");
            let rows = activations(h);
            // Each row alone, then all rows together (with and without a non-finite row).
            let mut batches: Vec<Vec<f32>> = rows.clone();
            batches.push(rows[..3].concat());
            batches.push(rows.concat());
            for hn in &batches {
                let n = hn.len() / h;
                let want = dense(&m, hn);
                let mut scratch = vec![];
                let mut got = vec![1.0; n * v];
                m.zero_rows.project(
                    &m.store,
                    &m.weights.unembedding,
                    hn,
                    &mut got,
                    &mut scratch,
                    v,
                );
                assert_eq!(bits(&got), bits(&want), "{dtype}, {n} rows");
                let mut bufs = vec![vec![7.0f32; v]; n];
                let mut outs: Vec<&mut [f32]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
                m.zero_rows.project_each(
                    &m.store,
                    &m.weights.unembedding,
                    hn,
                    &mut outs,
                    &mut scratch,
                    v,
                );
                assert_eq!(bits(&bufs.concat()), bits(&want), "{dtype}, {n} rows, each");
            }
            // The zero rows' logits really are +0.0 for finite activations, NaN with a NaN.
            let want = dense(&m, &rows[1]);
            assert!((0..v).filter(|&r| zero(r)).all(|r| want[r].to_bits() == 0));
            let want = dense(&m, &rows[3]);
            assert!((0..v).filter(|&r| zero(r)).all(|r| want[r].is_nan()));
        }
    }

    #[test]
    fn dense_or_mostly_dense_tables_take_the_normal_path() {
        let dense_model = model_with_zero_rows("BF16", |_| false);
        assert_eq!(dense_model.zero_rows.nonzero_rows(), None);
        // 40 of 97 rows zero: under half, not worth a compact copy.
        let mostly = model_with_zero_rows("BF16", |r| r < 40);
        assert_eq!(mostly.zero_rows.nonzero_rows(), None);
        // 60 of 97 zero: the compact path.
        let sparse = model_with_zero_rows("BF16", |r| r >= 37);
        assert_eq!(sparse.zero_rows.nonzero_rows(), Some(37));
        // Every row zero: nothing to multiply, every logit +0.0.
        let all = model_with_zero_rows("F32", |_| true);
        assert_eq!(all.zero_rows.nonzero_rows(), Some(0));
        let h = all.config.hidden_size;
        let hn = activations(h)[0].clone();
        let mut got = vec![1.0; all.config.vocab_size];
        all.zero_rows.project(
            &all.store,
            &all.weights.unembedding,
            &hn,
            &mut got,
            &mut vec![],
            all.config.vocab_size,
        );
        assert_eq!(bits(&got), bits(&dense(&all, &hn)));
    }
}
