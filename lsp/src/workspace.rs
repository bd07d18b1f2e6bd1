//! Which files form the program of an open document, and compiling them.
//!
//! A program is what `mon check DIR` would compile together: the `.mon`
//! files under a directory that directly holds `.mon` files. For an open
//! file that is the highest directory above it that still directly holds
//! `.mon` files, never above the workspace folder the editor opened (so a
//! stray `.mon` in the home directory does not swallow every project).
//! The walk is `mon-loader`'s, the same as the CLI's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use lsp_types::Uri;
use mon_compiler::{Compilation, SourceFile};
use mon_loader::FsSchemas;
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
    ProgramKey::Dir(mon_loader::program_dir_of(dir, ceiling.map(PathBuf::as_path)))
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
            // A directory that cannot be read leaves the open documents,
            // which are still worth checking.
            let mut paths = mon_loader::rule_files(dir, MAX_FILES).unwrap_or_default();
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
