//! Reasoning effort, including our `none` extension.
//!
//! `low` / `medium` / `high` are harmony's: the system message says
//! `Reasoning: low|medium|high`. `none` is a gpt-oss-rs extension, not part
//! of harmony: the system message says `Reasoning: low` and the assistant
//! turn is opened directly in the final channel (the prompt ends with
//! `<|start|>assistant<|channel|>final<|message|>`), so the model writes its
//! answer without a chain of thought. It saves the reasoning tokens at some
//! cost in answer quality on hard questions.

use std::fmt;
use std::str::FromStr;

use gptoss_harmony::ReasoningEffort;

/// How much the model reasons before answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Effort {
    /// Extension: no chain of thought, the turn starts in the final channel.
    None,
    Low,
    /// Harmony's default.
    #[default]
    Medium,
    High,
}

impl Effort {
    /// The word used on the command line and in `/effort`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Effort::None => "none",
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
        }
    }

    /// The `Reasoning:` value written into the system message.
    pub fn harmony_effort(&self) -> ReasoningEffort {
        match self {
            Effort::None | Effort::Low => ReasoningEffort::Low,
            Effort::Medium => ReasoningEffort::Medium,
            Effort::High => ReasoningEffort::High,
        }
    }

    /// True when the assistant turn is opened in the final channel.
    pub fn opens_final_channel(&self) -> bool {
        matches!(self, Effort::None)
    }
}

impl fmt::Display for Effort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Effort {
    type Err = crate::ChatError;
    fn from_str(s: &str) -> Result<Effort, crate::ChatError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Effort::None),
            "low" => Ok(Effort::Low),
            "medium" => Ok(Effort::Medium),
            "high" => Ok(Effort::High),
            _ => Err(crate::ChatError::UnknownEffort(s.to_string())),
        }
    }
}
