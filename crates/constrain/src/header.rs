//! Message headers the assistant may write, as a grammar: which channel,
//! and which recipient (only tools the request declared). gpt-oss writes a
//! header between `<|start|>assistant` and `<|message|>`:
//!
//! - `<|channel|>analysis<|message|>`, `<|channel|>final<|message|>`,
//!   `<|channel|>commentary<|message|>` (a preamble to the user);
//! - a call: `<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>`,
//!   `<|channel|>analysis to=python code<|message|>`, or the recipient
//!   before the channel: ` to=functions.NAME<|channel|>commentary json<|message|>`.
//!
//! [`HeaderGrammar`] compiles exactly these shapes with the recipient drawn
//! from a fixed list (llguidance lark grammar: special tokens by name, text
//! as byte strings, so any tokenization of a header is accepted). With an
//! empty list no header can name a recipient at all, so a model can never
//! call a tool the request did not declare.
//!
//! Does not own: message bodies (`harmony`), JSON (`json`).

use crate::json::Grammar;
use crate::Error;

/// Grammars of the headers one generation may write.
#[derive(Debug, Clone)]
pub struct HeaderGrammar {
    /// The first header: the prompt already ends with `<|start|>assistant`.
    pub(crate) first: Grammar,
    /// A later header, after a generated `<|start|>`: the role, then as `first`.
    pub(crate) next: Grammar,
}

impl HeaderGrammar {
    /// Headers whose recipient (if any) is one of `recipients` (full
    /// recipient names: `functions.get_weather`, `browser.search`, `python`).
    pub fn new(recipients: &[String]) -> Result<HeaderGrammar, Error> {
        Self::build(recipients, true)
    }

    /// As [`Self::new`], but no commentary message without a recipient (a
    /// preamble to the user): with a response format the answer must be the
    /// final message alone, and a preamble would be text beside the JSON.
    pub fn without_preambles(recipients: &[String]) -> Result<HeaderGrammar, Error> {
        Self::build(recipients, false)
    }

    fn build(recipients: &[String], preambles: bool) -> Result<HeaderGrammar, Error> {
        let body = header_rules(recipients, preambles);
        Ok(HeaderGrammar {
            first: Grammar::compile_lark(&format!("start: header\n{body}"))?,
            next: Grammar::compile_lark(&format!("start: \"assistant\" header\n{body}"))?,
        })
    }
}

/// The lark rules of one header (rule `header`), from its text after the role.
fn header_rules(recipients: &[String], preambles: bool) -> String {
    let unaddressed = if preambles { "plain" } else { "\"analysis\"" };
    let mut rules = format!(
        "header: <|channel|> \"final\" <|message|>\n\
         \x20   | <|channel|> {unaddressed} <|message|>\n",
    );
    if !recipients.is_empty() {
        rules.push_str(
            "\x20   | <|channel|> plain \" to=\" recipient ctype? <|message|>\n\
             \x20   | \" to=\" recipient <|channel|> plain ctype? <|message|>\n",
        );
        let names: Vec<String> = recipients
            .iter()
            .map(|r| serde_json::to_string(r).unwrap_or_else(|_| "\"\"".to_string()))
            .collect();
        rules.push_str(&format!("recipient: {}\n", names.join(" | ")));
        rules.push_str(
            "ctype: \" \" <|constrain|> \"json\" | <|constrain|> \"json\" | \" json\" | \" code\"\n",
        );
    }
    rules.push_str("plain: \"analysis\" | \"commentary\"\n");
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use gptoss_harmony::Tokenizer;

    fn accepts(grammar: &Grammar, text: &str) -> bool {
        let tok = Tokenizer::o200k_harmony();
        let mut m = grammar.matcher();
        for id in tok.encode_with_special_tokens(text) {
            match m.allowed() {
                Ok(set) if set.contains(id) => {}
                _ => return false,
            }
            if m.accept(id).is_err() {
                return false;
            }
        }
        m.is_complete()
    }

    #[test]
    fn headers_follow_the_declared_recipients() {
        let g = HeaderGrammar::new(&["functions.get_weather".into(), "python".into()])
            .expect("compiles");
        for ok in [
            "<|channel|>analysis<|message|>",
            "<|channel|>final<|message|>",
            "<|channel|>commentary<|message|>",
            "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>",
            "<|channel|>commentary to=functions.get_weather<|message|>",
            "<|channel|>analysis to=python code<|message|>",
            " to=functions.get_weather<|channel|>commentary json<|message|>",
        ] {
            assert!(accepts(&g.first, ok), "{ok}");
        }
        for bad in [
            "<|channel|>commentary to=functions.get_time <|constrain|>json<|message|>",
            "<|channel|>final to=python<|message|>",
            "<|channel|>commentary to=browser.search<|message|>",
            "<|channel|>finalize<|message|>",
            "<|channel|>commentary to=functions.<|message|>",
            "user<|message|>",
        ] {
            assert!(!accepts(&g.first, bad), "{bad}");
        }
        assert!(accepts(&g.next, "assistant<|channel|>final<|message|>"));
        assert!(!accepts(&g.next, "user<|channel|>final<|message|>"));
    }

    #[test]
    fn preambles_can_be_ruled_out() {
        let g = HeaderGrammar::without_preambles(&["functions.f".into()]).expect("compiles");
        assert!(accepts(&g.first, "<|channel|>analysis<|message|>"));
        assert!(accepts(&g.first, "<|channel|>final<|message|>"));
        assert!(accepts(
            &g.first,
            "<|channel|>commentary to=functions.f <|constrain|>json<|message|>"
        ));
        assert!(!accepts(&g.first, "<|channel|>commentary<|message|>"));
        let g = HeaderGrammar::new(&[]).expect("compiles");
        assert!(accepts(&g.first, "<|channel|>commentary<|message|>"));
    }

    #[test]
    fn no_recipient_without_tools() {
        let g = HeaderGrammar::new(&[]).expect("compiles");
        assert!(accepts(&g.first, "<|channel|>analysis<|message|>"));
        assert!(!accepts(
            &g.first,
            "<|channel|>analysis to=python code<|message|>"
        ));
    }
}
