//! Line wrapping exactly as the browser reference does it: Python's
//! `textwrap.wrap(line, width=80, replace_whitespace=False,
//! drop_whitespace=False)` on each `\n`-separated line, empty lines kept.
//! The line numbers the model cites (`【{cursor}†L{n}】`) depend on this
//! being the same wrapping the model was trained with, so the chunking
//! rules (whitespace runs, hyphenated words, em-dashes, long words broken
//! at 80 columns, tabs expanded to 8) follow CPython's textwrap; lengths are
//! counted in Unicode code points like Python's `len`.

use std::sync::OnceLock;

use fancy_regex::Regex;

/// Python's textwrap whitespace set: `\t\n\x0b\x0c\r ` (not all of Unicode).
fn is_ws(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0b' | '\x0c' | '\r' | ' ')
}

fn wordsep_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let ws = r"[\t\n\x0b\x0c\r ]";
        let nws = r"[^\t\n\x0b\x0c\r ]";
        let wp = r#"[\w!"'&.,?]"#;
        let lt = r"[^\d\W]";
        // Alternatives, in textwrap's order: a whitespace run; an em-dash
        // between words; a word ending at a hyphen between letters, at
        // whitespace or end, or before an em-dash.
        let pattern = format!(
            "({ws}+|(?<={wp})-{{2,}}(?=\\w)|{nws}+?(?:-(?:(?<={lt}{{2}}-)|(?<={lt}-{lt}-))(?={lt}-?{lt})|(?={ws}|\\z)|(?<={wp})(?=-{{2,}}\\w)))"
        );
        // The pattern is a constant; failing to compile it is a bug here.
        Regex::new(&pattern).unwrap_or_else(|e| panic!("textwrap pattern: {e}"))
    })
}

/// `str.expandtabs(8)`.
fn expand_tabs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut col = 0usize;
    for c in text.chars() {
        match c {
            '\t' => {
                let n = 8 - col % 8;
                out.extend(std::iter::repeat_n(' ', n));
                col += n;
            }
            '\n' | '\r' => {
                out.push(c);
                col = 0;
            }
            _ => {
                out.push(c);
                col += 1;
            }
        }
    }
    out
}

/// Split into textwrap chunks (`wordsep_re.split`, empties dropped).
fn split_chunks(text: &str) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut last = 0;
    for m in wordsep_re().find_iter(text) {
        let Ok(m) = m else {
            // Backtracking limit hit on a pathological line: fall back to
            // splitting on whitespace only.
            return split_on_whitespace(text);
        };
        if m.start() > last {
            chunks.push(text[last..m.start()].to_string());
        }
        if m.end() > m.start() {
            chunks.push(m.as_str().to_string());
        }
        last = m.end();
    }
    if last < text.len() {
        chunks.push(text[last..].to_string());
    }
    chunks
}

fn split_on_whitespace(text: &str) -> Vec<String> {
    let mut chunks: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut cur_ws = None;
    for c in text.chars() {
        let w = is_ws(c);
        if cur_ws != Some(w) && !cur.is_empty() {
            chunks.push(std::mem::take(&mut cur));
        }
        cur_ws = Some(w);
        cur.push(c);
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    chunks
}

fn n_chars(s: &str) -> usize {
    s.chars().count()
}

/// Byte index of the `n`-th char (or the end).
fn char_to_byte(s: &str, n: usize) -> usize {
    s.char_indices().nth(n).map_or(s.len(), |(i, _)| i)
}

/// `textwrap.wrap(text, width, replace_whitespace=False, drop_whitespace=False)`.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut chunks = split_chunks(&expand_tabs(text));
    chunks.reverse();
    let mut lines = Vec::new();
    while !chunks.is_empty() {
        let mut cur_line: Vec<String> = Vec::new();
        let mut cur_len = 0usize;
        while let Some(last) = chunks.last() {
            let l = n_chars(last);
            if cur_len + l <= width {
                cur_len += l;
                if let Some(c) = chunks.pop() {
                    cur_line.push(c);
                }
            } else {
                break;
            }
        }
        if let Some(chunk) = chunks.last_mut() {
            let len = n_chars(chunk);
            if len > width {
                // Break the long word: at the last hyphen that fits, if any
                // non-hyphen precedes it, else at the space left.
                let space_left = width - cur_len;
                let mut end = space_left;
                let head_end = char_to_byte(chunk, space_left);
                if let Some(hyphen_byte) = chunk[..head_end].rfind('-') {
                    let hyphen = n_chars(&chunk[..hyphen_byte]);
                    if hyphen > 0 && chunk[..hyphen_byte].chars().any(|c| c != '-') {
                        end = hyphen + 1;
                    }
                }
                let split = char_to_byte(chunk, end);
                cur_line.push(chunk[..split].to_string());
                *chunk = chunk[split..].to_string();
            }
        }
        if !cur_line.is_empty() {
            lines.push(cur_line.concat());
        }
    }
    lines
}

/// The reference's `wrap_lines`: wrap each line of `text` to `width`
/// columns, keeping whitespace and empty lines.
pub fn wrap_lines(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.split('\n') {
        if line.is_empty() {
            out.push(String::new());
        } else {
            out.extend(wrap(line, width));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_whitespace_at_line_ends() {
        // From the reference's exact search-page example (gpt-oss.md §5.10).
        let line = "  * 【0†The Nobel Prize in Physics 2024 - NobelPrize.org†www.nobelprize.org】 The Nobel Prize in Physics 2024 was awarded jointly to John J. Hopfield and Geoffrey Hinton.";
        let got = wrap(line, 80);
        assert_eq!(
            got,
            vec![
                "  * 【0†The Nobel Prize in Physics 2024 - NobelPrize.org†www.nobelprize.org】 The ",
                "Nobel Prize in Physics 2024 was awarded jointly to John J. Hopfield and Geoffrey",
                " Hinton.",
            ]
        );
    }

    #[test]
    fn second_example_line() {
        let line = "  * 【1†2024 Nobel Prize in Physics - Wikipedia†en.wikipedia.org】 Awarded for foundational discoveries that enable machine learning with artificial neural networks.";
        assert_eq!(
            wrap(line, 80),
            vec![
                "  * 【1†2024 Nobel Prize in Physics - Wikipedia†en.wikipedia.org】 Awarded for ",
                "foundational discoveries that enable machine learning with artificial neural ",
                "networks.",
            ]
        );
    }

    #[test]
    fn long_words_break_at_width_and_hyphens() {
        let word = "a".repeat(100);
        assert_eq!(wrap(&word, 80), vec!["a".repeat(80), "a".repeat(20)]);
        // Python: textwrap.wrap('x'*10 + '-' + 'y'*10, 12) -> ['xxxxxxxxxx-', 'yyyyyyyyyy']
        let hy = format!("{}-{}", "x".repeat(10), "y".repeat(10));
        assert_eq!(wrap(&hy, 12), vec!["xxxxxxxxxx-", "yyyyyyyyyy"]);
    }

    #[test]
    fn tabs_expand_and_empty_lines_stay() {
        assert_eq!(wrap("a\tb", 80), vec!["a       b"]);
        assert_eq!(wrap_lines("a\n\nb", 80), vec!["a", "", "b"]);
        assert_eq!(wrap_lines("   ", 80), vec!["   "]);
    }
}
