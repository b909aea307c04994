//! The custom-tool grammar translator reads client input: whatever text a
//! request sends as a Lark or regex grammar, translating it returns a value
//! or an error, never a panic (random text over Lark's own alphabet, and
//! real grammars with random bytes changed, dropped or repeated).

use gptoss_constrain::lark_regex::{normalize_regex, strip_outer_anchors};
use gptoss_constrain::{freeform_pattern, lark_to_regex, FreeformSyntax};
use proptest::prelude::*;

const GRAMMARS: &[&str] = &[
    "start: begin_patch hunk+ end_patch\nbegin_patch: \"*** Begin Patch\" LF\nend_patch: \"*** End Patch\" LF?\nhunk: add_hunk | delete_hunk\nadd_hunk: \"*** Add File: \" filename LF add_line+\ndelete_hunk: \"*** Delete File: \" filename LF\nfilename: /(.+)/\nadd_line: \"+\" /(.*)/ LF -> line\n%import common.LF\n",
    "start: expr\nexpr: term (SP ADD SP term)* -> add\n| term\nterm: INT\nSP: \" \"\nADD: \"+\"\n%import common.INT\n",
    "start: \"say \" ESCAPED_STRING LF\n%import common.ESCAPED_STRING\n%import common.LF\n%ignore WS\n%import common.WS\n",
    "start: (\"a\"i | /[^\"\\\\]{2,5}/ | [\"b\"]) ~ 2..3\n// comment\n",
];

const ALPHABET: &[&str] = &[
    "start", "rule", "TERM", ":", "|", "(", ")", "[", "]", "{", "}", "?", "*", "+", "~", "..",
    "\"", "\\", "/", "i", "\n", " ", "->", "%import", "%ignore", "common.", "WS", "INT", ".", ",",
    "^", "$", "-", "0", "9", "a", "#", "//", "%declare", "<", ">", "(?P<n>", "\\d", "\\W", "é",
];

fn tokens() -> impl Strategy<Value = String> {
    proptest::collection::vec(0..ALPHABET.len(), 0..60)
        .prop_map(|ids| ids.into_iter().map(|i| ALPHABET[i]).collect())
}

fn mutated() -> impl Strategy<Value = String> {
    (
        0..GRAMMARS.len(),
        proptest::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 1..6),
    )
        .prop_map(|(g, edits)| {
            let mut bytes = GRAMMARS[g].as_bytes().to_vec();
            for (at, b, kind) in edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at as usize % bytes.len();
                match kind {
                    0 => bytes[i] = b,
                    1 => {
                        bytes.remove(i);
                    }
                    _ => {
                        let end = (i + (b as usize % 8)).min(bytes.len());
                        let piece = bytes[i..end].to_vec();
                        bytes.splice(i..i, piece);
                    }
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
}

fn translate_everything(text: &str) {
    let _ = lark_to_regex(text);
    let _ = freeform_pattern(FreeformSyntax::Lark, text);
    let _ = freeform_pattern(FreeformSyntax::Regex, text);
    let _ = normalize_regex(text);
    let _ = strip_outer_anchors(text);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_lark_text_never_panics(text in tokens()) {
        translate_everything(&text);
    }

    #[test]
    fn damaged_real_grammars_never_panic(text in mutated()) {
        translate_everything(&text);
    }

    #[test]
    fn arbitrary_strings_never_panic(text in ".{0,200}") {
        translate_everything(&text);
    }
}

#[test]
fn the_undamaged_grammars_translate() {
    for g in GRAMMARS {
        assert!(lark_to_regex(g).is_ok(), "{g}");
    }
}
