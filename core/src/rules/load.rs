//! Loading rules from disk: paths (files or directories of `*.rules`) → text → the parser.
//!
//! Every file is read whole after a size check against its limit, since rule files are
//! small and a file that is not (a wrong path, a log file) must be refused before it is read.
//! Invalid UTF-8 is reported at the line and column of the first bad byte. A directory
//! contributes its `*.rules` files in name order, so ids and error order never depend on
//! the file system's listing order; a directory without any is an error (a wrong path
//! would otherwise load zero rules and match nothing, silently).

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::parse::Builder;
use super::{RuleError, RuleErrors, RuleSet, MAX_RULE_FILE_BYTES};

/// Why a file could not become text.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The OS error opening or reading it.
    Io(io::Error),
    /// Its size in bytes, over the limit.
    TooLarge(u64),
    /// Where its first invalid UTF-8 byte is (1-based line and column).
    Utf8 { line: u32, col: u32 },
}

/// Reads `path` as UTF-8 text of at most `limit` bytes.
pub(crate) fn read_text(path: &Path, limit: u64) -> Result<String, ReadError> {
    let file = fs::File::open(path).map_err(ReadError::Io)?;
    let size = file.metadata().map_err(ReadError::Io)?.len();
    if size > limit {
        return Err(ReadError::TooLarge(size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // `take` guards against a file that grows (or lies about its size) while being read.
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        // The prefix is valid UTF-8 by definition.
        let text = std::str::from_utf8(valid).unwrap_or("");
        let line = text.matches('\n').count() + 1;
        let col = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ReadError::Utf8 {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: u32::try_from(col).unwrap_or(u32::MAX),
        }
    })
}

/// The message for a rule file over [`MAX_RULE_FILE_BYTES`].
pub(crate) fn too_large_rule_file(size: impl std::fmt::Display) -> String {
    format!(
        "rule file is {size} bytes; the limit is {} MiB",
        MAX_RULE_FILE_BYTES >> 20
    )
}

pub(crate) fn load(paths: &[PathBuf]) -> Result<RuleSet, RuleErrors> {
    let mut builder = Builder::default();
    let mut files = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        match fs::metadata(path) {
            Err(e) => builder.error(RuleError::whole_file(&name, format!("cannot read: {e}"))),
            Ok(meta) if meta.is_dir() => match rule_files_in(path) {
                Err(e) => builder.error(RuleError::whole_file(
                    &name,
                    format!("cannot list directory: {e}"),
                )),
                Ok(found) if found.is_empty() => builder.error(RuleError::whole_file(
                    &name,
                    "no *.rules files in this directory",
                )),
                Ok(found) => found
                    .iter()
                    .filter_map(|f| read_rule_file(&mut builder, f))
                    .for_each(|f| files.push(f)),
            },
            Ok(_) => files.extend(read_rule_file(&mut builder, path)),
        }
    }
    // Lists first, from every file, so a rule can use a list defined anywhere.
    for f in &files {
        builder.collect_lists(&f.name, &f.text, &f.base);
    }
    for f in &files {
        builder.parse_file(&f.name, &f.text, &f.base);
    }
    builder.finish()
}

/// A rule file read into memory: its name in errors, its text, and the folder its terms
/// files are relative to.
struct RuleFile {
    name: String,
    text: String,
    base: PathBuf,
}

/// The `*.rules` files of a directory (following symlinks), sorted by name.
fn rule_files_in(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rules") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_rule_file(builder: &mut Builder, path: &Path) -> Option<RuleFile> {
    let name = path.display().to_string();
    match read_text(path, MAX_RULE_FILE_BYTES) {
        Ok(text) => {
            let base = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            Some(RuleFile { name, text, base })
        }
        Err(ReadError::Io(e)) => {
            builder.error(RuleError::whole_file(&name, format!("cannot read: {e}")));
            None
        }
        Err(ReadError::TooLarge(n)) => {
            builder.error(RuleError::whole_file(&name, too_large_rule_file(n)));
            None
        }
        Err(ReadError::Utf8 { line, col }) => {
            builder.error(RuleError::at(&name, line, col, "invalid UTF-8"));
            None
        }
    }
}
