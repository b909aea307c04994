//! Training data: one conversation per JSONL line, in the OpenAI messages format, rendered
//! with our harmony renderer as the model sees it at inference, with the loss on the
//! assistant's tokens only.

use std::path::Path;

use anyhow::{bail, Context};
use gptoss_chat::{history_for_prompt, Effort};
use gptoss_harmony::render::render_message_into;
use gptoss_harmony::tokenizer::RETURN;
use gptoss_harmony::{DeveloperContent, Message, RenderOptions, Role, SystemContent};
use serde_json::Value;

/// One rendered conversation: its tokens and, per position, the token it is trained to
/// predict (None outside the assistant's messages).
#[derive(Debug, PartialEq)]
pub struct Example {
    pub tokens: Vec<u32>,
    pub targets: Vec<Option<u32>>,
}

/// Renders one JSONL line (`{"messages": [...]}`) for training: a system message with the
/// reasoning effort, the system/developer texts as developer instructions, then the
/// conversation (the analysis of closed turns dropped, as at inference; the last assistant
/// answer ends with `<|return|>`). An assistant message's reasoning (`reasoning_content`, `reasoning` or
/// `thinking`) becomes its analysis message. Every token of an assistant message but its
/// opening `<|start|>` is a target.
pub fn render_example(line: &str, effort: Effort) -> anyhow::Result<Example> {
    let v: Value = serde_json::from_str(line).context("not JSON")?;
    let Some(msgs) = v.get("messages").and_then(Value::as_array) else {
        bail!("no \"messages\" list");
    };
    let mut instructions: Vec<String> = vec![];
    let mut history: Vec<Message> = vec![];
    for (i, m) in msgs.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let text = match m.get("content") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => bail!("messages[{i}].content: only a string is read"),
        };
        if m.get("tool_calls").is_some() || role == "tool" {
            bail!("messages[{i}]: tool calls are not supported by finetune yet");
        }
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
                history.push(
                    Message::from_role_and_content(Role::Assistant, text).with_channel("final"),
                );
            }
            other => {
                bail!("messages[{i}].role {other:?}: expected system, developer, user or assistant")
            }
        }
    }
    if !history.iter().any(|m| m.author.role == Role::Assistant) {
        bail!("no assistant message: nothing to train on");
    }
    let system = SystemContent::new().with_reasoning_effort(effort.harmony_effort());
    let mut all = vec![Message::from_role_and_content(Role::System, system)];
    if !instructions.is_empty() {
        let dev = DeveloperContent::new().with_instructions(instructions.join("\n\n"));
        all.push(Message::from_role_and_content(Role::Developer, dev));
    }
    all.extend(history);
    let options = RenderOptions::default();
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
    if let Some(last) = all.last() {
        if last.author.role == Role::Assistant {
            if let Some(t) = tokens.last_mut() {
                *t = RETURN;
            }
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
        ] {
            assert!(render_example(line, Effort::Low).is_err(), "{line}");
        }
    }
}
