//! Property test of freeform (`custom`) tool grammars: thousands of steps
//! sampled from random logits (not a model's) through the arguments grammar
//! that `freeform_arguments_schema` builds. Every completion must be the
//! JSON `{"input": s}`, and `s` must be accepted by an independent checker:
//! for a Lark grammar, llguidance's own Lark front end compiling the grammar
//! as written (fed `s` byte by byte over a byte-level vocabulary, so neither
//! our translation nor our tokenizer is involved); for a regex, the `regex`
//! crate.
//!
//! A walk samples freely for a while, then is steered to a close along the
//! shortest completion of the input (a DFA of the translated regex, built by
//! `regex-automata`), each forced token still checked against the mask.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use gptoss_constrain::{
    freeform_arguments_schema, freeform_pattern, Format, FreeformSyntax, Grammar, Matcher,
};
use gptoss_harmony::tokenizer::MAX_TOKEN_ID;
use gptoss_harmony::Tokenizer;
use llguidance::api::TopLevelGrammar;
use llguidance::earley::SlicedBiasComputer;
use llguidance::toktrie::{
    InferenceCapabilities, TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv,
};
use llguidance::ParserFactory;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::Anchored;
use serde_json::Value;

/// Codex CLI's `apply_patch` freeform tool grammar, as Codex sends it
/// (openai/codex, codex-rs/core/src/tools/handlers/tool_apply_patch.lark).
const APPLY_PATCH: &str = r#"start: begin_patch hunk+ end_patch
begin_patch: "*** Begin Patch" LF
end_patch: "*** End Patch" LF?

hunk: add_hunk | delete_hunk | update_hunk
add_hunk: "*** Add File: " filename LF add_line+
delete_hunk: "*** Delete File: " filename LF
update_hunk: "*** Update File: " filename LF change_move? change?

filename: /(.+)/
add_line: "+" /(.*)/ LF -> line

change_move: "*** Move to: " filename LF
change: (change_context | change_line)+ eof_line?
change_context: ("@@" | "@@ " /(.+)/) LF
change_line: ("+" | "-" | " ") /(.*)/ LF
eof_line: "*** End of File" LF

%import common.LF
"#;

/// The MS SQL dialect grammar of OpenAI's GPT-5 "new params and tools"
/// cookbook (context-free grammar section).
const MSSQL: &str = r#"
// ---------- Punctuation & operators ----------
SP: " "
COMMA: ","
GT: ">"
EQ: "="
SEMI: ";"

// ---------- Start ----------
start: "SELECT" SP "TOP" SP NUMBER SP select_list SP "FROM" SP table SP "WHERE" SP amount_filter SP "AND" SP date_filter SP "ORDER" SP "BY" SP sort_cols SEMI

// ---------- Projections ----------
select_list: column (COMMA SP column)*
column: IDENTIFIER

// ---------- Tables ----------
table: IDENTIFIER

// ---------- Filters ----------
amount_filter: "total_amount" SP GT SP NUMBER
date_filter: "order_date" SP GT SP DATE

// ---------- Sorting ----------
sort_cols: "order_date" SP "DESC"

// ---------- Terminals ----------
IDENTIFIER: /[A-Za-z_][A-Za-z0-9_]*/
NUMBER: /[0-9]+/
DATE: /'[0-9]{4}-[0-9]{2}-[0-9]{2}'/
"#;

/// The arithmetic grammar of OpenAI's function-calling guide (CFG section).
const MATH: &str = r#"start: expr
expr: term (SP ADD SP term)* -> add
    | term
term: factor (SP MUL SP factor)* -> mul
    | factor
factor: INT
SP: " "
ADD: "+"
MUL: "*"
%import common.INT
"#;

/// The cookbook's "one bounded terminal between anchors" example.
const SENTENCE: &str = r#"start: SENTENCE
SENTENCE: /[A-Za-z, ]*(the hero|a dragon)[A-Za-z, ]*(fought|saved)[A-Za-z, ]*(a treasure|the kingdom)[A-Za-z, ]*\./
"#;

/// Ignored whitespace, case-insensitive keywords, ranges, bounded repeats.
const SETTINGS: &str = r#"start: "set"i setting ("," setting)~0..3 ";"
setting: KEY "=" (SIGNED_NUMBER | ESCAPED_STRING | BOOL)
BOOL: "true" | "false"
KEY: ("a".."z") ("a".."z" | "_")*
%import common.SIGNED_NUMBER
%import common.ESCAPED_STRING
%import common.WS
%ignore WS
"#;

/// The cookbook's timestamp regex.
const TIMESTAMP: &str = r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]) (?:[01]\d|2[0-3]):[0-5]\d$";

/// Named groups and `\s`, as people write date regexes.
const SPOKEN_DATE: &str = r"^(?P<month>January|February|March|April|May|June|July|August|September|October|November|December)\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+(?P<year>\d{4})$";

// ------------------------------------------------------------ checkers

/// llguidance's tokenizer environment over single bytes: the checker sees
/// the input's bytes, not our tokenizer's split.
struct ByteEnv {
    trie: TokTrie,
}

const BYTE_EOS: u32 = 256;

impl TokenizerEnv for ByteEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        s.iter().map(|&b| b as TokenId).collect()
    }
}

fn byte_factory() -> ParserFactory {
    let mut words: Vec<Vec<u8>> = (0..=255u8)
        .map(|b| if b == 0xFF { Vec::new() } else { vec![b] })
        .collect();
    words.push(vec![TokTrie::SPECIAL_TOKEN_MARKER, b'e']);
    let trie = TokTrie::from(&TokRxInfo::new(BYTE_EOS + 1, BYTE_EOS), &words);
    let env: TokEnv = Arc::new(ByteEnv { trie });
    let mut factory = ParserFactory::new(
        &env,
        InferenceCapabilities::default(),
        &SlicedBiasComputer::general_slices(),
    )
    .expect("byte-level parser factory");
    factory.quiet();
    factory
}

enum Checker {
    /// The grammar compiled by llguidance's Lark front end.
    Lark(Box<llguidance::Matcher>),
    /// The regex, as a whole-input match.
    Regex(regex::Regex),
}

impl Checker {
    fn new(factory: &ParserFactory, syntax: FreeformSyntax, definition: &str) -> Checker {
        match syntax {
            FreeformSyntax::Lark => {
                let parser = factory
                    .create_parser(TopLevelGrammar::from_lark(definition.to_string()))
                    .expect("llguidance compiles the Lark grammar");
                Checker::Lark(Box::new(llguidance::Matcher::new(Ok(parser))))
            }
            FreeformSyntax::Regex => Checker::Regex(
                regex::Regex::new(&format!("^(?:{definition})$")).expect("the regex compiles"),
            ),
        }
    }

    fn accepts(&self, input: &str) -> bool {
        match self {
            Checker::Regex(re) => re.is_match(input),
            Checker::Lark(template) => {
                let mut m = template.deep_clone();
                let bytes: Vec<TokenId> = input.bytes().map(|b| b as TokenId).collect();
                m.consume_tokens(&bytes).is_ok() && m.is_accepting().unwrap_or(false)
            }
        }
    }
}

// ------------------------------------------------------------ steering

/// Shortest completions of the input from the translated regex's DFA.
struct Steer {
    dfa: dense::DFA<Vec<u32>>,
}

/// Bytes tried first, so completions read like text.
fn byte_order() -> Vec<u8> {
    let mut order: Vec<u8> = (b'a'..=b'z').chain(b'0'..=b'9').collect();
    order.extend(0x20..0x7F);
    order.push(b'\n');
    order.extend(0..=255u8);
    let mut seen = [false; 256];
    order.retain(|&b| !std::mem::replace(&mut seen[b as usize], true));
    order
}

impl Steer {
    fn new(pattern: &str) -> Steer {
        let dfa = dense::Builder::new()
            .configure(dense::Config::new().start_kind(StartKind::Anchored))
            .build(pattern)
            .expect("the translated regex builds a DFA");
        Steer { dfa }
    }

    /// The shortest text that completes `prefix` to a match; an error if
    /// `prefix` is already off the language (where it left it).
    fn completion(&self, prefix: &str) -> Result<String, String> {
        let dfa = &self.dfa;
        let mut state = dfa
            .start_state(&start::Config::new().anchored(Anchored::Yes))
            .map_err(|e| e.to_string())?;
        for (i, &b) in prefix.as_bytes().iter().enumerate() {
            state = dfa.next_state(state, b);
            if dfa.is_dead_state(state) {
                let (ok, bad) = prefix.as_bytes().split_at(i);
                return Err(format!(
                    "{:?} cannot go on with {:?}",
                    String::from_utf8_lossy(ok),
                    String::from_utf8_lossy(bad)
                ));
            }
        }
        let order = byte_order();
        let mut prev: HashMap<StateID, (StateID, u8)> = HashMap::new();
        let mut queue = VecDeque::from([state]);
        prev.insert(state, (state, 0));
        while let Some(s) = queue.pop_front() {
            if dfa.is_match_state(dfa.next_eoi_state(s)) {
                let mut bytes = Vec::new();
                let mut at = s;
                while at != state {
                    let (from, b) = prev[&at];
                    bytes.push(b);
                    at = from;
                }
                bytes.reverse();
                return String::from_utf8(bytes).map_err(|e| e.to_string());
            }
            for &b in &order {
                let next = dfa.next_state(s, b);
                if dfa.is_dead_state(next) || prev.contains_key(&next) {
                    continue;
                }
                prev.insert(next, (s, b));
                queue.push_back(next);
            }
        }
        Err(format!("no completion of {prefix:?}"))
    }
}

/// Where the generated arguments stand inside the `input` string.
enum Inside {
    /// Before the string's opening quote.
    NotYet,
    /// In the string: the decoded text so far.
    Open(String),
    /// In the middle of an escape (or of a character's bytes).
    MidEscape,
    /// After the closing quote.
    Closed,
}

fn inside_input(json: &str) -> Inside {
    let Some(colon) = json.find(':') else {
        return Inside::NotYet;
    };
    let Some(quote) = json[colon..].find('"') else {
        return Inside::NotYet;
    };
    let body: Vec<char> = json[colon + quote + 1..].chars().collect();
    let mut text = String::new();
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            '"' => return Inside::Closed,
            '\\' => {
                let Some(&e) = body.get(i + 1) else {
                    return Inside::MidEscape;
                };
                if e == 'u' {
                    if body.len() < i + 6 {
                        return Inside::MidEscape;
                    }
                    let hex: String = body[i + 2..i + 6].iter().collect();
                    let unit = u32::from_str_radix(&hex, 16).expect("hex escape");
                    if (0xD800..0xDC00).contains(&unit) {
                        if body.len() < i + 12 {
                            return Inside::MidEscape;
                        }
                        let low: String = body[i + 8..i + 12].iter().collect();
                        let low = u32::from_str_radix(&low, 16).expect("hex escape");
                        let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        text.push(char::from_u32(c).expect("a scalar"));
                        i += 12;
                    } else {
                        text.push(char::from_u32(unit).expect("a scalar"));
                        i += 6;
                    }
                    continue;
                }
                text.push(match e {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    other => other,
                });
                i += 2;
            }
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
    Inside::Open(text)
}

// ------------------------------------------------------------ sampling

/// One token among those allowed: every `MASK_EVERY`th step random logits
/// through `TokenSet::apply`, then argmax; otherwise uniform, often among
/// short tokens (one or two bytes: punctuation, `\n` escapes), which
/// grammars use for structure and a uniform pick over 200k tokens would
/// almost never take.
const MASK_EVERY: usize = 10;

/// Short tokens, the ones led by `\` (JSON escapes: newlines, quotes) first.
fn short_tokens() -> (Vec<u32>, Vec<u32>) {
    let tok = Tokenizer::o200k_harmony();
    let short: Vec<u32> = (0..gptoss_harmony::tokenizer::FIRST_SPECIAL_ID)
        .filter(|&id| {
            tok.token_bytes(id)
                .is_ok_and(|b| !b.is_empty() && b.len() <= 2)
        })
        .collect();
    let escapes = short
        .iter()
        .copied()
        .filter(|&id| tok.token_bytes(id).is_ok_and(|b| b[0] == b'\\'))
        .collect();
    (short, escapes)
}

fn sample(
    m: &mut Matcher,
    rng: &mut ChaCha8Rng,
    step: usize,
    (short, escapes): &(Vec<u32>, Vec<u32>),
) -> Option<u32> {
    let allowed = m.allowed().expect("mask");
    if allowed.is_empty() {
        return None;
    }
    if step.is_multiple_of(MASK_EVERY) {
        let mut logits: Vec<f32> = (0..=MAX_TOKEN_ID)
            .map(|_| rng.random::<f32>() * 10.0)
            .collect();
        allowed.apply(&mut logits);
        let best = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(id, _)| id as u32)?;
        assert!(allowed.contains(best));
        return Some(best);
    }
    let pool = match rng.random_range(0..10) {
        0..=1 => Some(escapes),
        2..=4 => Some(short),
        _ => None,
    };
    if let Some(pool) = pool {
        for _ in 0..64 {
            let id = pool[rng.random_range(0..pool.len())];
            if allowed.contains(id) {
                return Some(id);
            }
        }
    }
    for _ in 0..48 {
        let id = rng.random_range(0..=MAX_TOKEN_ID);
        if allowed.contains(id) {
            return Some(id);
        }
    }
    let all = allowed.to_vec();
    Some(all[rng.random_range(0..all.len())])
}

fn feed(m: &mut Matcher, tokens: &mut Vec<u32>, id: u32) {
    assert!(
        m.allowed().expect("mask").contains(id),
        "token {id} not allowed after {:?}",
        text(&Tokenizer::o200k_harmony(), tokens)
    );
    m.accept(id).expect("an allowed token is accepted");
    tokens.push(id);
}

fn text(tok: &Tokenizer, tokens: &[u32]) -> String {
    tok.decode_lossy(tokens).expect("ordinary tokens decode")
}

#[derive(Debug, Default)]
struct Tally {
    steps: usize,
    finished: usize,
    steered: usize,
    nonempty: usize,
}

/// Random walks through the arguments grammar of one tool; every finished
/// one is checked. Returns what was seen.
fn fuzz(syntax: FreeformSyntax, definition: &str, seed: u64, min_steps: usize) -> Tally {
    let tok = Tokenizer::o200k_harmony();
    let schema = freeform_arguments_schema(syntax, definition).expect("translates");
    let grammar = Grammar::compile(&Format::JsonSchema(schema)).expect("compiles");
    let steer = Steer::new(&freeform_pattern(syntax, definition).expect("translates"));
    let checker = Checker::new(&byte_factory(), syntax, definition);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let short = short_tokens();
    let mut tally = Tally::default();
    let mut walk = 0;
    while tally.steps < min_steps {
        walk += 1;
        let mut m = grammar.matcher();
        let mut tokens = Vec::new();
        let free = 4 + rng.random_range(0..100);
        let mut step = 0;
        while !m.is_complete() && step < free {
            let Some(id) = sample(&mut m, &mut rng, step, &short) else {
                break;
            };
            feed(&mut m, &mut tokens, id);
            step += 1;
        }
        // Steer to a close: finish an escape, then the shortest completion.
        let mut guard = 0;
        while !m.is_complete() {
            guard += 1;
            assert!(
                guard < 64,
                "walk {walk} never closed: {:?}",
                text(&tok, &tokens)
            );
            let bytes = tok.decode_bytes(&tokens).expect("ordinary tokens");
            let state = match std::str::from_utf8(&bytes) {
                Ok(json) => inside_input(json),
                // A token may end inside a character's bytes.
                Err(e) if e.error_len().is_none() => Inside::MidEscape,
                Err(e) => panic!("the arguments are not UTF-8 ({e}): {bytes:?}"),
            };
            match state {
                Inside::NotYet | Inside::MidEscape => {
                    let id = sample(&mut m, &mut rng, 1, &short).expect("not a dead end");
                    feed(&mut m, &mut tokens, id);
                    step += 1;
                }
                Inside::Open(prefix) => {
                    let rest = steer.completion(&prefix).unwrap_or_else(|e| {
                        panic!(
                            "the sampled input left the language: {e} (arguments {:?})",
                            String::from_utf8_lossy(&bytes)
                        )
                    });
                    let quoted = serde_json::to_string(&rest).expect("a string");
                    let close = format!("{}\"}}", &quoted[1..quoted.len() - 1]);
                    for id in tok.encode_ordinary(&close) {
                        feed(&mut m, &mut tokens, id);
                        step += 1;
                    }
                    tally.steered += 1;
                }
                Inside::Closed => {
                    for id in m.closing_path(8).expect("closes after the string") {
                        feed(&mut m, &mut tokens, id);
                        step += 1;
                    }
                }
            }
        }
        tally.steps += step;
        let json = text(&tok, &tokens);
        let value: Value = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("arguments are not JSON ({e}): {json:?}"));
        let obj = value.as_object().expect("an object");
        assert_eq!(obj.len(), 1, "{json}");
        let input = obj["input"].as_str().expect("input is a string");
        assert!(
            checker.accepts(input),
            "the grammar as written refuses {input:?} (from {json:?})"
        );
        if std::env::var_os("FREEFORM_SHOW").is_some() {
            eprintln!("{input:?}");
        }
        tally.finished += 1;
        if !input.is_empty() {
            tally.nonempty += 1;
        }
    }
    tally
}

/// `FREEFORM_SEED=n` shifts every seed (to explore beyond the fixed runs);
/// `FREEFORM_SHOW=1` prints each finished input.
fn run(name: &str, syntax: FreeformSyntax, definition: &str, seed: u64) {
    let shift: u64 = std::env::var("FREEFORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let tally = fuzz(syntax, definition, seed ^ shift, 3_000);
    eprintln!("{name}: {tally:?}");
    assert!(
        tally.finished >= 30,
        "{name}: too few completions: {tally:?}"
    );
    assert!(tally.nonempty >= 30, "{name}: {tally:?}");
}

#[test]
fn codex_apply_patch_inputs_follow_the_grammar() {
    run(
        "apply_patch",
        FreeformSyntax::Lark,
        APPLY_PATCH,
        0xa991_7a7c,
    );
}

#[test]
fn cookbook_lark_inputs_follow_their_grammars() {
    run("mssql", FreeformSyntax::Lark, MSSQL, 0x5e1ec7);
    run("math", FreeformSyntax::Lark, MATH, 0x3a7);
    run("sentence", FreeformSyntax::Lark, SENTENCE, 0x5e47);
}

#[test]
fn ignored_whitespace_and_ranges_follow_llguidance() {
    run("settings", FreeformSyntax::Lark, SETTINGS, 0x5e7);
}

#[test]
fn regex_inputs_match_the_regex() {
    run("timestamp", FreeformSyntax::Regex, TIMESTAMP, 0x7153);
    run("spoken date", FreeformSyntax::Regex, SPOKEN_DATE, 0xda7e);
    run(
        "code",
        FreeformSyntax::Regex,
        r"^(?:[0-9]{3}-[a-z]{2})$",
        0xc0de,
    );
}

/// The checkers themselves can fail: a near miss of each grammar is refused.
#[test]
fn the_checkers_refuse_near_misses() {
    let factory = byte_factory();
    let lark = Checker::new(&factory, FreeformSyntax::Lark, APPLY_PATCH);
    assert!(lark.accepts("*** Begin Patch\n*** Delete File: a.txt\n*** End Patch\n"));
    assert!(lark.accepts(
        "*** Begin Patch\n*** Update File: a.rs\n@@ fn main\n-old\n+new\n context\n*** End Patch"
    ));
    assert!(!lark.accepts("*** Begin Patch\n*** End Patch\n"));
    assert!(!lark.accepts("*** Begin Patch\n*** Add File: a\nno plus\n*** End Patch\n"));
    let rx = Checker::new(&factory, FreeformSyntax::Regex, TIMESTAMP);
    assert!(rx.accepts("2025-08-07 10:00"));
    assert!(!rx.accepts("2025-13-07 10:00"));
}
