//! The device: adapter discovery (`gpt-oss devices`), opening one with the limits the model
//! needs, and the blocking helpers (upload, read back) the rest of the crate uses. wgpu's
//! errors are caught here and turned into [`GpuError`]s instead of its default panic.

use std::sync::{Arc, Mutex};

use crate::GpuError;

/// What `gpt-oss devices` prints about one adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// Index for `--device gpu:N`.
    pub index: usize,
    pub name: String,
    /// "discrete", "integrated", "virtual", "cpu" or "other".
    pub kind: &'static str,
    /// "vulkan", "metal", "dx12", ...
    pub backend: String,
    pub driver: String,
    /// Largest single buffer, bytes.
    pub max_buffer_size: u64,
    /// Largest storage-buffer binding, bytes (one tensor must fit in it).
    pub max_binding_size: u64,
    /// Device-local memory in bytes, where the backend tells (Vulkan: the device-local heaps).
    pub memory_bytes: Option<u64>,
    /// Whether this is a software rasterizer (lavapipe, llvmpipe, WARP): usable, but slow.
    pub is_software: bool,
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    // GL is not built in; browsers are not a target.
    desc.backends &= wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    wgpu::Instance::new(desc)
}

fn adapters() -> Vec<wgpu::Adapter> {
    let inst = instance();
    let mut list = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
    // Real GPUs first, software ones last, so index 0 is the best device.
    list.sort_by_key(|a| rank(&a.get_info()));
    list
}

fn rank(info: &wgpu::AdapterInfo) -> u8 {
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn summary(index: usize, a: &wgpu::Adapter) -> AdapterSummary {
    let info = a.get_info();
    let limits = a.limits();
    AdapterSummary {
        index,
        name: info.name.clone(),
        kind: match info.device_type {
            wgpu::DeviceType::DiscreteGpu => "discrete",
            wgpu::DeviceType::IntegratedGpu => "integrated",
            wgpu::DeviceType::VirtualGpu => "virtual",
            wgpu::DeviceType::Cpu => "cpu",
            wgpu::DeviceType::Other => "other",
        },
        backend: format!("{:?}", info.backend).to_lowercase(),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        max_buffer_size: limits.max_buffer_size,
        max_binding_size: limits.max_storage_buffer_binding_size,
        is_software: info.device_type == wgpu::DeviceType::Cpu,
        memory_bytes: device_memory_bytes(a),
    }
}

/// The sum of the device-local memory heaps (Vulkan only: wgpu itself does not say).
fn device_memory_bytes(a: &wgpu::Adapter) -> Option<u64> {
    #[cfg(all(not(target_vendor = "apple"), not(target_arch = "wasm32")))]
    {
        // SAFETY: reads the physical device's memory properties; nothing is created or freed,
        // and the guard outlives every use of the handles it lends.
        let hal = unsafe { a.as_hal::<wgpu::hal::api::Vulkan>() }?;
        let instance = hal.shared_instance().raw_instance();
        let props =
            unsafe { instance.get_physical_device_memory_properties(hal.raw_physical_device()) };
        let heaps = &props.memory_heaps[..(props.memory_heap_count as usize).min(16)];
        // VK_MEMORY_HEAP_DEVICE_LOCAL_BIT = 1
        let total: u64 = heaps
            .iter()
            .filter(|h| h.flags.as_raw() & 1 != 0)
            .map(|h| h.size)
            .sum();
        if total > 0 {
            return Some(total);
        }
    }
    #[allow(unreachable_code)]
    None
}

/// Every adapter wgpu finds, best first (discrete, integrated, ..., software).
pub fn list_adapters() -> Vec<AdapterSummary> {
    adapters()
        .iter()
        .enumerate()
        .map(|(i, a)| summary(i, a))
        .collect()
}

/// An open device and queue, with the errors wgpu reports on its own collected here.
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) limits: wgpu::Limits,
    summary: AdapterSummary,
    errors: Arc<Mutex<Vec<String>>>,
}

impl GpuContext {
    /// Opens adapter `index` of [`list_adapters`] (None: the first, i.e. the best).
    pub fn open(index: Option<usize>) -> Result<GpuContext, GpuError> {
        let list = adapters();
        if list.is_empty() {
            return Err(GpuError::NoAdapter);
        }
        let i = index.unwrap_or(0);
        let Some(adapter) = list.get(i) else {
            return Err(GpuError::NoSuchAdapter {
                index: i,
                found: list.len(),
            });
        };
        let summary = summary(i, adapter);
        // Everything the adapter offers: big weight buffers need its largest bindings.
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("gpt-oss"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            GpuError::OpenDevice {
                adapter: summary.name.clone(),
                reason: e.to_string(),
            }
        })?;
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        Ok(GpuContext {
            device,
            queue,
            limits,
            summary,
            errors,
        })
    }

    /// The adapter this context runs on.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.summary
    }

    /// The largest storage binding (and buffer) this device allows, bytes.
    pub(crate) fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// The first error wgpu reported since the last call, as a [`GpuError`].
    pub(crate) fn take_error(&self) -> Result<(), GpuError> {
        let mut v = self
            .errors
            .lock()
            .map_err(|_| GpuError::Device("poisoned".into()))?;
        if v.is_empty() {
            return Ok(());
        }
        let first = v.remove(0);
        v.clear();
        Err(GpuError::Device(first))
    }

    /// Waits until the device has finished all submitted work.
    pub(crate) fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Device(e.to_string()))?;
        self.take_error()
    }

    /// A storage buffer of `bytes` (rounded up to 4), usable as a copy source and target.
    pub(crate) fn storage(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).div_ceil(4) * 4,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// A storage buffer holding `data` (padded with zeros to a multiple of 4 bytes), written
    /// in pieces so no staging copy of a large tensor is ever whole in memory.
    pub(crate) fn upload(
        &self,
        label: &str,
        data: &[u8],
        progress: &mut dyn FnMut(u64),
    ) -> Result<wgpu::Buffer, GpuError> {
        const PIECE: usize = 64 << 20;
        let size = (data.len() as u64).max(16).div_ceil(4) * 4;
        let max = self.limits.max_storage_buffer_binding_size;
        if size > max.min(self.limits.max_buffer_size) {
            return Err(GpuError::TooLarge {
                what: label.to_string(),
                bytes: size,
                limit: max.min(self.limits.max_buffer_size),
                adapter: self.summary.name.clone(),
            });
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        // (The fit of the whole model is checked before uploading: GpuModel::from_source.)
        let buf = self.storage(label, size);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::OutOfMemory {
                adapter: self.summary.name.clone(),
                needed: size,
                allocated: 0,
                what: format!("{label}: {e}"),
            });
        }
        let whole = data.len() / 4 * 4;
        for (i, piece) in data[..whole].chunks(PIECE).enumerate() {
            self.queue.write_buffer(&buf, (i * PIECE) as u64, piece);
            if whole > PIECE {
                // Bound the staging memory: flush this piece before making the next.
                self.queue.submit([]);
                self.wait()?;
            }
            progress(piece.len() as u64);
        }
        let rest = &data[whole..];
        if !rest.is_empty() {
            let mut tail = rest.to_vec();
            tail.resize(4, 0);
            self.queue.write_buffer(&buf, whole as u64, &tail);
            progress(rest.len() as u64);
        }
        Ok(buf)
    }

    /// Read + write bandwidth of a device-to-device copy of `bytes` (best of `reps`), GB/s:
    /// the limit decode is measured against (a decode step streams its weights once).
    pub fn copy_bandwidth_gbs(&self, bytes: u64, reps: usize) -> Result<f64, GpuError> {
        let bytes = bytes.min(self.limits.max_buffer_size) / 4 * 4;
        let (a, b) = (
            self.storage("probe a", bytes),
            self.storage("probe b", bytes),
        );
        let mut best = f64::INFINITY;
        for rep in 0..=reps {
            let mut enc = self.device.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(&a, 0, &b, 0, bytes);
            let t = std::time::Instant::now();
            self.queue.submit([enc.finish()]);
            self.wait()?;
            if rep > 0 {
                best = best.min(t.elapsed().as_secs_f64());
            }
        }
        Ok(2.0 * bytes as f64 / best / 1e9)
    }

    /// Copies `bytes` bytes from the start of `src` back to the host.
    pub(crate) fn read_back(
        &self,
        src: &wgpu::Buffer,
        bytes: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), GpuError> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read back"),
            size: bytes.max(4).div_ceil(4) * 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, 0, &staging, 0, bytes.max(4).div_ceil(4) * 4);
        self.queue.submit([enc.finish()]);
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(GpuError::Device(e.to_string())),
            Err(_) => return Err(GpuError::Device("read back never completed".into())),
        }
        {
            let view = slice
                .get_mapped_range()
                .map_err(|e| GpuError::Device(e.to_string()))?;
            out.clear();
            out.extend_from_slice(&view[..bytes as usize]);
        }
        staging.unmap();
        Ok(())
    }
}
