//! One module per subcommand: its clap `Args` and a `run` function.

pub mod bench;
mod bench_gpu;
pub mod chat;
pub mod detokenize;
pub mod devices;
pub mod finetune;
pub mod generate;
pub mod index;
pub mod logits;
pub mod models;
pub mod parse;
pub mod render;
pub mod run;
pub mod serve;
pub mod synth;
pub mod tokenize;
pub mod tool;
