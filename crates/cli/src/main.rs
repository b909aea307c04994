//! The `gpt-oss` binary: parses the command line and hands each subcommand to
//! its module in `commands/`. Only this crate turns errors into exit codes.

mod commands;
mod device;
mod generation_args;
mod model_source;
mod model_stores;
mod tool_args;
mod tool_loop;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gpt-oss",
    version,
    about = "Run OpenAI's gpt-oss models locally, offline."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Encode text with o200k_harmony and print the token ids as JSON.
    Tokenize(commands::tokenize::Args),
    /// Decode token ids (comma-separated or a JSON array) back to text.
    Detokenize(commands::detokenize::Args),
    /// Render a harmony conversation (openai-harmony JSON) to token ids.
    Render(commands::render::Args),
    /// Parse completion tokens into harmony messages.
    Parse(commands::parse::Args),
    /// Run the forward pass and write logits for every position (.npy).
    Logits(commands::logits::Args),
    /// Raw token-level generation without harmony; prints ids as JSON.
    Generate(commands::generate::Args),
    /// One-shot: answer a prompt, reasoning on stderr when asked.
    Run(commands::run::Args),
    /// Interactive chat in the terminal.
    Chat(commands::chat::Args),
    /// OpenAI-compatible HTTP server: /v1/chat/completions, /v1/responses, /v1/models.
    Serve(commands::serve::Args),
    /// Run a built-in tool (python, browser.*, handoff.ask) without a model
    /// and print exactly what the model would receive.
    Tool(commands::tool::Args),
    /// Build the offline browser's search index of a folder of documents.
    Index(commands::index::Args),
    /// Write a random checkpoint with the real gpt-oss names, shapes and dtypes.
    Synth(commands::synth::Args),
    /// List the gpt-oss models already on this machine (Hugging Face cache, Ollama, LM Studio).
    Models(commands::models::Args),
    /// List the GPU adapters `--device gpu:N` can use.
    Devices(commands::devices::Args),
    /// Measure prefill/decode speed against this machine's bandwidth and FMA limits.
    Bench(commands::bench::Args),
    /// Train a LoRA adapter on conversations (JSONL) and write it in PEFT's format.
    Finetune(commands::finetune::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Tokenize(args) => commands::tokenize::run(args),
        Command::Detokenize(args) => commands::detokenize::run(args),
        Command::Render(args) => commands::render::run(args),
        Command::Parse(args) => commands::parse::run(args),
        Command::Logits(args) => commands::logits::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Chat(args) => commands::chat::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Tool(args) => commands::tool::run(args),
        Command::Index(args) => commands::index::run(args),
        Command::Synth(args) => commands::synth::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Models(args) => commands::models::run(args),
        Command::Devices(args) => commands::devices::run(args),
        Command::Finetune(args) => commands::finetune::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
