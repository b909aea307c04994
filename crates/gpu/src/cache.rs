//! The KV cache of one sequence in device memory, with the CPU cache's semantics
//! (`gptoss_model::KvCache`): full-attention layers hold every position and grow in
//! 256-position steps as the sequence does (never `max_tokens` up front); sliding layers hold
//! a ring of `min(sliding_window, max_tokens)` positions (position p in slot p % ring).
//! Snapshots copy the rings on the device so `rollback_to` can restore them.

use gptoss_model::{plan_rollback, Config, Rollback, MAX_SNAPSHOTS, PAGE_LEN};

use crate::context::GpuContext;
use crate::kernels::Recorder;

pub(crate) struct LayerCache {
    /// Some(ring_len) on sliding-window layers.
    pub ring: Option<usize>,
    /// f32 [capacity, kv_dim] each; None until first written.
    pub k: Option<wgpu::Buffer>,
    pub v: Option<wgpu::Buffer>,
    /// Positions (slots) the buffers hold.
    pub capacity: usize,
}

struct Snapshot {
    len: usize,
    /// (k, v) ring copies per sliding layer, in layer order (None if not yet allocated).
    rings: Vec<Option<(wgpu::Buffer, wgpu::Buffer)>>,
}

/// One sequence's keys and values on the device. Made by [`crate::GpuModel::new_cache`].
pub struct GpuCache {
    pub(crate) model_id: u64,
    pub(crate) layers: Vec<LayerCache>,
    pub(crate) kv_dim: usize,
    pub(crate) len: usize,
    max_tokens: usize,
    snapshots: Vec<Snapshot>,
}

impl GpuCache {
    pub(crate) fn new(model_id: u64, c: &Config, max_tokens: usize) -> GpuCache {
        let ring = max_tokens.min(c.sliding_window).max(1);
        GpuCache {
            model_id,
            layers: (0..c.num_hidden_layers)
                .map(|i| LayerCache {
                    ring: (c.is_sliding(i) && c.sliding_window > 0).then_some(ring),
                    k: None,
                    v: None,
                    capacity: 0,
                })
                .collect(),
            kv_dim: c.kv_dim(),
            len: 0,
            max_tokens,
            snapshots: Vec::new(),
        }
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

    /// Bytes of device memory held by the buffers and snapshots.
    pub fn allocated_bytes(&self) -> u64 {
        let row = (self.kv_dim * 4) as u64;
        let live: u64 = self
            .layers
            .iter()
            .map(|l| 2 * l.capacity as u64 * row)
            .sum();
        let snaps: u64 = self
            .snapshots
            .iter()
            .flat_map(|s| s.rings.iter().flatten())
            .map(|(k, v)| k.size() + v.size())
            .sum();
        live + snaps
    }

    /// Makes room for positions `[0, needed)`: allocates rings on first use and grows the
    /// full layers (doubling, in whole pages, at most `max_tokens`), copying what they hold.
    pub(crate) fn reserve(&mut self, ctx: &GpuContext, rec: &mut Recorder, needed: usize) {
        let row = (self.kv_dim * 4) as u64;
        let len = self.len;
        for l in &mut self.layers {
            let want = match l.ring {
                Some(r) => r,
                None if l.capacity >= needed => continue,
                None => needed
                    .max(2 * l.capacity)
                    .div_ceil(PAGE_LEN)
                    .saturating_mul(PAGE_LEN)
                    .min(self.max_tokens)
                    .max(needed),
            };
            if l.k.is_some() && l.capacity >= want {
                continue;
            }
            let k = ctx.storage("kv cache k", want as u64 * row);
            let v = ctx.storage("kv cache v", want as u64 * row);
            if let (Some(ok), Some(ov)) = (&l.k, &l.v) {
                let keep = (len.min(l.capacity) as u64) * row;
                rec.copy(ok, 0, &k, 0, keep);
                rec.copy(ov, 0, &v, 0, keep);
            }
            l.k = Some(k);
            l.v = Some(v);
            l.capacity = want;
        }
    }

    /// Extends the cache to `n_tokens` positions (clamped to `max_tokens`) with the made-up keys
    /// and values of `gptoss_model::KvCache::fill_synthetic`, so decoding at depth costs what it
    /// costs after a real prefill (benchmarks). Returns the new length.
    pub fn fill_synthetic(&mut self, ctx: &GpuContext, n_tokens: usize) -> usize {
        let n_tokens = n_tokens.min(self.max_tokens);
        if n_tokens <= self.len {
            return self.len;
        }
        let mut rec = Recorder::new(ctx);
        self.reserve(ctx, &mut rec, n_tokens);
        rec.submit(ctx, &mut None);
        let kv_dim = self.kv_dim;
        let row = |pos: usize| -> (Vec<f32>, Vec<f32>) {
            (0..kv_dim)
                .map(|i| {
                    let h =
                        (pos as u32).wrapping_mul(2_654_435_761) ^ (i as u32).wrapping_mul(40_503);
                    (
                        ((h % 2001) as f32 / 1000.0 - 1.0) * 0.5,
                        (((h >> 11) % 2001) as f32 / 1000.0 - 1.0) * 0.5,
                    )
                })
                .unzip()
        };
        for l in &self.layers {
            let (Some(kb), Some(vb)) = (&l.k, &l.v) else {
                continue;
            };
            let first = l
                .ring
                .map_or(self.len, |r| n_tokens.saturating_sub(r).max(self.len));
            let mut k_all = vec![0f32; l.capacity * kv_dim];
            let mut v_all = vec![0f32; l.capacity * kv_dim];
            let mut lo = usize::MAX;
            let mut hi = 0;
            for pos in first..n_tokens {
                let slot = l.ring.map_or(pos, |r| pos % r);
                let (k, v) = row(pos);
                k_all[slot * kv_dim..(slot + 1) * kv_dim].copy_from_slice(&k);
                v_all[slot * kv_dim..(slot + 1) * kv_dim].copy_from_slice(&v);
                lo = lo.min(slot);
                hi = hi.max(slot + 1);
            }
            if lo < hi {
                let r = lo * kv_dim..hi * kv_dim;
                let off = (lo * kv_dim * 4) as u64;
                ctx.queue
                    .write_buffer(kb, off, bytemuck::cast_slice(&k_all[r.clone()]));
                ctx.queue
                    .write_buffer(vb, off, bytemuck::cast_slice(&v_all[r]));
            }
        }
        ctx.queue.submit([]);
        self.len = n_tokens;
        self.len
    }

    /// Makes this cache an exact copy of `source` (positions, rings, snapshots) with device
    /// copies, reusing this cache's buffers where they are large enough. Returns false,
    /// changing nothing, when the two differ in model or shape.
    pub fn copy_from(&mut self, ctx: &GpuContext, source: &GpuCache) -> bool {
        let same_shape = self.model_id == source.model_id
            && self.kv_dim == source.kv_dim
            && self.max_tokens == source.max_tokens
            && self.layers.len() == source.layers.len()
            && self
                .layers
                .iter()
                .zip(&source.layers)
                .all(|(a, b)| a.ring == b.ring);
        if !same_shape {
            return false;
        }
        let row = (self.kv_dim * 4) as u64;
        let mut rec = Recorder::new(ctx);
        for (mine, theirs) in self.layers.iter_mut().zip(&source.layers) {
            let (Some(sk), Some(sv)) = (&theirs.k, &theirs.v) else {
                continue;
            };
            if mine.k.is_none() || mine.capacity < theirs.capacity {
                mine.k = Some(ctx.storage("kv cache k", theirs.capacity as u64 * row));
                mine.v = Some(ctx.storage("kv cache v", theirs.capacity as u64 * row));
                mine.capacity = theirs.capacity;
            }
            if let (Some(k), Some(v)) = (&mine.k, &mine.v) {
                let bytes = theirs.capacity as u64 * row;
                rec.copy(sk, 0, k, 0, bytes);
                rec.copy(sv, 0, v, 0, bytes);
            }
        }
        let snapshots = source
            .snapshots
            .iter()
            .map(|snap| Snapshot {
                len: snap.len,
                rings: snap
                    .rings
                    .iter()
                    .map(|ring| {
                        ring.as_ref().map(|(k, v)| {
                            let (ck, cv) = (
                                ctx.storage("snapshot k", k.size()),
                                ctx.storage("snapshot v", v.size()),
                            );
                            rec.copy(k, 0, &ck, 0, k.size());
                            rec.copy(v, 0, &cv, 0, v.size());
                            (ck, cv)
                        })
                    })
                    .collect(),
            })
            .collect();
        rec.submit(ctx, &mut None);
        self.snapshots = snapshots;
        self.len = source.len;
        true
    }

    /// Forgets everything and frees the buffers.
    pub fn clear(&mut self) {
        self.len = 0;
        self.snapshots.clear();
        for l in &mut self.layers {
            l.k = None;
            l.v = None;
            l.capacity = 0;
        }
    }

    /// Remembers the rings' state at the current length (device copies, window × layers).
    pub fn mark_snapshot(&mut self, ctx: &GpuContext) {
        if self.snapshots.last().is_some_and(|s| s.len == self.len) {
            return;
        }
        let mut rec = Recorder::new(ctx);
        let rings = self
            .layers
            .iter()
            .filter(|l| l.ring.is_some())
            .map(|l| match (&l.k, &l.v) {
                (Some(k), Some(v)) => {
                    let (ck, cv) = (
                        ctx.storage("snapshot k", k.size()),
                        ctx.storage("snapshot v", v.size()),
                    );
                    rec.copy(k, 0, &ck, 0, k.size());
                    rec.copy(v, 0, &cv, 0, v.size());
                    Some((ck, cv))
                }
                _ => None,
            })
            .collect();
        rec.submit(ctx, &mut None);
        if self.snapshots.len() >= MAX_SNAPSHOTS {
            self.snapshots.remove(1.min(self.snapshots.len() - 1));
        }
        self.snapshots.push(Snapshot {
            len: self.len,
            rings,
        });
    }

    /// As `gptoss_model::KvCache::rollback_to`: forget positions `>= n_tokens`, restoring the
    /// rings from the newest usable snapshot; returns how many positions are really kept.
    pub fn rollback_to(&mut self, ctx: &GpuContext, n_tokens: usize) -> usize {
        let ring = self.layers.iter().filter_map(|l| l.ring).max();
        let lens: Vec<usize> = self.snapshots.iter().map(|s| s.len).collect();
        let keep = match plan_rollback(self.len, ring, &lens, n_tokens) {
            Rollback::Keep(k) => k,
            Rollback::Restore {
                target,
                snapshot,
                positions,
            } => {
                let row = (self.kv_dim * 4) as u64;
                let mut rec = Recorder::new(ctx);
                for (layer, saved) in self
                    .layers
                    .iter()
                    .filter(|l| l.ring.is_some())
                    .zip(&self.snapshots[snapshot].rings)
                {
                    let (Some(k), Some(v), Some((sk, sv))) = (&layer.k, &layer.v, saved) else {
                        continue;
                    };
                    for pos in positions.clone() {
                        let off = (pos % layer.capacity) as u64 * row;
                        rec.copy(sk, off, k, off, row);
                        rec.copy(sv, off, v, off, row);
                    }
                }
                rec.submit(ctx, &mut None);
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
}
