//! Finding rule files on disk and grouping them into programs.

use std::path::{Path, PathBuf};

use mon_compiler::{SchemaLoader, SourceFile};

/// One program: the files compiled together.
pub struct ProgramFiles {
    /// The directory (or first file) that names the program in messages.
    pub root: PathBuf,
    pub files: Vec<SourceFile>,
}

/// The programs under `paths`, or the usage error to report.
pub fn load(paths: &[PathBuf]) -> Result<Vec<ProgramFiles>, String> {
    match programs(paths) {
        Ok(p) if p.is_empty() => Err("no .mon files found".into()),
        other => other,
    }
}

/// The one program under `paths`, or the usage error to report.
pub fn load_one(paths: &[PathBuf]) -> Result<ProgramFiles, String> {
    let mut programs = load(paths)?;
    if programs.len() > 1 {
        let roots: Vec<String> = programs.iter().map(|p| p.root.display().to_string()).collect();
        return Err(format!("these paths hold {} programs ({}); name one", programs.len(), roots.join(", ")));
    }
    Ok(programs.remove(0))
}

/// Groups `paths` into programs (see `mon check --help`).
pub fn programs(paths: &[PathBuf]) -> Result<Vec<ProgramFiles>, String> {
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
            return Err(format!("no such file or directory: {}", path.display()));
        }
    }
    if !loose.is_empty() {
        let root = loose[0].clone();
        programs.push(ProgramFiles { root, files: read_all(&loose)? });
    }
    Ok(programs)
}

fn find_program_dirs(dir: &Path, out: &mut Vec<ProgramFiles>) -> Result<(), String> {
    let entries = sorted_entries(dir)?;
    if entries.iter().any(|p| is_rule_file(p)) {
        let mut files = Vec::new();
        collect_rule_files(dir, &mut files)?;
        out.push(ProgramFiles { root: dir.to_path_buf(), files: read_all(&files)? });
        return Ok(());
    }
    for entry in entries.iter().filter(|p| p.is_dir()) {
        find_program_dirs(entry, out)?;
    }
    Ok(())
}

/// Every `.mon` file under `dir`, in path order.
pub fn collect_rule_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    for entry in sorted_entries(dir)? {
        if entry.is_dir() {
            collect_rule_files(&entry, out)?;
        } else if is_rule_file(&entry) {
            out.push(entry);
        }
    }
    Ok(())
}

/// The entries of `dir`, sorted, without symbolic links (a link to a
/// directory above would make the search endless, and a link to a file
/// would count it twice).
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let read = std::fs::read_dir(dir).map_err(|e| format!("cannot read directory {}: {e}", dir.display()))?;
    let mut entries: Vec<PathBuf> = read
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_symlink()))
        .map(|e| e.path())
        .collect();
    entries.sort();
    Ok(entries)
}

fn is_rule_file(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e == "mon")
}

fn read_all(paths: &[PathBuf]) -> Result<Vec<SourceFile>, String> {
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            Ok(SourceFile { path: p.display().to_string(), text })
        })
        .collect()
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

/// Every `.mon` file under `dir`, recursively, as one program: the rules
/// one service runs (`mon run`, `mon demo`).
pub fn load_tree(dir: &Path) -> Result<ProgramFiles, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory of rules", dir.display()));
    }
    let mut paths = Vec::new();
    collect_rule_files(dir, &mut paths)?;
    if paths.is_empty() {
        return Err(format!("no .mon files under {}", dir.display()));
    }
    Ok(ProgramFiles { root: dir.to_path_buf(), files: read_all(&paths)? })
}
