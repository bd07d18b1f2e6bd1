//! The shell's one error type: what failed, in which part of the shell
//! ([`Domain`]), and whether trying again can help ([`Retry`]).
//!
//! Arroyo's lesson: an operator reading "cannot sync journal" at 3 a.m.
//! needs to know whether to wait (a disk that filled up, a broker being
//! restarted) or to act (a damaged snapshot, a wrong setting). The
//! domain and the retry hint are data, so callers decide by them — `mon
//! run` exits with the usage code on a configuration error — and logs
//! carry them as fields. A rejected *message* is not an error of the
//! service: its reason is data for the dead-letter log (see `envelope`).

use std::fmt;
use std::path::Path;

/// The part of the shell that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// Settings: the configuration file, `MON_*` variables, flags, or a
    /// state directory made with other settings.
    Config,
    /// The Kafka client: creating it, subscribing, talking to brokers.
    Kafka,
    /// sled: outputs, outbox, dead letters, offsets.
    Store,
    /// The journal and snapshot files.
    Journal,
    /// The HTTP listener.
    Http,
    /// The process itself: threads and the async runtime.
    Process,
}

impl Domain {
    pub fn name(self) -> &'static str {
        match self {
            Domain::Config => "config",
            Domain::Kafka => "kafka",
            Domain::Store => "store",
            Domain::Journal => "journal",
            Domain::Http => "http",
            Domain::Process => "process",
        }
    }
}

/// Whether the same operation can succeed later without anyone changing
/// anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// The cause is in the surroundings and may pass: a full disk, a
    /// broker down, an interrupted call, a port still held.
    Later,
    /// A person must act first: a wrong setting, damaged state, a bug.
    Never,
}

#[derive(Debug)]
pub struct Error {
    pub domain: Domain,
    pub retry: Retry,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(domain: Domain, retry: Retry, message: impl Into<String>) -> Error {
        Error { domain, retry, message: message.into(), source: None }
    }

    /// A setting that cannot work; never helped by retrying.
    pub fn config(message: impl Into<String>) -> Error {
        Error::new(Domain::Config, Retry::Never, message)
    }

    /// Stored state that cannot be read back: a person must look at it.
    pub fn damaged(domain: Domain, message: impl Into<String>) -> Error {
        Error::new(domain, Retry::Never, message)
    }

    /// A file system call on `path` failed; the retry hint follows the
    /// kind of failure.
    pub fn io(domain: Domain, doing: &str, path: &Path, error: std::io::Error) -> Error {
        let retry = io_retry(&error);
        Error::new(domain, retry, format!("{doing} {}", path.display())).caused_by(error)
    }

    pub fn caused_by(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.source = Some(Box::new(source));
        self
    }

    /// Says what was being done when `self` happened.
    pub fn context(mut self, doing: impl Into<String>) -> Error {
        self.message = format!("{}: {}", doing.into(), self.message);
        self
    }

    pub fn is_retryable(&self) -> bool {
        self.retry == Retry::Later
    }
}

/// I/O failures that describe a passing condition of the machine rather
/// than a wrong path, a permission or damaged data.
fn io_retry(error: &std::io::Error) -> Retry {
    use std::io::ErrorKind::*;
    match error.kind() {
        Interrupted | WouldBlock | TimedOut | StorageFull | QuotaExceeded | ResourceBusy | AddrInUse
        | ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | OutOfMemory => Retry::Later,
        _ => Retry::Never,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        if self.retry == Retry::Later {
            write!(f, " (may pass: retrying can help)")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<sled::Error> for Error {
    fn from(error: sled::Error) -> Error {
        let retry = match &error {
            sled::Error::Io(io) => io_retry(io),
            _ => Retry::Never,
        };
        Error::new(Domain::Store, retry, "state store").caused_by(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_may_pass_and_a_missing_permission_does_not() {
        let full = Error::io(
            Domain::Journal,
            "cannot sync",
            Path::new("/s/journal"),
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        assert!(full.is_retryable());
        assert!(full.to_string().starts_with("cannot sync /s/journal: "), "{full}");
        let denied = Error::io(
            Domain::Store,
            "cannot open",
            Path::new("/s"),
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert!(!denied.is_retryable());
        assert_eq!(denied.domain, Domain::Store);
    }

    #[test]
    fn sled_corruption_is_never_retried() {
        let error = Error::from(sled::Error::Unsupported("format".into()));
        assert_eq!((error.domain, error.retry), (Domain::Store, Retry::Never));
        assert!(std::error::Error::source(&error).is_some());
    }
}
