//! `torture completions SHELL` and `torture man`: shell completions and man pages generated from the
//! clap definition in `cli.rs`, so they list exactly the flags `--help` lists (`--sqlite` and
//! `--engine-version` included: `engine/versions.rs` takes them off the line before clap parses,
//! and `cli.rs` declares them for this and for --help).

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// The completion script for `shell` (the generator builds the command: global flags such as
/// `--sqlite` reach every subcommand).
pub fn completions(shell: Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut Cli::command(), "torture", out);
}

/// The clap definition as the man pages show it: built, so global flags reach the subcommands and
/// each subcommand carries its full name (`torture-exec`); no `help` subcommand page.
fn man_command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Writes `torture.1` and one page per subcommand (`torture-exec.1`, `torture-scenario-run.1`, …)
/// into `dir`, creating it; returns the files written.
pub fn man_pages(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    fn walk(
        cmd: &clap::Command,
        dir: &Path,
        written: &mut Vec<std::path::PathBuf>,
    ) -> std::io::Result<()> {
        written.push(clap_mangen::Man::new(cmd.clone()).generate_to(dir)?);
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, dir, written)?;
        }
        Ok(())
    }
    walk(&man_command(), dir, &mut written)?;
    Ok(written)
}

/// `torture.1` alone, for `torture man` without --out.
pub fn man_page(out: &mut dyn Write) -> std::io::Result<()> {
    clap_mangen::Man::new(man_command()).render(out)
}
