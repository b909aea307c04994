//! `gpt-oss devices`: the GPU adapters wgpu finds, best first, with the limits that decide
//! whether a model fits (the largest buffer and storage binding: one tensor must fit in one).

#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON array instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let list = gptoss_gpu::list_adapters();
    if args.json {
        let items: Vec<serde_json::Value> = list
            .iter()
            .map(|a| {
                serde_json::json!({
                    "index": a.index,
                    "name": a.name,
                    "kind": a.kind,
                    "backend": a.backend,
                    "driver": a.driver,
                    "memory_bytes": a.memory_bytes,
                    "max_buffer_size": a.max_buffer_size,
                    "max_binding_size": a.max_binding_size,
                    "software": a.is_software,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    if list.is_empty() {
        println!(
            "no GPU adapter found: the models run on the CPU. For a GPU, install its Vulkan \
             driver (Metal on macOS and DX12 on Windows need nothing)."
        );
        return Ok(());
    }
    for a in &list {
        println!(
            "gpu:{}  {}  ({}, {}{})  memory {}  driver {}  largest buffer {:.2} GB, largest binding {:.2} GB",
            a.index,
            a.name,
            a.kind,
            a.backend,
            if a.is_software {
                ", software: slow, never chosen by --device auto"
            } else {
                ""
            },
            a.memory_bytes
                .map_or("unknown".to_string(), |b| format!("{:.1} GB", b as f64 / 1e9)),
            if a.driver.is_empty() { "?" } else { &a.driver },
            a.max_buffer_size as f64 / 1e9,
            a.max_binding_size as f64 / 1e9,
        );
    }
    Ok(())
}
