//! Reading big_brother's override files: which names exist under `<data-dir>/up/` and
//! `<data-dir>/down/`. This is the weight module's only I/O, kept apart so the policy stays
//! pure; the driver runs it off the async threads (`spawn_blocking`) once per tick.
//!
//! A missing directory means no overrides. Any other error is returned, and the caller keeps
//! the last state it knew, so an unreadable directory never flips every weight at once.
//! It only lists directories: it never creates, changes or deletes a file.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use super::overrides::FileOverrides;
use crate::types::ClusterName;

/// The names found in `up/` and `down/`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OverrideFiles {
    pub up: BTreeSet<String>,
    pub down: BTreeSet<String>,
}

impl OverrideFiles {
    pub fn for_cluster(&self, cluster: &ClusterName) -> FileOverrides {
        FileOverrides {
            up: self.up.contains(cluster.as_str()),
            down: self.down.contains(cluster.as_str()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read the override directory {}: {source} (check its permissions; overrides are left as they were)", path.display())]
pub struct ScanError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Lists `<data_dir>/up` and `<data_dir>/down`.
pub fn scan(data_dir: &Path) -> Result<OverrideFiles, ScanError> {
    Ok(OverrideFiles {
        up: names(&data_dir.join("up"))?,
        down: names(&data_dir.join("down"))?,
    })
}

fn names(dir: &Path) -> Result<BTreeSet<String>, ScanError> {
    let err = |source| ScanError {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(err(e)),
    };
    let mut names = BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(err)?;
        if let Some(name) = entry.file_name().to_str() {
            names.insert(name.to_string());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_up_and_down() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            scan(dir.path()).unwrap(),
            OverrideFiles::default(),
            "no directories yet"
        );
        std::fs::create_dir(dir.path().join("up")).unwrap();
        std::fs::create_dir(dir.path().join("down")).unwrap();
        std::fs::write(dir.path().join("up/app"), "").unwrap();
        std::fs::write(dir.path().join("down/app"), "").unwrap();
        std::fs::write(dir.path().join("down/db"), "maintenance\n").unwrap();
        let files = scan(dir.path()).unwrap();
        let app = files.for_cluster(&ClusterName("app".into()));
        assert_eq!(
            app,
            FileOverrides {
                up: true,
                down: true
            }
        );
        let db = files.for_cluster(&ClusterName("db".into()));
        assert_eq!(
            db,
            FileOverrides {
                up: false,
                down: true
            }
        );
        let web = files.for_cluster(&ClusterName("web".into()));
        assert_eq!(web, FileOverrides::default());
    }

    #[test]
    fn unreadable_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        // `up` is a file, not a directory: listing it fails with something other than
        // NotFound.
        std::fs::write(dir.path().join("up"), "").unwrap();
        let err = scan(dir.path()).unwrap_err();
        assert!(err.to_string().contains("/up"), "{err}");
        assert!(err.to_string().contains("left as they were"), "{err}");
    }
}
