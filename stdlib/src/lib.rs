//! mon's standard library: the built-in functions that rules call in `where`
//! and `status` expressions (`lower`, `matches`, `hour`, `min`, ...), and, as
//! the engine grows, the time zones, business calendars and deadline
//! arithmetic it needs. The compiler knows built-ins only through the
//! [`mon_compiler::Functions`] trait; [`registry`] is the implementation that
//! the command line, the engine and the language server hand to it.
//!
//! Everything here is a pure function of its arguments: no I/O, no reading of
//! the clock, no environment variables. The current time and time zone names
//! always arrive as arguments, so the same inputs give the same outputs in the
//! engine, in a replay and in tests.

use std::sync::OnceLock;

use mon_compiler::{Function, Functions};

pub mod functions;
pub mod time;

/// Every built-in function, by name.
pub struct Registry {
    /// Sorted by name, so lookups can binary-search and `names` is in order.
    functions: Vec<Box<dyn Function>>,
}

impl Registry {
    /// Builds a registry from an explicit list of functions.
    ///
    /// # Panics
    ///
    /// If two functions share a name: that is a mistake in [`functions::all`],
    /// which the crate's tests catch.
    pub fn new(mut functions: Vec<Box<dyn Function>>) -> Registry {
        functions.sort_by_key(|f| f.name());
        if let Some(pair) = functions.windows(2).find(|pair| pair[0].name() == pair[1].name()) {
            panic!("the built-in function `{}` is registered twice", pair[0].name());
        }
        Registry { functions }
    }

    /// The functions, in order of name.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Function> {
        self.functions.iter().map(|f| f.as_ref())
    }
}

impl Functions for Registry {
    fn get(&self, name: &str) -> Option<&dyn Function> {
        let index = self.functions.binary_search_by_key(&name, |f| f.name()).ok()?;
        Some(self.functions[index].as_ref())
    }

    fn names(&self) -> Vec<&'static str> {
        self.functions.iter().map(|f| f.name()).collect()
    }
}

/// The standard library's functions, built on first use and shared after.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry::new(functions::all()))
}
