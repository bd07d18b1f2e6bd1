//! The notifiers' settings (`[notify]` in mon.toml) and secrets
//! (`[secrets]`), and the one type that holds a secret's value.
//!
//! A channel's `secret("NAME")` is looked up when the service starts:
//! first in `[secrets]` (`NAME = "value"`), then in the environment
//! variable `NAME`. The value lives in memory in a [`Secret`], whose
//! `Debug` and `Display` print `***` and whose serialized form is `***`,
//! so neither a log line nor a dump of the configuration can show it; it
//! is never written to the state directory (notifications name channels,
//! not their targets).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A value that must not be shown: a routing key, a webhook URL with a
/// token in it, a password.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that sends it to its receiver.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why: the configuration is serialized for figment's defaults layer and
/// could be printed by a future `mon config` command; a secret written out
/// must not be the secret.
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// `[secrets]`: NAME = "value", for `secret("NAME")` in rules and the
/// `*_secret` keys below.
pub type Secrets = BTreeMap<String, Secret>;

/// Looks `name` up in `[secrets]`, then in the process environment.
pub fn resolve_secret(secrets: &Secrets, name: &str) -> Option<Secret> {
    resolve_secret_with(secrets, name, |n| std::env::var(n).ok())
}

/// [`resolve_secret`] with the environment given (for tests).
pub fn resolve_secret_with(secrets: &Secrets, name: &str, env: impl Fn(&str) -> Option<String>) -> Option<Secret> {
    secrets.get(name).cloned().or_else(|| env(name).filter(|v| !v.is_empty()).map(Secret))
}

/// `[notify] deliver`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliverTo {
    #[default]
    Receivers,
    Log,
}

/// `[notify]`: how notifications reach their receivers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Where notifications go: `receivers` (the channels' own: email,
    /// webhooks, PagerDuty...) or `log` (one log line each, nothing sent
    /// and no secret needed: for `mon demo`, trying rules out, and
    /// examples whose receivers do not exist).
    pub deliver: DeliverTo,
    /// Where mon's HTTP API is reachable from a receiver's point of view
    /// (`https://mon.example.com`); Alertmanager's `generatorURL` and the
    /// links in Slack messages and emails point there. Absent: no links.
    pub public_url: Option<String>,
    pub http: NotifyHttpConfig,
    /// Needed by `email` channels.
    pub smtp: Option<SmtpConfig>,
    pub pagerduty: PagerdutyConfig,
    /// Needed by `sms` channels.
    pub sms: Option<SmsConfig>,
}

/// `[notify.http]`: the HTTP client of every HTTP receiver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyHttpConfig {
    /// The longest a request may take, connecting and reading the reply
    /// included; past it, the delivery is retried later.
    pub timeout_ms: u64,
}

impl Default for NotifyHttpConfig {
    fn default() -> Self {
        NotifyHttpConfig { timeout_ms: 10_000 }
    }
}

impl NotifyHttpConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (a relay on localhost, tests).
    None,
    /// Plain, then upgraded with STARTTLS; refused if the server cannot.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// `[notify.smtp]`: the relay email channels send through.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// The `From` address, `mon@example.com` or `mon <mon@example.com>`.
    pub from: String,
    pub username: Option<String>,
    /// A literal password; prefer `password_secret`.
    pub password: Option<Secret>,
    /// The name of a secret holding the password (`[secrets]`, then the
    /// environment), resolved at start.
    pub password_secret: Option<String>,
    /// The longest one SMTP command may take, ms.
    pub timeout_ms: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: 25,
            tls: SmtpTls::Starttls,
            from: String::new(),
            username: None,
            password: None,
            password_secret: None,
            timeout_ms: 10_000,
        }
    }
}

/// `[notify.pagerduty]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagerdutyConfig {
    /// The Events API v2 endpoint (another one for tests or a proxy).
    pub url: String,
}

impl Default for PagerdutyConfig {
    fn default() -> Self {
        PagerdutyConfig { url: "https://events.pagerduty.com/v2/enqueue".into() }
    }
}

/// `[notify.sms]`: an HTTP gateway that sends text messages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// Receives `POST {"to", "message", "id"}` per phone number.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`; prefer `token_secret`.
    pub token: Option<Secret>,
    /// The name of a secret holding the token.
    pub token_secret: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_its_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"***\"");
        let smtp = SmtpConfig { password: Some(secret), ..SmtpConfig::default() };
        assert!(!format!("{smtp:?}").contains("hunter2"));
    }

    #[test]
    fn the_table_comes_before_the_environment() {
        let mut secrets = Secrets::new();
        secrets.insert("KEY".into(), Secret::new("from-table"));
        let env = |name: &str| (name == "KEY" || name == "OTHER").then(|| "from-env".to_string());
        assert_eq!(resolve_secret_with(&secrets, "KEY", env).unwrap().expose(), "from-table");
        assert_eq!(resolve_secret_with(&secrets, "OTHER", env).unwrap().expose(), "from-env");
        assert!(resolve_secret_with(&secrets, "MISSING", env).is_none());
    }
}
