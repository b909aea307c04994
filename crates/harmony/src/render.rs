//! Conversation -> prompt tokens, exactly as openai-harmony 0.0.8
//! (`HarmonyEncoding::render*` in `encoding.rs`).
//!
//! Owns: header layout (`<|start|>ROLE[:name][ to=R][<|channel|>C][ TYPE]<|message|>`),
//! system/developer section text, the tools section, message endings
//! (`<|end|>`, `<|call|>`, `<|return|>` for training) and the
//! analysis-dropping rule. Does not own: parsing (`parse`), tokenization
//! (`tokenizer`).
//!
//! Every piece of text goes through `encode_ordinary` separately, in the same
//! pieces as the official renderer (role, `:name`, ` to=…`, channel, …):
//! BPE merges never cross those boundaries, so the split matters.

use std::collections::BTreeMap;

use crate::chat::{
    Content, Conversation, DeveloperContent, Message, Role, SystemContent, ToolNamespaceConfig,
};
use crate::tokenizer::{Rank, Tokenizer, CALL, CHANNEL, CONSTRAIN, END, MESSAGE, RETURN, START};
use crate::typescript::json_schema_to_typescript;
use crate::Error;

/// Options for rendering a whole conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderConfig {
    /// Drop earlier `analysis` messages once the conversation's last
    /// assistant message is `final` (exact rule in `messages_to_render`).
    /// Default `true`, like the Python binding.
    pub auto_drop_analysis: bool,
}

impl Default for RenderConfig {
    fn default() -> Self {
        RenderConfig {
            auto_drop_analysis: true,
        }
    }
}

/// Options for rendering one message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// Adds "Calls to these tools must go to the commentary channel:
    /// 'functions'." to the system message's channel line.
    pub conversation_has_function_tools: bool,
}

/// Render the conversation, then `<|start|>{next_role}`: the prompt the model
/// completes.
pub fn render_conversation_for_completion(
    conversation: &Conversation,
    next_role: Role,
    config: &RenderConfig,
) -> Result<Vec<Rank>, Error> {
    let tok = Tokenizer::o200k_harmony();
    let mut out = render_conversation(conversation, config)?;
    out.push(START);
    out.extend(tok.encode_ordinary(next_role.as_str()));
    Ok(out)
}

/// Render the conversation; if its last message is an assistant `final`
/// message, its closing `<|end|>` becomes `<|return|>`.
pub fn render_conversation_for_training(
    conversation: &Conversation,
    config: &RenderConfig,
) -> Result<Vec<Rank>, Error> {
    let mut out = render_conversation(conversation, config)?;
    if let Some(last) = conversation.messages.last() {
        if last.author.role == Role::Assistant && last.channel.as_deref() == Some("final") {
            if let Some(t) = out.last_mut() {
                *t = RETURN;
            }
        }
    }
    Ok(out)
}

/// Render every message of the conversation (after the analysis-dropping
/// rule), with no trailing `<|start|>`.
pub fn render_conversation(
    conversation: &Conversation,
    config: &RenderConfig,
) -> Result<Vec<Rank>, Error> {
    let options = RenderOptions {
        conversation_has_function_tools: has_function_tools(&conversation.messages),
    };
    let mut out = Vec::new();
    for msg in messages_to_render(&conversation.messages, config) {
        render_message_into(msg, &options, &mut out)?;
    }
    Ok(out)
}

/// Whether any developer message declares at least one `functions` tool.
pub fn has_function_tools(messages: &[Message]) -> bool {
    messages.iter().any(|m| {
        m.content.iter().any(|c| match c {
            Content::DeveloperContent(dev) => dev
                .tools
                .as_ref()
                .and_then(|t| t.get("functions"))
                .is_some_and(|ns| !ns.tools.is_empty()),
            _ => false,
        })
    })
}

/// The messages that get rendered. openai-harmony 0.0.8's rule, verbatim:
/// only when `auto_drop_analysis` is set **and** the last assistant message
/// has channel `final`, drop every `analysis` message that comes before the
/// **first** `final` message of the list (any role). Analysis after the
/// first final is kept.
pub fn messages_to_render<'a>(messages: &'a [Message], config: &RenderConfig) -> Vec<&'a Message> {
    let last_assistant_is_final = messages
        .iter()
        .rev()
        .find(|m| m.author.role == Role::Assistant)
        .is_some_and(|m| m.channel.as_deref() == Some("final"));
    let drop = config.auto_drop_analysis && last_assistant_is_final;
    let first_final = messages
        .iter()
        .position(|m| m.channel.as_deref() == Some("final"));
    messages
        .iter()
        .enumerate()
        .filter(|(idx, m)| {
            !(drop
                && first_final.is_some_and(|f| *idx < f)
                && m.channel.as_deref() == Some("analysis"))
        })
        .map(|(_, m)| m)
        .collect()
}

/// Render one message (openai-harmony `render(message)`).
pub fn render_message(message: &Message, options: &RenderOptions) -> Result<Vec<Rank>, Error> {
    let mut out = Vec::new();
    render_message_into(message, options, &mut out)?;
    Ok(out)
}

/// Render one message, appending to `out`. On error `out` may hold a partial
/// message.
pub fn render_message_into(
    message: &Message,
    options: &RenderOptions,
    out: &mut Vec<Rank>,
) -> Result<(), Error> {
    let tok = Tokenizer::o200k_harmony();
    out.push(START);
    if message.author.role == Role::Tool {
        // A tool's header names the tool, not the word "tool".
        let name = message.author.name.as_ref().ok_or(Error::ToolWithoutName)?;
        out.extend(tok.encode_ordinary(name));
    } else {
        out.extend(tok.encode_ordinary(message.author.role.as_str()));
        if let Some(name) = &message.author.name {
            out.extend(tok.encode_ordinary(&format!(":{name}")));
        }
    }
    if let Some(recipient) = &message.recipient {
        if recipient != "all" {
            out.extend(tok.encode_ordinary(&format!(" to={recipient}")));
        }
    }
    if let Some(channel) = &message.channel {
        out.push(CHANNEL);
        out.extend(tok.encode_ordinary(channel));
    }
    if let Some(content_type) = &message.content_type {
        // `<|constrain|>` must be the special token, not its text.
        if let Some(rest) = content_type.strip_prefix("<|constrain|>") {
            out.extend(tok.encode_ordinary(" "));
            out.push(CONSTRAIN);
            if !rest.is_empty() {
                out.extend(tok.encode_ordinary(rest));
            }
        } else {
            out.extend(tok.encode_ordinary(&format!(" {content_type}")));
        }
    }
    out.push(MESSAGE);
    for content in &message.content {
        match content {
            Content::Text(t) => out.extend(tok.encode_ordinary(&t.text)),
            Content::SystemContent(sys) => {
                if message.author.role != Role::System {
                    return Err(Error::ContentNotAllowed {
                        content: "SystemContent",
                        role: message.author.role,
                    });
                }
                out.extend(tok.encode_ordinary(&system_text(sys, options)));
            }
            Content::DeveloperContent(dev) => {
                if message.author.role != Role::Developer {
                    return Err(Error::ContentNotAllowed {
                        content: "DeveloperContent",
                        role: message.author.role,
                    });
                }
                out.extend(tok.encode_ordinary(&developer_text(dev)));
            }
        }
    }
    // Note: any recipient (even "all") on an assistant message ends in <|call|>.
    if message.author.role == Role::Assistant && message.recipient.is_some() {
        out.push(CALL);
    } else {
        out.push(END);
    }
    Ok(())
}

/// The text of a system message body.
pub fn system_text(sys: &SystemContent, options: &RenderOptions) -> String {
    let mut sections: Vec<String> = Vec::new();
    let mut top: Vec<String> = Vec::new();
    if let Some(id) = &sys.model_identity {
        top.push(id.clone());
    }
    if let Some(cutoff) = &sys.knowledge_cutoff {
        top.push(format!("Knowledge cutoff: {cutoff}"));
    }
    if let Some(date) = &sys.conversation_start_date {
        top.push(format!("Current date: {date}"));
    }
    if !top.is_empty() {
        sections.push(top.join("\n"));
    }
    if let Some(effort) = sys.reasoning_effort {
        sections.push(format!("Reasoning: {}", effort.as_str()));
    }
    if let Some(tools) = &sys.tools {
        if !tools.is_empty() {
            sections.push(tools_section(tools));
        }
    }
    if let Some(cc) = &sys.channel_config {
        if !cc.valid_channels.is_empty() {
            let mut line = format!("# Valid channels: {}.", cc.valid_channels.join(", "));
            if cc.channel_required {
                line.push_str(" Channel must be included for every message.");
            }
            if options.conversation_has_function_tools {
                line.push_str(
                    "\nCalls to these tools must go to the commentary channel: 'functions'.",
                );
            }
            sections.push(line);
        }
    }
    sections.join("\n\n")
}

/// The text of a developer message body.
pub fn developer_text(dev: &DeveloperContent) -> String {
    let mut sections: Vec<String> = Vec::new();
    if let Some(instructions) = &dev.instructions {
        sections.push("# Instructions".to_string());
        sections.push(instructions.clone());
    }
    if let Some(tools) = &dev.tools {
        if !tools.is_empty() {
            sections.push(tools_section(tools));
        }
    }
    sections.join("\n\n")
}

/// `# Tools` followed by one section per namespace, in name order.
fn tools_section(tools: &BTreeMap<String, ToolNamespaceConfig>) -> String {
    let mut sections = vec!["# Tools".to_string()];
    for ns in tools.values() {
        let mut lines: Vec<String> = vec![format!("## {}\n", ns.name)];
        if let Some(desc) = &ns.description {
            for line in desc.lines() {
                if ns.tools.is_empty() {
                    lines.push(line.to_string());
                } else {
                    lines.push(format!("// {line}"));
                }
            }
        }
        if !ns.tools.is_empty() {
            lines.push(format!("namespace {} {{\n", ns.name));
            for tool in &ns.tools {
                for line in tool.description.lines() {
                    lines.push(format!("// {line}"));
                }
                match &tool.parameters {
                    Some(params) => lines.push(format!(
                        "type {} = (_: {}) => any;\n",
                        tool.name,
                        json_schema_to_typescript(params, "")
                    )),
                    None => lines.push(format!("type {} = () => any;\n", tool.name)),
                }
            }
            lines.push(format!("}} // namespace {}", ns.name));
        }
        sections.push(lines.join("\n"));
    }
    sections.join("\n\n")
}
