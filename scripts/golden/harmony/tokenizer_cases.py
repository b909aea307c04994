"""Texts for testdata/harmony/tokenizer.json.

Owns: the list of tokenizer test strings (hand-written edge cases plus
seeded random mixtures). Does not own: running the references (generate.py).
"""

from __future__ import annotations

import random

HAND_WRITTEN: list[str] = [
    # empty and trivial
    "", " ", "a", "A", "\n", "\t", "\r", "0", ".", "'", "\u00a0",
    "Hello, world!", "hello world", "Hello World", "HELLO WORLD", "hElLo WoRlD",
    # contractions with odd casing
    "it's", "IT'S", "It'S", "we'll", "WE'LL", "We'Ll", "they're", "THEY'RE", "I'm", "I'M",
    "you've", "YOU'VE", "he'd", "HE'D", "don't", "DON'T", "can't stop", "'s", "'S", "'ll",
    "'LL", "'re'", "rock'n'roll", "O'Neil's", "l'été", "l'ÉTÉ", "it’s (curly)", "x's's's",
    # whitespace runs
    "  ", "   ", "    leading", "trailing    ", "a  b   c    d", "\t\t", "a\tb\t\tc",
    "\n\n", "\n\n\n", "line1\nline2", "line1\r\nline2", "a\r\n\r\nb", "lone\rcarriage",
    "\r\r\r", " \n ", "  \n  \n", "end with space ", "end with spaces   ",
    "tabs\t\t\tand spaces   \n", "\u3000full\u3000width\u3000space", "mixed \t \n \r\n x",
    "\v\f vertical tab and form feed", "x\u2028y\u2029z", "   \n\n   hello",
    # digits of all lengths
    "1", "12", "123", "1234", "12345", "123456", "1234567", "12345678", "123456789",
    "1234567890", "12345678901234567890", "3.14159265358979", "1,000,000", "1_000_000",
    "-42", "+7", "0x1F3A", "1e-10", "2024-06-01", "12:34:56", "v1.2.3", "٣٤٥ Arabic-Indic",
    "१२३४ Devanagari digits", "½ ¼ ¾", "Ⅻ roman", "x²+y³", "007", "000000",
    # European languages
    "Olá, tudo bem? Não sei se você já viu a promoção.",
    "A programação em Rust é divertida, não é? Coração, ação, pão, irmã.",
    "Ça va? Où est la bibliothèque? Élève, garçon, naïve, cœur.",
    "Größe, Straße, Übung, Äpfel und Öl — Fußgängerübergänge.",
    "¿Dónde está el baño? ¡Mañana será otro día! Pingüino.",
    "Cześć! Zażółć gęślą jaźń. Łódź.", "Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "Árvíztűrő tükörfúrógép", "Þetta er íslenska: ð, þ, æ.", "Ελληνικά: Καλημέρα κόσμε",
    "Русский: Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Українська: ґанок, їжак, є", "Türkçe: İstanbul, ığdır, şeker, çiçek",
    "Română: științe, țară", "Nederlands: één, ijsje", "Svenska: åäö ÅÄÖ",
    # combining marks and normalization
    "e\u0301", "E\u0301COLE", "a\u0300\u0301\u0302\u0303\u0304", "n\u0303", "\u0301alone",
    "Zalgo: Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357\u0334\u0362\u0335\u031c\u0330\u0354L\u0368\u0367\u0369\u0358\u0320G\u0311\u0357\u030e\u0305\u035b\u0341\u0334\u033b\u0348\u034d\u0354\u0339O\u0342\u030c\u030c\u0358\u0328\u0335\u0339\u033b\u031d\u0333",
    "caf\u00e9 vs cafe\u0301", "\u1e9b\u0323", "ﬁ ligature ﬀ",
    # RTL
    "مرحبا بالعالم", "العربية: كتاب، مكتبة، كاتب", "שלום עולם", "עברית עם ניקוד: שָׁלוֹם",
    "mixed English and العربية text", "\u202eRTL override\u202c", "فارسی: سلام دنیا", "اردو: خوش آمدید",
    # Indic, Thai, other scripts
    "नमस्ते दुनिया", "हिन्दी में लिखा गया वाक्य।", "क्षत्रिय ज्ञान", "বাংলা ভাষা", "தமிழ் மொழி",
    "తెలుగు", "ಕನ್ನಡ", "മലയാളം", "ગુજરાતી", "ਪੰਜਾਬੀ", "සිංහල",
    "สวัสดีชาวโลก", "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ", "ລາວ", "ខ្មែរ", "မြန်မာ",
    "ქართული", "Հայերեն", "አማርኛ", "ᚠᚢᚦᚨᚱᚲ runes", "ꦗꦮ Javanese",
    # CJK
    "你好，世界！", "我爱自然语言处理。", "中文没有空格分词很难", "繁體中文：臺灣",
    "こんにちは世界", "日本語のテキスト、カタカナ、ひらがな。", "ｶﾀｶﾅ half-width", "한국어 텍스트입니다",
    "안녕하세요 세계", "漢字かな交じり文", "𠮷野家 (supplementary CJK)", "〈〉《》「」『』【】",
    # emoji
    "😀", "👍🏽", "😀😃😄😁", "❤️", "⭐ star", "👨‍👩‍👧‍👦", "👩‍💻 coding", "🏳️‍🌈", "🏴‍☠️",
    "🇧🇷🇵🇹🇺🇸🇯🇵", "🇺🇳", "🏴󠁧󠁢󠁳󠁣󠁴󠁿 Scotland", "1️⃣ keycap", "#️⃣", "🧑🏿‍🤝‍🧑🏻",
    "emoji in text 🎉 party 🎉🎉 time", "🤖🦀🐍", "\u200d", "a\u200db", "\ufeffBOM", "\u200b zero width",
    # code
    "fn main() {\n    println!(\"Hello, world!\");\n}\n",
    "def foo(x: int) -> int:\n\treturn x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "#include <stdio.h>\nint main(void) { return 0; }",
    "const f = async (a, b) => { await g(a?.b ?? c); };",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    "<div class=\"x\"><p>Hi &amp; bye</p></div>",
    "if [ -f ~/.bashrc ]; then source ~/.bashrc; fi",
    "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hi\") }",
    "x = [i for i in range(10) if i % 2 == 0]",
    "    indented_code = True\n        deeper = 1\n",
    "let v: Vec<Option<&'static str>> = vec![None, Some(\"a\")];",
    "public static void main(String[] args) throws Exception {}",
    "λx.λy.x y", "a != b && c <= d || !e", "i++; j--; k **= 2; l >>= 1;",
    "/* comment */ // line comment\n# hash comment",
    "\\begin{equation} E = mc^2 \\end{equation}", "$$\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}$$",
    # URLs, JSON, markdown
    "https://www.example.com/path/to/page?query=1&other=two#fragment",
    "http://localhost:8080/api/v1/users/42", "mailto:someone@example.org",
    "ftp://files.example.net/pub/file.tar.gz", "www.nobelprize.org/prizes/physics/2024",
    '{"key": "value", "n": 42, "arr": [1, 2, 3], "nested": {"a": null, "b": true}}',
    '{"location":"Tokyo, Japan"}', '{"query": "2024 Nobel Prize in Physics winners", "topn": 5}',
    '[{"a":1},{"b":[2,3]}]', '{"unicode": "\\u00e9\\ud83d\\ude00"}',
    "# Heading\n\n## Subheading\n\n- item 1\n- item 2\n\n1. first\n2. second\n",
    "**bold** _italic_ `code` [link](https://x.y) ![img](a.png)",
    "| a | b |\n|---|---|\n| 1 | 2 |", "> quote\n>> nested quote", "```python\nprint(1)\n```",
    "---\ntitle: x\n---", "【0†L4-L6】 citation", "【{cursor}†L{line_start}(-L{line_end})?】",
    # special-token-looking text
    "<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>", "<|return|>", "<|call|>",
    "<|endoftext|>", "<|startoftext|>", "<|endofprompt|>", "<|reserved_200000|>",
    "<|reserved_200500|>", "<|reserved_201087|>", "<|reserved_201088|>", "<|reserved_201089|>",
    "<|reserved_199999|>", "<|refusal|>", "<|untrusted|>", "<|sta", "<|start", "start|>", "<||>",
    "<| start |>", "<|START|>", "<|start|><|start|>", "<<|start|>>", "<|start|>|>",
    "<|start|>assistant<|channel|>final<|message|>Hi<|return|>",
    "<|start|>user<|message|>What is 2 + 2?<|end|>",
    "text with <|call|> inside it", "prefix<|end|>suffix", "a<|constrain|>json",
    "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{}<|call|>",
    "<|endofprompt|> and <|reserved_200018|>", "<|endoftext|><|endoftext|>",
    " <|message|> ", "\n<|end|>\n", "<|im_start|>user<|im_end|>",
    # harmony-ish header words
    "system", "developer", "user", "assistant", "analysis", "final", "commentary", " to=assistant",
    "json", "python", "to=functions.get_current_weather", "browser.search", "functions.x",
    # long words and repetition
    "a" * 1000, "ab" * 300, "Supercalifragilisticexpialidocious" * 5,
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft",
    "x" * 64 + " " + "y" * 65, "1" * 100, "🎉" * 40, "中" * 200, " " * 200, "\n" * 50,
    "!" * 50, "-" * 80, "=" * 33 + ">", ". " * 40, "\t" * 17 + "x",
    "the " * 60, "ÀÉÎÕÜ" * 20,
    # punctuation clusters
    "...", "?!?!", "—–-", "«quote»", "„German“", "‘single’ “double”", "(((nested)))",
    "@#$%^&*", "~`|\\", "a/b/c/", "a\\b\\c", "C:\\Program Files\\x", "/usr/local/bin/",
    "path/to/file.rs:12:5", "e.g., i.e., etc.", "Mr. Smith Jr.", "U.S.A.", "#hashtag @mention",
    # mixed scripts
    "Rust 🦀 は速い and 安全 — très bien!", "GPT-4o, o200k_base, gpt-oss-20b/120b",
    "snake_case camelCase PascalCase SCREAMING_CASE kebab-case",
    "HTTPServerError XMLHttpRequest iOSApp", "ABCdef GHIjkl", "aBcDeF", "McDonald's",
    "Δx → 0 ⇒ ∂f/∂x ≈ ∑ ∫ √2 ≠ ∞", "℃ ℉ № ™ © ®", "♠♣♥♦ ♪♫", "┌─┐│└┘", "⠓⠑⠇⠇⠕ braille",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙 𝒮𝒸𝓇𝒾𝓅𝓉", "𝟘𝟙𝟚 math digits", "Ａｂｃ fullwidth latin", "ǅ titlecase ǈ ǋ",
]

# Character pools for the seeded random mixtures.
_POOLS = [
    "abcdefghijklmnopqrstuvwxyz",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789",
    " " * 6 + "\t\n\r",
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "áéíóúãõçâêôàèìòùäëïöüñßÀÉÎÕÜÇ",
    "\u0300\u0301\u0302\u0303\u0308\u0327",
    "你好世界中文字こんにちはカタカナ한국어",
    "مرحباשלוםनमस्तेสวัสดี",
    "😀👍🏽❤️🎉🦀🇧🇷\u200d👩💻",
    "Ωπ∑∫√∞≈≠",
]
_FRAGMENTS = [
    "<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|call|>", "<|return|>",
    "<|constrain|>", "<|endofprompt|>", "<|reserved_200123|>", "<|sta", "|>", "<|",
    "'s", "'LL", "'Re", " to=", "http://", "```", "\r\n", "  ", "123456", "\u200d",
]


def random_texts(n: int, seed: int = 20250805) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.choice([1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233])
        parts = []
        # Each string favours a couple of pools so runs of one script form words.
        favoured = rng.sample(range(len(_POOLS)), k=rng.randint(1, 3))
        while sum(len(p) for p in parts) < length:
            r = rng.random()
            if r < 0.1:
                parts.append(rng.choice(_FRAGMENTS))
            else:
                pool = _POOLS[rng.choice(favoured) if r < 0.8 else rng.randrange(len(_POOLS))]
                parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 6))))
        out.append("".join(parts))
    return out


def joined_texts() -> list[str]:
    """Hand-written strings glued together, so pre-tokenization boundaries
    between very different scripts and whitespace kinds are exercised."""
    seps = ["", " ", "\n", "\r\n", "\t", "  ", "\n\n"]
    out = []
    short = [t for t in HAND_WRITTEN if len(t) < 120]
    for i in range(0, len(short), 20):
        out.append(seps[(i // 20) % len(seps)].join(short[i : i + 20]))
    return out


def all_texts() -> list[str]:
    texts = list(HAND_WRITTEN) + joined_texts() + random_texts(350)
    seen = set()
    unique = []
    for t in texts:
        if t not in seen:
            seen.add(t)
            unique.append(t)
    return unique
