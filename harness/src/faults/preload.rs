//! The file-operation recorder (`torture-preload`, issue 13) as `torture exec` uses it: finding
//! `libtorture_preload.so`, and the environment a recorded program starts with.
//!
//! The variables are set in the slot's own environment only for the moment its program is
//! spawned ([`RecorderEnv::apply`] returns a guard that restores them): the slot is single-threaded,
//! `std::process::Command` copies the environment at spawn, and the recorder linked into this
//! binary reads them only in its constructor, so the slot itself stays inert.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use torture_preload::env;

/// The recorder this binary was built with (harness/build.rs builds `preload/` and embeds it).
static RECORDER: &[u8] = include_bytes!(env!("TORTURE_PRELOAD_SO"));

/// Where `libtorture_preload.so` is for the running binary; `Err` is one line naming the fix.
///
/// One recorder, whatever the install: the one embedded in this binary, written on first use into
/// the cache (`$XDG_CACHE_HOME/torture/recorder/`, else `~/.cache/…`) under a name carrying its
/// checksum, so binaries of different builds never share one; a file there that differs from it
/// (a torn write, an edit) is replaced.
pub fn library() -> Result<PathBuf, String> {
    static AT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    AT.get_or_init(|| install(&crate::engine::versions::cache_dir().join("recorder")))
        .clone()
}

fn install(dir: &Path) -> Result<PathBuf, String> {
    // FNV-1a: a name, not a defence; the content is compared below.
    let sum = RECORDER.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    let path = dir.join(format!("libtorture_preload-{sum:016x}.so"));
    if std::fs::read(&path).is_ok_and(|b| b == RECORDER) {
        return Ok(path);
    }
    let fail = |e: std::io::Error| {
        format!(
            "cannot write the file-operation recorder into {}: {e} — set XDG_CACHE_HOME to a writable folder",
            dir.display()
        )
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let tmp = dir.join(format!(
        ".libtorture_preload-{sum:016x}.{}.tmp",
        std::process::id()
    ));
    let written = (|| {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o755)
            .open(&tmp)?;
        f.write_all(RECORDER)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    Ok(path)
}

/// What one recorded run of a program needs in its environment.
#[derive(Clone, Debug)]
pub struct RecorderEnv {
    pub library: PathBuf,
    /// The database folder: only its files are recorded.
    pub dir: PathBuf,
    /// The log, outside the folder.
    pub log: PathBuf,
    /// Seeds the program's randomness (`getrandom`, `/dev/urandom`).
    pub seed: u64,
    /// `TORTURE_FAULTFS_FAIL_AT`, for io-error and disk-full.
    pub fail_at: Option<String>,
}

impl RecorderEnv {
    /// The variables, in order; `LD_PRELOAD` keeps what the user preloads after the recorder.
    pub fn vars(&self) -> Vec<(&'static str, OsString)> {
        let mut preload = self.library.clone().into_os_string();
        if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
            preload.push(":");
            preload.push(old);
        }
        let mut v = vec![
            ("LD_PRELOAD", preload),
            (env::DIR, self.dir.clone().into_os_string()),
            (env::LOG, self.log.clone().into_os_string()),
            (env::ACKFD, "1".into()),
            (env::SEED, self.seed.to_string().into()),
        ];
        if let Some(f) = &self.fail_at {
            v.push((env::FAIL_AT, f.into()));
        }
        v
    }

    /// Sets the variables in this process until the guard drops. Call only single-threaded, only
    /// around the spawn of the recorded program (never around the lab's own checks).
    pub fn apply(&self) -> EnvGuard {
        let mut saved = Vec::new();
        for name in [env::CRASH_AT, env::FAIL_AT] {
            saved.push((name, std::env::var_os(name)));
            std::env::remove_var(name);
        }
        for (name, value) in self.vars() {
            saved.push((name, std::env::var_os(name)));
            std::env::set_var(name, value);
        }
        EnvGuard { saved }
    }
}

/// Restores the environment [`RecorderEnv::apply`] changed.
pub struct EnvGuard {
    saved: Vec<(&'static str, Option<OsString>)>,
}

impl Drop for EnvGuard {
    fn drop(&mut self) {
        for (name, old) in self.saved.drain(..).rev() {
            match old {
                Some(v) => std::env::set_var(name, v),
                None => std::env::remove_var(name),
            }
        }
    }
}

/// A fresh log path in `dir` (the log and its `.lock` removed if a previous trial left them).
pub fn fresh_log(dir: &Path) -> PathBuf {
    let log = dir.join("faultfs.log");
    let _ = std::fs::remove_file(&log);
    let mut lock = log.clone().into_os_string();
    lock.push(".lock");
    let _ = std::fs::remove_file(PathBuf::from(lock));
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_gets_the_recorder_first_and_the_fault() {
        let e = RecorderEnv {
            library: "/x/libtorture_preload.so".into(),
            dir: "/d".into(),
            log: "/l".into(),
            seed: 7,
            fail_at: Some("sync:3:eio".into()),
        };
        let v = e.vars();
        assert!(v[0]
            .1
            .to_string_lossy()
            .starts_with("/x/libtorture_preload.so"));
        assert!(v.contains(&(env::DIR, "/d".into())));
        assert!(v.contains(&(env::SEED, "7".into())));
        assert!(v.contains(&(env::FAIL_AT, "sync:3:eio".into())));
    }

    #[test]
    fn the_embedded_recorder_is_written_once_and_a_damaged_copy_replaced() {
        let t = tempfile::tempdir().unwrap();
        let p = install(t.path()).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), RECORDER);
        let again = install(t.path()).unwrap();
        assert_eq!(p, again);
        std::fs::write(&p, b"torn").unwrap();
        assert_eq!(install(t.path()).unwrap(), p);
        assert_eq!(std::fs::read(&p).unwrap(), RECORDER);
        // Only the library is left: no temporary file.
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_unwritable_cache_is_one_line() {
        let e = install(Path::new("/proc/torture-no-such-dir")).unwrap_err();
        assert!(e.contains("XDG_CACHE_HOME") && !e.contains('\n'), "{e}");
    }
}
