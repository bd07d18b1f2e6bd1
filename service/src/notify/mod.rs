//! Notifiers: a [`Notification`] of the alert book, delivered to the
//! receivers of its channel, each in the payload that receiver documents
//! (one module per kind: [`email`], [`webhook`], [`slack`], [`pagerduty`],
//! [`alertmanager`], [`sms`]; HTTP in [`transport`]).
//!
//! [`Notifiers::new`] is called once at start: it resolves every channel's
//! `secret("NAME")` (`[secrets]`, then the environment variable `NAME`,
//! see [`config`]), parses every address and URL, and checks that the
//! settings a kind needs are there, so a mistake stops the start with a
//! configuration error that names the channel, instead of a delivery that
//! fails at 3 a.m. [`Notifiers::send`] then makes one delivery attempt and
//! says whether another attempt can help ([`SendFailure::retry`]); the
//! outbox decides when to try again.
//!
//! **Several targets.** A channel with several targets (`email "a@x",
//! "b@x"`, two webhooks) is delivered to each, in order, and `send`
//! succeeds only when every target accepted. When some failed, the failure
//! names them and the outbox sends the notification again to *every*
//! target: a target that already accepted gets it twice. That is safe
//! because each payload carries the notification's id where its receiver
//! deduplicates (`Idempotency-Key`, PagerDuty's `dedup_key`, Alertmanager's
//! label set, the email's `Message-ID`, the SMS gateway's `id`). Email is
//! the exception that fails or succeeds as one: all recipients are in one
//! SMTP transaction. A failure is [`Retry::Later`] when any target's
//! failure may pass, else [`Retry::Never`].

pub mod alertmanager;
pub mod config;
pub mod email;
pub mod pagerduty;
pub mod slack;
pub mod sms;
pub mod transport;
pub mod webhook;

use std::collections::BTreeMap;
use std::fmt;

use mon_compiler::ir::{ChannelKind, ChannelTarget, Program};
use mon_runtime::alerts::Notification;

pub use self::config::{NotifyConfig, Secret, Secrets};
use crate::error::Error;
pub use crate::error::Retry;

/// One delivery attempt that did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendFailure {
    /// `Later`: the same notification may be accepted on another attempt
    /// (a timeout, a 5xx, 429); `Never`: the receiver refused it for good
    /// (another 4xx) and a person must look.
    pub retry: Retry,
    /// What failed, naming the channel and the target as the rules wrote
    /// it; never a secret's value.
    pub message: String,
}

impl SendFailure {
    pub fn later(message: impl Into<String>) -> SendFailure {
        SendFailure { retry: Retry::Later, message: message.into() }
    }

    pub fn never(message: impl Into<String>) -> SendFailure {
        SendFailure { retry: Retry::Never, message: message.into() }
    }
}

impl fmt::Display for SendFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hint = match self.retry {
            Retry::Later => "may pass: retrying can help",
            Retry::Never => "permanent",
        };
        write!(f, "{} ({hint})", self.message)
    }
}

impl std::error::Error for SendFailure {}

/// One target of a channel: its value, and how messages name it (the
/// literal, or `secret("NAME")` for a secret).
#[derive(Clone, Debug)]
pub struct Target {
    pub shown: String,
    value: Secret,
}

impl Target {
    pub fn value(&self) -> &str {
        self.value.expose()
    }
}

/// How one channel delivers.
#[derive(Debug)]
enum Receiver {
    Email(Box<email::Mailer>, Vec<lettre::message::Mailbox>),
    Webhook(Vec<Target>),
    Slack(Vec<Target>),
    Pagerduty { url: String, routing_keys: Vec<Target> },
    Alertmanager(Vec<Target>),
    Sms { url: String, token: Option<Secret>, numbers: Vec<Target> },
}

#[derive(Debug)]
struct Channel {
    kind: ChannelKind,
    receiver: Receiver,
}

/// Every channel of a program, ready to deliver.
#[derive(Debug)]
pub struct Notifiers {
    channels: BTreeMap<String, Channel>,
    http: transport::Http,
    public_url: Option<String>,
}

impl Notifiers {
    /// Resolves the channels of `program` with `config` and `secrets`
    /// (then the process environment); every problem is reported at once,
    /// as a configuration error naming its channel.
    pub fn new(config: &NotifyConfig, secrets: &Secrets, program: &Program) -> Result<Notifiers, Error> {
        Notifiers::with_env(config, secrets, program, |name| std::env::var(name).ok())
    }

    /// [`new`](Self::new) with the environment given (for tests).
    pub fn with_env(
        config: &NotifyConfig,
        secrets: &Secrets,
        program: &Program,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Notifiers, Error> {
        let mut problems = Vec::new();
        let resolve = |name: &str| config::resolve_secret_with(secrets, name, &env);
        let mut channels = BTreeMap::new();
        let mut mailer: Option<Result<email::Mailer, String>> = None;
        let public_url = config.public_url.as_ref().map(|u| u.trim_end_matches('/').to_string());
        if let Some(url) = &public_url {
            if reqwest::Url::parse(url).is_err() {
                problems.push(format!("notify.public_url: `{url}` is not a URL"));
            }
        }
        for channel in &program.channels {
            let name = &channel.name;
            let mut targets = Vec::new();
            for target in &channel.targets {
                match target {
                    ChannelTarget::Literal(value) => {
                        targets.push(Target { shown: format!("\"{value}\""), value: Secret::new(value.clone()) })
                    }
                    ChannelTarget::Secret(secret) => match resolve(secret) {
                        Some(value) => targets.push(Target { shown: format!("secret(\"{secret}\")"), value }),
                        None => problems.push(format!(
                            "channel {name}: secret \"{secret}\" is not set; add it to [secrets] in the \
                             configuration or set the environment variable {secret}"
                        )),
                    },
                }
            }
            if targets.is_empty() && channel.targets.is_empty() {
                problems.push(format!("channel {name}: no target"));
            }
            let check_urls = |targets: &[Target], problems: &mut Vec<String>| {
                for target in targets {
                    if !is_http_url(target.value()) {
                        problems.push(format!("channel {name}: {} is not an http(s) URL", target.shown));
                    }
                }
            };
            let receiver = match channel.kind {
                ChannelKind::Email => {
                    let Some(smtp) = &config.smtp else {
                        problems.push(format!(
                            "channel {name}: an email channel needs [notify.smtp] (host, port, tls, from)"
                        ));
                        continue;
                    };
                    match mailer.get_or_insert_with(|| email::Mailer::new(smtp, &resolve)) {
                        Ok(m) => {
                            let mut to = Vec::new();
                            for target in &targets {
                                match target.value().parse::<lettre::message::Mailbox>() {
                                    Ok(mailbox) => to.push(mailbox),
                                    Err(_) => problems
                                        .push(format!("channel {name}: {} is not an email address", target.shown)),
                                }
                            }
                            Receiver::Email(Box::new(m.clone()), to)
                        }
                        Err(e) => {
                            problems.push(format!("channel {name}: {e}"));
                            continue;
                        }
                    }
                }
                ChannelKind::Webhook => {
                    check_urls(&targets, &mut problems);
                    Receiver::Webhook(targets)
                }
                ChannelKind::Slack => {
                    check_urls(&targets, &mut problems);
                    Receiver::Slack(targets)
                }
                ChannelKind::Alertmanager => {
                    check_urls(&targets, &mut problems);
                    Receiver::Alertmanager(targets)
                }
                ChannelKind::Pagerduty => {
                    if !is_http_url(&config.pagerduty.url) {
                        problems.push(format!(
                            "channel {name}: notify.pagerduty.url `{}` is not an http(s) URL",
                            config.pagerduty.url
                        ));
                    }
                    Receiver::Pagerduty { url: config.pagerduty.url.clone(), routing_keys: targets }
                }
                ChannelKind::Sms => match &config.sms {
                    Some(sms) if is_http_url(&sms.url) => {
                        let token = match (&sms.token, &sms.token_secret) {
                            (Some(_), Some(_)) => {
                                problems.push(format!(
                                    "channel {name}: notify.sms has both token and token_secret; keep one"
                                ));
                                None
                            }
                            (Some(token), None) => Some(token.clone()),
                            (None, Some(secret)) => {
                                let value = resolve(secret);
                                if value.is_none() {
                                    problems.push(format!(
                                        "channel {name}: notify.sms.token_secret: secret \"{secret}\" is not set; \
                                         add it to [secrets] or set the environment variable {secret}"
                                    ));
                                }
                                value
                            }
                            (None, None) => None,
                        };
                        Receiver::Sms { url: sms.url.clone(), token, numbers: targets }
                    }
                    Some(sms) => {
                        problems.push(format!("channel {name}: notify.sms.url `{}` is not an http(s) URL", sms.url));
                        continue;
                    }
                    None => {
                        problems
                            .push(format!("channel {name}: an sms channel needs [notify.sms] with the gateway's url"));
                        continue;
                    }
                },
            };
            channels.insert(name.clone(), Channel { kind: channel.kind, receiver });
        }
        let http = transport::Http::new(config.http.timeout())?;
        if problems.is_empty() {
            Ok(Notifiers { channels, http, public_url })
        } else {
            Err(Error::config(format!("invalid notification settings:\n  {}", problems.join("\n  "))))
        }
    }

    /// The channels' names, sorted.
    pub fn channel_names(&self) -> impl Iterator<Item = &str> {
        self.channels.keys().map(String::as_str)
    }

    /// The kind of the channel named `name`, if the program declares it.
    pub fn channel_kind(&self, name: &str) -> Option<ChannelKind> {
        self.channels.get(name).map(|c| c.kind)
    }

    /// One attempt to deliver `n` to every target of its channel.
    pub async fn send(&self, n: &Notification) -> Result<(), SendFailure> {
        let Some(channel) = self.channels.get(&n.channel) else {
            return Err(SendFailure::never(format!("no channel named {} in the rules", n.channel)));
        };
        let public_url = self.public_url.as_deref();
        let http = &self.http;
        let mut failures = Vec::new();
        match &channel.receiver {
            Receiver::Email(mailer, to) => {
                if let Err(e) = mailer.send(n, to, public_url).await {
                    failures.push(e);
                }
            }
            Receiver::Webhook(targets) => {
                let body = webhook::payload(n);
                let headers = [("idempotency-key", n.id.clone())];
                for target in targets {
                    failures.extend(http.post_json(target, target.value(), &headers, &body).await.err());
                }
            }
            Receiver::Slack(targets) => {
                let body = slack::payload(n, public_url);
                for target in targets {
                    failures.extend(http.post_json(target, target.value(), &[], &body).await.err());
                }
            }
            Receiver::Pagerduty { url, routing_keys } => {
                for key in routing_keys {
                    let body = pagerduty::payload(n, key.value());
                    failures.extend(http.post_json(key, url, &[], &body).await.err());
                }
            }
            Receiver::Alertmanager(bases) => {
                let body = alertmanager::payload(n, public_url);
                for base in bases {
                    let url = alertmanager::alerts_url(base.value());
                    failures.extend(http.post_json(base, &url, &[], &body).await.err());
                }
            }
            Receiver::Sms { url, token, numbers } => {
                let headers: Vec<(&'static str, String)> =
                    token.iter().map(|t| ("authorization", format!("Bearer {}", t.expose()))).collect();
                for number in numbers {
                    let body = sms::payload(n, number.value());
                    failures.extend(http.post_json(number, url, &headers, &body).await.err());
                }
            }
        }
        combine(&n.channel, failures)
    }
}

/// One failure for the channel out of its targets' failures.
fn combine(channel: &str, failures: Vec<SendFailure>) -> Result<(), SendFailure> {
    if failures.is_empty() {
        return Ok(());
    }
    let retry = if failures.iter().any(|f| f.retry == Retry::Later) { Retry::Later } else { Retry::Never };
    let messages: Vec<String> = failures.into_iter().map(|f| f.message).collect();
    Err(SendFailure { retry, message: format!("channel {channel}: {}", messages.join("; ")) })
}

fn is_http_url(text: &str) -> bool {
    reqwest::Url::parse(text).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// An instant as notifications write it: RFC 3339, UTC.
pub(crate) fn rfc3339(ms: i64) -> String {
    mon_stdlib::time::format_rfc3339(ms)
}

/// Every field of a key, named: `trade_id=T-1, book=B` (the summary names
/// only the value of a one-field key).
pub(crate) fn key_fields(key: &BTreeMap<String, String>) -> String {
    key.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

/// The first `max` characters of `text`, with `…` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
pub(crate) mod tests;

/// The delivery task sends through the notifiers: one attempt per call;
/// the task retries and keeps each group's order.
impl crate::delivery::Deliver for Notifiers {
    fn deliver<'a>(&'a self, notification: &'a Notification) -> crate::delivery::Delivery<'a> {
        Box::pin(async move {
            self.send(notification)
                .await
                .map_err(|failure| crate::delivery::DeliveryFailure { retry: failure.retry, message: failure.message })
        })
    }
}
