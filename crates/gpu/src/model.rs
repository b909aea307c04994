//! [`GpuModel`]: the forward pass of `gptoss_model::Model` on a device. One call records every
//! layer's dispatches into one command buffer; activations stay in device buffers, and only
//! the requested logits rows come back. The arithmetic follows `gptoss-model`'s `forward.rs`
//! step for step (f32 activations and accumulation, weights read as stored).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use gptoss_backend::YarnRope;
use gptoss_model::{Config, LogitsFor, Model};

use crate::cache::GpuCache;
use crate::context::GpuContext;
use crate::kernels::{Kernels, Recorder, GROUP_TILE, P};
use crate::weights::{device_bytes, DeviceLinear, DeviceWeights, ModelSource, WeightSource};
use crate::GpuError;

/// Tokens per recorded pass: a longer prompt runs in chunks of this many (bounds scratch).
const CHUNK: usize = 256;
/// From this many tokens in a pass on, expert products run grouped by expert (each routed
/// expert's weights read once per tile of 8 pairs instead of once per pair).
const GROUPED_MIN_TOKENS: usize = 4;
/// From this many queries of one sequence in a pass on, attention runs the tiled prefill
/// kernel (16 queries a workgroup sharing each key/value tile) instead of split-K.
const PREFILL_ATTENTION_MIN: usize = 16;
/// Most key splits of one query's attention (flash decoding over a long cache).
const MAX_SPLITS: usize = 32;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Activation buffers, grown to the largest call and reused.
#[derive(Default)]
struct Scratch {
    rows: usize,
    logits_rows: usize,
    part_floats: usize,
    bufs: Option<Bufs>,
    arena: Option<wgpu::Buffer>,
    host: Vec<u8>,
}

struct Bufs {
    tokens: wgpu::Buffer,
    cs: wgpu::Buffer,
    x: wgpu::Buffer,
    hn: wgpu::Buffer,
    qkv: wgpu::Buffer,
    attn: wgpu::Buffer,
    part: wgpu::Buffer,
    router: wgpu::Buffer,
    idx: wgpu::Buffer,
    wts: wgpu::Buffer,
    act: wgpu::Buffer,
    /// grouped expert path: pair ids by expert, the tile list, the second product's rows
    sorted: wgpu::Buffer,
    tiles: wgpu::Buffer,
    moe_y: wgpu::Buffer,
    logits: wgpu::Buffer,
    dummy: wgpu::Buffer,
}

/// One sequence's rows in a pass: rows `row0 .. row0 + n` at positions `cache.len() ..`.
pub(crate) struct Segment<'a> {
    pub cache: &'a mut GpuCache,
    pub row0: usize,
    pub n: usize,
}

/// gpt-oss with its weights and KV caches in device memory.
pub struct GpuModel {
    ctx: GpuContext,
    config: Config,
    rope: YarnRope,
    kernels: Kernels,
    w: DeviceWeights,
    id: u64,
    scratch: Mutex<Scratch>,
}

impl GpuModel {
    /// Uploads `model`'s weights to `ctx`'s device; `progress(done, total)` in bytes.
    pub fn upload(
        ctx: GpuContext,
        model: &Model,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<GpuModel, GpuError> {
        let src = ModelSource {
            config: model.config(),
            tensors: model.tensors(),
        };
        GpuModel::from_source(ctx, &src, model.rope(), progress)
    }

    /// Uploads the weights of `src` (they need not come from a file: `bench --synth` makes
    /// them in memory, a layer at a time).
    pub fn from_source(
        ctx: GpuContext,
        src: &dyn WeightSource,
        rope: &YarnRope,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<GpuModel, GpuError> {
        let config = src.config();
        check_shapes(config)?;
        if let Some(mem) = ctx.adapter().memory_bytes {
            let needed = src.device_bytes();
            if needed > mem {
                return Err(GpuError::OutOfMemory {
                    adapter: ctx.adapter().name.clone(),
                    needed,
                    allocated: 0,
                    what: format!("{mem} bytes of device memory in all"),
                });
            }
        }
        let w = DeviceWeights::upload(&ctx, src, progress)?;
        let kernels = Kernels::new(&ctx, w.embed_format, w.expert_format);
        ctx.wait()?;
        Ok(GpuModel {
            ctx,
            config: config.clone(),
            rope: rope.clone(),
            kernels,
            w,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            scratch: Mutex::new(Scratch::default()),
        })
    }

    /// Device bytes the weights of `model` take (what must fit before uploading).
    pub fn weight_bytes(model: &Model) -> u64 {
        device_bytes(&model.tensors(), model.config())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The device this model runs on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Bytes of weights on the device.
    pub fn device_weight_bytes(&self) -> u64 {
        self.w.bytes
    }

    /// Bytes of the activation buffers (grown to the largest call so far).
    pub fn scratch_bytes(&self) -> u64 {
        let Ok(s) = self.scratch.lock() else { return 0 };
        s.bufs.as_ref().map_or(0, |b| {
            [
                &b.tokens, &b.cs, &b.x, &b.hn, &b.qkv, &b.attn, &b.part, &b.router, &b.idx, &b.wts,
                &b.act, &b.sorted, &b.tiles, &b.moe_y, &b.logits,
            ]
            .iter()
            .map(|x| x.size())
            .sum()
        })
    }

    /// A cache for up to `max_tokens` positions (clamped to the model's context).
    pub fn new_cache(&self, max_tokens: usize) -> GpuCache {
        GpuCache::new(
            self.id,
            &self.config,
            max_tokens.min(self.config.max_context()),
        )
    }

    /// The checks of one batched decode row (as `forward`'s for one token).
    pub(crate) fn check_row(
        &self,
        token: u32,
        cache: &GpuCache,
    ) -> Result<(), gptoss_model::ForwardError> {
        self.check_input(std::slice::from_ref(&token), cache)
    }

    fn check_input(
        &self,
        tokens: &[u32],
        cache: &GpuCache,
    ) -> Result<(), gptoss_model::ForwardError> {
        use gptoss_model::ForwardError;
        gptoss_model::check_tokens(tokens, self.config.vocab_size)?;
        if cache.model_id != self.id {
            return Err(ForwardError::CacheMismatch {
                problem: "the cache was made by another GPU model".into(),
            });
        }
        gptoss_model::check_room(cache.len, tokens.len(), cache.max_tokens())
    }

    /// As `Model::forward_into`: runs `tokens` at the cache's next positions, appends their
    /// keys and values, and writes the requested logits rows (f32 [rows, vocab]) to `logits`.
    pub fn forward_into(
        &self,
        tokens: &[u32],
        cache: &mut GpuCache,
        which: LogitsFor,
        logits: &mut Vec<f32>,
    ) -> Result<(), GpuError> {
        self.check_input(tokens, cache)?;
        logits.clear();
        let n = tokens.len();
        // Every row's logits at once must fit in one binding: fewer rows a chunk for `All`.
        let row_bytes = (self.config.vocab_size * 4) as u64;
        let chunk = match which {
            LogitsFor::All => CHUNK.min((self.ctx.max_binding() / row_bytes).max(1) as usize),
            _ => CHUNK,
        };
        let mut start = 0;
        while start < n {
            let end = (start + chunk).min(n);
            let rows = match which {
                LogitsFor::All => 0..end - start,
                LogitsFor::Last if end == n => end - start - 1..end - start,
                _ => 0..0,
            };
            let mut segs = [Segment {
                cache: &mut *cache,
                row0: 0,
                n: end - start,
            }];
            self.pass(&tokens[start..end], &mut segs, rows, logits)?;
            start = end;
        }
        Ok(())
    }

    /// One decode step for several sequences: `tokens[i]` at the next position of
    /// `caches[i]`; row i of the result (f32 [vocab] each) goes to `outs[i]`.
    pub fn decode_batch(
        &self,
        tokens: &[u32],
        caches: &mut [&mut GpuCache],
        outs: &mut [&mut Vec<f32>],
    ) -> Result<(), GpuError> {
        let n = tokens.len();
        let mut segs: Vec<Segment<'_>> = caches
            .iter_mut()
            .enumerate()
            .map(|(i, c)| Segment {
                cache: c,
                row0: i,
                n: 1,
            })
            .collect();
        let mut all = Vec::new();
        self.pass(tokens, &mut segs, 0..n, &mut all)?;
        let v = self.config.vocab_size;
        for (i, out) in outs.iter_mut().enumerate() {
            out.clear();
            out.extend_from_slice(&all[i * v..(i + 1) * v]);
        }
        Ok(())
    }

    /// Records and runs one pass of `tokens` (the segments' rows, in order), appending the
    /// logits of rows `out_rows` to `logits`.
    fn pass(
        &self,
        tokens: &[u32],
        segs: &mut [Segment<'_>],
        out_rows: std::ops::Range<usize>,
        logits: &mut Vec<f32>,
    ) -> Result<(), GpuError> {
        let c = &self.config;
        let ctx = &self.ctx;
        let n = tokens.len();
        let (h, qd, kvd, hd) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.head_dim);
        let (e, k) = (c.num_experts, c.experts_per_token);
        let stride = qd + 2 * kvd;
        let heads = c.num_attention_heads;
        let mut scratch = self
            .scratch
            .lock()
            .map_err(|_| GpuError::Device("a previous pass panicked".into()))?;
        // Splits per segment and the partials' size.
        let splits: Vec<(usize, usize)> = segs
            .iter()
            .map(|s| {
                let keys = s.cache.len + s.n;
                let per_query = (MAX_SPLITS / s.n.max(1)).max(1);
                let n_splits = keys.div_ceil(64).clamp(1, per_query);
                let kps = keys.div_ceil(n_splits).div_ceil(64) * 64;
                (n_splits, kps)
            })
            .collect();
        let part_floats = segs
            .iter()
            .zip(&splits)
            .map(|(s, &(ns, _))| s.n * heads * ns * (hd + 2))
            .max()
            .unwrap_or(0);
        self.grow_scratch(&mut scratch, n, out_rows.len(), part_floats);
        let Scratch {
            bufs, arena, host, ..
        } = &mut *scratch;
        let Some(b) = bufs.as_ref() else {
            return Err(GpuError::Device("scratch buffers missing".into()));
        };

        // Inputs: token ids and each row's rotary angles (cos rows, then sin rows).
        ctx.queue
            .write_buffer(&b.tokens, 0, bytemuck::cast_slice(tokens));
        let dh = hd / 2;
        let mut cs = vec![0f32; 2 * n * dh];
        {
            let (cos, sin) = cs.split_at_mut(n * dh);
            for s in segs.iter() {
                let r = s.row0 * dh..(s.row0 + s.n) * dh;
                self.rope
                    .cos_sin(s.cache.len, &mut cos[r.clone()], &mut sin[r]);
            }
        }
        ctx.queue.write_buffer(&b.cs, 0, bytemuck::cast_slice(&cs));

        let mut rec = Recorder::new(ctx);
        for s in segs.iter_mut() {
            let needed = s.cache.len + s.n;
            s.cache.reserve(ctx, &mut rec, needed);
        }
        let kn = &self.kernels;
        let nu = n as u32;
        rec.dispatch(
            &kn.embed,
            &[P::U(nu), P::U(h as u32)],
            &[&b.tokens, &self.w.embedding, &b.x],
            [(h as u32).div_ceil(64), nu, 1],
        )?;
        let eps = c.rms_norm_eps;
        for (li, l) in self.w.layers.iter().enumerate() {
            self.rmsnorm(&mut rec, n, &b.x, &l.attn_norm, &b.hn, eps)?;
            self.linear(
                &mut rec, &l.qkv, &b.hn, 0, h, n, &b.qkv, stride, false, None, b,
            )?;
            rec.dispatch(
                &kn.rope,
                &[
                    P::U(nu),
                    P::U(heads as u32),
                    P::U(c.num_key_value_heads as u32),
                    P::U(hd as u32),
                    P::U(stride as u32),
                    P::U(qd as u32),
                ],
                &[&b.cs, &b.qkv],
                [
                    (((heads + c.num_key_value_heads) * dh) as u32).div_ceil(64),
                    nu,
                    1,
                ],
            )?;
            let window = if c.is_sliding(li) {
                c.sliding_window
            } else {
                0
            };
            for (s, &(n_splits, kps)) in segs.iter().zip(&splits) {
                let lc = &s.cache.layers[li];
                let (Some(kc), Some(vc)) = (&lc.k, &lc.v) else {
                    return Err(GpuError::Device("cache buffers missing".into()));
                };
                let ring = lc.ring.unwrap_or(0) as u32;
                let (sn, past, row0) = (s.n as u32, s.cache.len as u32, s.row0 as u32);
                let params = [
                    P::U(sn),
                    P::U(past),
                    P::U(heads as u32),
                    P::U(c.num_key_value_heads as u32),
                    P::U(hd as u32),
                    P::U(stride as u32),
                    P::U(qd as u32),
                    P::U((qd + kvd) as u32),
                    P::U(ring),
                    P::U(window as u32),
                    P::U(kps as u32),
                    P::U(n_splits as u32),
                    P::F(1.0 / (hd as f32).sqrt()),
                    P::U(row0),
                ];
                if s.n >= PREFILL_ATTENTION_MIN && hd <= 64 {
                    // Blocks of 16 queries share each key/value tile.
                    rec.dispatch(
                        &kn.attention_prefill,
                        &params,
                        &[&b.qkv, kc, vc, &l.sinks, &b.attn],
                        [sn.div_ceil(16), heads as u32, 1],
                    )?;
                } else {
                    rec.dispatch(
                        &kn.attention,
                        &params,
                        &[&b.qkv, kc, vc, &b.part],
                        [n_splits as u32, heads as u32, sn],
                    )?;
                    rec.dispatch(
                        &kn.attention_merge,
                        &[
                            P::U(sn),
                            P::U(heads as u32),
                            P::U(hd as u32),
                            P::U(n_splits as u32),
                            P::U(row0),
                        ],
                        &[&b.part, &l.sinks, &b.attn],
                        [heads as u32, sn, 1],
                    )?;
                }
                rec.dispatch(
                    &kn.kv_store,
                    &[
                        P::U(sn),
                        P::U(past),
                        P::U(kvd as u32),
                        P::U(stride as u32),
                        P::U(qd as u32),
                        P::U((qd + kvd) as u32),
                        P::U(ring),
                        P::U(row0),
                    ],
                    &[&b.qkv, kc, vc],
                    [(kvd as u32).div_ceil(64), sn, 1],
                )?;
            }
            // x += out(attn)
            self.linear(&mut rec, &l.out, &b.attn, 0, qd, n, &b.x, h, true, None, b)?;
            self.rmsnorm(&mut rec, n, &b.x, &l.mlp_norm, &b.hn, eps)?;
            self.linear(
                &mut rec, &l.router, &b.hn, 0, h, n, &b.router, e, false, None, b,
            )?;
            rec.dispatch(
                &kn.topk,
                &[P::U(nu), P::U(e as u32), P::U(k as u32)],
                &[&b.router, &b.idx, &b.wts],
                [nu.div_ceil(64), 1, 1],
            )?;
            self.experts(&mut rec, l, n, b)?;
        }
        let m = out_rows.len();
        if m > 0 {
            self.rmsnorm(&mut rec, n, &b.x, &self.w.norm, &b.hn, eps)?;
            if self.w.unembed_ids.is_some() {
                rec.clear(&b.logits);
            }
            let u = &self.w.unembedding;
            self.linear(
                &mut rec,
                u,
                &b.hn,
                out_rows.start * h,
                h,
                m,
                &b.logits,
                c.vocab_size,
                false,
                self.w.unembed_ids.as_ref(),
                b,
            )?;
        }
        rec.submit(ctx, arena);
        if m > 0 {
            let bytes = (m * c.vocab_size * 4) as u64;
            ctx.read_back(&b.logits, bytes, host)?;
            logits.extend(
                host.chunks_exact(4)
                    .map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]])),
            );
        } else {
            ctx.wait()?;
        }
        for s in segs.iter_mut() {
            s.cache.len += s.n;
        }
        Ok(())
    }

    /// The mixture-of-experts products of one layer, after top-k: per (token, expert) pair for
    /// a few tokens (decode), grouped by expert when enough pairs share the weights.
    fn experts(
        &self,
        rec: &mut Recorder,
        l: &crate::weights::DeviceLayer,
        n: usize,
        b: &Bufs,
    ) -> Result<(), GpuError> {
        let c = &self.config;
        let kn = &self.kernels;
        let (h, e, k, inter) = (
            c.hidden_size,
            c.num_experts,
            c.experts_per_token,
            c.intermediate_size,
        );
        let nu = n as u32;
        if n >= GROUPED_MIN_TOKENS {
            let pairs = n * k;
            let max_tiles = pairs.div_ceil(GROUP_TILE) + e.min(pairs);
            rec.dispatch(
                &kn.moe_route,
                &[P::U(pairs as u32), P::U(e as u32), P::U(GROUP_TILE as u32)],
                &[&b.idx, &b.sorted, &b.tiles],
                [1, 1, 1],
            )?;
            rec.dispatch(
                &kn.moe_grouped,
                &[
                    P::U(h as u32),
                    P::U(2 * inter as u32),
                    P::U(k as u32),
                    P::U(1),
                    P::F(c.swiglu_limit),
                    P::F(c.swiglu_alpha),
                ],
                &[
                    &b.hn,
                    &b.sorted,
                    &l.mlp1.w,
                    &l.mlp1.scales,
                    &l.mlp1.bias,
                    &b.tiles,
                    &b.act,
                ],
                [(2 * inter as u32).div_ceil(4), max_tiles as u32, 1],
            )?;
            rec.dispatch(
                &kn.moe_grouped,
                &[P::U(inter as u32), P::U(h as u32), P::U(1), P::U(0)],
                &[
                    &b.act,
                    &b.sorted,
                    &l.mlp2.w,
                    &l.mlp2.scales,
                    &l.mlp2.bias,
                    &b.tiles,
                    &b.moe_y,
                ],
                [(h as u32).div_ceil(4), max_tiles as u32, 1],
            )?;
            return rec.dispatch(
                &kn.moe_combine,
                &[P::U(nu), P::U(k as u32), P::U(h as u32)],
                &[&b.moe_y, &b.idx, &b.wts, &b.x],
                [(h as u32).div_ceil(64), nu, 1],
            );
        }
        rec.dispatch(
            &kn.mlp1,
            &[
                P::U(nu),
                P::U(k as u32),
                P::U(h as u32),
                P::U(2 * inter as u32),
                P::F(c.swiglu_limit),
                P::F(c.swiglu_alpha),
            ],
            &[
                &b.hn,
                &b.idx,
                &l.mlp1.w,
                &l.mlp1.scales,
                &l.mlp1.bias,
                &b.act,
            ],
            [(2 * inter as u32).div_ceil(4), nu * k as u32, 1],
        )?;
        rec.dispatch(
            &kn.mlp2,
            &[P::U(nu), P::U(k as u32), P::U(inter as u32), P::U(h as u32)],
            &[
                &b.act,
                &b.idx,
                &l.mlp2.w,
                &l.mlp2.scales,
                &l.mlp2.bias,
                &b.wts,
                &b.x,
            ],
            [(h as u32).div_ceil(4), nu, 1],
        )?;
        Ok(())
    }

    fn rmsnorm(
        &self,
        rec: &mut Recorder,
        n: usize,
        x: &wgpu::Buffer,
        scale: &wgpu::Buffer,
        y: &wgpu::Buffer,
        eps: f32,
    ) -> Result<(), GpuError> {
        let h = self.config.hidden_size as u32;
        rec.dispatch(
            &self.kernels.rmsnorm,
            &[P::U(n as u32), P::U(h), P::F(eps)],
            &[x, scale, y],
            [n as u32, 1, 1],
        )
    }

    /// y[t, o] (+)= x[x_off + t·d_in ..] · W[o]ᵀ + b for n rows; `ids` scatters row o to column
    /// ids[o] of a `y_stride`-wide row.
    #[allow(clippy::too_many_arguments)]
    fn linear(
        &self,
        rec: &mut Recorder,
        l: &DeviceLinear,
        x: &wgpu::Buffer,
        x_off: usize,
        x_stride: usize,
        n: usize,
        y: &wgpu::Buffer,
        y_stride: usize,
        accumulate: bool,
        ids: Option<&wgpu::Buffer>,
        b: &Bufs,
    ) -> Result<(), GpuError> {
        let flags = u32::from(l.bias.is_some())
            | if accumulate { 2 } else { 0 }
            | if ids.is_some() { 4 } else { 0 };
        let (pipeline, groups) = self.kernels.linear_for(l.format, l.d_in, l.d_out, n);
        rec.dispatch(
            pipeline,
            &[
                P::U(n as u32),
                P::U(l.d_in as u32),
                P::U(l.d_out as u32),
                P::U(flags),
                P::U(x_off as u32),
                P::U(x_stride as u32),
                P::U(y_stride as u32),
            ],
            &[
                x,
                &l.w,
                l.bias.as_ref().unwrap_or(&b.dummy),
                ids.unwrap_or(&b.dummy),
                y,
            ],
            groups,
        )
    }

    fn grow_scratch(&self, s: &mut Scratch, rows: usize, logits_rows: usize, part_floats: usize) {
        if s.bufs.is_some()
            && s.rows >= rows
            && s.logits_rows >= logits_rows
            && s.part_floats >= part_floats
        {
            return;
        }
        let c = &self.config;
        let rows = rows.max(s.rows);
        let logits_rows = logits_rows.max(s.logits_rows).max(1);
        let part_floats = part_floats.max(s.part_floats);
        let f = |n: usize| (n * 4) as u64;
        let ctx = &self.ctx;
        let (h, k) = (c.hidden_size, c.experts_per_token);
        s.bufs = Some(Bufs {
            tokens: ctx.storage("tokens", f(rows)),
            cs: ctx.storage("rope", f(rows * c.head_dim)),
            x: ctx.storage("x", f(rows * h)),
            hn: ctx.storage("normed x", f(rows * h)),
            qkv: ctx.storage("qkv", f(rows * (c.q_dim() + 2 * c.kv_dim()))),
            attn: ctx.storage("attention", f(rows * c.q_dim())),
            part: ctx.storage("attention partials", f(part_floats)),
            router: ctx.storage("router", f(rows * c.num_experts)),
            idx: ctx.storage("expert ids", f(rows * k)),
            wts: ctx.storage("expert weights", f(rows * k)),
            act: ctx.storage("swiglu", f(rows * k * c.intermediate_size)),
            sorted: ctx.storage("pairs by expert", f(rows * k)),
            tiles: ctx.storage(
                "expert tiles",
                f(4 + 4 * ((rows * k).div_ceil(GROUP_TILE) + c.num_experts.min(rows * k))),
            ),
            moe_y: ctx.storage("expert outputs", f(rows * k * h)),
            logits: ctx.storage("logits", f(logits_rows * c.vocab_size)),
            dummy: ctx.storage("unused binding", 16),
        });
        s.rows = rows;
        s.logits_rows = logits_rows;
        s.part_floats = part_floats;
    }
}

/// Shapes the shaders handle (checked once at upload).
fn check_shapes(c: &Config) -> Result<(), GpuError> {
    let bad = |m: String| Err(GpuError::Unsupported(m));
    if c.head_dim > 256 || !c.head_dim.is_multiple_of(2) {
        return bad(format!("head_dim {} (even, at most 256)", c.head_dim));
    }
    if c.experts_per_token > 8 {
        return bad(format!(
            "{} experts per token (at most 8)",
            c.experts_per_token
        ));
    }
    if c.num_experts > 32 * 1024 || c.experts_per_token > c.num_experts {
        return bad(format!("{} experts", c.num_experts));
    }
    if !c
        .num_attention_heads
        .is_multiple_of(c.num_key_value_heads.max(1))
    {
        return bad("query heads not a multiple of key/value heads".into());
    }
    Ok(())
}
