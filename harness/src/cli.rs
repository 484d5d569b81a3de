//! The command line as typed: raw clap types, no validation beyond syntax. `options.rs` turns these
//! into the options the program runs with.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "torture",
    version,
    about = "Crash-torture lab for SQLite: fork writers, kill them at seeded points, recover, verify every acknowledged commit, record to CSV.",
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  torture --profile wal-full,wal-normal -n 2000            SIGKILL trials of two profiles
  torture --fault power-loss --profile all -n 200          the synchronous matrix under power loss
  torture --sqlite 3.51.2 --profile wal-full -n 500        the same, on another SQLite version
  torture exec --fault power-loss -- python3 app.py {db}   your own program (it prints `ack N`)
  torture report results/a results/b                        compare runs side by side (Fisher's p)
  torture --resume results/20261204-134408-seed7           continue a run that was interrupted

Exit codes: 0 no violation, 1 a violation of SQLite's documented promises, 2 bad usage, 3 lab error (worker-error trials), 130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    // `engine::versions::prepare` takes this flag off the line before clap parses it; it is declared
    // here so that --help lists it.
    /// Run the whole lab (writers, faults, oracle) on this SQLite: a version (`3.51.2`, built once
    /// from a registry package that bundles it), or a path to a sqlite3.c or libsqlite3.so. Any
    /// command.
    #[arg(
        long,
        global = true,
        value_name = "VERSION|PATH",
        help_heading = "What to torture"
    )]
    pub sqlite: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the built-in pragma profiles and what each sets.
    Profiles {
        /// Also list the profiles of this TOML file.
        #[arg(long)]
        profile_file: Option<PathBuf>,
    },
    /// List the workloads.
    Workloads,
    /// Re-run one failed trial from its evidence folder (OUT/failures/<iteration>) and say whether
    /// the same outcome came back (for op-indexed faults: the same files, byte for byte).
    Replay {
        /// The trial's evidence folder.
        failure: PathBuf,
        /// Run the commands the folder's trial.json names (its --verify-cmd, --python): only for a
        /// folder you trust. Without it replay executes nothing the folder asks for.
        #[arg(long)]
        trust_folder: bool,
        /// The invariant command to run on the saved files ({db}, TORTURE_DB), named again here
        /// instead of the folder's.
        #[arg(long)]
        verify_cmd: Option<String>,
        /// The interpreter for a DuckDB or libSQL re-check, named again here instead of the folder's.
        #[arg(long)]
        python: Option<String>,
    },
    /// Statistics and comparisons over result folders (or trials.csv files): shards of one run are
    /// joined; separate runs are set side by side, labelled by what differs, and the same profile ×
    /// workload × fault is compared across them with Fisher's exact test.
    #[command(after_help = "Examples:
  torture report results/run                          one run, in the terminal
  torture report out/shard-1 out/shard-2 --format html > report.html
  torture report sqlite-3.51.2 sqlite-3.54.1 --format markdown   two SQLite versions side by side")]
    Report {
        /// Result folders or trials.csv files.
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// table, markdown, csv, json or html (one self-contained page with charts).
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Torture any program: run COMMAND with a fresh database path per trial ({db} in its arguments,
    /// TORTURE_DB in its environment), SIGKILL it at a seeded time, verify the database. The program
    /// prints `ack N` on stdout after its commit N returned (see workloads/exec/README.md).
    #[command(after_help = "Examples:
  torture exec -n 100 -- python3 app.py {db}                  SIGKILL at seeded times
  torture exec --fault power-loss -- python3 app.py {db}      every crash state at each sync
  torture exec --engine duckdb --engine-version 1.5.6 -- python3 duck.py {db}")]
    Exec(Box<ExecArgs>),
    /// Crash bugs nobody wrote a trigger for: generated transaction programs run under a fault,
    /// judged by a prefix-consistency oracle, shrunk when they fail, filed in OUT/<engine>-<version>/.
    Hunt(Box<HuntArgs>),
    /// The postmortems as named scenarios: `scenario list`, `scenario run NAME`.
    Scenario {
        #[command(subcommand)]
        action: ScenarioAction,
    },
    /// Join the result folders of shards (`--partition K/N`) into one folder OUT.
    #[command(after_help = "Example:
  torture merge merged/inserts out/shard-1/inserts out/shard-2/inserts")]
    Merge {
        /// The folder to write (must be new or empty).
        out: PathBuf,
        /// The shards' result folders.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Merge an incomplete set of shards anyway; run.json and the report say it is partial.
        #[arg(long)]
        partial: bool,
    },
    /// Print the completion script for SHELL (generated from this command line's definition).
    #[command(after_help = "Examples:
  torture completions bash > ~/.local/share/bash-completion/completions/torture
  torture completions zsh > ~/.zfunc/_torture        (with fpath+=(~/.zfunc) in ~/.zshrc)
  torture completions fish > ~/.config/fish/completions/torture.fish")]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages: torture.1 and one per subcommand (torture-exec.1, torture-report.1, …).
    #[command(after_help = "Examples:
  torture man --out ~/.local/share/man/man1     then `man torture`, `man torture-exec`
  torture man | man -l -                        read torture.1 without installing it")]
    Man {
        /// The folder to write every page into (created if missing). Without it, torture.1 alone is
        /// printed on stdout.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Profiles to torture, comma-separated; `*` globs (`wal-*`, `*-full`) and `all` work.
    /// Default: `wal-full`, or with --profile-file and no --profile, the file's profiles.
    #[arg(help_heading = "What to torture", short, long, value_delimiter = ',')]
    pub profile: Option<Vec<String>>,

    /// A TOML file of custom profiles (`[[profile]]` tables); they join the built-in ones.
    #[arg(help_heading = "What to torture", long)]
    pub profile_file: Option<PathBuf>,

    /// Workload each writer runs: inserts, bank or mixed.
    #[arg(
        help_heading = "What to torture",
        short,
        long,
        default_value = "inserts"
    )]
    pub workload: String,

    /// Run only shard K of N (`--partition 2/4`): a contiguous block of the trial indices. The N shards
    /// of one seed together are exactly the unsharded run; `torture merge` joins their folders.
    #[arg(help_heading = "How many, and where", long)]
    pub partition: Option<String>,

    /// Continue the run in this results folder, which a kill or Ctrl-C interrupted: its settings come
    /// from OUT/run.json; finished trials are neither lost nor repeated.
    #[arg(help_heading = "How many, and where", long, value_name = "OUT", conflicts_with_all = [
        "profile", "profile_file", "workload", "iterations", "duration", "seed", "out",
        "kill_after", "kill_delay", "trial_timeout", "max_commits", "partition", "fail_on",
        "fault", "crash_at", "fault_commits", "sector_size", "lying_disk", "no_powersafe_overwrite", "crash_recovery",
        "max_states",
        "engine", "key"
    ])]
    pub resume: Option<PathBuf>,

    /// With --resume of a `torture exec` run: run the program (and --verify-cmd) that OUT/run.json
    /// names. Without it, resume refuses a folder that asks to run a program.
    #[arg(help_heading = "How many, and where", long, requires = "resume")]
    pub trust_folder: bool,

    #[command(flatten)]
    pub kill: KillArgs,

    /// Commits after which a writer stops by itself (the trial then ends without a kill).
    #[arg(help_heading = "What to torture", long, default_value_t = 100_000)]
    pub max_commits: u64,

    /// The fault: `sigkill` (the parent kills the writers at a seeded point); the others run every
    /// writer once under the file-operation recorder and check up to --max-states crash states of
    /// that recording: `kill-at-op` (a SIGKILL just before each operation: everything written
    /// kept), `power-loss` (at each sync: unsynced writes kept, lost or torn), `io-error` /
    /// `disk-full` (one operation fails with EIO, or ENOSPC and every later one; the writers carry
    /// on; then every crash state of that run). Any profile: several processes and connections too.
    #[arg(help_heading = "Kills and faults", long, default_value = "sigkill")]
    pub fault: String,

    /// Fixes the cut (kill-at-op, power-loss: `KIND[:FILE]:N`) or the failing operation (io-error,
    /// disk-full: `KIND:N`, no file part), counted in the recorder's operations. KIND
    /// any|write|sync|truncate|delete, FILE any|db|wal|journal, N 1-based. Without N: kill-at-op
    /// and power-loss check every cut; io-error and disk-full draw N from the trial's seed over the
    /// operations of that kind an uncrashed probe run makes.
    #[arg(help_heading = "Kills and faults", long, default_value = "any")]
    pub crash_at: String,

    /// Commits each writer makes in an op-indexed trial (the workload is bounded so its operations
    /// can be counted).
    #[arg(help_heading = "Kills and faults", long, default_value_t = 20)]
    pub fault_commits: u64,

    /// Power loss, io-error, disk-full: sector size for torn writes.
    #[arg(help_heading = "Kills and faults", long, default_value_t = 512)]
    pub sector_size: u32,

    /// Power loss, io-error, disk-full: a disk that ignores fsync (breaks an assumption SQLite
    /// documents).
    #[arg(help_heading = "Kills and faults", long)]
    pub lying_disk: bool,

    /// Power loss, io-error, disk-full: a torn write also garbles the rest of its sector (breaks
    /// powersafe overwrite).
    #[arg(help_heading = "Kills and faults", long)]
    pub no_powersafe_overwrite: bool,

    /// After the fault, crash the first process that opens the database in the middle of its
    /// recovery (at an operation drawn over an uncrashed recovery's), then recover and verify.
    #[arg(help_heading = "Kills and faults", long)]
    pub crash_recovery: bool,

    /// kill-at-op, power-loss, io-error, disk-full: at most this many crash states of a trial's
    /// recording are checked (a seeded sample when there are more).
    #[arg(help_heading = "Kills and faults", long, default_value_t = 64)]
    pub max_states: u64,

    /// The engine: `sqlite` (bundled) or `sqlcipher` (every connection runs `PRAGMA key` first; needs
    /// the SQLCipher build, scripts/build-sqlcipher).
    #[arg(help_heading = "What to torture", long, default_value = "sqlite")]
    pub engine: String,

    /// SQLCipher key: a passphrase (PBKDF2 on every open, ~0.1 s each) or a raw key `x'<64 hex>'`
    /// (the default, a fixed test key). It is recorded in run.json: use a test key.
    #[arg(help_heading = "What to torture", long)]
    pub key: Option<String>,

    #[command(flatten)]
    pub common: CommonArgs,
}

/// The default of `--kill-delay`, for `run` and `scenario run` alike.
pub const DEFAULT_KILL_DELAY: &str = "0us..300us";

/// Where `run` and `scenario run` kill (exec has its own `--kill-after`: a time since the start).
#[derive(Clone, Debug, Args)]
pub struct KillArgs {
    /// Kill point: after K acknowledged commits, K drawn from `LOW..HIGH` (e.g. `1..20`), or at a time
    /// drawn from a window since the fork (e.g. `2ms..30ms`).
    #[arg(help_heading = "Kills and faults", long, default_value = "1..20")]
    pub kill_after: String,

    /// With a commit window: an extra delay drawn from this window before the kill, counted in the
    /// writer's own CPU time, so kills land anywhere inside the next few transactions (one takes
    /// 30-150us on tmpfs), not just after an ack, however loaded the machine is.
    #[arg(help_heading = "Kills and faults", long, default_value = DEFAULT_KILL_DELAY)]
    pub kill_delay: String,
}

/// The flags `run`, `exec` and `scenario run` share. Counts and times whose default differs by
/// command are `None` here; `options.rs` fills in each command's default.
#[derive(Clone, Debug, Default, Args)]
pub struct CommonArgs {
    /// Trials per profile (default 1000; exec 100; scenario run 200 per variant).
    #[arg(help_heading = "How many, and where", short = 'n', long, allow_negative_numbers = true, value_parser = parse_count)]
    pub iterations: Option<u64>,

    /// Run for this long instead of a number of iterations (e.g. `90s`, `10m`, `2h`); profiles still
    /// take turns, so their counts differ by at most one.
    #[arg(
        help_heading = "How many, and where",
        long,
        conflicts_with = "iterations"
    )]
    pub duration: Option<String>,

    /// Master seed; every trial's seed derives from it and the trial's index. Random if omitted.
    #[arg(help_heading = "How many, and where", short, long)]
    pub seed: Option<u64>,

    /// Results folder (default: a new folder under ./results).
    #[arg(help_heading = "Output", short, long)]
    pub out: Option<PathBuf>,

    /// Trials run in parallel (default: the number of cores).
    #[arg(help_heading = "How many, and where", short, long)]
    pub jobs: Option<usize>,

    /// Where trial databases live (default: a private folder on /dev/shm when there is one, else the
    /// system temp dir). Point it at a real file system to test that file system.
    #[arg(help_heading = "How many, and where", long)]
    pub dir: Option<PathBuf>,

    /// Kill a trial that has not reached its kill point after this long, and say so in the CSV
    /// (default 10s; exec 60s; scenario run 20s).
    #[arg(help_heading = "Kills and faults", long)]
    pub trial_timeout: Option<String>,

    /// What makes the run exit 1: `violation` (only outcomes SQLite's documentation rules out for the
    /// profile) or `any` (any trial that is not intact, as a team testing its own profile wants).
    #[arg(help_heading = "Output", long, default_value = "violation", value_parser = ["violation", "any"])]
    pub fail_on: String,

    /// Also write a JUnit XML report here: one test case per profile × workload × fault.
    #[arg(help_heading = "Output", long)]
    pub junit: Option<PathBuf>,

    /// Keep the evidence (files, notes) of at most this many failed trials; their rows are always
    /// written. 0 keeps none.
    #[arg(help_heading = "Output", long, default_value_t = 100)]
    pub max_evidence: u64,

    /// Keep at most this many bytes of evidence in the whole run (e.g. 500M, 2G; 0 keeps none),
    /// and at most a quarter of it per trial: a larger folder loses its biggest files first, and
    /// its trial.json lists them. A repeated expected loss (same profile × workload × fault)
    /// keeps no folder: the first is the group's example.
    #[arg(help_heading = "Output", long, default_value = "1G", allow_negative_numbers = true, value_parser = crate::fsio::parse_bytes)]
    pub max_evidence_bytes: u64,

    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(help_heading = "Output", long)]
    pub no_progress: bool,

    /// Print only warnings, errors and the verdict line (VIOLATION, lab error, interrupted): no
    /// progress bar, no table, nothing on a clean run. The files are written as always.
    #[arg(help_heading = "Output", short, long)]
    pub quiet: bool,
}

/// A count of trials: a whole number, said so in one line when it is not (clap would call `-5` an
/// unexpected argument).
fn parse_count(s: &str) -> Result<u64, String> {
    s.trim().parse::<u64>().map_err(|_| {
        format!("`{s}` is not a count of trials; give a whole number of at least 1, e.g. -n 100")
    })
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Kill window since the program's start (e.g. 200ms..3s); default: calibrated from an
    /// uninterrupted run's acknowledgements.
    #[arg(help_heading = "Kills and faults", long)]
    pub kill_after: Option<String>,
    /// How long the calibration run may take.
    #[arg(help_heading = "Kills and faults", long, default_value = "30s")]
    pub calibration_timeout: String,
    /// Run COMMAND through /bin/sh -c.
    #[arg(help_heading = "The program", long)]
    pub shell: bool,
    /// Copy this database (and its -wal/-journal) in before each trial.
    #[arg(help_heading = "The program", long)]
    pub seed_db: Option<PathBuf>,
    /// SQL answering the highest surviving commit number (e.g. 'SELECT max(seq) FROM t').
    #[arg(help_heading = "Checks after each kill", long)]
    pub recovered_sql: Option<String>,
    /// SQL that must answer `ok` (the program's own invariant).
    #[arg(help_heading = "Checks after each kill", long)]
    pub verify_sql: Option<String>,
    /// A command that must exit 0 on the recovered database ({db}, TORTURE_DB).
    #[arg(help_heading = "Checks after each kill", long)]
    pub verify_cmd: Option<String>,
    /// sqlite, duckdb or libsql (checked with the duckdb / libsql Python package).
    #[arg(
        help_heading = "Checks after each kill",
        long,
        default_value = "sqlite"
    )]
    pub engine: String,
    // Taken off the line by `engine::versions::prepare` before clap parses it; declared for --help.
    /// With --engine duckdb or libsql: check with that release of the package (`1.5.6`), installed
    /// once in a managed venv.
    #[arg(long, value_name = "VERSION", help_heading = "Checks after each kill")]
    pub engine_version: Option<String>,
    /// libsql: the encryption key, given to the program as TORTURE_KEY and used by the check.
    #[arg(help_heading = "Checks after each kill", long)]
    pub key: Option<String>,
    /// The operator's "fix" after each kill, before the check: delete-wal, delete-journal or
    /// db-only (seed 004: "delete the WAL, it will rebuild"). Its damage is judged expected.
    #[arg(help_heading = "Checks after each kill", long)]
    pub after_kill: Option<String>,
    /// The program's journal mode, for the verdict, if it does not print `journal_mode MODE`.
    #[arg(help_heading = "Checks after each kill", long)]
    pub journal_mode: Option<String>,
    /// The program's `synchronous` setting (off, normal, full, extra), for the verdict, if it does
    /// not print `synchronous MODE`. Unknown, a lost commit is judged by its cause in the recording.
    #[arg(help_heading = "Checks after each kill", long)]
    pub synchronous: Option<String>,
    /// Name in the CSV's profile column (exec:NAME).
    #[arg(help_heading = "The program", long)]
    pub name: Option<String>,
    /// Python interpreter for the DuckDB or libSQL check.
    #[arg(
        help_heading = "Checks after each kill",
        long,
        default_value = "python3"
    )]
    pub python: String,
    /// With --kill-after K1..K2 (commits): a delay drawn from this window after the K-th ack.
    #[arg(help_heading = "Kills and faults", long, default_value = "0us..300us")]
    pub kill_delay: String,
    /// Start N copies of the program on the one database (TORTURE_INSTANCE=0..N-1).
    #[arg(help_heading = "The program", long, default_value_t = 1)]
    pub instances: u32,
    /// With --instances: kill all of them at the kill point, or one (the others go on a while).
    #[arg(help_heading = "Kills and faults", long, default_value = "all", value_parser = ["all", "one"])]
    pub kill: String,
    /// Save every trial's files in OUT/evidence/<i> (failures still go to OUT/failures/<i>).
    #[arg(help_heading = "Output", long)]
    pub keep_evidence: bool,
    /// Calibrate on this long a run (or until the program exits) instead of until it showed enough.
    #[arg(help_heading = "Kills and faults", long)]
    pub calibrate_for: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// sigkill (the default), or power-loss, kill-at-op, io-error or disk-full: record the program
    /// once under the file recorder and check a sample of its crash states (docs/exec-faults.md).
    #[arg(help_heading = "Kills and faults", long)]
    pub fault: Option<String>,
    /// Torn-write granularity in bytes, a power of two (default 512).
    #[arg(help_heading = "Kills and faults", long)]
    pub sector_size: Option<u32>,
    /// A disk that ignores fsync: nothing is ever durable.
    #[arg(help_heading = "Kills and faults", long)]
    pub lying_disk: bool,
    /// A torn sector holds garbage, whole (SQLite assumes powersafe overwrite).
    #[arg(help_heading = "Kills and faults", long)]
    pub no_powersafe_overwrite: bool,
    /// An fsync of any file also makes earlier creates, renames and unlinks durable, as ext4, XFS
    /// and btrfs do in practice (default: strict POSIX, only a directory fsync does).
    #[arg(help_heading = "Kills and faults", long)]
    pub fsync_commits_names: bool,
    /// Where to cut the recording: every-sync (default) or every-op (default for kill-at-op).
    #[arg(help_heading = "Kills and faults", long)]
    pub crash_states: Option<String>,
    /// At most this many distinct crash states per trial: a seeded sample that always keeps the
    /// end of the run and the cuts inside WAL checkpoints (default 64, as for built-in writers);
    /// `all` checks every one.
    #[arg(help_heading = "Kills and faults", long)]
    pub max_states: Option<String>,
    /// io-error/disk-full: the failing operation, <kind>:<n>[:persist] (e.g. sync:3); default a
    /// seeded draw among the probe run's syncs (io-error) or writes (disk-full, persisting).
    #[arg(help_heading = "Kills and faults", long)]
    pub fail_at: Option<String>,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ScenarioAction {
    /// List the scenarios, one line each, with their variants.
    List,
    /// Run one scenario; writes trials.csv and summary.csv like a profile run.
    Run(Box<ScenarioRunArgs>),
}

#[derive(Debug, Args)]
pub struct ScenarioRunArgs {
    /// The scenario (`torture scenario list`).
    pub name: String,
    /// Workload of the scenario's writers (wal-init always uses inserts).
    #[arg(short, long, default_value = "inserts")]
    pub workload: String,
    #[command(flatten)]
    pub kill: KillArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn help_of(path: &[&str]) -> String {
        let mut cmd = Cli::command();
        // Built, so global flags (--sqlite) reach the subcommands as they do at run time.
        cmd.build();
        for name in path {
            cmd = cmd.find_subcommand(name).unwrap().clone();
        }
        cmd.render_long_help().to_string()
    }

    #[test]
    fn help_lists_every_flag_under_headings_with_examples() {
        let top = help_of(&[]);
        for heading in [
            "What to torture:",
            "How many, and where:",
            "Kills and faults:",
            "Output:",
            "Examples:",
        ] {
            assert!(top.contains(heading), "{heading}\n{top}");
        }
        assert!(top.contains("--sqlite <VERSION|PATH>"), "{top}");
        let exec = help_of(&["exec"]);
        for needle in [
            "--engine-version <VERSION>",
            "--sqlite",
            "The program:",
            "Examples:",
        ] {
            assert!(exec.contains(needle), "{needle}\n{exec}");
        }
        assert!(help_of(&["report"]).contains("Examples:"));
        // Every flag of the plain run sits under a heading, none left in the catch-all.
        let options: Vec<&str> = top
            .split("\nOptions:\n")
            .nth(1)
            .unwrap()
            .lines()
            .take_while(|l| l.is_empty() || l.starts_with(' '))
            .filter(|l| l.trim_start().starts_with('-'))
            .collect();
        assert_eq!(
            options,
            ["  -h, --help", "  -V, --version"],
            "only --help and --version"
        );
    }

    #[test]
    fn the_version_flags_parse_where_help_lists_them() {
        // `engine::versions::prepare` removes them first; were one to reach clap, it still parses.
        assert!(Cli::try_parse_from(["torture", "--sqlite", "3.51.2", "-n", "1"]).is_ok());
        assert!(
            Cli::try_parse_from(["torture", "exec", "--engine-version", "1.5.6", "--", "p"])
                .is_ok()
        );
    }

    #[test]
    fn exec_takes_everything_after_the_double_dash_as_the_program() {
        let cli = Cli::try_parse_from([
            "torture", "exec", "-n", "3", "--", "python3", "w.py", "--db", "{db}",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Exec(a)) => assert_eq!(a.command, ["python3", "w.py", "--db", "{db}"]),
            other => panic!("{other:?}"),
        }
    }
}

#[derive(Debug, Args)]
pub struct HuntArgs {
    /// sqlite (Python's sqlite3) or duckdb (the duckdb package; --engine-version V for a managed
    /// release).
    #[arg(long, default_value = "sqlite")]
    pub engine: String,
    /// How long to hunt (e.g. 90s, 10m).
    #[arg(long, default_value = "10m")]
    pub budget: String,
    /// power-loss, kill-at-op or sigkill.
    #[arg(long, default_value = "power-loss")]
    pub fault: String,
    /// Program seeds start here (default: drawn).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The hunt's folder: hunt.json (progress), <engine>-<version>/<id>/ (the bug base).
    #[arg(long, default_value = "hunt")]
    pub out: PathBuf,
    /// exec trials per generated program.
    #[arg(long, default_value_t = 2)]
    pub trials: u64,
    /// Transactions per generated program.
    #[arg(long, default_value_t = 12)]
    pub transactions: u32,
    /// A TOML file of statement weights (workloads/hunt/weights.toml lists them).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Continue the hunt in --out.
    #[arg(long)]
    pub resume: bool,
    /// At most this many runs to shrink one finding.
    #[arg(long, default_value_t = 60)]
    pub max_shrink_runs: u32,
    // Taken off the line by `engine::versions::prepare` before clap parses it; declared for --help
    // and the completions.
    /// With --engine duckdb: hunt on that release of the package (`1.5.6`), installed once in a
    /// managed venv.
    #[arg(long, value_name = "VERSION")]
    pub engine_version: Option<String>,
}
