//! The tools of a `/v1/responses` request, sorted by who runs them and how
//! the model sees them, and the wire shapes of their calls.
//!
//! gpt-oss was trained on one kind of client tool: a function in a harmony
//! namespace, called with JSON arguments. Every tool type that the client
//! runs becomes one: `function` in `functions`; a `namespace` tool becomes
//! its own harmony namespace (called `NAMESPACE.TOOL`); `custom` (freeform)
//! tools, `local_shell`, `shell` and `apply_patch` become functions whose
//! JSON arguments are turned back into the item the client expects
//! (`custom_tool_call.input`, `local_shell_call.action`, ...), so the model
//! writes the JSON it knows and the sampling constraint keeps it valid; a
//! custom tool's Lark or regex grammar constrains its `input` string.
//! Built-in tools the server runs (`web_search`, `code_interpreter`,
//! `handoff`) go to `builtin`; `mcp` tools go to `mcp_tools` (run with
//! `--mcp on`); hosted tools it does not run (`image_generation`,
//! `file_search`, `web_search` without `--browser`, ...) are left out of the
//! prompt with a warning, never a 400.
//!
//! Does not own: the generation loop and stream events (`responses_api`).

use serde_json::{json, Map, Value};

use crate::builtin;
use crate::error::ApiError;
use crate::ids;
use crate::prompt::{self, FunctionNamespace, FunctionTool};
use crate::structured;

/// The item a client tool's call becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallShape {
    /// `function_call` with the arguments as written.
    Function,
    /// `custom_tool_call`: the `input` argument is the freeform text.
    Custom,
    /// `local_shell_call` with an `exec` action.
    LocalShell,
    /// `shell_call` with a list of commands.
    Shell,
    /// `apply_patch_call` with one file operation.
    ApplyPatch,
}

/// A tool the client runs.
#[derive(Debug, Clone)]
pub(crate) struct ClientTool {
    /// The name calls carry after `functions.` (or the namespaced `ns.name`).
    pub call_name: String,
    pub namespace: Option<String>,
    pub name: String,
    pub shape: CallShape,
}

/// A request's tools, sorted.
#[derive(Debug, Default)]
pub(crate) struct RequestTools {
    /// The `functions` namespace (synthesized ones included).
    pub functions: Vec<FunctionTool>,
    /// The request's own namespaces.
    pub namespaces: Vec<FunctionNamespace>,
    /// Every client tool, by call name.
    pub client: Vec<ClientTool>,
    /// Built-in namespaces the server runs for this request.
    pub builtin_namespaces: Vec<String>,
    /// Built-in tools as the request gave them (echoed in the response).
    pub builtin_echo: Vec<Value>,
    /// Every tool as the request gave it (echoed in the response).
    pub echo: Vec<Value>,
    /// Tools left out, and why (logged and sent as a response header).
    pub warnings: Vec<String>,
    /// `mcp` tools as given, with their parameter path (`mcp_tools`
    /// checks and runs them).
    pub mcp: Vec<(String, Value)>,
}

impl RequestTools {
    pub fn find(&self, call_name: &str) -> Option<&ClientTool> {
        self.client.iter().find(|t| t.call_name == call_name)
    }

    /// The call names the turn should expect (client tools only).
    pub fn call_names(&self) -> Vec<String> {
        self.client.iter().map(|t| t.call_name.clone()).collect()
    }

    fn add_function(
        &mut self,
        tool: FunctionTool,
        shape: CallShape,
        param: &str,
    ) -> Result<(), ApiError> {
        self.check_unique(&tool.name, param)?;
        self.client.push(ClientTool {
            call_name: tool.name.clone(),
            namespace: None,
            name: tool.name.clone(),
            shape,
        });
        self.functions.push(tool);
        Ok(())
    }

    fn check_unique(&self, call_name: &str, param: &str) -> Result<(), ApiError> {
        if self.find(call_name).is_some() {
            return Err(ApiError::invalid(
                format!("Duplicate tool name {call_name:?} in '{param}'."),
                Some(&format!("{param}.name")),
            ));
        }
        Ok(())
    }
}

/// Hosted tool types the server never runs (left out with a warning).
const HOSTED_ELSEWHERE: [&str; 7] = [
    "image_generation",
    "file_search",
    "computer_use_preview",
    "computer_use",
    "computer",
    "tool_search",
    "programmatic_tool_calling",
];

/// Namespaces a request may not define: the harmony ones the model knows
/// for other things.
const RESERVED_NAMESPACES: [&str; 5] = ["functions", "browser", "python", "container", "handoff"];

/// Sort a request's `tools`. Errors (400) only for tools that are malformed;
/// a tool the server cannot honour is a warning.
pub(crate) fn convert(
    tools: Option<&[Value]>,
    kit: &gptoss_tools::ToolKit,
) -> Result<RequestTools, ApiError> {
    let mut out = RequestTools::default();
    for (idx, tool) in tools.unwrap_or_default().iter().enumerate() {
        let param = format!("tools[{idx}]");
        if !tool.is_object() {
            return Err(ApiError::invalid(
                format!("'{param}' must be an object."),
                Some(&param),
            ));
        }
        let kind = tool.get("type").and_then(Value::as_str).ok_or_else(|| {
            ApiError::invalid(
                format!("Missing required parameter: '{param}.type'."),
                Some(&format!("{param}.type")),
            )
        })?;
        if let Some(ns) = builtin::namespace_of(kind) {
            if kit.contains(ns) {
                if !out.builtin_namespaces.iter().any(|n| n == ns) {
                    out.builtin_namespaces.push(ns.to_string());
                }
                out.builtin_echo.push(tool.clone());
            } else {
                out.warnings.push(format!(
                    "tool {kind:?} ({param}) left out: this server does not run it (start `gpt-oss serve` with {})",
                    builtin::flag_of(ns)
                ));
            }
            continue;
        }
        match kind {
            "function" => {
                let f = function(tool, &param)?;
                out.add_function(f, CallShape::Function, &param)?;
            }
            "custom" => {
                let f = custom(tool, &param, &mut out.warnings)?;
                out.add_function(f, CallShape::Custom, &param)?;
            }
            "local_shell" => out.add_function(local_shell_tool(), CallShape::LocalShell, &param)?,
            "shell" => out.add_function(shell_tool(), CallShape::Shell, &param)?,
            "apply_patch" => out.add_function(apply_patch_tool(), CallShape::ApplyPatch, &param)?,
            "namespace" => namespace(tool, &param, &mut out)?,
            "mcp" => {
                out.mcp.push((param, tool.clone()));
                continue;
            }
            other => {
                let why = if HOSTED_ELSEWHERE.contains(&other) {
                    "a hosted tool this server does not run"
                } else {
                    "an unknown tool type"
                };
                out.warnings
                    .push(format!("tool {other:?} ({param}) left out: {why}"));
                continue;
            }
        }
        out.echo.push(tool.clone());
    }
    out.echo.extend(out.builtin_echo.iter().cloned());
    Ok(out)
}

fn function(tool: &Value, param: &str) -> Result<FunctionTool, ApiError> {
    let name = match tool.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            return Err(ApiError::invalid(
                format!("'{param}.name' must be a string."),
                Some(&format!("{param}.name")),
            ))
        }
    };
    prompt::function_tool(
        name,
        tool.get("description").and_then(Value::as_str),
        tool.get("parameters"),
        tool.get("strict").and_then(Value::as_bool).unwrap_or(false),
        param,
    )
}

/// A freeform tool as a function of one string, `input`. Its grammar (if
/// any) is shown to the model in the description and enforced at sampling:
/// the `input` string's `pattern` ([`structured::freeform_schema`]). A
/// grammar that cannot be enforced (a recursive Lark grammar, a regex the
/// engine refuses) leaves the input free, with a warning.
fn custom(tool: &Value, param: &str, warnings: &mut Vec<String>) -> Result<FunctionTool, ApiError> {
    let name = tool.get("name").and_then(Value::as_str);
    let mut description = tool
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut input = json!({"type": "string", "description": "The freeform input of the tool."});
    let format = tool.get("format");
    if format.and_then(|f| f.get("type")).and_then(Value::as_str) == Some("grammar") {
        let syntax = format
            .and_then(|f| f.get("syntax"))
            .and_then(Value::as_str)
            .unwrap_or("lark");
        let definition = format
            .and_then(|f| f.get("definition"))
            .and_then(Value::as_str);
        let enforced = match definition {
            Some(definition) => {
                description.push_str(&format!(
                    "\nThe input must follow this {syntax} grammar:\n{definition}"
                ));
                structured::freeform_schema(syntax, definition)
            }
            None => Err("the grammar has no definition".to_string()),
        };
        match enforced {
            Ok(schema) => input = schema["properties"]["input"].clone(),
            Err(why) => warnings.push(format!(
                "the grammar of tool {:?} ({param}) is not enforced: {why}; its input is checked only as a string",
                name.unwrap_or_default()
            )),
        }
    }
    description.push_str("\nPut the whole freeform input in the `input` string.");
    let schema = json!({
        "type": "object",
        "properties": {"input": input},
        "required": ["input"],
        "additionalProperties": false,
    });
    prompt::function_tool(
        name,
        Some(description.trim_start()),
        Some(&schema),
        true,
        param,
    )
}

fn local_shell_tool() -> FunctionTool {
    FunctionTool {
        name: "local_shell".into(),
        description: "Runs a command on the user's machine and returns its output.".into(),
        parameters: Some(json!({
            "type": "object",
            "properties": {
                "command": {"type": "array", "items": {"type": "string"}, "description": "The program and its arguments, e.g. [\"bash\", \"-lc\", \"ls\"]."},
                "workdir": {"type": "string", "description": "The working directory."},
                "timeout_ms": {"type": "integer", "description": "Time limit in milliseconds."}
            },
            "required": ["command"],
            "additionalProperties": false
        })),
        strict: true,
    }
}

fn shell_tool() -> FunctionTool {
    FunctionTool {
        name: "shell".into(),
        description: "Runs shell commands on the user's machine and returns their output.".into(),
        parameters: Some(json!({
            "type": "object",
            "properties": {
                "commands": {"type": "array", "items": {"type": "string"}, "description": "Shell commands, run in order."},
                "timeout_ms": {"type": "integer", "description": "Time limit in milliseconds."}
            },
            "required": ["commands"],
            "additionalProperties": false
        })),
        strict: true,
    }
}

fn apply_patch_tool() -> FunctionTool {
    FunctionTool {
        name: "apply_patch".into(),
        description: "Creates, updates or deletes one file. `diff`: the new file's content for create_file, a unified diff for update_file.".into(),
        parameters: Some(json!({
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": ["create_file", "update_file", "delete_file"]},
                "path": {"type": "string"},
                "diff": {"type": "string"}
            },
            "required": ["type", "path"],
            "additionalProperties": false
        })),
        strict: true,
    }
}

/// A `namespace` tool: its functions and freeform tools as a harmony namespace.
fn namespace(tool: &Value, param: &str, out: &mut RequestTools) -> Result<(), ApiError> {
    let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
    if !prompt::is_tool_name(name) {
        return Err(ApiError::invalid(
            format!("Invalid namespace name {name:?} in '{param}.name': it must match ^[a-zA-Z0-9_-]{{1,64}}$."),
            Some(&format!("{param}.name")),
        ));
    }
    if RESERVED_NAMESPACES.contains(&name) {
        return Err(ApiError::invalid(
            format!("Namespace name {name:?} in '{param}.name' is reserved."),
            Some(&format!("{param}.name")),
        ));
    }
    let inner = match tool.get("tools") {
        Some(Value::Array(items)) => items,
        _ => {
            return Err(ApiError::invalid(
                format!("'{param}.tools' must be a list of tools."),
                Some(&format!("{param}.tools")),
            ))
        }
    };
    let mut functions = Vec::new();
    for (j, t) in inner.iter().enumerate() {
        let p = format!("{param}.tools[{j}]");
        let (f, shape) = match t.get("type").and_then(Value::as_str) {
            Some("function") => (function(t, &p)?, CallShape::Function),
            Some("custom") => (custom(t, &p, &mut out.warnings)?, CallShape::Custom),
            other => {
                out.warnings.push(format!(
                    "tool {other:?} ({p}) left out: namespaces hold function and custom tools"
                ));
                continue;
            }
        };
        let call_name = format!("{name}.{}", f.name);
        out.check_unique(&call_name, &p)?;
        out.client.push(ClientTool {
            call_name,
            namespace: Some(name.to_string()),
            name: f.name.clone(),
            shape,
        });
        functions.push(f);
    }
    out.namespaces.push(FunctionNamespace {
        name: name.to_string(),
        description: tool
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        tools: functions,
    });
    Ok(())
}

/// The output item of a client tool call (`status` in_progress until the
/// arguments are complete). `arguments`: the JSON the model wrote.
pub(crate) fn call_item(
    tool: Option<&ClientTool>,
    call_name: &str,
    call_id: &str,
    arguments: &str,
    status: &str,
) -> Value {
    let shape = tool.map_or(CallShape::Function, |t| t.shape);
    let args: Map<String, Value> = serde_json::from_str(arguments).unwrap_or_default();
    let text = |key: &str| args.get(key).and_then(Value::as_str).map(str::to_string);
    let mut item = match shape {
        CallShape::Function => json!({
            "type": "function_call", "id": ids::new_id("fc_"), "call_id": call_id,
            "name": tool.map_or(call_name, |t| t.name.as_str()), "arguments": arguments,
        }),
        CallShape::Custom => json!({
            "type": "custom_tool_call", "id": ids::new_id("ctc_"), "call_id": call_id,
            "name": tool.map_or(call_name, |t| t.name.as_str()),
            // Not JSON after all: the text is the input.
            "input": text("input").unwrap_or_else(|| if args.is_empty() { arguments.to_string() } else { String::new() }),
        }),
        CallShape::LocalShell => json!({
            "type": "local_shell_call", "id": ids::new_id("lsh_"), "call_id": call_id,
            "action": {
                "type": "exec",
                "command": args.get("command").cloned().unwrap_or_else(|| json!([])),
                "working_directory": text("workdir"),
                "timeout_ms": args.get("timeout_ms").cloned(),
                "env": {},
                "user": null,
            },
        }),
        CallShape::Shell => json!({
            "type": "shell_call", "id": ids::new_id("sh_"), "call_id": call_id,
            "action": {
                "commands": args.get("commands").cloned().unwrap_or_else(|| json!([])),
                "timeout_ms": args.get("timeout_ms").cloned(),
                "max_output_length": null,
            },
        }),
        CallShape::ApplyPatch => {
            let kind = text("type").unwrap_or_else(|| "update_file".into());
            let mut operation = json!({"type": kind, "path": text("path").unwrap_or_default()});
            if kind != "delete_file" {
                operation["diff"] = json!(text("diff").unwrap_or_default());
            }
            json!({"type": "apply_patch_call", "id": ids::new_id("apc_"), "call_id": call_id, "operation": operation})
        }
    };
    item["status"] = json!(status);
    if let Some(ns) = tool.and_then(|t| t.namespace.as_deref()) {
        item["namespace"] = json!(ns);
    }
    item
}

/// An earlier call item of the input as (call name, JSON arguments), for
/// the harmony history. `None`: not a call item.
pub(crate) fn input_call(kind: &str, item: &Value) -> Option<(String, String)> {
    let get = |k: &str| item.get(k);
    let name = || {
        let name = get("name").and_then(Value::as_str).unwrap_or_default();
        match get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() => format!("{ns}.{name}"),
            _ => name.to_string(),
        }
    };
    let (call_name, args) = match kind {
        "function_call" => (
            name(),
            match get("arguments") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => "{}".into(),
            },
        ),
        "custom_tool_call" => (
            name(),
            json!({"input": get("input").and_then(Value::as_str).unwrap_or_default()}).to_string(),
        ),
        "local_shell_call" => {
            let action = get("action").cloned().unwrap_or_default();
            let mut args =
                json!({"command": action.get("command").cloned().unwrap_or_else(|| json!([]))});
            if let Some(dir) = action.get("working_directory").filter(|v| v.is_string()) {
                args["workdir"] = dir.clone();
            }
            if let Some(t) = action.get("timeout_ms").filter(|v| v.is_number()) {
                args["timeout_ms"] = t.clone();
            }
            ("local_shell".into(), args.to_string())
        }
        "shell_call" => {
            let action = get("action").cloned().unwrap_or_default();
            let mut args =
                json!({"commands": action.get("commands").cloned().unwrap_or_else(|| json!([]))});
            if let Some(t) = action.get("timeout_ms").filter(|v| v.is_number()) {
                args["timeout_ms"] = t.clone();
            }
            ("shell".into(), args.to_string())
        }
        "apply_patch_call" => (
            "apply_patch".into(),
            get("operation").cloned().unwrap_or_default().to_string(),
        ),
        _ => return None,
    };
    Some((call_name, args))
}

/// The item types that carry a client tool's result.
pub(crate) fn is_call_output(kind: &str) -> bool {
    matches!(
        kind,
        "function_call_output"
            | "custom_tool_call_output"
            | "local_shell_call_output"
            | "shell_call_output"
            | "apply_patch_call_output"
    )
}

/// Items a client hands back from hosted tools or its own bookkeeping that
/// carry nothing this model can use: skipped (with a warning), not a 400.
pub(crate) fn is_skippable_item(kind: &str) -> bool {
    matches!(
        kind,
        "web_search_call"
            | "image_generation_call"
            | "file_search_call"
            | "computer_call"
            | "computer_call_output"
            | "code_interpreter_call"
            | "tool_search_call"
            | "tool_search_output"
            | "item_reference"
            | "compaction"
            | "handoff_call"
    )
}

/// The text of a `shell_call_output`'s `output` list (stdout, stderr and
/// how each command ended), as the model reads it.
pub(crate) fn shell_output_text(output: &[Value]) -> String {
    let mut parts = Vec::new();
    for chunk in output {
        let field = |k: &str| chunk.get(k).and_then(Value::as_str).unwrap_or_default();
        let mut text = field("stdout").to_string();
        if !field("stderr").is_empty() {
            text.push_str(&format!("\n[stderr]\n{}", field("stderr")));
        }
        match chunk
            .get("outcome")
            .and_then(|o| o.get("type"))
            .and_then(Value::as_str)
        {
            Some("timeout") => text.push_str("\n[timed out]"),
            Some("exit") => {
                let code = chunk["outcome"]
                    .get("exit_code")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                text.push_str(&format!("\n[exit code {code}]"));
            }
            _ => {}
        }
        parts.push(text);
    }
    parts.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kit() -> gptoss_tools::ToolKit {
        gptoss_tools::ToolKit::default()
    }

    #[test]
    fn codex_tools_are_accepted() {
        let tools = vec![
            json!({"type": "function", "name": "exec_command", "strict": false,
                   "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}}),
            json!({"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.",
                   "tools": [{"type": "function", "name": "spawn_agent", "parameters": {"type": "object", "properties": {}}}]}),
            json!({"type": "custom", "name": "apply_patch", "description": "Patch files.",
                   "format": {"type": "grammar", "syntax": "lark", "definition": "start: \"*** Begin Patch\""}}),
            json!({"type": "web_search", "external_web_access": false}),
            json!({"type": "image_generation"}),
            json!({"type": "local_shell"}),
        ];
        let t = convert(Some(&tools), &kit()).expect("accepted");
        assert_eq!(t.functions.len(), 3);
        assert_eq!(t.namespaces.len(), 1);
        assert_eq!(
            t.find("multi_agent_v1.spawn_agent").map(|c| c.shape),
            Some(CallShape::Function)
        );
        assert_eq!(
            t.find("apply_patch").map(|c| c.shape),
            Some(CallShape::Custom)
        );
        assert!(t.functions[1].description.contains("*** Begin Patch"));
        assert_eq!(t.warnings.len(), 2, "{:?}", t.warnings);
        assert!(t.warnings[0].contains("--browser"));
        assert!(t.builtin_namespaces.is_empty());
    }

    #[test]
    fn malformed_tools_are_400s() {
        for bad in [
            json!([{"name": "x"}]),
            json!([{"type": "namespace", "name": "functions", "tools": []}]),
            json!([{"type": "namespace", "name": "a b", "tools": []}]),
            json!([{"type": "namespace", "name": "ns"}]),
            json!([{"type": "function", "name": "local_shell"}, {"type": "local_shell"}]),
            json!(["function"]),
        ] {
            let tools = bad.as_array().cloned().unwrap_or_default();
            assert!(convert(Some(&tools), &kit()).is_err(), "{bad}");
        }
    }

    #[test]
    fn calls_take_the_client_shape_and_round_trip() {
        let tools = vec![
            json!({"type": "custom", "name": "apply_patch"}),
            json!({"type": "local_shell"}),
            json!({"type": "namespace", "name": "crm", "description": "", "tools": [{"type": "function", "name": "lookup"}]}),
        ];
        let t = convert(Some(&tools), &kit()).expect("accepted");
        let item = call_item(
            t.find("apply_patch"),
            "apply_patch",
            "call_1",
            r#"{"input":"*** Begin Patch\n"}"#,
            "completed",
        );
        assert_eq!(item["type"], "custom_tool_call");
        assert_eq!(item["input"], "*** Begin Patch\n");
        assert_eq!(
            input_call("custom_tool_call", &item)
                .map(|c| c.0)
                .as_deref(),
            Some("apply_patch")
        );

        let item = call_item(
            t.find("local_shell"),
            "local_shell",
            "call_2",
            r#"{"command":["ls","-l"],"workdir":"/tmp"}"#,
            "completed",
        );
        assert_eq!(item["type"], "local_shell_call");
        assert_eq!(item["action"]["command"], json!(["ls", "-l"]));
        let (name, args) = input_call("local_shell_call", &item).expect("a call");
        assert_eq!(name, "local_shell");
        let args: Value = serde_json::from_str(&args).expect("json");
        assert_eq!(args, json!({"command": ["ls", "-l"], "workdir": "/tmp"}));

        let item = call_item(
            t.find("crm.lookup"),
            "crm.lookup",
            "call_3",
            "{}",
            "completed",
        );
        assert_eq!(
            (
                item["type"].as_str(),
                item["name"].as_str(),
                item["namespace"].as_str()
            ),
            (Some("function_call"), Some("lookup"), Some("crm"))
        );
        assert_eq!(
            input_call("function_call", &item).map(|c| c.0).as_deref(),
            Some("crm.lookup")
        );
    }

    #[test]
    fn custom_grammars_constrain_the_input_or_warn() {
        let tools = vec![
            json!({"type": "custom", "name": "code", "format": {"type": "grammar", "syntax": "regex", "definition": "^[0-9]{3}-[a-z]{2}$"}}),
            json!({"type": "custom", "name": "patch", "format": {"type": "grammar", "syntax": "lark",
                   "definition": "start: \"*** Begin Patch\" LF \"*** End Patch\"\n%import common.LF\n"}}),
            json!({"type": "custom", "name": "expr", "format": {"type": "grammar", "syntax": "lark",
                   "definition": "start: e\ne: \"(\" e \")\" | \"x\"\n"}}),
            json!({"type": "custom", "name": "free", "format": {"type": "text"}}),
            json!({"type": "custom", "name": "look", "format": {"type": "grammar", "syntax": "regex", "definition": "(?=a)b"}}),
        ];
        let t = convert(Some(&tools), &kit()).expect("accepted");
        let input = |i: usize| {
            t.functions[i]
                .parameters
                .as_ref()
                .map(|p| p["properties"]["input"].clone())
        };
        assert_eq!(
            input(0)
                .and_then(|i| i["pattern"].as_str().map(str::to_string))
                .as_deref(),
            Some("^(?:[0-9]{3}-[a-z]{2})$")
        );
        assert!(input(1).is_some_and(|i| i["pattern"].is_string()));
        for i in [2, 3, 4] {
            assert!(input(i).is_some_and(|i| i.get("pattern").is_none()), "{i}");
        }
        assert_eq!(t.warnings.len(), 2, "{:?}", t.warnings);
        assert!(
            t.warnings[0].contains("\"expr\"") && t.warnings[0].contains("recursive"),
            "{:?}",
            t.warnings
        );
        assert!(
            t.warnings[1].contains("\"look\"")
                && t.warnings[1].contains("look-around")
                && !t.warnings[1].contains('\n'),
            "{:?}",
            t.warnings
        );
    }

    #[test]
    fn shell_output_reads_as_text() {
        let text = shell_output_text(&[
            json!({"stdout": "hi\n", "stderr": "warn", "outcome": {"type": "exit", "exit_code": 2}}),
        ]);
        assert_eq!(text, "hi\n\n[stderr]\nwarn\n[exit code 2]");
    }
}
