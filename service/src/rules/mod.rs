//! The rules a service runs, as bundles: the `.mon` files of one program
//! and the JSON Schemas they name, keyed by their path inside the bundle.
//!
//! A bundle is what a rule version stores ([`versions`]), what the API
//! accepts, and what `mon run` imports from its rules directory at start.
//! It compiles the same way wherever it comes from: schemas are looked up
//! in the bundle, relative to the rule file that names them, so a version
//! compiles the same tomorrow whatever happens to the directory it was
//! read from. [`diff`] compares two versions; [`group`] carries a
//! scale-out group's rule changes to every task.
//!
//! Rendering the diagnostics is the caller's business (the CLI prints
//! them, the API returns them as JSON).

pub mod diff;
pub mod group;
pub mod versions;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Component, Path};

use mon_compiler::{compile, Compilation, Functions, Renderer, SchemaLoader, SourceFile};
use mon_loader::{load_tree, FsSchemas, LoadError, ProgramFiles};
use serde::{Deserialize, Serialize};

/// The rule files under `dir` and what compiling them gave.
pub struct Rules {
    pub files: ProgramFiles,
    pub compilation: Compilation,
}

pub fn load(dir: &Path, functions: &dyn Functions) -> Result<Rules, LoadError> {
    let files = load_tree(dir)?;
    let compilation = compile(&files.files, functions, &FsSchemas);
    Ok(Rules { files, compilation })
}

/// The rules `mon run` was started with: its rules directory, read as a
/// bundle, and the program it compiles to. At start the service imports
/// the bundle as a version when it differs from the last one it imported,
/// and runs it (see `crate::run_with`).
pub struct StartRules {
    pub dir: std::path::PathBuf,
    pub bundle: Bundle,
    pub program: mon_compiler::ir::Program,
}

/// At most this many files in one bundle: a program is tens of files, and
/// the cap keeps a mistaken upload (a whole repository) from being stored.
pub const MAX_FILES: usize = 1000;

/// The files of one program: path inside the bundle → text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Bundle {
    /// `.mon` rule files and `.json` schemas, by relative path (`/`-separated).
    pub files: BTreeMap<String, String>,
}

impl Bundle {
    /// Checks the paths: relative, no `..`, `.mon` or `.json`, at least one
    /// `.mon` file. The message names the offending path.
    pub fn check(&self) -> Result<(), String> {
        if self.files.len() > MAX_FILES {
            return Err(format!("a bundle holds at most {MAX_FILES} files; this one has {}", self.files.len()));
        }
        for path in self.files.keys() {
            if !path.ends_with(".mon") && !path.ends_with(".json") {
                return Err(format!("`{path}`: a bundle holds `.mon` rule files and `.json` schemas only"));
            }
            let normal = !path.is_empty()
                && !path.contains('\\')
                && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)));
            if !normal {
                return Err(format!("`{path}`: paths are relative, `/`-separated, without `.` or `..`"));
            }
        }
        if !self.files.keys().any(|p| p.ends_with(".mon")) {
            return Err("the bundle holds no `.mon` file".into());
        }
        Ok(())
    }

    /// The rule files, in path order, as the compiler takes them.
    pub fn sources(&self) -> Vec<SourceFile> {
        self.files
            .iter()
            .filter(|(path, _)| path.ends_with(".mon"))
            .map(|(path, text)| SourceFile { path: path.clone(), text: text.clone() })
            .collect()
    }

    pub fn compile(&self, functions: &dyn Functions) -> Compiled {
        let sources = self.sources();
        let compilation = compile(&sources, functions, &BundleSchemas(&self.files));
        Compiled { sources, compilation }
    }

    /// The rules under `dir` as a bundle, with the schemas they name. The
    /// bundle is made from what the compiler reads, so it holds exactly
    /// the files a compilation of `dir` uses.
    pub fn from_dir(dir: &Path, functions: &dyn Functions) -> Result<Bundle, String> {
        let program = load_tree(dir).map_err(|e| e.to_string())?;
        let relative = |path: &Path| -> Result<String, String> {
            let inside = path.strip_prefix(dir).map_err(|_| {
                format!(
                    "{} is outside the rules directory {}; a bundle holds only its own files",
                    path.display(),
                    dir.display()
                )
            })?;
            normalize(inside).ok_or_else(|| format!("{} climbs out of {}", path.display(), dir.display()))
        };
        let mut files = BTreeMap::new();
        for source in &program.files {
            files.insert(relative(Path::new(&source.path))?, source.text.clone());
        }
        let schemas = RecordingSchemas::default();
        compile(&program.files, functions, &schemas);
        for (path, text) in schemas.read.into_inner() {
            files.insert(relative(&path)?, text);
        }
        let bundle = Bundle { files };
        bundle.check()?;
        Ok(bundle)
    }
}

/// A bundle compiled, with the sources its diagnostics point into.
pub struct Compiled {
    pub sources: Vec<SourceFile>,
    pub compilation: Compilation,
}

impl Compiled {
    /// The diagnostics as `mon check --format json` prints them, one value each.
    pub fn diagnostics_json(&self) -> Vec<serde_json::Value> {
        let renderer = Renderer { sources: &self.sources };
        self.compilation
            .diagnostics
            .iter()
            .map(|d| serde_json::to_value(renderer.json(d)).unwrap_or_default())
            .collect()
    }
}

/// `a/./b/../c` → `a/c`; `None` if it climbs above its start.
fn normalize(path: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// Schemas from the bundle, relative to the naming rule file's directory.
struct BundleSchemas<'a>(&'a BTreeMap<String, String>);

impl SchemaLoader for BundleSchemas<'_> {
    fn load(&self, rule_file: &str, relative: &str) -> Result<String, String> {
        let base = Path::new(rule_file).parent().unwrap_or(Path::new(""));
        let path = normalize(&base.join(relative)).ok_or_else(|| format!("{relative} climbs out of the bundle"))?;
        self.0.get(&path).cloned().ok_or_else(|| format!("the bundle has no {path}"))
    }
}

/// Reads schemas from disk as `mon check` does, and remembers what it read.
#[derive(Default)]
struct RecordingSchemas {
    read: RefCell<BTreeMap<std::path::PathBuf, String>>,
}

impl SchemaLoader for RecordingSchemas {
    fn load(&self, rule_file: &str, relative: &str) -> Result<String, String> {
        let text = FsSchemas.load(rule_file, relative)?;
        let base = Path::new(rule_file).parent().unwrap_or(Path::new("."));
        self.read.borrow_mut().insert(base.join(relative), text.clone());
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(files: &[(&str, &str)]) -> Bundle {
        Bundle { files: files.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect() }
    }

    #[test]
    fn paths_must_stay_inside_the_bundle() {
        assert!(bundle(&[("a.mon", "")]).check().is_ok());
        assert!(bundle(&[("sub/a.mon", ""), ("sub/schemas/x.json", "{}")]).check().is_ok());
        for bad in ["../a.mon", "/etc/a.mon", "a/../../b.mon", "./a.mon", "a\\b.mon", "a.txt", ""] {
            let error = bundle(&[("ok.mon", ""), (bad, "")]).check().unwrap_err();
            assert!(error.contains(&format!("`{bad}`")), "{bad}: {error}");
        }
        assert!(bundle(&[("x.json", "{}")]).check().unwrap_err().contains("no `.mon`"));
    }

    #[test]
    fn schemas_resolve_relative_to_the_rule_file() {
        let files = bundle(&[("feeds/a.mon", ""), ("feeds/schemas/t.json", "{\"x\":1}"), ("top.json", "{}")]);
        let schemas = BundleSchemas(&files.files);
        assert_eq!(schemas.load("feeds/a.mon", "schemas/t.json").unwrap(), "{\"x\":1}");
        assert_eq!(schemas.load("feeds/a.mon", "../top.json").unwrap(), "{}");
        assert!(schemas.load("feeds/a.mon", "../../etc/passwd").unwrap_err().contains("climbs out"));
        assert!(schemas.load("feeds/a.mon", "nope.json").unwrap_err().contains("feeds/nope.json"));
    }
}
