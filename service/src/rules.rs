//! The rules a service runs: every `.mon` file under one directory,
//! read by the shared loader (`mon-loader`) and compiled. Rendering the
//! diagnostics is the caller's business (the CLI prints them).

use std::path::Path;

use mon_compiler::{compile, Compilation, Functions};
use mon_loader::{load_tree, FsSchemas, LoadError, ProgramFiles};

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
