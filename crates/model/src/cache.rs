//! The KV cache of one sequence, written by `Model::forward`.
//!
//! Per layer, keys and values are f32 [positions, num_key_value_heads · head_dim]:
//! * full-attention layers keep every position in pages of [`PAGE_LEN`] positions, allocated as
//!   the sequence grows (never `max_tokens` up front);
//! * sliding-window layers keep a ring of the last `min(sliding_window, max_tokens)` positions
//!   (position p in slot p % ring_len), which is all their attention can see.
//!
//! Because the rings forget, rolling back to an earlier length needs the rings' state at (or
//! near) that length: `mark_snapshot` copies them, and `rollback_to` restores the newest usable
//! snapshot (see its doc). The cache also owns the forward pass's scratch buffers, so decoding
//! one token allocates nothing beyond the returned logits.
//!
//! Invariants: `len <= max_tokens`; a ring holds exactly positions
//! `[len - ring_len, len) ∩ [0, len)`; pages hold positions `[0, len)`; snapshots are sorted by
//! length, all `<= len`.

use crate::config::Config;
use crate::lora::LoraId;

/// Positions per page of a full-attention layer.
pub const PAGE_LEN: usize = 256;

/// Snapshots kept at most; when full, the second-oldest is dropped (the oldest is usually the
/// shared system prompt, the most valuable one).
pub const MAX_SNAPSHOTS: usize = 32;

pub(crate) struct LayerKv {
    /// Some(ring_len) for sliding-window layers.
    pub ring_len: Option<usize>,
    /// f32 [page_len, kv_dim] each (one page of ring_len positions for a ring)
    pub k_pages: Vec<Vec<f32>>,
    pub v_pages: Vec<Vec<f32>>,
}

impl LayerKv {
    pub fn page_len(&self) -> usize {
        self.ring_len.unwrap_or(PAGE_LEN)
    }

    /// Stores `k`/`v` (f32 [n, kv_dim]) for positions `pos0 .. pos0 + n`.
    pub fn write(&mut self, pos0: usize, k: &[f32], v: &[f32], kv_dim: usize) {
        let n = k.len() / kv_dim;
        let page_len = self.page_len();
        // A ring only needs the last ring_len of the new positions.
        let first = match self.ring_len {
            Some(r) => n.saturating_sub(r),
            None => 0,
        };
        for i in first..n {
            let pos = pos0 + i;
            let slot = self.ring_len.map_or(pos, |r| pos % r);
            let (page, row) = (slot / page_len, slot % page_len);
            while self.k_pages.len() <= page {
                self.k_pages.push(vec![0.0; page_len * kv_dim]);
                self.v_pages.push(vec![0.0; page_len * kv_dim]);
            }
            self.k_pages[page][row * kv_dim..(row + 1) * kv_dim]
                .copy_from_slice(&k[i * kv_dim..(i + 1) * kv_dim]);
            self.v_pages[page][row * kv_dim..(row + 1) * kv_dim]
                .copy_from_slice(&v[i * kv_dim..(i + 1) * kv_dim]);
        }
    }
}

/// Sliding rings at one length.
#[derive(Clone)]
struct Snapshot {
    len: usize,
    /// (k, v) ring contents per sliding layer, in layer order (empty if not yet allocated)
    rings: Vec<(Vec<f32>, Vec<f32>)>,
}

/// Scratch buffers of the forward pass, grown on demand and reused.
#[derive(Default)]
pub(crate) struct Workspace {
    pub x: Vec<f32>,
    pub h: Vec<f32>,
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    pub attn: Vec<f32>,
    pub proj: Vec<f32>,
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
    pub router: Vec<f32>,
    pub topk_idx: Vec<usize>,
    pub topk_w: Vec<f32>,
    /// per expert: (token row, routing weight)
    pub expert_rows: Vec<Vec<(usize, f32)>>,
    pub moe_in: Vec<f32>,
    pub moe_u: Vec<f32>,
    pub moe_act: Vec<f32>,
    pub moe_out: Vec<f32>,
    pub moe_acc: Vec<f32>,
    pub bias1: Vec<f32>,
    pub bias2: Vec<f32>,
    /// f32 [n, nonzero rows]: logits of the unembedding's nonzero rows (unembed.rs)
    pub logits_compact: Vec<f32>,
    /// int8 expert path: the normed rows quantized once per layer for every expert, the rows
    /// routed to one expert, and that expert's SwiGLU output
    pub q8_in: gptoss_backend::Q8Rows,
    pub q8_rows: gptoss_backend::Q8Rows,
    pub q8_act: gptoss_backend::Q8Rows,
    /// 8-bit weights (`--weights-q8`): the activations of one attention or unembedding
    /// product, quantized once for it
    pub q8_dense: gptoss_backend::Q8Rows,
    /// LoRA adapter products (lora.rs): A x f32 [n, r] and B(A x) f32 [n, d_out]
    pub lora_t: Vec<f32>,
    pub lora_u: Vec<f32>,
}

/// Resizes `v` to `n` elements without shrinking its capacity.
pub(crate) fn sized(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    v.resize(n, 0.0);
    &mut v[..n]
}

pub struct KvCache {
    pub(crate) layers: Vec<LayerKv>,
    pub(crate) kv_dim: usize,
    pub(crate) len: usize,
    max_tokens: usize,
    snapshots: Vec<Snapshot>,
    /// The adapter this sequence runs under (`set_lora`); its keys and values hold its updates.
    pub(crate) lora: Option<LoraId>,
    pub(crate) ws: Workspace,
}

impl KvCache {
    pub(crate) fn new(config: &Config, max_tokens: usize) -> KvCache {
        let ring = max_tokens.min(config.sliding_window).max(1);
        let layers = (0..config.num_hidden_layers)
            .map(|i| LayerKv {
                ring_len: if config.is_sliding(i) && config.sliding_window > 0 {
                    Some(ring)
                } else {
                    None
                },
                k_pages: vec![],
                v_pages: vec![],
            })
            .collect();
        KvCache {
            layers,
            kv_dim: config.kv_dim(),
            len: 0,
            max_tokens,
            snapshots: vec![],
            lora: None,
            ws: Workspace::default(),
        }
    }

    /// Extends the cache to `n_tokens` positions (clamped to `max_tokens`) with made-up keys and
    /// values (a fixed pseudo-random pattern of magnitude < 1), as if those positions had been
    /// run. For benchmarks: decoding at depth 4096 then costs exactly what it costs after a real
    /// prefill of 4096 tokens (attention reads every cached position whatever its values),
    /// without spending minutes on that prefill. Returns the new length.
    pub fn fill_synthetic(&mut self, n_tokens: usize) -> usize {
        let n_tokens = n_tokens.min(self.max_tokens);
        if n_tokens <= self.len {
            return self.len;
        }
        let kv_dim = self.kv_dim;
        let mut k = vec![0f32; kv_dim];
        let mut v = vec![0f32; kv_dim];
        for pos in self.len..n_tokens {
            for (i, (kv, vv)) in k.iter_mut().zip(v.iter_mut()).enumerate() {
                let h = (pos as u32).wrapping_mul(2_654_435_761) ^ (i as u32).wrapping_mul(40_503);
                *kv = ((h % 2001) as f32 / 1000.0 - 1.0) * 0.5;
                *vv = (((h >> 11) % 2001) as f32 / 1000.0 - 1.0) * 0.5;
            }
            for layer in &mut self.layers {
                layer.write(pos, &k, &v, kv_dim);
            }
        }
        self.len = n_tokens;
        self.len
    }

    /// Positions held (the next token's position).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The LoRA adapter this cache's sequence runs under: one registered with
    /// `Model::add_lora`, or None for the model's default (`Model::set_lora`, or the base).
    pub fn lora(&self) -> Option<LoraId> {
        self.lora
    }

    /// Chooses the adapter the positions to come run under (see [`KvCache::lora`]). Keys and
    /// values computed under one adapter are wrong under another, so changing it clears the
    /// cache: a prefix computed for one fine-tune is never reused by another.
    pub fn set_lora(&mut self, lora: Option<LoraId>) {
        if lora != self.lora {
            self.clear();
            self.lora = lora;
        }
    }

    /// Bytes of K/V storage currently allocated (pages, rings and snapshots).
    pub fn allocated_bytes(&self) -> usize {
        let pages: usize = self
            .layers
            .iter()
            .map(|l| {
                l.k_pages
                    .iter()
                    .chain(&l.v_pages)
                    .map(Vec::len)
                    .sum::<usize>()
            })
            .sum();
        let snaps: usize = self
            .snapshots
            .iter()
            .map(|s| {
                s.rings
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
            })
            .sum();
        (pages + snaps) * 4
    }

    /// Lengths at which snapshots are held, oldest first.
    pub fn snapshot_lens(&self) -> Vec<usize> {
        self.snapshots.iter().map(|s| s.len).collect()
    }

    /// Makes this cache an exact copy of `source` (positions, rings, snapshots and adapter), reusing
    /// this cache's allocations. Returns false, changing nothing, when the two differ in shape
    /// (another model or another `max_tokens`). Two sequences with one prompt then pay for one
    /// prefill: a copy is a memcpy of what the prefill wrote.
    pub fn copy_from(&mut self, source: &KvCache) -> bool {
        let same_shape = self.kv_dim == source.kv_dim
            && self.max_tokens == source.max_tokens
            && self.layers.len() == source.layers.len()
            && self
                .layers
                .iter()
                .zip(&source.layers)
                .all(|(a, b)| a.ring_len == b.ring_len);
        if !same_shape {
            return false;
        }
        for (mine, theirs) in self.layers.iter_mut().zip(&source.layers) {
            mine.k_pages.clone_from(&theirs.k_pages);
            mine.v_pages.clone_from(&theirs.v_pages);
        }
        self.snapshots.clone_from(&source.snapshots);
        self.len = source.len;
        self.lora = source.lora;
        true
    }

    /// Forgets everything and frees the pages.
    pub fn clear(&mut self) {
        self.len = 0;
        self.snapshots.clear();
        for l in &mut self.layers {
            l.k_pages = vec![];
            l.v_pages = vec![];
        }
    }

    /// Remember the sliding rings' state at the current length (cheap: window × layers).
    pub fn mark_snapshot(&mut self) {
        if self.snapshots.last().is_some_and(|s| s.len == self.len) {
            return;
        }
        let rings = self
            .layers
            .iter()
            .filter(|l| l.ring_len.is_some())
            .map(|l| {
                (
                    l.k_pages.first().cloned().unwrap_or_default(),
                    l.v_pages.first().cloned().unwrap_or_default(),
                )
            })
            .collect();
        if self.snapshots.len() >= MAX_SNAPSHOTS {
            self.snapshots.remove(1.min(self.snapshots.len() - 1));
        }
        self.snapshots.push(Snapshot {
            len: self.len,
            rings,
        });
    }

    /// Forget positions >= n_tokens so a new request sharing the first n_tokens can continue from
    /// there. Returns how many positions are really kept, which may be fewer than asked:
    /// * if no ring ever wrapped (len <= ring length), exactly `n_tokens`;
    /// * else with the newest snapshot at s <= n_tokens: exactly `n_tokens` when the snapshot and
    ///   the current rings together still cover the window before n_tokens (s >= len - ring),
    ///   otherwise `s` (the snapshot is restored);
    /// * else 0 (the cache is cleared).
    pub fn rollback_to(&mut self, n_tokens: usize) -> usize {
        let ring = self.layers.iter().filter_map(|l| l.ring_len).max();
        let snapshot_lens = self.snapshot_lens();
        let keep = match plan_rollback(self.len, ring, &snapshot_lens, n_tokens) {
            Rollback::Keep(k) => k,
            Rollback::Restore {
                target,
                snapshot,
                positions,
            } => {
                let snap = &self.snapshots[snapshot];
                let kv_dim = self.kv_dim;
                for (layer, (sk, sv)) in self
                    .layers
                    .iter_mut()
                    .filter(|l| l.ring_len.is_some())
                    .zip(&snap.rings)
                {
                    let lr = layer.page_len();
                    for pos in positions.clone() {
                        let slot = pos % lr;
                        let range = slot * kv_dim..(slot + 1) * kv_dim;
                        if let (Some(k), Some(v)) =
                            (layer.k_pages.first_mut(), layer.v_pages.first_mut())
                        {
                            if sk.len() >= range.end {
                                k[range.clone()].copy_from_slice(&sk[range.clone()]);
                                v[range.clone()].copy_from_slice(&sv[range]);
                            }
                        }
                    }
                }
                target
            }
        };
        if keep == self.len {
            return keep;
        }
        self.len = keep;
        self.snapshots.retain(|s| s.len <= keep);
        if keep == 0 {
            self.clear();
        }
        keep
    }

    /// Checks that this cache was made for a model with `config`.
    pub(crate) fn matches(&self, config: &Config) -> Result<(), String> {
        if self.layers.len() != config.num_hidden_layers {
            return Err(format!(
                "{} layers, model has {}",
                self.layers.len(),
                config.num_hidden_layers
            ));
        }
        if self.kv_dim != config.kv_dim() {
            return Err(format!(
                "kv width {}, model has {}",
                self.kv_dim,
                config.kv_dim()
            ));
        }
        for (i, l) in self.layers.iter().enumerate() {
            if l.ring_len.is_some() != config.is_sliding(i) {
                return Err(format!("layer {i} attention kind differs"));
            }
        }
        Ok(())
    }
}

/// What a rollback to `n_tokens` does (see [`KvCache::rollback_to`]); shared by every cache
/// with sliding rings and snapshots (the GPU cache too), which then do the copying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollback {
    /// Keep this many positions; nothing to restore.
    Keep(usize),
    /// Keep `target` positions after copying `positions` of every ring back from snapshot
    /// number `snapshot` (oldest first).
    Restore {
        target: usize,
        snapshot: usize,
        positions: std::ops::Range<usize>,
    },
}

/// The rollback rule: a cache of `len` positions whose longest ring holds `ring` positions
/// (None: no rings) and which holds snapshots at `snapshot_lens` (ascending) goes back to
/// `n_tokens` exactly when no ring wrapped, or when a snapshot and the rings still cover the
/// window before `n_tokens`; else to the newest snapshot at or below it; else to 0.
pub fn plan_rollback(
    len: usize,
    ring: Option<usize>,
    snapshot_lens: &[usize],
    n_tokens: usize,
) -> Rollback {
    if n_tokens >= len {
        return Rollback::Keep(len);
    }
    let r = match ring {
        Some(r) if len > r => r,
        _ => return Rollback::Keep(n_tokens),
    };
    let lost_from = len - r; // positions < lost_from are gone from the rings
    match snapshot_lens.iter().rposition(|&s| s <= n_tokens) {
        None => Rollback::Keep(0),
        Some(si) => {
            let s_len = snapshot_lens[si];
            let merge = s_len >= lost_from || s_len == n_tokens;
            let target = if merge { n_tokens } else { s_len };
            // Positions [target - r, min(target, lost_from)) come from the snapshot.
            Rollback::Restore {
                target,
                snapshot: si,
                positions: target.saturating_sub(r)..target.min(lost_from),
            }
        }
    }
}
