//! Which files form the program of an open document, and compiling them.
//!
//! A program is what `mon check DIR` would compile together: the `.mon`
//! files under a directory that directly holds `.mon` files. For an open
//! file that is the highest directory above it that still directly holds
//! `.mon` files, never above the workspace folder the editor opened (so a
//! stray `.mon` in the home directory does not swallow every project).
//! This crate cannot use the `mon` binary's `sources.rs`, so the small walk
//! is repeated here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use lsp_types::Uri;
use mon_compiler::{Compilation, SchemaLoader, SourceFile};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::documents::Documents;

/// A program grows no larger than this: opening a file in a huge tree
/// must not make every keystroke compile thousands of files.
const MAX_FILES: usize = 2000;

/// Where a program's files come from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProgramKey {
    /// The `.mon` files under this directory.
    Dir(PathBuf),
    /// A document with no file on disk (`untitled:`): a program of its own.
    Alone(Uri),
}

/// One compiled program and the URIs of its files (same order as the
/// compiler's file indexes).
pub struct Analysis {
    pub uris: Vec<Uri>,
    pub sources: Vec<SourceFile>,
    pub compilation: Compilation,
}

impl Analysis {
    pub fn file_index(&self, uri: &Uri) -> Option<usize> {
        self.uris.iter().position(|u| u == uri)
    }
}

/// The file path of a `file:` URI.
pub fn uri_to_path(uri: &Uri) -> Option<PathBuf> {
    let text = uri.as_str();
    let rest = text.strip_prefix("file://")?;
    // `file:///path` (empty authority) or `file://localhost/path`.
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    if !path.starts_with('/') {
        return None;
    }
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let decoded = percent_decode_str(path).decode_utf8().ok()?;
    Some(PathBuf::from(decoded.into_owned()))
}

/// Characters escaped in a path written as a URI.
const PATH_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

pub fn path_to_uri(path: &Path) -> Option<Uri> {
    let text = path.to_str()?;
    Uri::from_str(&format!("file://{}", utf8_percent_encode(text, PATH_ESCAPES))).ok()
}

/// The program a document belongs to. `roots` are the workspace folders.
pub fn program_of(uri: &Uri, roots: &[PathBuf]) -> ProgramKey {
    let Some(path) = uri_to_path(uri) else {
        return ProgramKey::Alone(uri.clone());
    };
    let Some(dir) = path.parent() else {
        return ProgramKey::Alone(uri.clone());
    };
    let ceiling = roots.iter().filter(|r| dir.starts_with(r)).max_by_key(|r| r.components().count());
    let mut best = dir.to_path_buf();
    let mut current = dir;
    while let Some(parent) = current.parent() {
        match ceiling {
            // Inside a workspace folder: climb to it, keeping the highest
            // directory that holds rule files.
            Some(root) if !parent.starts_with(root) => break,
            Some(_) => {}
            // Outside any folder: climb only while directories hold rule files.
            None if !holds_rule_files(parent) => break,
            None => {}
        }
        if holds_rule_files(parent) {
            best = parent.to_path_buf();
        }
        current = parent;
    }
    ProgramKey::Dir(best)
}

fn holds_rule_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| entries.filter_map(Result::ok).any(|e| is_rule_file(&e.path())))
}

fn is_rule_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "mon") && path.is_file()
}

/// Every `.mon` file under `dir`, sorted, without following symbolic links.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = read
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_symlink()))
        .map(|e| e.path())
        .collect();
    entries.sort();
    for entry in entries {
        if out.len() >= MAX_FILES {
            return;
        }
        if entry.is_dir() {
            collect(&entry, out);
        } else if is_rule_file(&entry) {
            out.push(entry);
        }
    }
}

/// Reads and compiles a program; open documents' text wins over the disk,
/// and open documents not yet saved are included.
pub fn analyze(key: &ProgramKey, documents: &Documents) -> Analysis {
    let mut files: Vec<(Uri, SourceFile)> = Vec::new();
    match key {
        ProgramKey::Alone(uri) => {
            let text = documents.get(uri).map(|d| d.text.clone()).unwrap_or_default();
            files.push((uri.clone(), SourceFile { path: uri.as_str().to_string(), text }));
        }
        ProgramKey::Dir(dir) => {
            let open: HashMap<PathBuf, (&Uri, &str)> = documents
                .iter()
                .filter_map(|(uri, doc)| Some((uri_to_path(uri)?, (uri, doc.text.as_str()))))
                .filter(|(path, _)| path.starts_with(dir) && path.extension().is_some_and(|e| e == "mon"))
                .collect();
            let mut paths = Vec::new();
            collect(dir, &mut paths);
            for path in open.keys() {
                if !paths.contains(path) {
                    paths.push(path.clone());
                }
            }
            paths.sort();
            for path in paths {
                let display = path.display().to_string();
                if let Some((uri, text)) = open.get(&path) {
                    files.push(((*uri).clone(), SourceFile { path: display, text: text.to_string() }));
                } else if let (Some(uri), Ok(text)) = (path_to_uri(&path), std::fs::read_to_string(&path)) {
                    files.push((uri, SourceFile { path: display, text }));
                }
            }
        }
    }
    let (uris, sources): (Vec<Uri>, Vec<SourceFile>) = files.into_iter().unzip();
    let compilation = mon_compiler::compile(&sources, mon_stdlib::registry(), &FsSchemas);
    Analysis { uris, sources, compilation }
}

/// Loads JSON Schemas relative to the rule file that names them, as the CLI does.
struct FsSchemas;

impl SchemaLoader for FsSchemas {
    fn load(&self, rule_file: &str, relative: &str) -> Result<String, String> {
        let base = Path::new(rule_file).parent().unwrap_or(Path::new("."));
        let path = base.join(relative);
        std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_through_uris() {
        let path = Path::new("/tmp/a dir/rüles #1.mon");
        let uri = path_to_uri(path);
        assert!(uri.is_some());
        let uri = uri.unwrap_or_else(|| unreachable!());
        assert_eq!(uri.as_str(), "file:///tmp/a%20dir/r%C3%BCles%20%231.mon");
        assert_eq!(uri_to_path(&uri).as_deref(), Some(path));
    }
}
