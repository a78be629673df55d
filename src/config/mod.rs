//! Cluster configuration: the three accepted spellings (big_brother's gem format, the
//! older cluster-map format from the big_brother talk, and bigbro's own keys in either),
//! big_brother's `_big_brother` defaults merge, bigbro's defaults, and validation into one
//! immutable [`Model`].
//!
//! The pipeline: bytes → positioned YAML tree (`yaml`) → sections as written (`spelling`,
//! `raw`, `nodes`, `settings`, `read`) → defaults merged → checked model (`validate`,
//! `options` for the IPVS service options and node thresholds, `unique`, `settings`). Each setting is declared once (`declare.rs`: key, type, reader,
//! merge, default), and a value the runtime would refuse (a health path the prober cannot
//! send) is refused here, by the runtime's own function. The translation to kernel objects
//! is not here: `src/desired/` builds them from the model, for the daemon and for `bigbro
//! check` alike. Every error carries file, line, column and key
//! path, and all of them are reported at once. Loading never panics, whatever the input,
//! and never touches the kernel or anything else outside the file it reads.

mod declare;
pub mod diag;
pub mod model;
mod nodes;
mod options;
mod raw;
mod read;
mod settings;
mod spelling;
mod suggest;
mod unique;
mod validate;
mod yaml;

use std::path::Path;

use declare::Merge;

pub use diag::{Diagnostic, Errors, Pos};
pub use model::*;

/// Largest configuration file read (a real one is a few kilobytes).
pub const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// Reads and validates the configuration file at `path`. Errors name the file as `path`
/// is written.
pub fn load(path: &Path) -> Result<Model, Errors> {
    let label = path.display().to_string();
    let fail = |message: String| {
        let mut d = diag::Diags::new(&label);
        d.file(None, message);
        d.finish().err().unwrap_or_else(|| Errors {
            file: label.clone(),
            list: Vec::new(),
        })
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // big_brother's words, so scripts and people recognise them.
            return Err(Errors {
                file: label.clone(),
                list: vec![Diagnostic {
                    file: String::new(),
                    pos: None,
                    path: String::new(),
                    message: format!(
                        "Could not find {label}. Specify correct location with -c file"
                    ),
                }],
            });
        }
        Err(e) => return Err(fail(format!("cannot read: {e}"))),
    };
    if meta.is_dir() {
        return Err(fail("is a directory, not a configuration file".to_string()));
    }
    if meta.len() > MAX_FILE_SIZE {
        return Err(fail(format!(
            "is {} bytes; a configuration file is at most {MAX_FILE_SIZE}",
            meta.len()
        )));
    }
    match std::fs::read(path) {
        Ok(bytes) => parse_bytes(&label, &bytes),
        Err(e) => Err(fail(format!("cannot read: {e}"))),
    }
}

/// Validates configuration bytes; `file` is the name errors use.
pub fn parse_bytes(file: &str, bytes: &[u8]) -> Result<Model, Errors> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(file, text),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let text = String::from_utf8_lossy(good);
            let line = text.matches('\n').count() + 1;
            let column = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let mut d = diag::Diags::new(file);
            d.file(
                Some(Pos { line, column }),
                format!(
                    "not UTF-8 text (byte 0x{:02x}); a configuration is UTF-8 YAML",
                    bytes[e.valid_up_to()]
                ),
            );
            Err(d.finish().unwrap_err())
        }
    }
}

/// Validates configuration text; `file` is the name errors use.
pub fn parse(file: &str, text: &str) -> Result<Model, Errors> {
    let mut d = diag::Diags::new(file);
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(errors) => {
            for e in errors {
                d.file(Some(e.pos), e.message);
            }
            return Err(d.finish().unwrap_err());
        }
    };
    let Some(doc) = spelling::read_document(root.as_ref(), &mut d) else {
        return Err(d.finish().unwrap_err());
    };
    let merged: Vec<_> = doc
        .clusters
        .iter()
        .map(|c| (c, c.settings.clone().merge(doc.defaults.clone())))
        .collect();
    let clusters: Vec<Option<Cluster>> = merged
        .iter()
        .map(|(c, s)| validate::cluster(c, s, &mut d))
        .collect();
    unique::check(&merged, &mut d);
    let settings = settings::build(&doc.global, &mut d);
    d.finish()?;
    match (clusters.into_iter().collect::<Option<Vec<_>>>(), settings) {
        (Some(clusters), Some(settings)) => Ok(Model {
            clusters,
            settings,
            spelling: doc.spelling,
        }),
        _ => {
            // Every path that yields no value reports why; this is a safety net.
            let mut d = diag::Diags::new(file);
            d.file(
                None,
                "invalid configuration (internal: an error went unreported)",
            );
            Err(d.finish().unwrap_err())
        }
    }
}

#[cfg(test)]
mod options_tests;
#[cfg(test)]
mod scale_tests;
#[cfg(test)]
mod tests;
