//! The compute pipelines (one WGSL file per operation under `shaders/`, compiled by naga at
//! start) and the [`Recorder`] that turns a forward pass into one command buffer: every
//! dispatch's parameters go into one uniform arena written once per submit, so a step makes
//! no buffer per dispatch.

use crate::context::GpuContext;

/// Weight element formats a shader can be built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightFormat {
    Bf16,
    F32,
}

/// `wload(i)` (element i) and `wload2(i)` (elements i, i+1; i even) over `w`.
fn dense_prelude(f: WeightFormat) -> &'static str {
    match f {
        WeightFormat::Bf16 => {
            "alias WEIGHT = u32;
fn wload(i: u32) -> f32 {
    let word = w[i >> 1u];
    return bitcast<f32>(select(word << 16u, word & 0xffff0000u, (i & 1u) == 1u));
}
fn wload2(i: u32) -> vec2<f32> {
    let word = w[i >> 1u];
    return vec2<f32>(bitcast<f32>(word << 16u), bitcast<f32>(word & 0xffff0000u));
}
"
        }
        WeightFormat::F32 => {
            "alias WEIGHT = f32;
fn wload(i: u32) -> f32 { return w[i]; }
fn wload2(i: u32) -> vec2<f32> { return vec2<f32>(w[i], w[i + 1u]); }
"
        }
    }
}

/// `row_dot(row, d_in, xb, tid)`: this thread's share (every 64th group of elements) of
/// Σ_i W[row, i] · xin[xb + i] for MXFP4 weights (`wq`: packed codes as u32 words, `wsc`: E8M0
/// scale bytes packed four to a word).
const MXFP4_ROW_DOT: &str = "
@group(0) @binding(3) var<storage, read> wq: array<u32>;
@group(0) @binding(4) var<storage, read> wsc: array<u32>;
var<private> FP4: array<f32, 16> = array<f32, 16>(
    0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0);
fn e8m0(s: u32) -> f32 {
    if (s == 0u) { return bitcast<f32>(0x00400000u); }
    return bitcast<f32>(s << 23u);
}
fn row_dot(row: u32, d_in: u32, xb: u32, tid: u32) -> f32 {
    let words = d_in / 8u;
    let wbase = row * words;
    let sbase = row * (d_in / 32u);
    var acc = 0.0;
    for (var k = tid; k < words; k += 64u) {
        let word = wq[wbase + k];
        let si = sbase + k / 4u;
        let scale = e8m0((wsc[si >> 2u] >> (8u * (si & 3u))) & 0xffu);
        let x0 = xb + 8u * k;
        var part = 0.0;
        for (var b = 0u; b < 8u; b++) {
            part += FP4[(word >> (4u * b)) & 0xfu] * xin[x0 + b];
        }
        acc += part * scale;
    }
    return acc;
}
// row_dot for the (up to 8) rows xb[0..cnt] at once: each weight word decoded once for all.
fn row_dot_tile(row: u32, d_in: u32, xb: array<u32, 8>, cnt: u32, tid: u32) -> array<f32, 8> {
    let words = d_in / 8u;
    let wbase = row * words;
    let sbase = row * (d_in / 32u);
    var acc: array<f32, 8>;
    for (var j = 0u; j < 8u; j++) { acc[j] = 0.0; }
    for (var k = tid; k < words; k += 64u) {
        let word = wq[wbase + k];
        let si = sbase + k / 4u;
        let scale = e8m0((wsc[si >> 2u] >> (8u * (si & 3u))) & 0xffu);
        var wv: array<f32, 8>;
        for (var b = 0u; b < 8u; b++) { wv[b] = FP4[(word >> (4u * b)) & 0xfu]; }
        for (var j = 0u; j < 8u; j++) {
            if (j < cnt) {
                let x0 = xb[j] + 8u * k;
                var part = 0.0;
                for (var b = 0u; b < 8u; b++) { part += wv[b] * xin[x0 + b]; }
                acc[j] += part * scale;
            }
        }
    }
    return acc;
}
";

/// `row_dot` for dense expert weights (bf16 or f32) laid out [E, d_out, d_in].
fn dense_row_dot(f: WeightFormat) -> String {
    format!(
        "@group(0) @binding(3) var<storage, read> w: array<WEIGHT>;
@group(0) @binding(4) var<storage, read> wsc: array<u32>;
{}
fn row_dot(row: u32, d_in: u32, xb: u32, tid: u32) -> f32 {{
    if (arrayLength(&wsc) == 0u) {{ return 0.0; }}
    var acc = 0.0;
    for (var i = tid; i < d_in; i += 64u) {{ acc += wload(row * d_in + i) * xin[xb + i]; }}
    return acc;
}}
fn row_dot_tile(row: u32, d_in: u32, xb: array<u32, 8>, cnt: u32, tid: u32) -> array<f32, 8> {{
    var acc: array<f32, 8>;
    for (var j = 0u; j < 8u; j++) {{ acc[j] = 0.0; }}
    if (arrayLength(&wsc) == 0u) {{ return acc; }}
    for (var i = tid; i < d_in; i += 64u) {{
        let wv = wload(row * d_in + i);
        for (var j = 0u; j < 8u; j++) {{
            if (j < cnt) {{ acc[j] += wv * xin[xb[j] + i]; }}
        }}
    }}
    return acc;
}}
",
        dense_prelude(f)
    )
}

/// Expert weight formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpertFormat {
    Mxfp4,
    Dense(WeightFormat),
}

/// Every pipeline the forward pass uses, for the weight formats of one model.
pub struct Kernels {
    pub embed: wgpu::ComputePipeline,
    pub rmsnorm: wgpu::ComputePipeline,
    pub linear_bf16: wgpu::ComputePipeline,
    pub linear_f32: wgpu::ComputePipeline,
    pub linear_narrow_bf16: wgpu::ComputePipeline,
    pub linear_narrow_f32: wgpu::ComputePipeline,
    pub rope: wgpu::ComputePipeline,
    pub attention: wgpu::ComputePipeline,
    pub attention_merge: wgpu::ComputePipeline,
    /// Blocks of 16 queries sharing each key/value tile (prefill; head_dim <= 64).
    pub attention_prefill: wgpu::ComputePipeline,
    pub kv_store: wgpu::ComputePipeline,
    pub topk: wgpu::ComputePipeline,
    pub mlp1: wgpu::ComputePipeline,
    pub mlp2: wgpu::ComputePipeline,
    /// The grouped expert path (prefill, batched decode): pairs bucketed by expert, products
    /// over tiles of one expert's pairs, then the routed sum.
    pub moe_route: wgpu::ComputePipeline,
    pub moe_grouped: wgpu::ComputePipeline,
    pub moe_combine: wgpu::ComputePipeline,
}

/// Pairs per tile of the grouped expert products (`moe_grouped.wgsl`).
pub const GROUP_TILE: usize = 8;

fn pipeline(ctx: &GpuContext, label: &str, source: &str) -> wgpu::ComputePipeline {
    let module = ctx
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
    ctx.device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        })
}

impl Kernels {
    /// Compiles the pipelines: the embedding's format `embed`, the experts' format `experts`.
    pub fn new(ctx: &GpuContext, embed: WeightFormat, experts: ExpertFormat) -> Kernels {
        let with = |prelude: &str, body: &str| format!("{prelude}\n{body}");
        let expert_prelude = match experts {
            ExpertFormat::Mxfp4 => MXFP4_ROW_DOT.to_string(),
            ExpertFormat::Dense(f) => dense_row_dot(f),
        };
        Kernels {
            embed: pipeline(
                ctx,
                "embed",
                &with(dense_prelude(embed), include_str!("shaders/embed.wgsl")),
            ),
            rmsnorm: pipeline(ctx, "rmsnorm", include_str!("shaders/rmsnorm.wgsl")),
            linear_bf16: pipeline(
                ctx,
                "linear bf16",
                &with(
                    dense_prelude(WeightFormat::Bf16),
                    include_str!("shaders/linear.wgsl"),
                ),
            ),
            linear_f32: pipeline(
                ctx,
                "linear f32",
                &with(
                    dense_prelude(WeightFormat::F32),
                    include_str!("shaders/linear.wgsl"),
                ),
            ),
            linear_narrow_bf16: pipeline(
                ctx,
                "linear narrow bf16",
                &with(
                    dense_prelude(WeightFormat::Bf16),
                    include_str!("shaders/linear_narrow.wgsl"),
                ),
            ),
            linear_narrow_f32: pipeline(
                ctx,
                "linear narrow f32",
                &with(
                    dense_prelude(WeightFormat::F32),
                    include_str!("shaders/linear_narrow.wgsl"),
                ),
            ),
            rope: pipeline(ctx, "rope", include_str!("shaders/rope.wgsl")),
            attention: pipeline(ctx, "attention", include_str!("shaders/attention.wgsl")),
            attention_merge: pipeline(
                ctx,
                "attention merge",
                include_str!("shaders/attention_merge.wgsl"),
            ),
            attention_prefill: pipeline(
                ctx,
                "attention prefill",
                include_str!("shaders/attention_prefill.wgsl"),
            ),
            kv_store: pipeline(ctx, "kv store", include_str!("shaders/kv_store.wgsl")),
            topk: pipeline(ctx, "topk", include_str!("shaders/topk.wgsl")),
            mlp1: pipeline(
                ctx,
                "moe mlp1",
                &with(&expert_prelude, include_str!("shaders/moe_mlp1.wgsl")),
            ),
            mlp2: pipeline(
                ctx,
                "moe mlp2",
                &with(&expert_prelude, include_str!("shaders/moe_mlp2.wgsl")),
            ),
            moe_route: pipeline(ctx, "moe route", include_str!("shaders/moe_route.wgsl")),
            moe_grouped: pipeline(
                ctx,
                "moe grouped",
                &with(&expert_prelude, include_str!("shaders/moe_grouped.wgsl")),
            ),
            moe_combine: pipeline(ctx, "moe combine", include_str!("shaders/moe_combine.wgsl")),
        }
    }

    /// The dense product pipeline for weights in `f` (4×4 tiles).
    pub fn linear(&self, f: WeightFormat) -> &wgpu::ComputePipeline {
        match f {
            WeightFormat::Bf16 => &self.linear_bf16,
            WeightFormat::F32 => &self.linear_f32,
        }
    }

    /// The thread-per-output variant for rows of at most [`NARROW_MAX_D_IN`] elements.
    pub fn linear_narrow(&self, f: WeightFormat) -> &wgpu::ComputePipeline {
        match f {
            WeightFormat::Bf16 => &self.linear_narrow_bf16,
            WeightFormat::F32 => &self.linear_narrow_f32,
        }
    }

    /// The pipeline and workgroup grid of a product with `d_in` inputs, `d_out` rows, n tokens.
    pub fn linear_for(
        &self,
        f: WeightFormat,
        d_in: usize,
        d_out: usize,
        n: usize,
    ) -> (&wgpu::ComputePipeline, [u32; 3]) {
        if d_in <= NARROW_MAX_D_IN {
            (
                self.linear_narrow(f),
                [(d_out as u32).div_ceil(64), n as u32, 1],
            )
        } else {
            (
                self.linear(f),
                [(d_out as u32).div_ceil(4), (n as u32).div_ceil(4), 1],
            )
        }
    }
}

/// Rows up to this long take the thread-per-output product (`linear_narrow.wgsl`).
pub const NARROW_MAX_D_IN: usize = 256;

/// Bytes per dispatch in the parameter arena (the uniform offset alignment WebGPU guarantees).
const PARAM_SLOT: usize = 256;

enum Op {
    Dispatch {
        pipeline: wgpu::ComputePipeline,
        slot: usize,
        buffers: Vec<wgpu::Buffer>,
        groups: [u32; 3],
    },
    Copy {
        src: wgpu::Buffer,
        src_off: u64,
        dst: wgpu::Buffer,
        dst_off: u64,
        bytes: u64,
    },
    Clear {
        buf: wgpu::Buffer,
    },
}

/// Records a sequence of dispatches and copies, then encodes and submits them at once.
pub struct Recorder {
    params: Vec<u8>,
    ops: Vec<Op>,
    max_groups: u32,
}

/// A parameter value: u32 or f32, four bytes each.
#[derive(Clone, Copy)]
pub enum P {
    U(u32),
    F(f32),
}

impl Recorder {
    pub fn new(ctx: &GpuContext) -> Recorder {
        Recorder {
            params: Vec::new(),
            ops: Vec::new(),
            max_groups: ctx.limits.max_compute_workgroups_per_dimension,
        }
    }

    /// Adds one dispatch: `params` (at most 64 words) go to binding 0, `buffers` to bindings
    /// 1, 2, ... in order (a `None` binding number is skipped: see [`Recorder::dispatch_at`]).
    pub fn dispatch(
        &mut self,
        pipeline: &wgpu::ComputePipeline,
        params: &[P],
        buffers: &[&wgpu::Buffer],
        groups: [u32; 3],
    ) -> Result<(), crate::GpuError> {
        if groups.iter().any(|&g| g > self.max_groups) {
            return Err(crate::GpuError::Unsupported(format!(
                "a dispatch of {groups:?} workgroups exceeds the device's {} per dimension",
                self.max_groups
            )));
        }
        if groups.contains(&0) {
            return Ok(());
        }
        let slot = self.params.len() / PARAM_SLOT;
        let mut bytes = [0u8; PARAM_SLOT];
        for (i, v) in params.iter().enumerate() {
            let w = match *v {
                P::U(u) => u.to_le_bytes(),
                P::F(f) => f.to_le_bytes(),
            };
            bytes[4 * i..4 * i + 4].copy_from_slice(&w);
        }
        self.params.extend_from_slice(&bytes);
        self.ops.push(Op::Dispatch {
            pipeline: pipeline.clone(),
            slot,
            buffers: buffers.iter().map(|b| (*b).clone()).collect(),
            groups,
        });
        Ok(())
    }

    /// Copies `bytes` bytes between buffers (offsets and size multiples of 4).
    pub fn copy(
        &mut self,
        src: &wgpu::Buffer,
        src_off: u64,
        dst: &wgpu::Buffer,
        dst_off: u64,
        bytes: u64,
    ) {
        if bytes > 0 {
            self.ops.push(Op::Copy {
                src: src.clone(),
                src_off,
                dst: dst.clone(),
                dst_off,
                bytes,
            });
        }
    }

    /// Fills `buf` with zeros.
    pub fn clear(&mut self, buf: &wgpu::Buffer) {
        self.ops.push(Op::Clear { buf: buf.clone() });
    }

    /// Encodes everything recorded and submits it (does not wait).
    pub fn submit(self, ctx: &GpuContext, arena: &mut Option<wgpu::Buffer>) {
        let need = self.params.len().max(PARAM_SLOT) as u64;
        if arena.as_ref().is_none_or(|b| b.size() < need) {
            *arena = Some(ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("dispatch parameters"),
                size: need.next_power_of_two(),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let Some(params) = arena.as_ref() else {
            return;
        };
        if !self.params.is_empty() {
            ctx.queue.write_buffer(params, 0, &self.params);
        }
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let mut pass: Option<wgpu::ComputePass<'static>> = None;
        for op in self.ops {
            match op {
                Op::Dispatch {
                    pipeline,
                    slot,
                    buffers,
                    groups,
                } => {
                    let layout = pipeline.get_bind_group_layout(0);
                    let mut entries = vec![wgpu::BindGroupEntry {
                        binding: 0,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: params,
                            offset: (slot * PARAM_SLOT) as u64,
                            size: wgpu::BufferSize::new(PARAM_SLOT as u64),
                        }),
                    }];
                    for (i, b) in buffers.iter().enumerate() {
                        entries.push(wgpu::BindGroupEntry {
                            binding: i as u32 + 1,
                            resource: b.as_entire_binding(),
                        });
                    }
                    let group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: None,
                        layout: &layout,
                        entries: &entries,
                    });
                    let p = pass.get_or_insert_with(|| {
                        enc.begin_compute_pass(&Default::default())
                            .forget_lifetime()
                    });
                    p.set_pipeline(&pipeline);
                    p.set_bind_group(0, &group, &[]);
                    p.dispatch_workgroups(groups[0], groups[1], groups[2]);
                }
                Op::Copy {
                    src,
                    src_off,
                    dst,
                    dst_off,
                    bytes,
                } => {
                    pass = None;
                    enc.copy_buffer_to_buffer(&src, src_off, &dst, dst_off, bytes);
                }
                Op::Clear { buf } => {
                    pass = None;
                    enc.clear_buffer(&buf, 0, None);
                }
            }
        }
        drop(pass);
        ctx.queue.submit([enc.finish()]);
    }
}
