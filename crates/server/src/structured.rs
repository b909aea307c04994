//! Structured output: `response_format` / `text.format` (json_object,
//! json_schema) and strict function tools become a [`HarmonyConstraint`] on
//! the generation (gptoss-constrain), so the final answer and strict tool
//! arguments are valid JSON for their schema by construction. The constraint
//! applies only inside those message bodies, never to analysis, preambles
//! or harmony control tokens (see gptoss-constrain's `harmony` module).
//!
//! Owns: request types -> grammars, schema errors as 400s, the engine-side
//! adapter. Does not own: the grammar engine or the harmony state machine.

use gptoss_constrain::{Format, Grammar, HarmonyConstraint, StructuredOutput};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::prompt::{FunctionTool, PromptSpec, ResponseFormat, ToolChoice};
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
/// message says what is wrong.
pub(crate) fn check_response_schema(schema: &Value) -> Result<(), String> {
    Grammar::compile(&Format::JsonSchema(schema.clone()))
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The grammar of a strict tool's arguments (no parameters: `{}` only).
fn tool_grammar(tool: &FunctionTool) -> Result<Grammar, String> {
    let schema = tool.parameters.clone().unwrap_or_else(
        || json!({"type": "object", "properties": {}, "additionalProperties": false}),
    );
    Grammar::compile(&Format::JsonSchema(schema)).map_err(|e| e.to_string())
}

/// The constraint for one generation, or `None` when nothing is
/// structured. `prefeed`: the tokens the prompt put after
/// `<|start|>assistant`; `budget`: most tokens the generation may produce.
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
    let mut strict_tools = Vec::new();
    if spec.tool_choice != ToolChoice::None {
        for tool in spec.tools.iter().filter(|t| t.strict) {
            let grammar = tool_grammar(tool).map_err(|e| {
                ApiError::invalid(
                    format!("Invalid schema for function '{}': {e}", tool.name),
                    Some("tools"),
                )
                .with_code("invalid_function_parameters")
            })?;
            strict_tools.push((tool.name.clone(), grammar));
        }
    }
    let structured = StructuredOutput {
        final_answer,
        strict_tools,
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
}
