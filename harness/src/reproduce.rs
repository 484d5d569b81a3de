//! The `reproduce:` line a run prints at its end: the command that runs the same trials again,
//! with the run's actual seed, every word shell-quoted so it pastes as one command, and without
//! the run's `--out` (pasted, it would be refused: that folder holds this run); the folder is
//! named in a hint to `--resume` it instead.
//!
//! `run.json` keeps the command line as one string, written by quoting each argument
//! ([`quote`]); [`split`] reads such a string back into its words, so a flag is recognised by
//! word and never inside a quoted value (`--verify-cmd 'test -s {db}'` keeps its `-s`).

use std::path::Path;

/// One argument as the shell reads it back: bare when it is plain, in single quotes otherwise.
pub fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The words of a command line as a POSIX shell splits it (quotes and backslashes; no
/// expansions): the inverse of joining [`quote`]d words with spaces.
pub fn split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(n @ ('"' | '\\' | '$' | '`')) => word.push(n),
                            Some(n) => {
                                word.push('\\');
                                word.push(n);
                            }
                            None => word.push('\\'),
                        },
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The command that runs the same trials again: `command_line` without its seed and its `--out`
/// (and `-s`, `-o` in any spelling), the run's `seed` placed before a `--` (exec's program comes
/// after it and is kept word for word), each word quoted. Also returns the `--out` it dropped.
pub fn command(command_line: &str, seed: u64) -> (String, Option<String>) {
    let words = split(command_line);
    let program_at = words.iter().position(|w| w == "--").unwrap_or(words.len());
    let (head, program) = words.split_at(program_at);
    let mut kept: Vec<&str> = Vec::new();
    let mut out = None;
    let mut i = 0;
    while i < head.len() {
        let w = head[i].as_str();
        // `--seed 7`, `-s 7`: the flag and its value.
        if ["--seed", "-s", "--out", "-o"].contains(&w) {
            if w == "--out" || w == "-o" {
                out = head.get(i + 1).cloned();
            }
            i += 2;
            continue;
        }
        // `--seed=7`, `-s7`, `-s=7`, and the same of --out.
        if let Some(v) = w.strip_prefix("--out=").or_else(|| short_value(w, 'o')) {
            out = Some(v.to_string());
            i += 1;
            continue;
        }
        if w.starts_with("--seed=") || short_value(w, 's').is_some() {
            i += 1;
            continue;
        }
        kept.push(w);
        i += 1;
    }
    let seed = seed.to_string();
    kept.extend(["--seed", seed.as_str()]);
    kept.extend(program.iter().map(String::as_str));
    let line = kept.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
    (line, out)
}

/// `-s7` or `-s=7` for `short = 's'`: the value; `None` for anything else.
fn short_value(word: &str, short: char) -> Option<&str> {
    let rest = word.strip_prefix('-')?.strip_prefix(short)?;
    if word.starts_with("--") || rest.is_empty() {
        return None;
    }
    Some(rest.strip_prefix('=').unwrap_or(rest))
}

/// The lines a run prints: `reproduce: COMMAND`, and when the run's folder exists, a hint that
/// pasting writes a new folder and `--resume OUT` continues this one.
pub fn lines(command_line: &str, seed: u64, out_dir: &Path) -> String {
    let (line, _) = command(command_line, seed);
    let mut text = format!("reproduce: {line}");
    if out_dir.exists() {
        let resume = format!("torture --resume {}", quote(&out_dir.display().to_string()));
        text.push_str(&format!(
            "\n           (it writes a new folder under results/, or add --out; to continue this run's folder instead: {resume})"
        ));
    }
    text
}

/// Words as one shell command line, each quoted when it needs it.
pub fn shell_words_str(words: &[String]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

/// `word` as one shell word that no shell reads as code (one quoting rule for every suggested
/// command: [`crate::reproduce::quote`]).
pub use crate::reproduce::quote as shell_quote;

/// `msg` with control characters escaped, so a message that quotes what the user typed (a path
/// with a newline in it) stays one line.
pub fn printable(msg: &str) -> String {
    msg.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn split_reads_back_what_quote_writes() {
        let args = [
            "torture",
            "exec",
            "--verify-cmd",
            "test -s {db}",
            "--dir",
            "a 'b' $(c) `d`",
            "",
            "-s",
            "--",
            "python3",
            "w.py",
            "{db}",
        ];
        let line = args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ");
        assert_eq!(split(&line), words(&args));
        assert_eq!(
            split(r#"a "b \"c\" \$d" e\ f"#),
            words(&["a", r#"b "c" $d"#, "e f"])
        );
    }

    #[test]
    fn the_command_drops_seed_and_out_in_every_spelling_and_keeps_quoted_values() {
        let line = "torture -s 3 --out R1 --verify-cmd 'test -s {db}' --seed=4 -o=X -s9 --profile wal-full";
        let (cmd, out) = command(line, 7);
        assert_eq!(
            cmd,
            "torture --verify-cmd 'test -s {db}' --profile wal-full --seed 7"
        );
        assert_eq!(out.as_deref(), Some("X"));
        assert_eq!(split(&cmd).len(), 7, "balanced quotes: {cmd}");
        // A program's own -s and -o after `--` are the program's.
        let (cmd, out) = command("torture exec --out O -- prog -s 1 -o x '{db}'", 7);
        assert_eq!(cmd, "torture exec --seed 7 -- prog -s 1 -o x '{db}'");
        assert_eq!(out.as_deref(), Some("O"));
    }

    #[test]
    fn the_hint_names_the_folder_to_resume_only_when_it_exists() {
        let d = tempfile::tempdir().unwrap();
        let text = lines("torture --out R1 -s 1", 1, d.path());
        assert!(text.starts_with("reproduce: torture --seed 1\n"), "{text}");
        assert!(
            text.contains(&format!(
                "torture --resume {}",
                quote(&d.path().display().to_string())
            )),
            "{text}"
        );
        let gone = lines("torture", 1, &d.path().join("missing"));
        assert_eq!(gone, "reproduce: torture --seed 1");
    }
}
