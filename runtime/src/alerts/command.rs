//! What a person does to an alert. A command is an input like an event: the
//! service journals it with the instant it was received, so a replay
//! applies it at the same point and gives the same book.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The alert's id.
    pub alert: String,
    pub action: Action,
    /// Who did it, as given (authentication comes with the API).
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was received (ms since the epoch).
    pub at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Someone is on it: no more renotifying or escalating.
    Ack,
    /// Back to open: renotifying resumes.
    Unack,
    /// Not sent until `until` (ms), or until resolved when absent.
    Suppress {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<i64>,
    },
    /// Over, whatever the engine says.
    Resolve,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Ack => "ack",
            Action::Unack => "unack",
            Action::Suppress { .. } => "suppress",
            Action::Resolve => "resolve",
        }
    }
}

/// Why a command did nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// No alert has this id (or it was forgotten).
    NotFound(String),
    /// The alert's state does not allow it: `ack` of a resolved alert, a
    /// suppression that ends before it starts.
    Conflict(String),
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::NotFound(id) => write!(f, "no alert has the id {id}"),
            CommandError::Conflict(why) => f.write_str(why),
        }
    }
}
