//! Training data: one conversation per JSONL line, in the OpenAI messages format, rendered
//! with our harmony renderer as the model sees it at inference, with the loss on the
//! assistant's tokens only.

use std::path::Path;

use anyhow::{bail, Context};
use gptoss_chat::{history_for_prompt, Effort};
use gptoss_harmony::render::{has_function_tools, render_message_into};
use gptoss_harmony::tokenizer::{END, RETURN};
use gptoss_harmony::{
    DeveloperContent, Message, RenderOptions, Role, SystemContent, ToolDescription,
};
use gptoss_server::prompt;
use serde_json::Value;

/// One rendered conversation: its tokens and, per position, the token it is trained to
/// predict (None outside the assistant's messages).
#[derive(Debug, PartialEq)]
pub struct Example {
    pub tokens: Vec<u32>,
    pub targets: Vec<Option<u32>>,
}

/// Renders one JSONL line (`{"messages": [...], "tools": [...]}`) for training, as the server
/// renders a Chat Completions request: a system message with the reasoning effort, the
/// system/developer texts as developer instructions and the `tools` (OpenAI function tools) as
/// its functions, then the conversation (the analysis of closed turns dropped, as at
/// inference; a last final answer ends with `<|return|>`). An assistant message's reasoning
/// (`reasoning_content`, `reasoning` or `thinking`) becomes its analysis message, its
/// `tool_calls` commentary calls to `functions.NAME` (text beside them a commentary preamble);
/// a `tool` message is the output of the call its `tool_call_id` names. Every token of an
/// assistant message but its opening `<|start|>` is a target; tool outputs are not.
pub fn render_example(line: &str, effort: Effort) -> anyhow::Result<Example> {
    let v: Value = serde_json::from_str(line).context("not JSON")?;
    let Some(msgs) = v.get("messages").and_then(Value::as_array) else {
        bail!("no \"messages\" list");
    };
    let mut instructions: Vec<String> = vec![];
    let mut history: Vec<Message> = vec![];
    // tool_call id -> function name, from earlier assistant messages
    let mut call_names: Vec<(String, String)> = vec![];
    for (i, m) in msgs.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let text = match m.get("content") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => bail!("messages[{i}].content: only a string is read"),
        };
        match role {
            "system" | "developer" => instructions.push(text),
            "user" => history.push(Message::from_role_and_content(Role::User, text)),
            "assistant" => {
                let reasoning = ["reasoning_content", "reasoning", "thinking"]
                    .iter()
                    .find_map(|k| m.get(*k).and_then(Value::as_str))
                    .filter(|r| !r.is_empty());
                if let Some(r) = reasoning {
                    history.push(
                        Message::from_role_and_content(Role::Assistant, r).with_channel("analysis"),
                    );
                }
                let calls = match m.get("tool_calls") {
                    None | Some(Value::Null) => &[][..],
                    Some(Value::Array(calls)) => &calls[..],
                    Some(_) => bail!("messages[{i}].tool_calls: expected a list"),
                };
                if !text.is_empty() || calls.is_empty() {
                    let channel = if calls.is_empty() {
                        "final"
                    } else {
                        "commentary"
                    };
                    history.push(
                        Message::from_role_and_content(Role::Assistant, text).with_channel(channel),
                    );
                }
                for (j, call) in calls.iter().enumerate() {
                    let f = call.get("function");
                    let Some(name) = f.and_then(|f| f.get("name")).and_then(Value::as_str) else {
                        bail!("messages[{i}].tool_calls[{j}].function.name is missing");
                    };
                    if !prompt::is_tool_name(name) {
                        bail!("messages[{i}].tool_calls[{j}]: {name:?} is not a function name");
                    }
                    let args = match f.and_then(|f| f.get("arguments")) {
                        None | Some(Value::Null) => "{}".to_string(),
                        Some(Value::String(a)) => a.clone(),
                        Some(other) => other.to_string(),
                    };
                    history.push(prompt::function_call_message(name, &args));
                    if let Some(id) = call.get("id").and_then(Value::as_str) {
                        call_names.push((id.to_string(), name.to_string()));
                    }
                }
            }
            "tool" => {
                let by_id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .and_then(|id| {
                        call_names
                            .iter()
                            .rev()
                            .find(|(c, _)| c == id)
                            .map(|(_, n)| n.clone())
                    });
                let Some(name) =
                    by_id.or_else(|| m.get("name").and_then(Value::as_str).map(str::to_string))
                else {
                    bail!(
                        "messages[{i}]: a tool message must answer an earlier tool call (its \
                         tool_call_id matches none and it has no name)"
                    );
                };
                history.push(prompt::function_output_message(&name, &text));
            }
            other => {
                bail!(
                    "messages[{i}].role {other:?}: expected system, developer, user, assistant \
                     or tool"
                )
            }
        }
    }
    let tools = function_tools(v.get("tools"))?;
    if !history.iter().any(|m| m.author.role == Role::Assistant) {
        bail!("no assistant message: nothing to train on");
    }
    let system = SystemContent::new().with_reasoning_effort(effort.harmony_effort());
    let mut all = vec![Message::from_role_and_content(Role::System, system)];
    let mut dev = DeveloperContent::new();
    if !instructions.is_empty() {
        dev = dev.with_instructions(instructions.join("\n\n"));
    }
    if !tools.is_empty() {
        dev = dev.with_function_tools(tools);
    }
    if dev.instructions.is_some() || dev.tools.is_some() {
        all.push(Message::from_role_and_content(Role::Developer, dev));
    }
    all.extend(history);
    let options = RenderOptions {
        conversation_has_function_tools: has_function_tools(&all),
    };
    let mut tokens: Vec<u32> = vec![];
    // [start, end) of every assistant message's tokens
    let mut spans = vec![];
    // As at inference: the analysis of closed turns (followed by a later user message) is
    // dropped, the last turn's is kept (and trained on).
    for m in history_for_prompt(&all) {
        let start = tokens.len();
        render_message_into(m, &options, &mut tokens).context("cannot render")?;
        if m.author.role == Role::Assistant {
            spans.push((start, tokens.len()));
        }
    }
    let ends_final = all
        .last()
        .is_some_and(|m| m.author.role == Role::Assistant && m.channel.as_deref() == Some("final"));
    if ends_final {
        if let Some(t) = tokens.last_mut().filter(|t| **t == END) {
            *t = RETURN;
        }
    }
    let mut targets = vec![None; tokens.len()];
    for (start, end) in spans {
        for t in start + 1..end {
            targets[t - 1] = Some(tokens[t]);
        }
    }
    Ok(Example { tokens, targets })
}

/// The line's `tools` (OpenAI function tools: `{"type": "function", "function": {name,
/// description, parameters}}`) as harmony function descriptions.
fn function_tools(tools: Option<&Value>) -> anyhow::Result<Vec<ToolDescription>> {
    let list = match tools {
        None | Some(Value::Null) => return Ok(vec![]),
        Some(Value::Array(list)) => list,
        Some(_) => bail!("tools: expected a list"),
    };
    let mut out = vec![];
    for (i, t) in list.iter().enumerate() {
        if t.get("type").and_then(Value::as_str) != Some("function") {
            bail!("tools[{i}]: only {{\"type\": \"function\"}} tools are read");
        }
        let f = t.get("function");
        let name = f.and_then(|f| f.get("name")).and_then(Value::as_str);
        let description = f.and_then(|f| f.get("description")).and_then(Value::as_str);
        let parameters = f.and_then(|f| f.get("parameters"));
        let tool = prompt::function_tool(
            name,
            description,
            parameters,
            false,
            &format!("tools[{i}].function"),
        )
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        out.push(ToolDescription::new(
            tool.name,
            tool.description,
            tool.parameters,
        ));
    }
    Ok(out)
}

/// Every conversation of a JSONL file; an unreadable line is an error naming the file and the
/// line.
pub fn load(path: &Path, effort: Effort) -> anyhow::Result<Vec<Example>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut data = vec![];
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ex = render_example(line, effort)
            .with_context(|| format!("{} line {}", path.display(), i + 1))?;
        data.push(ex);
    }
    if data.is_empty() {
        bail!("{}: no conversations", path.display());
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_assistant_tokens_are_targets() {
        let line = r#"{"messages": [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2 * 3?"},
            {"role": "assistant", "content": "6", "reasoning_content": "2 * 3 = 6."}]}"#;
        let ex = render_example(line, Effort::Low).unwrap();
        assert_eq!(ex.tokens.len(), ex.targets.len());
        assert_eq!(*ex.tokens.last().unwrap(), RETURN);
        let n = ex.targets.iter().filter(|t| t.is_some()).count();
        assert!(
            n > 5 && n < ex.tokens.len() / 2,
            "{n} of {}",
            ex.tokens.len()
        );
        // targets are the next tokens, and the last one is <|return|>
        for (t, tgt) in ex.targets.iter().enumerate() {
            if let Some(x) = tgt {
                assert_eq!(*x, ex.tokens[t + 1]);
            }
        }
        assert_eq!(ex.targets[ex.tokens.len() - 2], Some(RETURN));
        assert_eq!(ex.targets[ex.tokens.len() - 1], None);
    }

    #[test]
    fn bad_lines_are_errors() {
        for line in [
            "not json",
            r#"{"messages": []}"#,
            r#"{"messages": [{"role": "user", "content": "hi"}]}"#,
            r#"{"messages": [{"role": "robot", "content": "hi"}]}"#,
            r#"{"messages": [{"role": "tool", "content": "{}"}]}"#,
            r#"{"tools": [{"type": "web"}], "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}"#,
        ] {
            assert!(render_example(line, Effort::Low).is_err(), "{line}");
        }
    }

    #[test]
    fn tool_calls_are_trained_and_tool_outputs_are_not() {
        let line = r#"{"tools": [{"type": "function", "function": {"name": "get_weather",
              "description": "Get the current weather for a location.",
              "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}],
            "messages": [{"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "reasoning_content": "Use get_weather.", "content": null,
             "tool_calls": [{"id": "c1", "type": "function",
               "function": {"name": "get_weather", "arguments": "{\"location\":\"Oslo\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "{\"temperature\": 3}"},
            {"role": "assistant", "content": "It is 3°C in Oslo."}]}"#;
        let ex = render_example(line, Effort::Low).unwrap();
        let tok = gptoss_harmony::Tokenizer::o200k_harmony();
        let text = |ids: &[u32]| tok.decode_lossy(ids).unwrap();
        let all = text(&ex.tokens);
        assert!(all.contains("type get_weather"), "{all}");
        assert!(all.contains("commentary channel: 'functions'"), "{all}");
        let call = "<|start|>assistant to=functions.get_weather<|channel|>commentary \
                    <|constrain|>json<|message|>{\"location\":\"Oslo\"}<|call|>";
        assert!(all.contains(call), "{all}");
        assert!(
            all.contains("<|start|>functions.get_weather to=assistant"),
            "{all}"
        );
        assert!(all.ends_with("It is 3°C in Oslo.<|return|>"), "{all}");
        // what the targets spell: the analysis, the call and the answer, not the tool output
        let trained: Vec<u32> = ex.targets.iter().flatten().copied().collect();
        let trained = text(&trained);
        assert!(trained.contains("Use get_weather."), "{trained}");
        assert!(
            trained.contains("{\"location\":\"Oslo\"}<|call|>"),
            "{trained}"
        );
        assert!(
            trained.contains("It is 3°C in Oslo.<|return|>"),
            "{trained}"
        );
        assert!(!trained.contains("temperature"), "{trained}");
        // an unanswered tool output is an error
        let orphan = r#"{"messages": [{"role": "user", "content": "x"},
            {"role": "tool", "tool_call_id": "nope", "content": "1"},
            {"role": "assistant", "content": "y"}]}"#;
        assert!(render_example(orphan, Effort::Low).is_err());
    }
}
