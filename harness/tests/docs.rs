//! The documentation a user gets from the binary and the repository: shell completions and man pages
//! generated from the clap definition (checked against that definition, not a hand-written list),
//! and the command examples of README.md, docs/*.md and workloads/exec/README.md
//! (`scripts/doc-commands`, which the nightly runs in full).
//!
//! Needs `bash` and `groff` (groff-base; scripts/test installs it).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use clap::CommandFactory;
use common::*;

/// Every subcommand name (at any depth) and every flag (`--long`, `-s`) of the clap definition, as the
/// binary parses it (built: global flags such as `--sqlite` reach the subcommands).
fn names_in_definition() -> (BTreeSet<String>, BTreeSet<String>) {
    let mut cmd = torture::cli::Cli::command();
    cmd.build();
    let (mut subcommands, mut flags) = (BTreeSet::new(), BTreeSet::new());
    fn walk(cmd: &clap::Command, subs: &mut BTreeSet<String>, flags: &mut BTreeSet<String>) {
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long() {
                flags.insert(format!("--{long}"));
            }
            if let Some(short) = arg.get_short() {
                flags.insert(format!("-{short}"));
            }
        }
        for sub in cmd.get_subcommands() {
            subs.insert(sub.get_name().to_string());
            walk(sub, subs, flags);
        }
    }
    walk(&cmd, &mut subcommands, &mut flags);
    (subcommands, flags)
}

/// The words of a generated script: runs of characters a flag or command name is made of.
fn words(script: &str) -> BTreeSet<String> {
    script
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn completions(shell: &str) -> String {
    let o = run(&["completions", shell]);
    assert_eq!(o.status.code(), Some(0), "{shell}: {}", say(&o));
    text(&o.stdout)
}

#[test]
fn the_bash_completion_parses_and_names_every_subcommand_and_flag_of_the_definition() {
    let script = completions("bash");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("torture.bash");
    std::fs::write(&file, &script).unwrap();
    let o = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "bash -n: {}", say(&o));

    let (subcommands, flags) = names_in_definition();
    // The version flags are taken off the line before clap parses; the definition declares them.
    for must in [
        "--sqlite",
        "--engine-version",
        "exec",
        "hunt",
        "man",
        "completions",
    ] {
        assert!(
            subcommands.contains(must) || flags.contains(must),
            "{must} is not in the clap definition"
        );
    }
    let have = words(&script);
    let missing: Vec<&String> = subcommands
        .iter()
        .chain(flags.iter())
        .filter(|n| !have.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "missing from the bash completion: {missing:?}"
    );
}

/// What the bash completion offers for a partly typed command line (the last word is being typed).
fn complete_in_bash(script: &Path, line: &[&str]) -> Vec<String> {
    let cword = line.len() - 1;
    let program = format!(
        "source {}; COMP_WORDS=({}); COMP_CWORD={cword}; _torture torture {} {}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        line.iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
        line[cword],
        line[cword - 1],
    );
    let o = Command::new("bash")
        .arg("-c")
        .arg(program)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    text(&o.stdout).lines().map(str::to_string).collect()
}

#[test]
fn bash_completes_subcommands_and_the_version_flags_clap_never_sees() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("torture.bash");
    std::fs::write(&file, completions("bash")).unwrap();
    assert_eq!(complete_in_bash(&file, &["torture", "ex"]), ["exec"]);
    assert_eq!(
        complete_in_bash(&file, &["torture", "exec", "--engine-v"]),
        ["--engine-version"]
    );
    assert_eq!(
        complete_in_bash(&file, &["torture", "hunt", "--engine-v"]),
        ["--engine-version"]
    );
    assert_eq!(complete_in_bash(&file, &["torture", "--sql"]), ["--sqlite"]);
    assert_eq!(
        complete_in_bash(&file, &["torture", "report", "--sql"]),
        ["--sqlite"]
    );
}

#[test]
fn every_shell_gets_a_completion_that_names_the_version_flags() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let have = words(&completions(shell));
        for flag in ["sqlite", "engine-version", "exec", "scenario"] {
            // fish and powershell spell flags without their dashes (`-l sqlite`).
            assert!(
                have.contains(flag) || have.contains(&format!("--{flag}")),
                "{shell}: {flag}"
            );
        }
    }
    let o = run(&["completions", "tcsh"]);
    let line = one_line_exit(&o, 2);
    assert!(line.contains("possible values"), "{line}");
}

/// Renders a man page with groff as `man` would, failing on any groff warning.
fn render(page: &Path) -> String {
    let o = Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-ww", "-P-cbou"])
        .arg(page)
        .output()
        .expect("groff runs (apt-get install groff-base; scripts/test installs it)");
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    assert!(
        o.stderr.is_empty(),
        "groff warns on {}: {}",
        page.display(),
        say(&o)
    );
    text(&o.stdout)
}

#[test]
fn man_writes_one_page_per_subcommand_and_each_renders_with_its_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("man1");
    let o = run(&["man", "--out", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));

    let mut cmd = torture::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut expected = BTreeSet::new();
    fn walk(cmd: &clap::Command, prefix: &str, out: &mut Vec<(String, clap::Command)>) {
        let name = format!("{prefix}{}", cmd.get_name());
        out.push((format!("{name}.1"), cmd.clone()));
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{name}-"), out);
        }
    }
    let mut pages = Vec::new();
    walk(&cmd, "", &mut pages);
    for (file, sub) in &pages {
        expected.insert(file.clone());
        let page = render(&dir.join(file));
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                assert!(
                    page.contains(&format!("--{long}")),
                    "{file}: --{long}\n{page}"
                );
            }
        }
    }
    let written: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, expected);
    assert!(written.contains("torture-exec.1") && written.contains("torture-scenario-run.1"));
    let exec = render(&dir.join("torture-exec.1"));
    assert!(
        exec.contains("--engine-version") && exec.contains("--sqlite"),
        "{exec}"
    );

    // Without --out: torture.1 on stdout, the same page.
    let o = run(&["man"]);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    assert_eq!(o.stdout, std::fs::read(dir.join("torture.1")).unwrap());
}

#[test]
fn man_into_a_folder_it_cannot_make_is_one_usage_line() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let o = run(&["man", "--out", file.join("man1").to_str().unwrap()]);
    let line = one_line_exit(&o, 2);
    assert!(line.contains("--out"), "{line}");
}

fn doc_commands() -> Command {
    let mut c = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/doc-commands"));
    c.env("BIN", env!("CARGO_BIN_EXE_torture"));
    c
}

/// The `file:line` of every line in the project's docs that starts a command, found without the
/// script: a `$ ` line, or in a ```sh/```bash block a line that starts with a program this
/// repository's docs run and does not continue the line before.
fn command_lines_in_docs() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![
        "README.md".to_string(),
        "workloads/exec/README.md".to_string(),
    ];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") {
            files.push(format!("docs/{name}"));
        }
    }
    let mut found = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(root.join(&file)).unwrap();
        let (mut lang, mut previous) = (None::<String>, String::new());
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("```") {
                lang = if lang.is_some() {
                    None
                } else {
                    Some(rest.to_string())
                };
                continue;
            }
            let Some(lang) = &lang else { continue };
            let starts = ["torture", "scripts/", "cargo ", "python3 ", "target/", "N="]
                .iter()
                .any(|w| t.starts_with(w));
            if t.starts_with("$ ")
                || (["sh", "bash"].contains(&lang.as_str()) && starts && !previous.ends_with('\\'))
            {
                found.insert(format!("{file}:{}", n + 1));
            }
            previous = t.to_string();
        }
    }
    found
}

#[test]
fn every_command_in_the_docs_is_run_or_excluded_with_a_reason() {
    let o = doc_commands().arg("--list").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let out = text(&o.stdout);
    let mut listed = BTreeSet::new();
    let (mut run, mut excluded) = (0, 0);
    for line in out.lines().filter(|l| !l.starts_with("doc-commands:")) {
        let (status, rest) = line.split_once("  ").unwrap_or_else(|| panic!("{line}"));
        if status == "RUN" || status.starts_with("RUN(exit 0 or 1: ") {
            run += 1;
        } else {
            let reason = status
                .strip_prefix("EXCLUDED(")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or_else(|| panic!("neither run nor excluded: {line}"));
            assert!(reason.len() > 10, "a reason, not a word: {line}");
            excluded += 1;
        }
        listed.insert(rest.split_whitespace().next().unwrap().to_string());
    }
    assert!(run > 20 && excluded > 0, "{out}");
    let expected = command_lines_in_docs();
    assert!(expected.len() > 20, "{expected:?}");
    let missing: Vec<_> = expected.difference(&listed).cloned().collect();
    assert!(
        missing.is_empty(),
        "commands the script does not see: {missing:?}\n{out}"
    );
    // The small size, and nothing written into the repository.
    assert!(out.contains("--iterations 2 "), "{out}");
    for line in out
        .lines()
        .filter(|l| l.starts_with("RUN") && l.contains("torture exec"))
    {
        assert!(line.contains("--out /"), "{line}");
    }
}

#[test]
fn a_new_doc_command_is_run_and_a_failing_or_unmarked_one_fails_the_script() {
    let tmp = tempfile::tempdir().unwrap();
    let doc = tmp.path().join("new.md");
    std::fs::write(
        &doc,
        "Text.\n\n```sh\ntorture profiles   # the profiles\ntorture -n 5000 --profile wal-full \\\n    --seed 3\ntorture no-such-command\n```\n",
    )
    .unwrap();
    let o = doc_commands()
        .arg("--list")
        .arg("--docs")
        .arg(&doc)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let out = text(&o.stdout);
    let run: Vec<&str> = out.lines().filter(|l| l.starts_with("RUN")).collect();
    assert_eq!(run.len(), 3, "{out}");
    assert!(
        run[1].contains("-n 2 --profile wal-full --seed 3") && run[1].contains("--out /"),
        "{out}"
    );

    let o = doc_commands().arg("--docs").arg(&doc).output().unwrap();
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{}", say(&o));
    let status: Vec<&str> = out.lines().map(|l| l.split("  ").next().unwrap()).collect();
    assert_eq!(status[..3], ["PASS", "PASS", "FAIL"], "{out}");
    assert!(out.contains("1 failed"), "{out}");

    // Only torture's own flags change: a program's, after `--`, stay as written.
    let program = tmp.path().join("program.md");
    std::fs::write(
        &program,
        "```sh\ntorture exec -- python3 w.py -n 5 --out x {db}\n```\n",
    )
    .unwrap();
    let o = doc_commands()
        .arg("--list")
        .arg("--docs")
        .arg(&program)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let out = text(&o.stdout);
    let line = out.lines().next().unwrap();
    assert!(line.contains("torture exec -n 2 --out /"), "{line}");
    assert!(
        line.ends_with(" -- python3 w.py -n 5 --out x {db}"),
        "{line}"
    );

    // A command in a block not marked as shell is an error, not a silent skip.
    std::fs::write(&doc, "```\ntorture --profile wal-full -n 10\n```\n").unwrap();
    let o = doc_commands()
        .arg("--list")
        .arg("--docs")
        .arg(&doc)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", say(&o));
    assert!(text(&o.stdout).contains("mark it ```sh"), "{}", say(&o));
}
