//! Rules on disk: which `.mon` files form a program, and the JSON Schemas
//! they name. The CLI, the language server, the service and the tests all
//! read rules through this crate, so they can never group files into
//! programs differently.
//!
//! The grouping rule (README, "Commands"): a directory that directly holds
//! `.mon` files is one program, together with the `.mon` files of its
//! subdirectories; a directory without any is searched for such
//! directories; files named together form one program. Walks are sorted
//! and never follow symbolic links (a link to a directory above would make
//! the walk endless, and a link to a file would count it twice).
//!
//! This crate reads files and nothing else: it does not compile, print or
//! decide exit codes. It must not depend on anything but the compiler's
//! source types.

use std::fmt;
use std::path::{Path, PathBuf};

use mon_compiler::{SchemaLoader, SourceFile};

/// One program: the files compiled together.
#[derive(Debug)]
pub struct ProgramFiles {
    /// The directory (or first file) that names the program in messages.
    pub root: PathBuf,
    pub files: Vec<SourceFile>,
}

/// Why rules could not be read. The wording is what `mon` prints.
#[derive(Debug)]
pub enum LoadError {
    Missing(PathBuf),
    ReadDir { path: PathBuf, error: std::io::Error },
    ReadFile { path: PathBuf, error: std::io::Error },
    NotADirectory(PathBuf),
    NoRules,
    NoRulesUnder(PathBuf),
    SeveralPrograms(Vec<PathBuf>),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            LoadError::Missing(path) => write!(f, "no such file or directory: {}", path.display()),
            LoadError::ReadDir { path, error } => write!(f, "cannot read directory {}: {error}", path.display()),
            LoadError::ReadFile { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            LoadError::NotADirectory(path) => write!(f, "{} is not a directory of rules", path.display()),
            LoadError::NoRules => write!(f, "no .mon files found"),
            LoadError::NoRulesUnder(path) => write!(f, "no .mon files under {}", path.display()),
            LoadError::SeveralPrograms(roots) => {
                let roots: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
                write!(f, "these paths hold {} programs ({}); name one", roots.len(), roots.join(", "))
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// The programs under `paths`; an error if there are none.
pub fn load(paths: &[PathBuf]) -> Result<Vec<ProgramFiles>, LoadError> {
    match programs(paths) {
        Ok(p) if p.is_empty() => Err(LoadError::NoRules),
        other => other,
    }
}

/// The one program under `paths`; an error if there are none or several.
pub fn load_one(paths: &[PathBuf]) -> Result<ProgramFiles, LoadError> {
    let mut programs = load(paths)?;
    if programs.len() > 1 {
        return Err(LoadError::SeveralPrograms(programs.into_iter().map(|p| p.root).collect()));
    }
    Ok(programs.remove(0))
}

/// Groups `paths` into programs (the rule in the module header).
fn programs(paths: &[PathBuf]) -> Result<Vec<ProgramFiles>, LoadError> {
    let mut programs = Vec::new();
    let mut loose: Vec<PathBuf> = Vec::new();
    for path in paths {
        if path.is_dir() {
            find_program_dirs(path, &mut programs)?;
        } else if path.is_file() {
            // The same file named twice is one file, not a duplicate of itself.
            let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
            if !loose.iter().any(|l| l.canonicalize().ok().as_ref() == Some(&canonical)) {
                loose.push(path.clone());
            }
        } else {
            return Err(LoadError::Missing(path.clone()));
        }
    }
    if !loose.is_empty() {
        let root = loose[0].clone();
        programs.push(ProgramFiles { root, files: read_all(&loose)? });
    }
    Ok(programs)
}

/// Every `.mon` file under `dir`, recursively, as one program: the rules
/// one service runs (`mon run`, `mon demo`).
pub fn load_tree(dir: &Path) -> Result<ProgramFiles, LoadError> {
    if !dir.is_dir() {
        return Err(LoadError::NotADirectory(dir.to_path_buf()));
    }
    let paths = rule_files(dir, usize::MAX)?;
    if paths.is_empty() {
        return Err(LoadError::NoRulesUnder(dir.to_path_buf()));
    }
    Ok(ProgramFiles { root: dir.to_path_buf(), files: read_all(&paths)? })
}

/// The program directory that a rule file in `dir` belongs to: the highest
/// directory from `dir` upwards that directly holds `.mon` files, as
/// `mon check` run from above would group it. The climb stops at
/// `ceiling` (an editor's workspace folder) when `dir` is inside it, and
/// otherwise at the first directory without rule files, so a stray `.mon`
/// file in a home directory does not swallow every project below it.
pub fn program_dir_of(dir: &Path, ceiling: Option<&Path>) -> PathBuf {
    let ceiling = ceiling.filter(|c| dir.starts_with(c));
    let mut best = dir.to_path_buf();
    let mut current = dir;
    while let Some(parent) = current.parent() {
        let holds = holds_rule_files(parent);
        match ceiling {
            Some(root) if !parent.starts_with(root) => break,
            Some(_) => {}
            None if !holds => break,
            None => {}
        }
        if holds {
            best = parent.to_path_buf();
        }
        current = parent;
    }
    best
}

/// Every `.mon` file under `dir` in path order, at most `limit` of them.
pub fn rule_files(dir: &Path, limit: usize) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    collect_rule_files(dir, limit, &mut out)?;
    Ok(out)
}

/// Whether `path` names a rule file.
fn is_rule_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "mon") && path.is_file()
}

fn holds_rule_files(dir: &Path) -> bool {
    sorted_entries(dir).is_ok_and(|entries| entries.iter().any(|p| is_rule_file(p)))
}

fn find_program_dirs(dir: &Path, out: &mut Vec<ProgramFiles>) -> Result<(), LoadError> {
    let entries = sorted_entries(dir)?;
    if entries.iter().any(|p| is_rule_file(p)) {
        let files = rule_files(dir, usize::MAX)?;
        out.push(ProgramFiles { root: dir.to_path_buf(), files: read_all(&files)? });
        return Ok(());
    }
    for entry in entries.iter().filter(|p| p.is_dir()) {
        find_program_dirs(entry, out)?;
    }
    Ok(())
}

fn collect_rule_files(dir: &Path, limit: usize, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    for entry in sorted_entries(dir)? {
        if out.len() >= limit {
            break;
        }
        if entry.is_dir() {
            collect_rule_files(&entry, limit, out)?;
        } else if is_rule_file(&entry) {
            out.push(entry);
        }
    }
    Ok(())
}

/// The entries of `dir`, sorted, without symbolic links.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let read = std::fs::read_dir(dir).map_err(|error| LoadError::ReadDir { path: dir.to_path_buf(), error })?;
    let mut entries: Vec<PathBuf> = read
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_symlink()))
        .map(|e| e.path())
        .collect();
    entries.sort();
    Ok(entries)
}

/// Reads one rule file; its path, as given, names it in diagnostics.
fn read_source(path: &Path) -> Result<SourceFile, LoadError> {
    let text =
        std::fs::read_to_string(path).map_err(|error| LoadError::ReadFile { path: path.to_path_buf(), error })?;
    Ok(SourceFile { path: path.display().to_string(), text })
}

fn read_all(paths: &[PathBuf]) -> Result<Vec<SourceFile>, LoadError> {
    paths.iter().map(|p| read_source(p)).collect()
}

/// Loads JSON Schemas relative to the rule file that names them.
pub struct FsSchemas;

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

    fn write(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "event a { x: string }\n").unwrap();
    }

    fn names(program: &ProgramFiles, base: &Path) -> Vec<String> {
        program.files.iter().map(|f| Path::new(&f.path).strip_prefix(base).unwrap().display().to_string()).collect()
    }

    #[test]
    fn a_directory_with_rules_is_one_program_and_one_without_is_searched() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        write(&base.join("feeds/a.mon"));
        write(&base.join("feeds/sub/b.mon"));
        write(&base.join("trades/t.mon"));
        std::fs::write(base.join("trades/notes.txt"), "not rules").unwrap();
        let programs = load(&[base.to_path_buf()]).unwrap();
        let grouped: Vec<Vec<String>> = programs.iter().map(|p| names(p, base)).collect();
        assert_eq!(grouped, vec![vec!["feeds/a.mon", "feeds/sub/b.mon"], vec!["trades/t.mon"]]);
        assert!(matches!(load_one(&[base.to_path_buf()]), Err(LoadError::SeveralPrograms(r)) if r.len() == 2));
    }

    #[test]
    fn the_editor_finds_the_program_that_check_would_make() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        write(&base.join("feeds/a.mon"));
        write(&base.join("feeds/sub/deeper/b.mon"));
        let sub = base.join("feeds/sub/deeper");
        // Bounded by the workspace folder: climbs past `sub`, which holds no rules.
        assert_eq!(program_dir_of(&sub, Some(base)), base.join("feeds"));
        // Without a folder: stops at the first directory without rules.
        assert_eq!(program_dir_of(&sub, None), sub);
        let from_check = load(&[base.to_path_buf()]).unwrap();
        assert_eq!(from_check[0].root, base.join("feeds"));
    }

    #[test]
    fn links_are_not_followed_and_the_limit_holds() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        for i in 0..5 {
            write(&base.join(format!("r{i}.mon")));
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(base, base.join("loop")).unwrap();
        assert_eq!(rule_files(base, usize::MAX).unwrap().len(), 5);
        assert_eq!(rule_files(base, 3).unwrap().len(), 3);
    }

    #[test]
    fn errors_say_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let nowhere = dir.path().join("nowhere");
        assert_eq!(
            load(std::slice::from_ref(&nowhere)).unwrap_err().to_string(),
            format!("no such file or directory: {}", nowhere.display())
        );
        assert_eq!(load(&[dir.path().to_path_buf()]).unwrap_err().to_string(), "no .mon files found");
        assert!(matches!(load_tree(dir.path()), Err(LoadError::NoRulesUnder(_))));
    }
}
