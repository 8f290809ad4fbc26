//! Reads README.md's fenced code blocks for `readme_examples.rs`: the blocks with their info
//! strings, the commands of a `sh` block with the output each one shows, and the normalisation
//! that lets a run on free ports and temporary directories match the README's text.
//!
//! The README's conventions, which this module defines:
//! * the info string is a language and optional words: `no-run` (the test does not run it; the
//!   test lists why), `cwd=DIR` (run from DIR, relative to the checkout), `file=PATH` (the block
//!   is the file a reader creates at PATH, relative to the checkout) and `source=PATH` (the block
//!   is this repository's file PATH, verbatim);
//! * in a `sh` block, the lines starting with `#` after a command are what it prints: its stdout
//!   when it succeeds; when the last line ends in `(exit code N)` it exits N and the lines are
//!   the end of its stderr.

/// One fenced code block.
#[derive(Debug, Clone)]
pub struct Block {
    /// 1-based line of the opening fence.
    pub line: usize,
    /// The first word of the info string (`sh`, `text`, `rust`, `toml`).
    pub lang: String,
    /// The other words of the info string.
    pub words: Vec<String>,
    /// The block's text, ending in a newline.
    pub text: String,
}

impl Block {
    /// Whether the info string holds `word`.
    pub fn has(&self, word: &str) -> bool {
        self.words.iter().any(|w| w == word)
    }

    /// The value of `key=VALUE` in the info string.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.words
            .iter()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    }

    /// The first line of the block, which the skip list names it by.
    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or_default()
    }
}

/// The fenced code blocks of a markdown text (fences at the start of a line).
pub fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                let mut words = info.split_whitespace().map(str::to_owned);
                open = Some(Block {
                    line: i + 1,
                    lang: words.next().unwrap_or_default(),
                    words: words.collect(),
                    text: String::new(),
                });
            }
            (Some(_), Some("")) => out.extend(open.take()),
            (Some(block), _) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "README.md: a code block is not closed");
    out
}

/// One command of a `sh` block and what the README shows it printing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// 1-based line in the README.
    pub line: usize,
    /// The command as written (continuation lines and here-documents included).
    pub script: String,
    /// The output lines shown under it (without their `# `).
    pub expected: Vec<String>,
    /// The exit code shown (`(exit code N)`), else 0.
    pub exit: i32,
}

/// The commands of a `sh` block, with the README line of each.
pub fn steps(block: &Block) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    let mut lines = block.text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(shown) = line.strip_prefix('#') {
            let step = out
                .last_mut()
                .unwrap_or_else(|| panic!("README.md:{}: output before a command", block.line));
            step.expected
                .push(shown.strip_prefix(' ').unwrap_or(shown).to_owned());
            continue;
        }
        let mut script = line.to_owned();
        let mut last = line;
        while last.ends_with('\\') {
            let Some((_, next)) = lines.next() else { break };
            script.push('\n');
            script.push_str(next);
            last = next;
        }
        if let Some(tag) = heredoc_tag(line) {
            for (_, next) in lines.by_ref() {
                script.push('\n');
                script.push_str(next);
                if next == tag {
                    break;
                }
            }
        }
        out.push(Step {
            line: block.line + 1 + i,
            script,
            expected: Vec::new(),
            exit: 0,
        });
    }
    for step in &mut out {
        if let Some(last) = step.expected.last_mut()
            && let Some((text, code)) = exit_code(last)
        {
            *last = text;
            step.exit = code;
        }
    }
    out
}

/// The end tag of a here-document started on `line` (`<<'EOF'` or `<<EOF`).
fn heredoc_tag(line: &str) -> Option<String> {
    let rest = line.split_once("<<")?.1.trim_start();
    let tag: String = rest
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!tag.is_empty()).then_some(tag)
}

/// `text   (exit code N)` split into the text and N.
fn exit_code(line: &str) -> Option<(String, i32)> {
    let rest = line.trim_end().strip_suffix(')')?;
    let (text, code) = rest.rsplit_once("(exit code ")?;
    Some((text.trim_end().to_owned(), code.parse().ok()?))
}

/// Replaces what differs from run to run with fixed words, the same on both sides of a
/// comparison: loopback ports (`127.0.0.1:PORT`), `silk dev`'s temporary directory
/// (`/tmp/silk-dev-XXXXXX`), the executor's slot count (`N slots`, the CPU count), job ages
/// (`AGE ago`) and the home directory (`/home/you`, the README's).
pub fn normalise(text: &str, home: &str) -> String {
    text.replace(home, "/home/you")
        .lines()
        .map(normalise_line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One line, split at single spaces so that the spacing survives the round trip.
fn normalise_line(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let mut out = Vec::with_capacity(words.len());
    for (i, w) in words.iter().enumerate() {
        let next = words.get(i + 1).copied();
        let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
        if digits(w) && matches!(next, Some("slots" | "slots,")) {
            out.push("N".to_owned());
        } else if next == Some("ago")
            && w.ends_with(['s', 'm', 'h', 'd'])
            && digits(&w[..w.len() - 1])
        {
            out.push("AGE".to_owned());
        } else {
            out.push(word(w));
        }
    }
    out.join(" ")
}

fn word(w: &str) -> String {
    if let Some(i) = w.find("127.0.0.1:") {
        let after = &w[i + "127.0.0.1:".len()..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        return format!("{}127.0.0.1:PORT{}", &w[..i], &after[digits..]);
    }
    if let Some(i) = w.find("/silk-dev-") {
        let after = &w[i + "/silk-dev-".len()..];
        let name = after.find('/').unwrap_or(after.len());
        return format!("/tmp/silk-dev-XXXXXX{}", &after[name..]);
    }
    w.to_owned()
}

/// Whether `actual` matches `expected` line by line, where an expected line `...` stands for any
/// number of lines.
pub fn matches(expected: &[&str], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((&"...", rest)) => (0..=actual.len()).any(|skip| matches(rest, &actual[skip..])),
        Some((first, rest)) => actual.first() == Some(first) && matches(rest, &actual[1..]),
    }
}

#[test]
fn readme_conventions_parse() {
    let md = "x\n```sh cwd=../m\na \\\n  b\n# out\n# err   (exit code 7)\ncat > f <<'EOF'\n# not output\nEOF\n```\n```text\nt\n```\n";
    let b = blocks(md);
    assert_eq!(b.len(), 2);
    assert_eq!(
        (b[0].lang.as_str(), b[0].value("cwd")),
        ("sh", Some("../m"))
    );
    let s = steps(&b[0]);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].script, "a \\\n  b");
    assert_eq!(
        (s[0].expected.clone(), s[0].exit),
        (vec!["out".into(), "err".into()], 7)
    );
    assert_eq!(s[1].script, "cat > f <<'EOF'\n# not output\nEOF");
    assert!(s[1].expected.is_empty());
    assert_eq!(s[1].line, 7);
}

#[test]
fn normalisation_and_wildcards() {
    let n = normalise(
        "  storage     http://127.0.0.1:45223\n  database    /tmp/silk-dev-LmR53g/storage.db x\n  executor    4 slots, y\n       2  succeeded    3  12s ago\n/h/me/.config",
        "/h/me",
    );
    assert_eq!(
        n,
        "  storage     http://127.0.0.1:PORT\n  database    /tmp/silk-dev-XXXXXX/storage.db x\n  executor    N slots, y\n       2  succeeded    3  AGE ago\n/home/you/.config"
    );
    assert!(matches(&["a", "...", "d"], &["a", "b", "c", "d"]));
    assert!(matches(&["a", "...", "d"], &["a", "d"]));
    assert!(!matches(&["a", "...", "d"], &["a", "b"]));
    assert!(!matches(&["a"], &["a", "b"]));
}
