//! 8-bit weights replace the bf16 reads: after `set_weights_q8(true)` the bf16 pages of the
//! attention projections and the unembedding leave resident memory (released from the memory
//! map as they are quantized) and decoding does not fault them back, so resident memory drops
//! by about the difference (2 - 1.125 bytes per weight) instead of growing by the copy. Builds a
//! ~150 MB checkpoint (Linux only: reads VmRSS from /proc/self/status). One test per file: RSS
//! is per process.

mod helpers;

use gptoss_model::synth::{self, SynthLayout};
use gptoss_model::{LogitsFor, Model};
use helpers::vm_rss_kib;

#[test]
fn weights_q8_releases_the_bf16_pages() {
    let Some(_) = vm_rss_kib() else {
        eprintln!("no /proc/self/status: skipped");
        return;
    };
    let mut c = synth::tiny_config();
    c.hidden_size = 1024;
    c.intermediate_size = 256;
    c.vocab_size = 32768;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 16;
    c.num_key_value_heads = 4;
    c.head_dim = 64;
    let dir = tempfile::tempdir().unwrap();
    synth::write_checkpoint(dir.path(), &c, 2, SynthLayout::Original).unwrap();
    let mut model = Model::load(dir.path()).unwrap();
    let h = c.hidden_size;
    let attn = c.num_hidden_layers * ((c.q_dim() + 2 * c.kv_dim()) * h + h * c.q_dim());
    let dense_mib = 2.0 * (attn + c.vocab_size * h) as f64 / (1 << 20) as f64;
    let mib = |kib: u64| kib as f64 / 1024.0;

    // A bf16 decode step reads every attention and unembedding page.
    let mut cache = model.new_cache(8);
    model.forward(&[1], &mut cache, LogitsFor::Last).unwrap();
    let bf16_rss = vm_rss_kib().unwrap();
    model.set_weights_q8(true).unwrap();
    let q8_rss = vm_rss_kib().unwrap();
    model.forward(&[2], &mut cache, LogitsFor::Last).unwrap();
    model.forward(&[3], &mut cache, LogitsFor::Last).unwrap();
    let step_rss = vm_rss_kib().unwrap();
    eprintln!(
        "dense bf16 weights {dense_mib:.1} MiB; VmRSS after a bf16 step {:.1} MiB, after \
         quantizing {:.1} MiB, after two q8 steps {:.1} MiB",
        mib(bf16_rss),
        mib(q8_rss),
        mib(step_rss)
    );
    assert!(dense_mib > 60.0);
    // Expected: -(2 - 1.125) / 2 = -44 % of the dense bytes; allow half of that.
    for (what, rss) in [("quantizing", q8_rss), ("two q8 steps", step_rss)] {
        assert!(
            mib(rss) < mib(bf16_rss) - 0.22 * dense_mib,
            "after {what}: VmRSS {:.1} MiB, was {:.1} MiB with bf16 ({dense_mib:.1} MiB dense)",
            mib(rss),
            mib(bf16_rss)
        );
    }
}
