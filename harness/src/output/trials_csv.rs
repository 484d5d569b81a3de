//! `OUT/trials.csv`: one row per trial, written and flushed the moment the trial ends, "because we
//! would risk losing them if a later one fails" (hyperfine). Each row reaches the file in one write,
//! so killing the parent never leaves half a row; a write that fails part-way (a full disk) is cut
//! back off, so the file always ends with a whole row.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use crate::verify::outcome::TrialRecord;

pub struct TrialsCsv {
    file: File,
    /// The file's length: where the last whole row ends.
    len: u64,
    row: Vec<u8>,
}

impl TrialsCsv {
    /// Creates the file (it must not exist) and writes the header.
    pub fn create(path: &Path) -> io::Result<TrialsCsv> {
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        let mut csv = TrialsCsv {
            file,
            len: 0,
            row: Vec::new(),
        };
        csv.write_header()?;
        Ok(csv)
    }

    fn write_header(&mut self) -> io::Result<()> {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        w.write_record(header())?;
        self.row = w
            .into_inner()
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.write_row()
    }

    /// One `write` of the whole row; if it fails part-way, the file is cut back to its last whole row.
    fn write_row(&mut self) -> io::Result<()> {
        match self.file.write_all(&self.row) {
            Ok(()) => {
                self.len += self.row.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Cut back and put the offset back too: a file opened without O_APPEND would
                // otherwise write its next row after a hole.
                let _ = self.file.set_len(self.len);
                let _ = std::io::Seek::seek(&mut self.file, std::io::SeekFrom::Start(self.len));
                Err(e)
            }
        }
    }

    /// Opens an existing file to add rows to (resuming a run). A row the previous parent was killed
    /// in the middle of writing is cut off first; that trial simply runs again.
    pub fn open_append(path: &Path) -> io::Result<TrialsCsv> {
        // Read only the head and the tail: the file may be large, or planted (issue 20 R8).
        let (whole, head) = {
            use std::io::{Read, Seek, SeekFrom};
            let mut f = File::open(path)?;
            let len = f.metadata()?.len();
            let mut head = Vec::new();
            (&mut f).take(64 << 10).read_to_end(&mut head)?;
            // A host that crashed while the file grew can leave its tail as zeros (the size made
            // durable, the bytes not): torture never writes a NUL, so up to 256 MiB of them (what
            // a page cache holds unwritten) are skipped before the torn row is looked for. More
            // is not a crash's tail: refused below, nothing cut.
            const MAX_ZEROS: u64 = 256 << 20;
            let mut end = len;
            let mut skipped = len;
            while end > 0 && len - end < MAX_ZEROS {
                let start = end.saturating_sub(64 << 10);
                let mut buf = vec![0u8; (end - start) as usize];
                f.seek(SeekFrom::Start(start))?;
                f.read_exact(&mut buf)?;
                match buf.iter().rposition(|&b| b != 0) {
                    Some(i) => {
                        skipped = start + i as u64 + 1;
                        break;
                    }
                    None if start == 0 => skipped = 0,
                    None => {}
                }
                end = start;
            }
            let len = skipped;
            let mut end = len;
            // The last newline, looked for no further back than the longest row torture writes.
            let mut whole = 0;
            let floor = len.saturating_sub(crate::fsio::MAX_ROW_BYTES as u64 + 1);
            let mut chunk = vec![0u8; 64 << 10];
            while end > floor {
                let start = end.saturating_sub(chunk.len() as u64).max(floor);
                let buf = &mut chunk[..(end - start) as usize];
                f.seek(SeekFrom::Start(start))?;
                f.read_exact(buf)?;
                if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
                    whole = start + i as u64 + 1;
                    break;
                }
                end = start;
            }
            if whole == 0 && floor > 0 {
                return Err(io::Error::other(format!(
                    "its last row is longer than {} KiB, more than torture ever writes in one: \
                     not a file torture wrote (or cut it after its last whole row to resume)",
                    crate::fsio::MAX_ROW_BYTES / 1024
                )));
            }
            (whole, head)
        };
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(whole)?;
        drop(file);
        let current = format!("{}\n", header().join(","));
        if whole > 0 && !head.starts_with(current.as_bytes()) {
            // An older file with fewer columns: rewritten with today's header (new columns default).
            let rows = read(path).map_err(io::Error::other)?;
            std::fs::remove_file(path)?;
            let mut csv = TrialsCsv::create(path)?;
            for r in &rows {
                csv.append(r)?;
            }
            return Ok(csv);
        }
        let file = OpenOptions::new().append(true).open(path)?;
        let mut csv = TrialsCsv {
            file,
            len: whole,
            row: Vec::new(),
        };
        if whole == 0 {
            csv.write_header()?;
        }
        Ok(csv)
    }

    /// Appends one row in one write: on disk whole when this returns `Ok`, absent when it errs.
    pub fn append(&mut self, record: &TrialRecord) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.row);
        buf.clear();
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(buf);
        w.serialize(record)?;
        self.row = w
            .into_inner()
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.write_row()
    }
}

/// Columns added after the first release, at the end and defaulted: a file without them still reads.
pub const ADDED_LATER: [&str; 3] = ["crash_states", "damaged_states", "cuts_in_checkpoint"];

/// The column names, in order: the field names of [`TrialRecord`].
pub fn header() -> Vec<&'static str> {
    vec![
        "iteration",
        "seed",
        "profile",
        "journal_mode",
        "synchronous",
        "connections",
        "processes",
        "workload",
        "fault",
        "kill_point",
        "acked_commits",
        "recovered_commits",
        "outcome",
        "verdict",
        "detail",
        "busy_errors",
        "pragma_fallback",
        "duration_us",
        "sqlite_version",
        "crash_states",
        "damaged_states",
        "cuts_in_checkpoint",
    ]
}

/// Reads a `trials.csv` back.
/// Every row at most [`crate::fsio::MAX_ROW_BYTES`].
pub fn read(path: &Path) -> Result<Vec<TrialRecord>, csv::Error> {
    let file = std::fs::File::open(path).map_err(csv::Error::from)?;
    let mut reader = csv::Reader::from_reader(crate::fsio::RowCapped::new(file));
    reader.deserialize().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::outcome::{Outcome, Verdict};

    pub fn sample(iteration: u64, outcome: Outcome) -> TrialRecord {
        TrialRecord {
            iteration,
            seed: 42,
            profile: "wal-full".into(),
            journal_mode: "wal".into(),
            synchronous: "full".into(),
            connections: 1,
            processes: 1,
            workload: "inserts".into(),
            fault: "sigkill".into(),
            kill_point: "acks=3+10us".into(),
            acked_commits: 3,
            recovered_commits: 4,
            outcome,
            verdict: Verdict::Ok,
            detail: "a, \"quoted\" detail".into(),
            busy_errors: 0,
            pragma_fallback: String::new(),
            duration_us: 1234,
            sqlite_version: "3.54.1".into(),
            crash_states: 0,
            damaged_states: 0,
            cuts_in_checkpoint: 0,
        }
    }

    #[test]
    fn header_names_every_field_in_order() {
        // Serialize one record with serde's own header and compare.
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(sample(0, Outcome::Intact)).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next().unwrap(), header().join(","));
    }

    #[test]
    fn rows_round_trip_and_each_is_on_disk_after_append() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("trials.csv");
        let mut csv = TrialsCsv::create(&path).unwrap();
        csv.append(&sample(0, Outcome::Intact)).unwrap();
        // Flushed: readable by another handle before the writer is dropped.
        assert_eq!(read(&path).unwrap().len(), 1);
        csv.append(&sample(1, Outcome::Corrupt)).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(
            back,
            vec![sample(0, Outcome::Intact), sample(1, Outcome::Corrupt)]
        );
        assert!(
            TrialsCsv::create(&path).is_err(),
            "never overwrites results"
        );
    }

    #[test]
    fn an_older_file_without_the_crash_state_columns_reads_and_resumes() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("trials.csv");
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(sample(0, Outcome::Intact)).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        let old: String = text
            .lines()
            .map(|l| l.rsplitn(4, ',').last().unwrap().to_string() + "\n")
            .collect();
        std::fs::write(&path, old).unwrap();
        assert_eq!(read(&path).unwrap(), vec![sample(0, Outcome::Intact)]);
        let mut csv = TrialsCsv::open_append(&path).unwrap();
        let mut s = sample(1, Outcome::Corrupt);
        s.crash_states = 7;
        csv.append(&s).unwrap();
        assert_eq!(read(&path).unwrap(), vec![sample(0, Outcome::Intact), s]);
    }

    #[test]
    fn a_tail_of_zeros_left_by_a_host_crash_is_cut_on_resume() {
        // Two whole rows, a torn third, then 3 MiB of zeros: more than the longest row, so only
        // skipping the zeros finds the torn row to cut.
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("trials.csv");
        let mut csv = TrialsCsv::create(&path).unwrap();
        csv.append(&sample(0, Outcome::Intact)).unwrap();
        csv.append(&sample(1, Outcome::Corrupt)).unwrap();
        drop(csv);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"2,123,wal-fu");
        bytes.resize(bytes.len() + (3 << 20), 0);
        std::fs::write(&path, &bytes).unwrap();
        let mut csv = TrialsCsv::open_append(&path).unwrap();
        csv.append(&sample(2, Outcome::Intact)).unwrap();
        assert_eq!(
            read(&path).unwrap(),
            vec![
                sample(0, Outcome::Intact),
                sample(1, Outcome::Corrupt),
                sample(2, Outcome::Intact)
            ]
        );
    }
}
