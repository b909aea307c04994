//! Requests of both APIs -> one harmony prompt. Owns the mapping that OpenAI's
//! reference server (`gpt_oss/responses_api`) and the leading local servers
//! use: a system message with the model identity, today's date and the
//! reasoning effort; a developer message with the client's system/developer
//! text as `# Instructions` and the function tools; the conversation; then
//! `<|start|>assistant`. Analysis of closed turns is dropped
//! (`gptoss_chat::history_for_prompt`); the current turn's analysis is kept
//! across its tool calls.
//!
//! Does not own: the wire JSON of either API (see `chat_api`, `responses_api`).

use gptoss_chat::{final_channel_opening, history_for_prompt, Effort};
use gptoss_harmony::{
    render_conversation_for_completion, Conversation, DeveloperContent, Message, RenderConfig,
    Role, SystemContent, Tokenizer, ToolDescription, ToolNamespaceConfig,
};
use serde_json::Value;

use crate::error::ApiError;
use crate::ids;

/// A function tool declared by the client.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionTool {
    pub name: String,
    pub description: String,
    pub parameters: Option<Value>,
    pub strict: bool,
}

/// A namespace of client functions other than `functions` (the Responses
/// API's `namespace` tools): rendered as its own `## NAME` section, called
/// as `NAME.TOOL`.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionNamespace {
    pub name: String,
    pub description: String,
    pub tools: Vec<FunctionTool>,
}

/// The recipient of a call to a client tool: `functions.NAME`, or the
/// namespaced name as is (`crm.lookup`).
pub fn recipient_of(call_name: &str) -> String {
    if call_name.contains('.') {
        call_name.to_string()
    } else {
        format!("functions.{call_name}")
    }
}

/// Which tool, if any, the model must call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    #[default]
    Auto,
    /// Tools are not shown to the model.
    None,
    /// The turn is opened as a call to some function (the model picks which).
    Required,
    /// The turn is opened as a call to this function.
    Named(String),
}

/// The requested shape of the answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ResponseFormat {
    #[default]
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        description: Option<String>,
        schema: Value,
        strict: bool,
    },
}

/// Everything that goes into the prompt.
#[derive(Debug, Clone, Default)]
pub struct PromptSpec {
    /// Client system/developer texts, in order; joined into `# Instructions`.
    pub instructions: Vec<String>,
    /// user / assistant / tool messages (assistant analysis included).
    pub history: Vec<Message>,
    pub effort: Effort,
    pub tools: Vec<FunctionTool>,
    /// Further client namespaces (called as `NAMESPACE.TOOL`).
    pub namespaces: Vec<FunctionNamespace>,
    pub tool_choice: ToolChoice,
    pub response_format: ResponseFormat,
    /// Built-in tool namespaces the server runs (browser, python, handoff),
    /// declared in the system message as the reference declares them.
    pub builtin_tools: Vec<ToolNamespaceConfig>,
}

/// The rendered prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltPrompt {
    pub tokens: Vec<u32>,
    /// The tail of `tokens` after `<|start|>assistant` that opens the
    /// assistant message (effort none, forced tool calls); the parser must
    /// see it.
    pub prefeed: Vec<u32>,
}

/// Parse a reasoning effort. `minimal` (OpenAI's newest value) means `none`.
pub fn parse_effort(value: &str, param: &str) -> Result<Effort, ApiError> {
    match value {
        "none" | "minimal" => Ok(Effort::None),
        "low" => Ok(Effort::Low),
        "medium" => Ok(Effort::Medium),
        "high" => Ok(Effort::High),
        other => Err(ApiError::invalid(
            format!("Invalid value for '{param}': {other:?}. Supported values are: 'none', 'low', 'medium' and 'high'."),
            Some(param),
        )
        .with_code("invalid_value")),
    }
}

/// Whether `name` can name a tool or namespace: `^[a-zA-Z0-9_-]{1,64}$`
/// (OpenAI's rule; it also keeps harmony headers unambiguous).
pub fn is_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Validate a function tool's name and JSON-schema parameters.
pub fn function_tool(
    name: Option<&str>,
    description: Option<&str>,
    parameters: Option<&Value>,
    strict: bool,
    param: &str,
) -> Result<FunctionTool, ApiError> {
    let name = name.ok_or_else(|| {
        ApiError::invalid(
            format!("Missing required parameter: '{param}.name'."),
            Some(&format!("{param}.name")),
        )
    })?;
    if !is_tool_name(name) {
        return Err(ApiError::invalid(
            format!("Invalid function name {name:?}: it must match ^[a-zA-Z0-9_-]{{1,64}}$."),
            Some(&format!("{param}.name")),
        )
        .with_code("invalid_function_name"));
    }
    let parameters = match parameters {
        None | Some(Value::Null) => None,
        Some(schema) => {
            let path = format!("{param}.parameters");
            check_schema(schema, &path, true)
                .and_then(|()| {
                    // Strict arguments are enforced by constrained decoding:
                    // the schema must compile.
                    if strict {
                        crate::structured::check_response_schema(schema)
                    } else {
                        Ok(())
                    }
                })
                .map_err(|message| {
                    ApiError::invalid(
                        format!("Invalid schema for function '{name}': {message}"),
                        Some(&path),
                    )
                    .with_code("invalid_function_parameters")
                })?;
            Some(schema.clone())
        }
    };
    Ok(FunctionTool {
        name: name.to_string(),
        description: description.unwrap_or_default().to_string(),
        parameters,
        strict,
    })
}

const JSON_TYPES: [&str; 7] = [
    "object", "array", "string", "number", "integer", "boolean", "null",
];

/// A light structural check of a JSON schema: objects everywhere a schema is
/// expected, known `type` names, `properties` an object of schemas,
/// `required` a list of strings. `top`: function parameters must describe an
/// object.
pub fn check_schema(schema: &Value, path: &str, top: bool) -> Result<(), String> {
    let Value::Object(map) = schema else {
        return Err(format!(
            "{path} must be a JSON schema object, found {}",
            type_name(schema)
        ));
    };
    match map.get("type") {
        None => {}
        Some(Value::String(t)) => {
            if !JSON_TYPES.contains(&t.as_str()) {
                return Err(format!("{path}.type: unknown type {t:?}"));
            }
            if top && t != "object" {
                return Err(format!("{path}.type must be \"object\", found {t:?}"));
            }
        }
        Some(Value::Array(types)) if !top => {
            for t in types {
                if !t.as_str().is_some_and(|t| JSON_TYPES.contains(&t)) {
                    return Err(format!("{path}.type: {t} is not a JSON type name"));
                }
            }
        }
        Some(other) => {
            return Err(format!(
                "{path}.type must be a string, found {}",
                type_name(other)
            ))
        }
    }
    if let Some(props) = map.get("properties") {
        let Value::Object(props) = props else {
            return Err(format!(
                "{path}.properties must be an object, found {}",
                type_name(props)
            ));
        };
        for (key, sub) in props {
            check_schema(sub, &format!("{path}.properties.{key}"), false)?;
        }
    }
    if let Some(required) = map.get("required") {
        let ok = matches!(required, Value::Array(items) if items.iter().all(Value::is_string));
        if !ok {
            return Err(format!("{path}.required must be a list of property names"));
        }
    }
    if let Some(items) = map.get("items") {
        if !items.is_boolean() {
            check_schema(items, &format!("{path}.items"), false)?;
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(list) = map.get(key) {
            let Value::Array(list) = list else {
                return Err(format!("{path}.{key} must be a list of schemas"));
            };
            for (idx, sub) in list.iter().enumerate() {
                check_schema(sub, &format!("{path}.{key}[{idx}]"), false)?;
            }
        }
    }
    Ok(())
}

/// The JSON type name of a value, for error messages.
/// Text of a message's `content`: a string, or a list of parts whose `type`
/// is one of `text_kinds` (anything else is a 400: the model reads text only).
pub fn content_text(
    content: Option<&Value>,
    param: &str,
    text_kinds: &[&str],
) -> Result<String, ApiError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for (idx, part) in parts.iter().enumerate() {
                let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
                if !text_kinds.contains(&kind) {
                    return Err(ApiError::invalid(
                        format!("Unsupported content part type {kind:?} in '{param}[{idx}]': this model accepts text only."),
                        Some(&format!("{param}[{idx}].type")),
                    ));
                }
                match part.get("text") {
                    Some(Value::String(t)) => out.push_str(t),
                    _ => {
                        return Err(ApiError::invalid(
                            format!("'{param}[{idx}].text' must be a string."),
                            Some(&format!("{param}[{idx}].text")),
                        ))
                    }
                }
            }
            Ok(out)
        }
        Some(other) => Err(ApiError::invalid(
            format!(
                "'{param}' must be a string or a list of content parts, found {}.",
                type_name(other)
            ),
            Some(param),
        )),
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The harmony message for an assistant's earlier call of function `name`.
pub fn function_call_message(name: &str, arguments: &str) -> Message {
    Message::from_role_and_content(Role::Assistant, arguments.to_string())
        .with_channel("commentary")
        .with_recipient(recipient_of(name))
        .with_content_type("<|constrain|>json")
}

/// The harmony message for a function's result (harmony: author = the tool,
/// recipient `assistant`, the call's channel).
pub fn function_output_message(name: &str, output: &str) -> Message {
    Message::from_author_and_content(
        gptoss_harmony::Author::new(Role::Tool, recipient_of(name)),
        output.to_string(),
    )
    .with_recipient("assistant")
    .with_channel("commentary")
}

/// Render the prompt.
pub fn build(spec: &PromptSpec) -> Result<BuiltPrompt, ApiError> {
    let mut system = SystemContent::new()
        .with_conversation_start_date(ids::today_utc())
        .with_reasoning_effort(spec.effort.harmony_effort());
    if spec.tool_choice != ToolChoice::None {
        for config in &spec.builtin_tools {
            system = system.with_tools(config.clone());
        }
    }

    let mut instructions: Vec<String> = spec
        .instructions
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect();
    match &spec.response_format {
        ResponseFormat::Text => {}
        ResponseFormat::JsonObject => instructions
            .push("Respond with a single valid JSON object and nothing else.".to_string()),
        ResponseFormat::JsonSchema {
            name,
            description,
            schema,
            ..
        } => {
            // harmony's "# Response Formats" section (docs/format.md); our
            // developer renderer has no field for it, so it rides in the
            // instructions text.
            let schema = serde_json::to_string(schema).unwrap_or_default();
            let description = description.as_deref().unwrap_or_default();
            instructions.push(format!(
                "# Response Formats\n\n## {name}\n\n// {description}\n{schema}"
            ));
        }
    }
    let mut developer = DeveloperContent::new();
    if !instructions.is_empty() {
        developer = developer.with_instructions(instructions.join("\n\n"));
    }
    let show_tools = spec.tool_choice != ToolChoice::None
        && (!spec.tools.is_empty() || !spec.namespaces.is_empty());
    let describe = |tools: &[FunctionTool]| -> Vec<ToolDescription> {
        tools
            .iter()
            .map(|t| {
                ToolDescription::new(t.name.clone(), t.description.clone(), t.parameters.clone())
            })
            .collect()
    };
    if show_tools {
        if !spec.tools.is_empty() {
            developer = developer.with_function_tools(describe(&spec.tools));
        }
        for ns in &spec.namespaces {
            let description = Some(ns.description.clone()).filter(|d| !d.is_empty());
            developer = developer.with_tools(ToolNamespaceConfig::new(
                ns.name.clone(),
                description,
                describe(&ns.tools),
            ));
        }
    }

    let mut messages = vec![Message::from_role_and_content(Role::System, system)];
    if developer.instructions.is_some() || developer.tools.is_some() {
        messages.push(Message::from_role_and_content(Role::Developer, developer));
    }
    messages.extend(history_for_prompt(&spec.history).into_iter().cloned());
    let conversation = Conversation::from_messages(messages);
    let config = RenderConfig {
        auto_drop_analysis: false,
    };
    let mut tokens = render_conversation_for_completion(&conversation, Role::Assistant, &config)
        .map_err(|e| {
            ApiError::invalid(
                format!("the conversation cannot be rendered: {e}"),
                Some("messages"),
            )
        })?;

    let tok = Tokenizer::o200k_harmony();
    let prefeed = match (&spec.tool_choice, show_tools) {
        (ToolChoice::Named(name), true) => tok.encode_with_special_tokens(&format!(
            "<|channel|>commentary to={} <|constrain|>json<|message|>",
            recipient_of(name)
        )),
        // The header constraint then allows only the declared names.
        (ToolChoice::Required, true) if spec.namespaces.is_empty() => {
            tok.encode_with_special_tokens("<|channel|>commentary to=functions.")
        }
        (ToolChoice::Required, true) => tok.encode_with_special_tokens("<|channel|>commentary to="),
        _ if spec.effort.opens_final_channel() => final_channel_opening(),
        _ => Vec::new(),
    };
    tokens.extend_from_slice(&prefeed);
    Ok(BuiltPrompt { tokens, prefeed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schema_checks() {
        assert!(check_schema(
            &json!({"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}),
            "p",
            true
        )
        .is_ok());
        assert!(check_schema(&json!({}), "p", true).is_ok());
        assert!(check_schema(&json!("object"), "p", true).is_err());
        assert!(check_schema(&json!({"type":"string"}), "p", true).is_err());
        assert!(check_schema(
            &json!({"type":"object","properties":{"a":{"type":"strin"}}}),
            "p",
            true
        )
        .is_err());
        assert!(check_schema(&json!({"type":"object","properties":[1]}), "p", true).is_err());
        assert!(check_schema(&json!({"type":"object","required":"a"}), "p", true).is_err());
    }

    #[test]
    fn effort_values() {
        assert_eq!(parse_effort("high", "x").ok(), Some(Effort::High));
        assert_eq!(parse_effort("none", "x").ok(), Some(Effort::None));
        assert!(parse_effort("extreme", "x").is_err());
        assert!(parse_effort("HIGH", "x").is_err());
    }

    #[test]
    fn effort_changes_system_message() {
        let tok = Tokenizer::o200k_harmony();
        let mut spec = PromptSpec {
            history: vec![Message::from_role_and_content(Role::User, "hi")],
            ..PromptSpec::default()
        };
        for (effort, word) in [
            (Effort::Low, "low"),
            (Effort::Medium, "medium"),
            (Effort::High, "high"),
        ] {
            spec.effort = effort;
            let built = build(&spec).unwrap_or_else(|e| panic!("{e}"));
            let text = tok.decode_utf8(&built.tokens).unwrap_or_default();
            assert!(text.contains(&format!("Reasoning: {word}")), "{text}");
            assert!(built.prefeed.is_empty());
        }
        spec.effort = Effort::None;
        let built = build(&spec).unwrap_or_else(|e| panic!("{e}"));
        let text = tok.decode_utf8(&built.tokens).unwrap_or_default();
        assert!(
            text.ends_with("<|start|>assistant<|channel|>final<|message|>"),
            "{text}"
        );
    }
}
