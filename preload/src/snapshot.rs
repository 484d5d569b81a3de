//! The folder's contents before the program starts: the base the crash states are built from.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One file of the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapFile {
    pub ino: u64,
    pub data: Vec<u8>,
}

/// Regular files under a folder, by path relative to it (taken as durable: they were there before
/// the program started).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub files: BTreeMap<PathBuf, SnapFile>,
}

/// Reads every regular file under `dir` (recursively). Call it before the program starts.
pub fn snapshot(dir: &Path) -> std::io::Result<Snapshot> {
    let mut snap = Snapshot::default();
    walk(dir, Path::new(""), &mut snap)?;
    Ok(snap)
}

fn walk(root: &Path, rel: &Path, snap: &mut Snapshot) -> std::io::Result<()> {
    for entry in std::fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let meta = std::fs::symlink_metadata(entry.path())?;
        let rel_path = rel.join(entry.file_name());
        if meta.is_dir() {
            walk(root, &rel_path, snap)?;
        } else if meta.is_file() {
            let data = std::fs::read(entry.path())?;
            snap.files.insert(
                rel_path,
                SnapFile {
                    ino: meta.ino(),
                    data,
                },
            );
        }
    }
    Ok(())
}
