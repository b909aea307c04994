//! Loading memory-maps the checkpoint: resident memory must not grow by the size of the MXFP4
//! experts. Builds a ~200 MB checkpoint (Linux only: reads VmRSS from /proc/self/status).

mod helpers;

use gptoss_model::synth::{self, SynthLayout};
use gptoss_model::{LogitsFor, Model};
use helpers::vm_rss_kib;

#[test]
fn load_maps_experts_without_reading_them() {
    let Some(_) = vm_rss_kib() else {
        eprintln!("no /proc/self/status: skipped");
        return;
    };
    let mut c = synth::tiny_config();
    c.hidden_size = 1024;
    c.intermediate_size = 1024;
    c.num_experts = 64;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 8;
    c.num_key_value_heads = 2;
    c.head_dim = 64;
    let dir = tempfile::tempdir().unwrap();
    synth::write_checkpoint(dir.path(), &c, 1, SynthLayout::Original).unwrap();
    let file_mib = std::fs::metadata(dir.path().join("model.safetensors"))
        .unwrap()
        .len() as f64
        / (1 << 20) as f64;
    let expert_mib = (c.num_hidden_layers * c.num_experts * 3 * c.hidden_size * c.intermediate_size)
        as f64
        / 2.0
        * (17.0 / 16.0)
        / (1 << 20) as f64;
    let before = vm_rss_kib().unwrap();
    let model = Model::load(dir.path()).unwrap();
    let after = vm_rss_kib().unwrap();
    let grew_mib = (after as f64 - before as f64) / 1024.0;
    eprintln!(
        "checkpoint {file_mib:.1} MiB (MXFP4 experts {expert_mib:.1} MiB): VmRSS {:.1} -> {:.1} MiB, +{grew_mib:.1} MiB",
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    assert!(expert_mib > 200.0);
    assert!(
        grew_mib < expert_mib / 4.0,
        "load raised RSS by {grew_mib} MiB"
    );
    // One decode step touches only the routed experts' pages.
    let mut cache = model.new_cache(4);
    model.forward(&[1], &mut cache, LogitsFor::Last).unwrap();
    let after_step = vm_rss_kib().unwrap();
    eprintln!(
        "after one decode step: VmRSS {:.1} MiB",
        after_step as f64 / 1024.0
    );
}
