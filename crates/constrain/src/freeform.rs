//! The arguments of a freeform (`custom`) tool whose input has a grammar.
//! The model writes the JSON `{"input": "..."}` it knows from function
//! calling; the grammar becomes the `pattern` of that string, which
//! llguidance JSON-quotes, so the *decoded* input follows the grammar.
//!
//! Does not own: the Lark translation (`lark_regex`) or compiling the schema
//! (`json`).

use serde_json::{json, Value};

use crate::lark_regex::{lark_to_regex, normalize_regex, strip_outer_anchors, LarkError};

/// The syntax of a custom tool's grammar (`format.syntax`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeformSyntax {
    /// Lark, the subset that inlines into one regex ([`lark_to_regex`]).
    Lark,
    /// A Rust `regex`-syntax regular expression the whole input must match.
    Regex,
}

/// The regex (anchored, llguidance's dialect) the whole input must match.
pub fn freeform_pattern(syntax: FreeformSyntax, definition: &str) -> Result<String, LarkError> {
    let body = match syntax {
        FreeformSyntax::Lark => lark_to_regex(definition)?,
        // `^...$` around the whole (or each alternative) is what a full
        // match means anyway; llguidance refuses anchors inside.
        FreeformSyntax::Regex => normalize_regex(&strip_outer_anchors(definition)),
    };
    Ok(format!("^(?:{body})$"))
}

/// The JSON schema of the tool's arguments: `{"input": string}` whose string
/// matches the grammar. Compiling it (`Grammar::compile`) can still fail on a
/// regex llguidance refuses (lookaround, backreferences, a bad class).
pub fn freeform_arguments_schema(
    syntax: FreeformSyntax,
    definition: &str,
) -> Result<Value, LarkError> {
    let pattern = freeform_pattern(syntax, definition)?;
    Ok(json!({
        "type": "object",
        "properties": {"input": {"type": "string", "pattern": pattern}},
        "required": ["input"],
        "additionalProperties": false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Format, Grammar};
    use gptoss_harmony::Tokenizer;

    fn complete(grammar: &Grammar, text: &str) -> bool {
        let tok = Tokenizer::o200k_harmony();
        let mut m = grammar.matcher();
        for id in tok.encode_ordinary(text) {
            if m.accept(id).is_err() {
                return false;
            }
        }
        m.is_complete()
    }

    #[test]
    fn the_input_string_follows_a_regex() {
        let schema =
            freeform_arguments_schema(FreeformSyntax::Regex, r"^(?:[0-9]{3}-[a-z]{2})$").unwrap();
        let g = Grammar::compile(&Format::JsonSchema(schema)).unwrap();
        assert!(complete(&g, r#"{"input":"123-ab"}"#));
        assert!(!complete(&g, r#"{"input":"123-abc"}"#));
        assert!(!complete(&g, r#"{"input":"12-ab"}"#));
        assert!(!complete(&g, r#"{"input":1}"#));
    }

    #[test]
    fn newlines_and_quotes_are_json_escaped() {
        let lark =
            "start: \"say \" ESCAPED_STRING LF\n%import common.ESCAPED_STRING\n%import common.LF\n";
        let schema = freeform_arguments_schema(FreeformSyntax::Lark, lark).unwrap();
        let g = Grammar::compile(&Format::JsonSchema(schema)).unwrap();
        assert!(complete(&g, r#"{"input":"say \"hi\"\n"}"#));
        assert!(!complete(&g, r#"{"input":"say \"hi\""}"#));
    }

    #[test]
    fn negated_classes_do_not_admit_escaped_quotes() {
        // A class of every control character but no `"` (derivre's shortcut).
        let schema = freeform_arguments_schema(FreeformSyntax::Regex, r#""[^"\\]*";"#).unwrap();
        let g = Grammar::compile(&Format::JsonSchema(schema)).unwrap();
        assert!(complete(&g, r#"{"input":"\"x\ty\";"}"#));
        assert!(!complete(&g, r#"{"input":"\"x\"y\";"}"#));
        assert!(!complete(&g, r#"{"input":"\"x\\y\";"}"#));
    }

    #[test]
    fn anchors_inside_are_refused_by_the_engine() {
        let schema = freeform_arguments_schema(FreeformSyntax::Regex, r"a(^b)").unwrap();
        assert!(Grammar::compile(&Format::JsonSchema(schema)).is_err());
    }
}
