//! Prints a recorded log, one op a line: `cargo run --release -p torture-preload --example faultlog -- LOG`.

use std::io::Write;
use std::path::PathBuf;

use torture_preload::{read_log, OpKind};

fn main() {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: faultlog LOG");
        std::process::exit(2);
    };
    let log = match read_log(&path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("faultlog: {e}");
            std::process::exit(1);
        }
    };
    // `faultlog LOG | head` closes the pipe early: stop quietly then, never panic.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for op in &log.ops {
        let detail = match &op.kind {
            OpKind::Write {
                path, offset, data, ..
            } => format!("{} @{} +{}", path.display(), offset, data.len),
            OpKind::Open {
                path,
                fd,
                created,
                truncated,
                is_dir,
                ..
            } => format!(
                "{} fd {fd}{}{}{}",
                path.display(),
                if *created { " created" } else { "" },
                if *truncated { " truncated" } else { "" },
                if *is_dir { " dir" } else { "" }
            ),
            OpKind::Sync {
                path, how, is_dir, ..
            } => format!(
                "{} {how:?}{}",
                path.display(),
                if *is_dir { " dir" } else { "" }
            ),
            OpKind::Ack { data, .. } => String::from_utf8_lossy(data).trim_end().to_string(),
            other => format!("{other:?}").chars().take(120).collect(),
        };
        let line = writeln!(
            out,
            "{:>6} pid {:>7} {:<11} {}{}",
            op.seq,
            op.pid,
            op.kind.name(),
            detail,
            if op.errno != 0 {
                format!(
                    " errno {}{}",
                    op.errno,
                    if op.injected { " injected" } else { "" }
                )
            } else {
                String::new()
            }
        );
        if line.is_err() {
            std::process::exit(0);
        }
    }
    let end = writeln!(
        out,
        "{} ops, {} processes, torn tail {} bytes, coverage {:?}",
        log.ops.len(),
        log.processes(),
        log.torn_tail_bytes,
        log.coverage()
    )
    .and_then(|()| out.flush());
    if end.is_err() {
        std::process::exit(0);
    }
}
