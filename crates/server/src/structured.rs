//! Structured output and well-formed tool calls: every generation gets a
//! [`HarmonyConstraint`] (gptoss-constrain) that guards the harmony
//! structure (a call can only name a declared function or an enabled
//! built-in tool; no control token inside a message body; header text never
//! becomes content), and makes the final answer (`response_format` /
//! `text.format`) and every function's arguments valid JSON for their
//! schemas by construction; a `custom` tool's input follows its Lark or
//! regex grammar ([`freeform_schema`]). Analysis and preambles stay free text.
//!
//! Owns: request types -> grammars, schema errors as 400s, the engine-side
//! adapter. Does not own: the grammar engine or the harmony state machine.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use gptoss_constrain::{
    freeform_arguments_schema, Format, FreeformSyntax, Grammar, HarmonyConstraint, HeaderGrammar,
    StructuredOutput,
};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::prompt::{self, FunctionTool, PromptSpec, ResponseFormat, ToolChoice};
use crate::scheduler::TokenConstraint;

/// Build the shared vocabulary of the constraint engine on a background
/// thread (a no-op once built).
pub(crate) fn warm_up() {
    let _ = std::thread::Builder::new()
        .name("gptoss-constrain-warmup".into())
        .spawn(|| {
            if let Err(e) = gptoss_constrain::Vocab::o200k_harmony() {
                eprintln!("warning: structured output is unavailable: {e}");
            }
        });
}

/// Compile a JSON schema (response format or strict tool parameters); the
/// message says what is wrong. Compiled once per distinct schema (the
/// constraint then takes it from the cache).
pub(crate) fn check_response_schema(schema: &Value) -> Result<(), String> {
    cached(&TOOL_GRAMMARS, grammar_key(true, Some(schema)), || {
        Grammar::compile(&Format::JsonSchema(schema.clone())).map_err(|e| e.to_string())
    })
    .map(drop)
}

/// The arguments schema of a `custom` tool with a grammar (`format.syntax`
/// `lark` or `regex`): `{"input": string}` whose string follows the
/// grammar, compiled here so a grammar the engine cannot take is caught
/// before the request runs. The error says why it cannot be enforced.
pub(crate) fn freeform_schema(syntax: &str, definition: &str) -> Result<Value, String> {
    let syntax = match syntax {
        "lark" => FreeformSyntax::Lark,
        "regex" => FreeformSyntax::Regex,
        other => return Err(format!("unknown grammar syntax {other:?}")),
    };
    let schema = freeform_arguments_schema(syntax, definition).map_err(|e| e.to_string())?;
    check_response_schema(&schema).map_err(|e| {
        // The engine's message spans lines (it points at the regex); a
        // warning header is one line.
        let e: Vec<&str> = e.split_whitespace().collect();
        format!("the grammar engine refused it: {}", e.join(" "))
    })?;
    Ok(schema)
}

/// The grammar of a tool's arguments. Strict: its schema (no parameters:
/// `{}` only; a schema that does not compile was a 400 at validation).
/// Not strict: the schema as given, with no tightening (extra properties
/// stay allowed unless the schema forbids them); no parameters, or a schema
/// the engine cannot compile: any JSON object (logged).
fn tool_grammar(tool: &FunctionTool) -> Result<Grammar, String> {
    let key = grammar_key(tool.strict, tool.parameters.as_ref());
    cached(&TOOL_GRAMMARS, key, || compile_tool_grammar(tool))
}

/// A compiled schema's key in [`TOOL_GRAMMARS`]: a strict tool's grammar is
/// its schema's, the same as a response format's.
fn grammar_key(strict: bool, schema: Option<&Value>) -> String {
    format!(
        "{strict}|{}",
        schema.map(Value::to_string).unwrap_or_default()
    )
}

/// Compiled grammars by what they were made from: agents send the same tools
/// with every request, and compiling a schema takes milliseconds (a header
/// grammar and ten schemas: ~22 ms; BENCHMARKS.md), cloning one microseconds.
static TOOL_GRAMMARS: GrammarCache = LazyLock::new(|| Mutex::new(HashMap::new()));
static HEADER_GRAMMARS: LazyLock<Mutex<HashMap<String, HeaderGrammar>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
type GrammarCache = LazyLock<Mutex<HashMap<String, Grammar>>>;

/// Most entries of each cache (it is emptied when full: simple, bounded).
const CACHE_ENTRIES: usize = 512;

fn cached<T: Clone, E>(
    cache: &Mutex<HashMap<String, T>>,
    key: String,
    build: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    if let Some(hit) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(hit);
    }
    let value = build()?;
    if let Ok(mut c) = cache.lock() {
        if c.len() >= CACHE_ENTRIES {
            c.clear();
        }
        c.insert(key, value.clone());
    }
    Ok(value)
}

fn compile_tool_grammar(tool: &FunctionTool) -> Result<Grammar, String> {
    let schema = match (&tool.parameters, tool.strict) {
        (Some(schema), _) => schema.clone(),
        (None, true) => json!({"type": "object", "properties": {}, "additionalProperties": false}),
        (None, false) => return Grammar::compile(&Format::JsonObject).map_err(|e| e.to_string()),
    };
    match Grammar::compile(&Format::JsonSchema(schema)) {
        Ok(g) => Ok(g),
        Err(e) if tool.strict => Err(e.to_string()),
        Err(e) => {
            eprintln!(
                "warning: function {:?}: its parameters schema cannot be enforced ({e}); its arguments are constrained to any JSON object",
                tool.name
            );
            Grammar::compile(&Format::JsonObject).map_err(|e| e.to_string())
        }
    }
}

/// The client's functions by their key in the constraint: `NAME` for the
/// `functions` namespace, `NAMESPACE.NAME` for the others.
fn client_functions(spec: &PromptSpec) -> impl Iterator<Item = (String, &FunctionTool)> {
    let plain = spec.tools.iter().map(|t| (t.name.clone(), t));
    let namespaced = spec.namespaces.iter().flat_map(|ns| {
        ns.tools
            .iter()
            .map(move |t| (format!("{}.{}", ns.name, t.name), t))
    });
    plain.chain(namespaced)
}

/// Every recipient the model may address: the request's functions and the
/// built-in tools the server runs for it.
fn recipients(spec: &PromptSpec) -> Vec<String> {
    if spec.tool_choice == ToolChoice::None {
        return Vec::new();
    }
    let mut out: Vec<String> = client_functions(spec)
        .map(|(name, _)| prompt::recipient_of(&name))
        .collect();
    for ns in &spec.builtin_tools {
        if ns.tools.is_empty() {
            out.push(ns.name.clone());
        } else {
            out.extend(ns.tools.iter().map(|t| format!("{}.{}", ns.name, t.name)));
        }
    }
    out
}

/// The constraint for one generation: the harmony structure is always
/// guarded (headers name declared tools only, no control token inside a
/// body), tool arguments follow their schemas, the answer its response
/// format. `prefeed`: the tokens the prompt put after `<|start|>assistant`;
/// `budget`: most tokens the generation may produce.
pub(crate) fn constraint_for(
    spec: &PromptSpec,
    prefeed: &[u32],
    budget: usize,
) -> Result<Option<Box<dyn TokenConstraint>>, ApiError> {
    let final_answer = match &spec.response_format {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some(Format::JsonObject),
        ResponseFormat::JsonSchema { schema, .. } => Some(Format::JsonSchema(schema.clone())),
    }
    .map(|format| Grammar::compile(&format))
    .transpose()
    .map_err(|e| {
        ApiError::invalid(
            format!("Invalid schema for response_format: {e}"),
            Some("response_format"),
        )
    })?;
    let mut tool_args = Vec::new();
    if spec.tool_choice != ToolChoice::None {
        for (name, tool) in client_functions(spec) {
            let grammar = tool_grammar(tool).map_err(|e| {
                ApiError::invalid(
                    format!("Invalid schema for function '{name}': {e}"),
                    Some("tools"),
                )
                .with_code("invalid_function_parameters")
            })?;
            tool_args.push((name, grammar));
        }
    }
    let recipients = recipients(spec);
    // With a response format the answer is the final message alone: no
    // preamble beside the JSON.
    let preambles = final_answer.is_none();
    let key = format!("{preambles}|{}", recipients.join("\n"));
    let headers = cached(&HEADER_GRAMMARS, key, || {
        if preambles {
            HeaderGrammar::new(&recipients)
        } else {
            HeaderGrammar::without_preambles(&recipients)
        }
    })
    .map_err(|e| ApiError::internal(format!("tool-call constraint unavailable: {e}")))?;
    let structured = StructuredOutput {
        final_answer,
        tool_args,
        headers: Some(headers),
    };
    if structured.is_empty() {
        return Ok(None);
    }
    let mut constraint = HarmonyConstraint::new(structured)
        .map_err(|e| ApiError::internal(format!("structured output is unavailable: {e}")))?
        .with_token_budget(Some(budget));
    constraint.prefeed(prefeed);
    Ok(Some(Box::new(EngineConstraint(constraint))))
}

/// The scheduler's view of a [`HarmonyConstraint`].
struct EngineConstraint(HarmonyConstraint);

impl TokenConstraint for EngineConstraint {
    fn mask(&mut self, logits: &mut [f32]) {
        self.0.mask(logits);
    }

    fn accept(&mut self, token: u32) {
        self.0.accept(token);
        for warning in self.0.take_warnings() {
            eprintln!("warning: structured output: {warning}");
        }
    }

    fn cut_short(&self) -> bool {
        self.0.cut_short()
    }
}
