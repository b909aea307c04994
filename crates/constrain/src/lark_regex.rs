//! Freeform tool grammars as one regular expression.
//!
//! A Responses API `custom` tool may carry a grammar its input must follow:
//! `syntax: "regex"` (Rust `regex` syntax) or `syntax: "lark"` (the Lark
//! subset OpenAI documents, run by llguidance). The server passes the tool's
//! input to the model as the JSON string `{"input": "..."}`, and llguidance
//! can constrain the *content* of a JSON string only with a regular
//! expression (a schema `pattern`: it JSON-quotes the regex). So a Lark
//! grammar that is regular in shape (no rule reaches itself) is inlined here
//! into one regex: rules are expanded where they are used, terminals too,
//! `%ignore`d terminals may appear before every token and at the end (how
//! llguidance's lexer skips them). Anything else (recursion, templates,
//! `%declare`, llguidance extensions) is a [`LarkError`]; the caller then
//! falls back to a plain string.
//!
//! Semantics follow llguidance's Lark front end (regex bodies are Rust regex
//! syntax with the flags as `(?flags:...)`; strings are JSON-style escaped;
//! `%import common.X` is Lark's common.lark), with two deliberate
//! narrowings so that everything sampled still matches the grammar as
//! written: `\d` and `\w` are ASCII (as in JSON Schema patterns), and named
//! groups become plain groups (a terminal inlined twice would repeat the
//! name). Not modelled: greedy lexing. The regex is the language of the
//! grammar read as a CFG; where llguidance's longest-match lexer would split
//! the text differently (a terminal that can swallow the next one), the
//! regex allows strings llguidance would refuse. OpenAI's own guidance is to
//! avoid such grammars; the tests check real ones agree.
//!
//! Does not own: JSON quoting or compiling the regex (llguidance, via
//! [`crate::freeform_arguments_schema`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

/// Most characters the inlined regex may have: rules used in many places
/// are copied into each, and a grammar that multiplies out this far is
/// better left unenforced than compiled for seconds.
pub const MAX_REGEX_LEN: usize = 64 * 1024;

/// Most nesting of groups in one definition, and of rules inside rules:
/// the translation recurses, and a grammar is user input.
pub const MAX_DEPTH: usize = 128;

/// Why a grammar cannot be turned into one regex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LarkError {
    /// The text is not a Lark grammar.
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    /// A rule reaches itself: the language is not regular in this form.
    #[error(
        "the grammar is recursive ({cycle}), so it cannot be inlined into one regular expression"
    )]
    Recursive { cycle: String },
    /// A Lark feature this translator does not handle.
    #[error("{0} is not supported")]
    Unsupported(String),
    /// A grammar Lark itself would refuse (a terminal made of rules...).
    #[error("{0}")]
    Invalid(String),
    /// A name used but never defined (nor imported).
    #[error("{0:?} is used but not defined")]
    Undefined(String),
    /// No `start` rule.
    #[error("the grammar has no `start` rule")]
    NoStart,
    /// Inlining gives a regex over [`MAX_REGEX_LEN`].
    #[error("the inlined regular expression would exceed {MAX_REGEX_LEN} characters")]
    TooLarge,
}

/// Translate a Lark grammar into one regular expression (Rust `regex`
/// syntax, unanchored) matching exactly the texts `start` derives.
pub fn lark_to_regex(grammar: &str) -> Result<String, LarkError> {
    let tokens = lex(grammar)?;
    let defs = Parser {
        tokens,
        pos: 0,
        depth: 0,
        defs: Definitions::default(),
    }
    .parse()?;
    Inliner::new(&defs).run()
}

/// Rewrite a regex (Rust syntax) for embedding: named groups become plain
/// groups, `\d`/`\w` become ASCII classes and `\D`/`\W` their exact Unicode
/// complements (llguidance would otherwise read `\D` as `[^0-9]`, wider than
/// Rust's `\D`), and a negated class also excludes NUL. Everything else is
/// kept byte for byte.
///
/// Why NUL: llguidance's JSON quoting (derivre 0.3) takes a class holding
/// every control character (or all but `\n`) as "any character" when it
/// writes the escapes, so `[^"\\]` would admit the escaped `\"` and `\\`;
/// one control character fewer keeps the class on its exact path.
pub fn normalize_regex(rx: &str) -> String {
    let chars: Vec<char> = rx.chars().collect();
    let mut out = String::with_capacity(rx.len());
    let mut class_depth = 0usize;
    // The outermost class: negated, and whether it uses `&&`/`--`/`~~`
    // (where an added item would bind differently).
    let (mut negated, mut set_ops) = (false, false);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let Some(&next) = chars.get(i + 1) else {
                    out.push(c);
                    break;
                };
                match next {
                    'd' => out.push_str("[0-9]"),
                    'w' => out.push_str("[0-9A-Za-z_]"),
                    'D' => out.push_str(r"\P{Nd}"),
                    'W' => out.push_str(r"[^\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]"),
                    _ => {
                        out.push(c);
                        out.push(next);
                    }
                }
                i += 2;
                continue;
            }
            '[' => {
                out.push(c);
                i += 1;
                // `[:alpha:]` inside a class is one item, not a nested class.
                if class_depth > 0 && chars.get(i) == Some(&':') {
                    while i < chars.len() {
                        out.push(chars[i]);
                        i += 1;
                        if chars[i - 1] == ']' {
                            break;
                        }
                    }
                    continue;
                }
                class_depth += 1;
                if class_depth == 1 {
                    negated = chars.get(i) == Some(&'^');
                    set_ops = false;
                }
                // A `]` (after an optional `^`) first in a class is literal.
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    out.push(']');
                    i += 1;
                }
                continue;
            }
            ']' if class_depth > 0 => {
                class_depth -= 1;
                if class_depth == 0 && negated && !set_ops {
                    out.push_str(r"\x00");
                }
            }
            '&' | '-' | '~' if class_depth > 0 && chars.get(i + 1) == Some(&c) => set_ops = true,
            '(' if class_depth == 0 => {
                let rest: String = chars[i..chars.len().min(i + 4)].iter().collect();
                let named = if rest.starts_with("(?P<") {
                    Some(4)
                } else if rest.starts_with("(?<") {
                    Some(3)
                } else {
                    None
                };
                if let Some(skip) = named {
                    if let Some(end) = chars[i + skip..].iter().position(|&c| c == '>') {
                        out.push_str("(?:");
                        i += skip + end + 1;
                        continue;
                    }
                }
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    out
}

/// The top-level alternatives of a regex with a leading `^` and a trailing
/// `$` removed from each (the caller anchors the whole; an anchor left
/// inside is an error when llguidance compiles it).
pub fn strip_outer_anchors(rx: &str) -> String {
    let chars: Vec<char> = rx.chars().collect();
    // Split at top-level `|`.
    let mut parts: Vec<(usize, usize)> = Vec::new();
    let (mut depth, mut class_depth, mut start, mut i) = (0i32, 0usize, 0usize, 0usize);
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '[' => {
                class_depth += 1;
                if chars.get(i + 1) == Some(&'^') {
                    i += 1;
                }
                if chars.get(i + 1) == Some(&']') {
                    i += 1;
                }
            }
            ']' if class_depth > 0 => class_depth -= 1,
            '(' if class_depth == 0 => depth += 1,
            ')' if class_depth == 0 => depth -= 1,
            '|' if class_depth == 0 && depth == 0 => {
                parts.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push((start, chars.len()));
    let mut out = String::with_capacity(rx.len());
    for (n, (a, b)) in parts.into_iter().enumerate() {
        if n > 0 {
            out.push('|');
        }
        let mut part = &chars[a..b];
        if part.first() == Some(&'^') {
            part = &part[1..];
        }
        if part.last() == Some(&'$') {
            // Not an escaped `\$`: count the backslashes before it.
            let slashes = part[..part.len() - 1]
                .iter()
                .rev()
                .take_while(|&&c| c == '\\')
                .count();
            if slashes % 2 == 0 {
                part = &part[..part.len() - 1];
            }
        }
        out.extend(part);
    }
    out
}

/// Escape `text` so a regex matches it literally.
fn escape_literal(text: &str, out: &mut String) {
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~ \t\n\r".contains(c) {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                ' ' => out.push_str("\\x20"),
                _ => {
                    out.push('\\');
                    out.push(c);
                }
            }
        } else if c.is_control() {
            let _ = write!(out, "\\x{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
}

// ---------------------------------------------------------------- lexing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Newline,
    Colon,
    VBar,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Dot,
    DotDot,
    Arrow,
    Tilde,
    /// `?`, `*` or `+`.
    Op(char),
    /// A rule (lowercase, maybe `!`/`?`/`_`-led) or TERMINAL name.
    Name(String),
    /// A decoded string literal and whether it has the `i` flag.
    Str(String, bool),
    /// A regex body (as written) and its flags.
    Regex(String, String),
    Number(i64),
    /// `%ignore`, `%import`, ... (without the `%`).
    Directive(String),
    /// Any other character, reported when the parser meets it.
    Other(char),
}

struct Lexed {
    tok: Tok,
    line: usize,
}

fn lex(src: &str) -> Result<Vec<Lexed>, LarkError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out: Vec<Lexed> = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let err = |line: usize, message: String| LarkError::Syntax { line, message };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let tok = match c {
            ' ' | '\t' | '\r' => {
                i += 1;
                continue;
            }
            '\n' => {
                line += 1;
                i += 1;
                if !matches!(
                    out.last(),
                    Some(Lexed {
                        tok: Tok::Newline,
                        ..
                    }) | None
                ) {
                    out.push(Lexed {
                        tok: Tok::Newline,
                        line: line - 1,
                    });
                }
                continue;
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '"' => {
                let start = i;
                i += 1;
                loop {
                    match chars.get(i) {
                        None | Some('\n') => {
                            return Err(err(line, "unterminated string literal".into()))
                        }
                        Some('\\') => i += 2,
                        Some('"') => break,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
                let raw: String = chars[start..i].iter().collect();
                let text = decode_string(&raw).map_err(|m| err(line, m))?;
                let insensitive = chars.get(i) == Some(&'i')
                    && !chars
                        .get(i + 1)
                        .is_some_and(|c| c.is_alphanumeric() || *c == '_');
                if insensitive {
                    i += 1;
                }
                out.push(Lexed {
                    tok: Tok::Str(text, insensitive),
                    line,
                });
                continue;
            }
            '/' => {
                let start = i + 1;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(line, "unterminated regular expression".into())),
                        Some('\\') => i += 2,
                        Some('/') => break,
                        Some('\n') => {
                            line += 1;
                            i += 1;
                        }
                        Some(_) => i += 1,
                    }
                }
                let body: String = chars[start..i].iter().collect();
                if body.is_empty() {
                    return Err(err(line, "empty regular expression".into()));
                }
                i += 1;
                let mut flags = String::new();
                while let Some(&f) = chars.get(i) {
                    if !"imslux".contains(f) {
                        break;
                    }
                    flags.push(f);
                    i += 1;
                }
                out.push(Lexed {
                    tok: Tok::Regex(body, flags),
                    line,
                });
                continue;
            }
            '%' => {
                let start = i + 1;
                i += 1;
                while chars.get(i).is_some_and(|c| c.is_ascii_alphanumeric()) {
                    i += 1;
                }
                out.push(Lexed {
                    tok: Tok::Directive(chars[start..i].iter().collect()),
                    line,
                });
                continue;
            }
            ':' => Tok::Colon,
            '|' => Tok::VBar,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            ',' => Tok::Comma,
            '~' => Tok::Tilde,
            '-' if next == Some('>') => {
                i += 2;
                out.push(Lexed {
                    tok: Tok::Arrow,
                    line,
                });
                continue;
            }
            '.' if next == Some('.') => {
                i += 2;
                out.push(Lexed {
                    tok: Tok::DotDot,
                    line,
                });
                continue;
            }
            '.' => Tok::Dot,
            '*' | '+' => Tok::Op(c),
            '?' if at_line_start(&out)
                && next.is_some_and(|n| n.is_ascii_lowercase() || n == '_') =>
            {
                // `?rule:` (inline rule marker) is part of the name.
                let name = take_name(&chars, &mut i);
                out.push(Lexed {
                    tok: Tok::Name(name),
                    line,
                });
                continue;
            }
            '?' => Tok::Op('?'),
            '!' if at_line_start(&out)
                && next.is_some_and(|n| n.is_ascii_lowercase() || n == '_' || n == '?') =>
            {
                let name = take_name(&chars, &mut i);
                out.push(Lexed {
                    tok: Tok::Name(name),
                    line,
                });
                continue;
            }
            c if c.is_ascii_digit() => {
                let start = i;
                while chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text
                    .parse()
                    .map_err(|_| err(line, format!("number {text} is too large")))?;
                out.push(Lexed {
                    tok: Tok::Number(n),
                    line,
                });
                continue;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let name = take_name(&chars, &mut i);
                out.push(Lexed {
                    tok: Tok::Name(name),
                    line,
                });
                continue;
            }
            other => Tok::Other(other),
        };
        out.push(Lexed { tok, line });
        i += 1;
    }
    Ok(out)
}

/// Whether the next token starts a line (where `?rule` and `!rule` may be defined).
fn at_line_start(out: &[Lexed]) -> bool {
    matches!(
        out.last(),
        None | Some(Lexed {
            tok: Tok::Newline,
            ..
        })
    )
}

/// A name, with a leading `!`/`?` marker kept: `[!?]*[A-Za-z_][A-Za-z0-9_-]*`.
fn take_name(chars: &[char], i: &mut usize) -> String {
    let start = *i;
    while chars.get(*i).is_some_and(|c| *c == '!' || *c == '?') {
        *i += 1;
    }
    while let Some(&c) = chars.get(*i) {
        let arrow = c == '-' && chars.get(*i + 1) == Some(&'>');
        if !(c.is_ascii_alphanumeric() || c == '_' || c == '-') || arrow {
            break;
        }
        *i += 1;
    }
    chars[start..*i].iter().collect()
}

/// A Lark string literal (with its quotes) as text: JSON escapes plus
/// `\xHH`, like llguidance.
fn decode_string(raw: &str) -> Result<String, String> {
    let mut json = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            json.push(c);
            continue;
        }
        match chars.next() {
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                if hex.len() != 2 || !hex.chars().all(|h| h.is_ascii_hexdigit()) {
                    return Err(format!("bad \\x escape in {raw}"));
                }
                json.push_str("\\u00");
                json.push_str(&hex);
            }
            Some(other) => {
                json.push('\\');
                json.push(other);
            }
            None => json.push('\\'),
        }
    }
    serde_json::from_str::<String>(&json).map_err(|e| format!("bad string literal {raw}: {e}"))
}

// ---------------------------------------------------------------- parsing

/// One expansion of a rule or terminal.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Seq(Vec<Node>),
    Alt(Vec<Node>),
    Literal {
        text: String,
        insensitive: bool,
    },
    Regex {
        body: String,
        flags: String,
    },
    Range(char, char),
    Name(String),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
    },
}

#[derive(Default)]
struct Definitions {
    rules: BTreeMap<String, Node>,
    terminals: BTreeMap<String, Node>,
    ignore: Vec<Node>,
}

struct Parser {
    tokens: Vec<Lexed>,
    pos: usize,
    /// Groups open around the current position.
    depth: usize,
    defs: Definitions,
}

fn is_terminal_name(name: &str) -> bool {
    name.trim_start_matches('_')
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase())
}

/// The common.lark terminals (Lark's library), as regexes.
fn common_terminal(name: &str) -> Option<&'static str> {
    const INT: &str = "[0-9]+";
    const DECIMAL: &str = r"[0-9]+\.[0-9]*|\.[0-9]+";
    const FLOAT: &str = r"(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+";
    Some(match name {
        "DIGIT" => "[0-9]",
        "HEXDIGIT" => "[a-fA-F0-9]",
        "INT" => INT,
        "SIGNED_INT" => "[+-]?[0-9]+",
        "DECIMAL" => DECIMAL,
        "_EXP" => "[eE][+-]?[0-9]+",
        "FLOAT" => FLOAT,
        "SIGNED_FLOAT" => {
            r"[+-]?(?:(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)"
        }
        "NUMBER" => r"[0-9]+|(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+",
        "SIGNED_NUMBER" => {
            r"[+-]?(?:[0-9]+|(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)"
        }
        "ESCAPED_STRING" => r#""(?:[^"\\]|\\.)*""#,
        "LCASE_LETTER" => "[a-z]",
        "UCASE_LETTER" => "[A-Z]",
        "LETTER" => "[A-Za-z]",
        "WORD" => "[A-Za-z]+",
        "CNAME" => "[_A-Za-z][_A-Za-z0-9]*",
        "WS_INLINE" => r"[ \t]+",
        "WS" => r"[ \t\f\r\n]+",
        "CR" => r"\r",
        "LF" => r"\n",
        "NEWLINE" => r"(?:\r?\n)+",
        "SH_COMMENT" => "#[^\n]*",
        "CPP_COMMENT" => "//[^\n]*",
        "C_COMMENT" => r"/\*[^*]*\*+(?:[^/*][^*]*\*+)*/",
        "SQL_COMMENT" => "--[^\n]*",
        _ => return None,
    })
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn line(&self) -> usize {
        self.tokens
            .get(self.pos)
            .or_else(|| self.tokens.last())
            .map_or(1, |t| t.line)
    }

    fn error(&self, message: impl Into<String>) -> LarkError {
        LarkError::Syntax {
            line: self.line(),
            message: message.into(),
        }
    }

    fn bump(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).map(|t| t.tok.clone());
        self.pos += 1;
        t
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == Some(tok) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<(), LarkError> {
        if self.eat(&tok) {
            Ok(())
        } else {
            Err(self.error(format!("expected {what}, found {}", self.describe())))
        }
    }

    fn describe(&self) -> String {
        match self.peek() {
            None => "the end of the grammar".into(),
            Some(Tok::Newline) => "a line break".into(),
            Some(Tok::Name(n)) => format!("`{n}`"),
            Some(Tok::Other(c)) => format!("`{c}`"),
            Some(t) => format!("{t:?}"),
        }
    }

    fn at_line_end(&self) -> bool {
        matches!(self.peek(), None | Some(Tok::Newline))
    }

    fn parse(mut self) -> Result<Definitions, LarkError> {
        loop {
            while self.eat(&Tok::Newline) {}
            match self.bump() {
                None => break,
                Some(Tok::Directive(d)) => self.directive(&d)?,
                Some(Tok::Name(name)) => self.definition(name)?,
                Some(_) => {
                    self.pos -= 1;
                    return Err(self.error(format!(
                        "expected a rule, a terminal or a %directive, found {}",
                        self.describe()
                    )));
                }
            }
            if !self.at_line_end() {
                return Err(self.error(format!("unexpected {}", self.describe())));
            }
        }
        Ok(self.defs)
    }

    fn definition(&mut self, raw_name: String) -> Result<(), LarkError> {
        let name = raw_name.trim_start_matches(['!', '?']).to_string();
        if name.is_empty() {
            return Err(self.error("a definition needs a name"));
        }
        if self.peek() == Some(&Tok::LBrace) {
            return Err(LarkError::Unsupported(format!(
                "the template `{name}{{...}}`"
            )));
        }
        if self.eat(&Tok::Dot) {
            // A priority: it orders lexing, not what the language is.
            match self.bump() {
                Some(Tok::Number(_)) => {}
                Some(Tok::Op('+')) | Some(Tok::Other('-')) => match self.bump() {
                    Some(Tok::Number(_)) => {}
                    _ => return Err(self.error("expected a priority number")),
                },
                _ => return Err(self.error("expected a priority number")),
            }
        }
        self.expect(Tok::Colon, "`:` after a definition's name")?;
        let body = self.alternatives()?;
        let (map, kind) = if is_terminal_name(&name) {
            (&mut self.defs.terminals, "terminal")
        } else {
            (&mut self.defs.rules, "rule")
        };
        if map.insert(name.clone(), body).is_some() {
            return Err(self.error(format!("{kind} {name:?} is defined twice")));
        }
        Ok(())
    }

    fn directive(&mut self, directive: &str) -> Result<(), LarkError> {
        match directive {
            "ignore" => {
                let node = self.alternatives()?;
                self.defs.ignore.push(node);
                Ok(())
            }
            "import" => self.import(),
            other => Err(LarkError::Unsupported(format!("%{other}"))),
        }
    }

    /// `%import common.NAME [-> ALIAS]` or `%import common (A, B)`.
    fn import(&mut self) -> Result<(), LarkError> {
        let mut path = Vec::new();
        loop {
            match self.bump() {
                Some(Tok::Name(n)) => path.push(n),
                _ => return Err(self.error("expected a module path after %import")),
            }
            if !self.eat(&Tok::Dot) {
                break;
            }
        }
        let mut names: Vec<(String, String)> = Vec::new();
        if self.eat(&Tok::LParen) {
            loop {
                match self.bump() {
                    Some(Tok::Name(n)) => names.push((n.clone(), n)),
                    _ => return Err(self.error("expected a name in the %import list")),
                }
                if self.eat(&Tok::RParen) {
                    break;
                }
                self.expect(Tok::Comma, "`,` or `)` in the %import list")?;
            }
        } else {
            let Some(name) = path.pop() else {
                return Err(self.error("expected a name to import"));
            };
            let alias = if self.eat(&Tok::Arrow) {
                match self.bump() {
                    Some(Tok::Name(a)) => a,
                    _ => return Err(self.error("expected a name after `->`")),
                }
            } else {
                name.clone()
            };
            names.push((name, alias));
        }
        if path != ["common"] {
            return Err(LarkError::Unsupported(format!(
                "%import from {:?} (only `common` is available)",
                path.join(".")
            )));
        }
        for (name, alias) in names {
            let rx = common_terminal(&name)
                .ok_or_else(|| LarkError::Unsupported(format!("the terminal common.{name}")))?;
            let node = Node::Regex {
                body: rx.to_string(),
                flags: String::new(),
            };
            if self.defs.terminals.insert(alias.clone(), node).is_some() {
                return Err(self.error(format!("terminal {alias:?} is defined twice")));
            }
        }
        Ok(())
    }

    /// `a b | c d -> alias | ...`, continued on the next line when it starts with `|`.
    fn alternatives(&mut self) -> Result<Node, LarkError> {
        if self.depth >= MAX_DEPTH {
            return Err(LarkError::Unsupported(format!(
                "nesting groups more than {MAX_DEPTH} deep"
            )));
        }
        self.depth += 1;
        let result = self.alternatives_inner();
        self.depth -= 1;
        result
    }

    fn alternatives_inner(&mut self) -> Result<Node, LarkError> {
        let mut options = vec![self.sequence()?];
        loop {
            if self.eat(&Tok::VBar) {
                options.push(self.sequence()?);
                continue;
            }
            if self.peek() == Some(&Tok::Newline)
                && self.tokens.get(self.pos + 1).map(|t| &t.tok) == Some(&Tok::VBar)
            {
                self.pos += 2;
                options.push(self.sequence()?);
                continue;
            }
            break;
        }
        Ok(if options.len() == 1 {
            options.pop().unwrap_or(Node::Seq(Vec::new()))
        } else {
            Node::Alt(options)
        })
    }

    fn sequence(&mut self) -> Result<Node, LarkError> {
        let mut items = Vec::new();
        loop {
            match self.peek() {
                None | Some(Tok::Newline) | Some(Tok::VBar) | Some(Tok::RParen)
                | Some(Tok::RBracket) | Some(Tok::Arrow) => break,
                _ => items.push(self.item()?),
            }
        }
        if self.eat(&Tok::Arrow) {
            // An alias names the tree node; the language is unchanged.
            match self.bump() {
                Some(Tok::Name(_)) => {}
                _ => return Err(self.error("expected a name after `->`")),
            }
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Node::Seq(Vec::new()))
        } else {
            Node::Seq(items)
        })
    }

    /// An atom and its operator: `x?`, `x*`, `x+`, `x ~ n`, `x ~ n..m`, `x{n,m}`.
    fn item(&mut self) -> Result<Node, LarkError> {
        let atom = self.atom()?;
        let repeat = |node: Node, min: u32, max: Option<u32>| Node::Repeat {
            node: Box::new(node),
            min,
            max,
        };
        Ok(match self.peek() {
            Some(Tok::Op('?')) => {
                self.pos += 1;
                repeat(atom, 0, Some(1))
            }
            Some(Tok::Op('*')) => {
                self.pos += 1;
                repeat(atom, 0, None)
            }
            Some(Tok::Op('+')) => {
                self.pos += 1;
                repeat(atom, 1, None)
            }
            Some(Tok::Tilde) => {
                self.pos += 1;
                let min = self.count()?;
                let max = if self.eat(&Tok::DotDot) {
                    self.count()?
                } else {
                    min
                };
                if max < min {
                    return Err(self.error(format!("empty repetition range {min}..{max}")));
                }
                repeat(atom, min, Some(max))
            }
            Some(Tok::LBrace) => {
                self.pos += 1;
                let min = if self.peek() == Some(&Tok::Comma) {
                    0
                } else {
                    self.count()?
                };
                let max = if self.eat(&Tok::Comma) {
                    if self.peek() == Some(&Tok::RBrace) {
                        None
                    } else {
                        Some(self.count()?)
                    }
                } else {
                    Some(min)
                };
                self.expect(Tok::RBrace, "`}`")?;
                if max.is_some_and(|m| m < min) {
                    return Err(self.error("empty repetition range"));
                }
                repeat(atom, min, max)
            }
            _ => atom,
        })
    }

    fn count(&mut self) -> Result<u32, LarkError> {
        match self.bump() {
            Some(Tok::Number(n)) => u32::try_from(n)
                .ok()
                .filter(|n| *n <= 1000)
                .ok_or_else(|| self.error(format!("repetition count {n} is too large"))),
            _ => Err(self.error("expected a repetition count")),
        }
    }

    fn atom(&mut self) -> Result<Node, LarkError> {
        match self.bump() {
            Some(Tok::LParen) => {
                let inner = self.alternatives()?;
                self.expect(Tok::RParen, "`)`")?;
                Ok(inner)
            }
            Some(Tok::LBracket) => {
                let inner = self.alternatives()?;
                self.expect(Tok::RBracket, "`]`")?;
                Ok(Node::Repeat {
                    node: Box::new(inner),
                    min: 0,
                    max: Some(1),
                })
            }
            Some(Tok::Str(text, insensitive)) => {
                if self.eat(&Tok::DotDot) {
                    let Some(Tok::Str(end, false)) = self.bump() else {
                        return Err(self.error("expected a string after `..`"));
                    };
                    let (mut a, mut b) = (text.chars(), end.chars());
                    return match (a.next(), a.next(), b.next(), b.next()) {
                        (Some(lo), None, Some(hi), None) if lo <= hi && !insensitive => {
                            Ok(Node::Range(lo, hi))
                        }
                        _ => Err(self.error(format!(
                            "a range needs two single characters in order, found {text:?}..{end:?}"
                        ))),
                    };
                }
                Ok(Node::Literal { text, insensitive })
            }
            Some(Tok::Regex(body, flags)) => {
                // `l` is Lark-only; with `x` a `#` comment would run over
                // the group that embeds the regex.
                if let Some(f) = flags.chars().find(|f| matches!(f, 'l' | 'x')) {
                    return Err(LarkError::Unsupported(format!("the regex flag `{f}`")));
                }
                Ok(Node::Regex { body, flags })
            }
            Some(Tok::Name(name)) => {
                if name.starts_with(['!', '?']) {
                    return Err(self.error(format!("`{name}` is not a name to use in a rule")));
                }
                if self.peek() == Some(&Tok::LBrace)
                    && !matches!(
                        self.tokens.get(self.pos + 1).map(|t| &t.tok),
                        Some(Tok::Number(_)) | Some(Tok::Comma)
                    )
                {
                    return Err(LarkError::Unsupported(format!(
                        "the template `{name}{{...}}`"
                    )));
                }
                Ok(Node::Name(name))
            }
            Some(Tok::Tilde) => Err(LarkError::Unsupported("negation `~x`".into())),
            Some(Tok::Other('&')) => Err(LarkError::Unsupported("conjunction `&`".into())),
            Some(Tok::Other('<')) => Err(LarkError::Unsupported("special tokens `<...>`".into())),
            Some(Tok::Other('@')) => {
                Err(LarkError::Unsupported("grammar references `@...`".into()))
            }
            Some(Tok::Directive(d)) => Err(LarkError::Unsupported(format!("%{d} inside a rule"))),
            _ => {
                self.pos -= 1;
                Err(self.error(format!("unexpected {}", self.describe())))
            }
        }
    }
}

// ---------------------------------------------------------------- inlining

/// Expands rules and terminals from `start`. With `%ignore`, llguidance's
/// lexer skips ignored text *between* tokens only (not before the first
/// token nor after the last), so each node is rendered two ways: `every`
/// (each token preceded by the skip) and `first` (its derivations with at
/// least one token, the first with no skip before it).
struct Inliner<'a> {
    defs: &'a Definitions,
    /// Terminals already turned into regexes.
    terminals: HashMap<String, String>,
    /// Names being expanded (to find cycles).
    stack: Vec<String>,
    /// Rules known to derive no token or not.
    nullable: HashMap<String, bool>,
    /// What may come between two tokens: `(?:IGNORED)*`, or empty.
    skip: String,
}

/// `(?:a|b|...)`, or `None` for no alternatives.
fn alternation(options: Vec<String>) -> Option<String> {
    match options.len() {
        0 => None,
        1 => options.into_iter().next(),
        _ => Some(format!("(?:{})", options.join("|"))),
    }
}

fn repetition(min: u32, max: Option<u32>) -> String {
    match (min, max) {
        (0, Some(1)) => "?".into(),
        (0, None) => "*".into(),
        (1, None) => "+".into(),
        (n, None) => format!("{{{n},}}"),
        (n, Some(m)) if n == m => format!("{{{n}}}"),
        (n, Some(m)) => format!("{{{n},{m}}}"),
    }
}

impl<'a> Inliner<'a> {
    fn new(defs: &'a Definitions) -> Self {
        Inliner {
            defs,
            terminals: HashMap::new(),
            stack: Vec::new(),
            nullable: HashMap::new(),
            skip: String::new(),
        }
    }

    fn run(mut self) -> Result<String, LarkError> {
        let start = self.defs.rules.get("start").ok_or(LarkError::NoStart)?;
        self.stack.push("start".into());
        let out = if self.defs.ignore.is_empty() {
            self.every(start)?
        } else {
            let mut alts = Vec::new();
            for node in &self.defs.ignore {
                alts.push(self.terminal_body(node)?);
            }
            self.skip = format!("(?:{})*", alts.join("|"));
            let first = self.first(start)?;
            match (first, self.nullable(start)?) {
                (Some(f), true) => format!("(?:{f})?"),
                (Some(f), false) => f,
                (None, _) => String::new(),
            }
        };
        self.check_size(&out)?;
        Ok(out)
    }

    fn check_size(&self, rx: &str) -> Result<(), LarkError> {
        if rx.len() > MAX_REGEX_LEN {
            Err(LarkError::TooLarge)
        } else {
            Ok(())
        }
    }

    /// Run `f` with `name` on the expansion stack (a name already on it is
    /// a cycle).
    fn within<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Self) -> Result<T, LarkError>,
    ) -> Result<T, LarkError> {
        if let Some(at) = self.stack.iter().position(|n| n == name) {
            let mut cycle: Vec<&str> = self.stack[at..].iter().map(String::as_str).collect();
            cycle.push(name);
            return Err(LarkError::Recursive {
                cycle: cycle.join(" -> "),
            });
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(LarkError::Unsupported(format!(
                "rules nested more than {MAX_DEPTH} deep"
            )));
        }
        self.stack.push(name.to_string());
        let result = f(self);
        self.stack.pop();
        result
    }

    fn rule(&self, name: &str) -> Result<&'a Node, LarkError> {
        self.defs
            .rules
            .get(name)
            .ok_or_else(|| LarkError::Undefined(name.to_string()))
    }

    /// Whether `node` is one token (a literal, regex, range or terminal).
    fn is_token(node: &Node) -> bool {
        match node {
            Node::Literal { .. } | Node::Regex { .. } | Node::Range(..) => true,
            Node::Name(n) => is_terminal_name(n),
            _ => false,
        }
    }

    /// Every derivation, each token preceded by the skip.
    fn every(&mut self, node: &Node) -> Result<String, LarkError> {
        if Self::is_token(node) {
            let token = self.token(node)?;
            return Ok(format!("{}{token}", self.skip));
        }
        let out = match node {
            Node::Seq(items) => self.every_seq(items)?,
            Node::Alt(options) => {
                let mut alts = Vec::new();
                for option in options {
                    alts.push(self.every(option)?);
                }
                alternation(alts).unwrap_or_default()
            }
            Node::Repeat { node, min, max } => {
                format!("(?:{}){}", self.every(node)?, repetition(*min, *max))
            }
            Node::Name(name) => {
                let body = self.rule(name)?;
                self.within(name, |this| this.every(body))?
            }
            _ => String::new(),
        };
        self.check_size(&out)?;
        Ok(out)
    }

    fn every_seq(&mut self, items: &[Node]) -> Result<String, LarkError> {
        let mut out = String::from("(?:");
        for item in items {
            out.push_str(&self.every(item)?);
            self.check_size(&out)?;
        }
        out.push(')');
        Ok(out)
    }

    /// The derivations with at least one token, the first token with no
    /// skip before it (the rest with one); `None` if there are none.
    fn first(&mut self, node: &Node) -> Result<Option<String>, LarkError> {
        if Self::is_token(node) {
            return self.token(node).map(Some);
        }
        let out = match node {
            Node::Seq(items) => self.first_seq(items)?,
            Node::Alt(options) => {
                let mut alts = Vec::new();
                for option in options {
                    alts.extend(self.first(option)?);
                }
                alternation(alts)
            }
            Node::Repeat { node, min, max } => {
                let Some(first) = self.first(node)? else {
                    return Ok(None);
                };
                if *max == Some(0) {
                    return Ok(None);
                }
                // Iterations that derive no token can pad the count.
                let rest_min = if self.nullable(node)? {
                    0
                } else {
                    min.saturating_sub(1)
                };
                let rest_max = max.map(|m| m - 1);
                if rest_max == Some(0) {
                    Some(first)
                } else {
                    let every = self.every(node)?;
                    Some(format!(
                        "{first}(?:{every}){}",
                        repetition(rest_min, rest_max)
                    ))
                }
            }
            Node::Name(name) => {
                let body = self.rule(name)?;
                self.within(name, |this| this.first(body))?
            }
            _ => None,
        };
        if let Some(rx) = &out {
            self.check_size(rx)?;
        }
        Ok(out)
    }

    fn first_seq(&mut self, items: &[Node]) -> Result<Option<String>, LarkError> {
        let Some((head, rest)) = items.split_first() else {
            return Ok(None);
        };
        let mut alts = Vec::new();
        if let Some(first) = self.first(head)? {
            alts.push(format!("{first}{}", self.every_seq(rest)?));
        }
        if self.nullable(head)? {
            alts.extend(self.first_seq(rest)?);
        }
        Ok(alternation(alts))
    }

    /// Whether `node` can derive no token at all.
    fn nullable(&mut self, node: &Node) -> Result<bool, LarkError> {
        if Self::is_token(node) {
            return Ok(false);
        }
        Ok(match node {
            Node::Seq(items) => {
                for item in items {
                    if !self.nullable(item)? {
                        return Ok(false);
                    }
                }
                true
            }
            Node::Alt(options) => {
                for option in options {
                    if self.nullable(option)? {
                        return Ok(true);
                    }
                }
                false
            }
            Node::Repeat { node, min, .. } => *min == 0 || self.nullable(node)?,
            Node::Name(name) => {
                if let Some(&known) = self.nullable.get(name) {
                    return Ok(known);
                }
                let body = self.rule(name)?;
                let known = self.within(name, |this| this.nullable(body))?;
                self.nullable.insert(name.clone(), known);
                known
            }
            _ => true,
        })
    }

    /// One token's regex (no skip).
    fn token(&mut self, node: &Node) -> Result<String, LarkError> {
        match node {
            Node::Name(name) => self.terminal(name),
            other => self.terminal_body(other),
        }
    }

    /// A terminal by name (memoized).
    fn terminal(&mut self, name: &str) -> Result<String, LarkError> {
        if let Some(rx) = self.terminals.get(name) {
            return Ok(rx.clone());
        }
        let node = self
            .defs
            .terminals
            .get(name)
            .ok_or_else(|| LarkError::Undefined(name.to_string()))?;
        let rx = self.within(name, |this| this.terminal_body(node))?;
        let rx = format!("(?:{rx})");
        self.terminals.insert(name.to_string(), rx.clone());
        Ok(rx)
    }

    /// The regex of a terminal's definition: no skipping inside.
    fn terminal_body(&mut self, node: &Node) -> Result<String, LarkError> {
        let mut out = String::new();
        match node {
            Node::Seq(items) => {
                out.push_str("(?:");
                for item in items {
                    out.push_str(&self.terminal_body(item)?);
                }
                out.push(')');
            }
            Node::Alt(options) => {
                let mut alts = Vec::new();
                for option in options {
                    alts.push(self.terminal_body(option)?);
                }
                out.push_str(&alternation(alts).unwrap_or_default());
            }
            Node::Literal { text, insensitive } => {
                out.push_str(if *insensitive { "(?i:" } else { "(?:" });
                escape_literal(text, &mut out);
                out.push(')');
            }
            Node::Regex { body, flags } => {
                let flags: String = flags.chars().filter(|f| "imsu".contains(*f)).collect();
                let _ = write!(out, "(?{flags}:{})", normalize_regex(body));
            }
            Node::Range(lo, hi) => {
                out.push('[');
                escape_literal(&lo.to_string(), &mut out);
                out.push('-');
                escape_literal(&hi.to_string(), &mut out);
                out.push(']');
            }
            Node::Repeat { node, min, max } => {
                let inner = self.terminal_body(node)?;
                let _ = write!(out, "(?:{inner}){}", repetition(*min, *max));
            }
            Node::Name(name) if is_terminal_name(name) => out.push_str(&self.terminal(name)?),
            Node::Name(name) => {
                return Err(LarkError::Invalid(format!(
                    "the terminal {:?} uses the rule {name:?}",
                    self.stack.last().map_or("", String::as_str)
                )))
            }
        }
        self.check_size(&out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(rx: &str) -> regex::Regex {
        regex::Regex::new(&format!("^(?:{rx})$")).expect("the translation compiles")
    }

    fn accepts(grammar: &str, yes: &[&str], no: &[&str]) {
        let rx = lark_to_regex(grammar).expect("translates");
        let re = full(&rx);
        for s in yes {
            assert!(re.is_match(s), "{s:?} should match {rx}");
        }
        for s in no {
            assert!(!re.is_match(s), "{s:?} should not match {rx}");
        }
    }

    #[test]
    fn literals_with_escapes() {
        accepts(
            r#"start: "a\"b" "\\" "\n" "\t" "\x41" "\u00e9" ".*+?()[]{}|^$#&-~ " "/" "\/""#,
            &["a\"b\\\n\tAé.*+?()[]{}|^$#&-~ //"],
            &["a\"b\\\n\tAé.*+?()[]{}|^$#&-~  //", "ab"],
        );
    }

    #[test]
    fn classes_and_regex_flags() {
        accepts(
            r#"start: /[a-c]+/ /x/i /[^\n]*/ "!""#,
            &["abcX!", "aXanything !", "cx!"],
            &["dX!", "abc!", "aX\n!"],
        );
        // `\d` and `\w` are ASCII; `\D` is still Unicode's complement.
        accepts(r"start: /\d+\w\D/", &["12a-", "1__"], &["١a-", "12a3"]);
        accepts(r#"start: "a".."f" "0".."9""#, &["a0", "f9"], &["g0", "aa"]);
    }

    #[test]
    fn repetition_forms() {
        accepts(
            r#"start: "a"? "b"* "c"+ ("d" ~ 2) ("e" ~ 1..3) ["f"] "g"{2,}"#,
            &["cddegg", "abbbccddeeefggg"],
            &["ddegg", "cdegg", "cddeeeegg", "cddeg"],
        );
    }

    #[test]
    fn alternation_binds_loosest() {
        // `a b | c` is `(a b) | c`, not `a (b | c)`.
        accepts(
            "start: \"a\" \"b\" | \"c\"\n      | \"d\" -> dee\n",
            &["ab", "c", "d"],
            &["ac", "a", "abc"],
        );
        accepts(
            r#"start: "x" ("y" | "z")+ "w""#,
            &["xyw", "xzyzw"],
            &["xw", "xyzy"],
        );
    }

    #[test]
    fn case_insensitive_literals() {
        accepts(
            r#"start: "select"i " " "FROM""#,
            &["SELECT FROM", "sElEcT FROM"],
            &["SELECT from"],
        );
    }

    #[test]
    fn rules_terminals_and_imports_are_inlined() {
        let g = r#"
            // a comment
            start: pair ("," pair)*   # another comment
            ?pair: KEY "=" value
            value: SIGNED_NUMBER | ESCAPED_STRING | WORD
            KEY: LETTER (LETTER | DIGIT | "_")*
            %import common.SIGNED_NUMBER
            %import common (ESCAPED_STRING, WORD, LETTER, DIGIT)
        "#;
        accepts(
            g,
            &["a=1", "k_2=-3.5e2,b=\"x\\\"y\",c=word"],
            &["a=", "1=a", "a=1,", "a = 1"],
        );
        accepts("start: N\n%import common.INT -> N\n", &["42"], &["-1"]);
    }

    #[test]
    fn ignored_terminals_may_come_between_tokens() {
        // Between tokens only, as llguidance's lexer skips them.
        accepts(
            "start: WORD \"=\" INT\n%import common.WORD\n%import common.INT\n%import common.WS\n%ignore WS\n",
            &["a=1", "a =\n 1"],
            &["a b=1", "a=1 2", " a=1", "a=1 "],
        );
        // An optional first item: the skip goes before whichever token is second.
        accepts(
            "start: [\"-\"] (\"x\" ~ 0..2) \"y\"\n%ignore \" \"\n",
            &["y", "-y", "- x y", "x  x y", "-x y"],
            &[" y", "- ", "x x x y", "y "],
        );
    }

    #[test]
    fn recursion_and_unknown_features_are_errors() {
        let recursive = "start: expr\nexpr: \"(\" expr \")\" | \"x\"\n";
        assert!(
            matches!(lark_to_regex(recursive), Err(LarkError::Recursive { ref cycle }) if cycle == "expr -> expr"),
            "{:?}",
            lark_to_regex(recursive)
        );
        let mutual = "start: a\na: \"x\" b?\nb: \"y\" a\n";
        assert!(matches!(
            lark_to_regex(mutual),
            Err(LarkError::Recursive { .. })
        ));
        assert_eq!(lark_to_regex("rule: \"x\"\n"), Err(LarkError::NoStart));
        assert_eq!(
            lark_to_regex("start: missing\n"),
            Err(LarkError::Undefined("missing".into()))
        );
        for unsupported in [
            "start: x\n%declare X\n",
            "start: \"a\"\n%import other.X\n",
            "start: \"a\"\n%import common.NOPE\n",
            "start: tmpl{\"a\"}\n",
            "start: /a/l\n",
        ] {
            assert!(
                matches!(lark_to_regex(unsupported), Err(LarkError::Unsupported(_))),
                "{unsupported}: {:?}",
                lark_to_regex(unsupported)
            );
        }
        for broken in ["start \"a\"\n", "start: (\"a\"\n", "start: \"a\n"] {
            assert!(
                matches!(lark_to_regex(broken), Err(LarkError::Syntax { .. })),
                "{broken}: {:?}",
                lark_to_regex(broken)
            );
        }
    }

    #[test]
    fn hostile_grammars_fail_fast() {
        let deep = format!("start: {}\"a\"{}\n", "(".repeat(10_000), ")".repeat(10_000));
        assert!(matches!(
            lark_to_regex(&deep),
            Err(LarkError::Unsupported(_))
        ));
        let mut chain = String::from("start: r0\n");
        for i in 0..1_000 {
            chain.push_str(&format!("r{i}: r{}\n", i + 1));
        }
        chain.push_str("r1000: \"x\"\n");
        assert!(matches!(
            lark_to_regex(&chain),
            Err(LarkError::Unsupported(_))
        ));
        // Each rule uses the one below twice: 2^60 copies, refused by size.
        let mut doubling = String::from("start: d0\n%ignore \" \"\n");
        for i in 0..60 {
            doubling.push_str(&format!("d{i}: d{0}? d{0}?\n", i + 1));
        }
        doubling.push_str("d60: \"x\"\n");
        assert_eq!(lark_to_regex(&doubling), Err(LarkError::TooLarge));
    }

    #[test]
    fn regex_normalization() {
        assert_eq!(
            normalize_regex(r"(?P<y>\d{4})-(?<m>\d\d)"),
            r"(?:[0-9]{4})-(?:[0-9][0-9])"
        );
        assert_eq!(normalize_regex(r"[\d_]\\d[(?P<x>]"), r"[[0-9]_]\\d[(?P<x>]");
        assert_eq!(normalize_regex(r"[]\d]"), r"[][0-9]]");
        assert_eq!(
            normalize_regex(r#"[^"\\][^]a[^b]]"#),
            r#"[^"\\\x00][^]a[^b]\x00]"#
        );
        assert_eq!(normalize_regex(r"[^a&&b]"), r"[^a&&b]");
        assert_eq!(strip_outer_anchors(r"^a|b$|\$|^(c|d)$"), r"a|b|\$|(c|d)");
        assert_eq!(strip_outer_anchors(r"^[|]$"), r"[|]");
    }
}
