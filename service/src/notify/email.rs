//! Email through an SMTP relay (`[notify.smtp]`), with lettre: plain text,
//! STARTTLS or TLS, with optional authentication. One message per
//! notification, to all of the channel's addresses in one SMTP
//! transaction.
//!
//! The subject says what and how many (`[mon] FIRING high
//! trade_lifecycle.sys3_ack missing: 10000 active`); the body is plain
//! text: the summary, the counts, the first keys with their deadlines and
//! the runbook. `Message-ID` is `<notification-id@mon>`, so a receiver (or
//! a person) can drop a repeat, and every message of a group names
//! `<group.group-key@mon>` in `In-Reply-To` and `References`, so mail
//! clients show a group as one thread. The `Date` is the notification's
//! time, so a message is the same bytes on every attempt.
//!
//! An SMTP reply 5xx is permanent ([`Retry::Never`]); 4xx, a timeout or a
//! connection that fails may pass ([`Retry::Later`]).

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use mon_runtime::alerts::{Notification, NotificationEvent};

use super::config::{Secret, SmtpConfig, SmtpTls};
use super::{key_fields, rfc3339, Retry, SendFailure};

/// The relay and the sender, shared by every email channel.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    relay: String,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer").field("relay", &self.relay).field("from", &self.from.to_string()).finish()
    }
}

impl Mailer {
    /// Checks `[notify.smtp]` and resolves its password; the error is the
    /// problem in words (the caller names the channel).
    pub fn new(smtp: &SmtpConfig, resolve: &dyn Fn(&str) -> Option<Secret>) -> Result<Mailer, String> {
        if smtp.host.trim().is_empty() {
            return Err("notify.smtp.host: empty".into());
        }
        let from: Mailbox =
            smtp.from.parse().map_err(|_| format!("notify.smtp.from: `{}` is not an email address", smtp.from))?;
        let password = match (&smtp.password, &smtp.password_secret) {
            (Some(_), Some(_)) => return Err("notify.smtp has both password and password_secret; keep one".into()),
            (Some(password), None) => Some(password.clone()),
            (None, Some(name)) => Some(resolve(name).ok_or_else(|| {
                format!(
                    "notify.smtp.password_secret: secret \"{name}\" is not set; add it to [secrets] or set the \
                     environment variable {name}"
                )
            })?),
            (None, None) => None,
        };
        let builder = match smtp.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
                .map_err(|e| format!("notify.smtp: cannot set up STARTTLS for {}: {e}", smtp.host))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
                .map_err(|e| format!("notify.smtp: cannot set up TLS for {}: {e}", smtp.host))?,
        };
        let mut builder = builder.port(smtp.port).timeout(Some(Duration::from_millis(smtp.timeout_ms)));
        match (&smtp.username, password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_string()))
            }
            (None, None) => {}
            _ => return Err("notify.smtp: username and a password go together".into()),
        }
        Ok(Mailer { transport: builder.build(), from, relay: format!("{}:{}", smtp.host, smtp.port) })
    }

    /// One attempt to hand the message to the relay.
    pub async fn send(&self, n: &Notification, to: &[Mailbox], public_url: Option<&str>) -> Result<(), SendFailure> {
        let message = message(n, &self.from, to, public_url)
            .map_err(|e| SendFailure::never(format!("cannot make the email: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let retry = if e.is_permanent() { Retry::Never } else { Retry::Later };
                Err(SendFailure { retry, message: format!("SMTP relay {}: {e}", self.relay) })
            }
        }
    }
}

/// The message, the same bytes for the same notification.
pub fn message(
    n: &Notification,
    from: &Mailbox,
    to: &[Mailbox],
    public_url: Option<&str>,
) -> Result<Message, lettre::error::Error> {
    let thread = format!("<group.{}@mon>", msg_id_part(&n.group_key));
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(subject(n))
        .message_id(Some(format!("<{}@mon>", msg_id_part(&n.id))))
        .in_reply_to(thread.clone())
        .references(thread)
        .date(UNIX_EPOCH + Duration::from_millis(n.at.max(0) as u64))
        .header(ContentType::TEXT_PLAIN);
    for mailbox in to {
        builder = builder.to(mailbox.clone());
    }
    builder.body(body(n, public_url))
}

/// `[mon] FIRING high trade_lifecycle.sys3_ack missing: 10000 active`.
pub fn subject(n: &Notification) -> String {
    let count = match n.event {
        NotificationEvent::Resolved => format!("{} resolved", n.resolved),
        _ => format!("{} active", n.active),
    };
    let escalated = if n.escalated { " ESCALATED" } else { "" };
    format!(
        "[mon] {}{escalated} {} {}.{} {}: {count}",
        n.event.name().to_uppercase(),
        n.severity.name(),
        n.workflow,
        n.step,
        n.kind.name()
    )
}

/// The text/plain body.
pub fn body(n: &Notification, public_url: Option<&str>) -> String {
    let mut text = format!("{}\n\n", n.summary);
    let mut line = |label: &str, value: &str| text.push_str(&format!("{:<16}{value}\n", format!("{label}:")));
    line("Event", n.event.name());
    line("Workflow", &n.workflow);
    line("Step", &n.step);
    line("Kind", n.kind.name());
    line("Severity", n.severity.name());
    if !n.group.is_empty() {
        line("Group", &key_fields(&n.group));
    }
    line("Active", &format!("{} ({} acknowledged)", n.active, n.acknowledged));
    line("New", &n.new.to_string());
    line("Resolved", &n.resolved.to_string());
    if n.escalated {
        line("Escalated", "yes: unacknowledged past `escalate after`");
    }
    if let Some(by) = &n.acknowledged_by {
        line("Acknowledged by", by);
    }
    if !n.alerts.is_empty() {
        let heading = if n.event == NotificationEvent::Resolved { "Last keys" } else { "First keys" };
        text.push_str(&format!("\n{heading}:\n"));
        for alert in &n.alerts {
            text.push_str(&format!("  {}  ({}", key_fields(&alert.key), alert.state.name()));
            if let Some(deadline) = alert.deadline {
                text.push_str(&format!(", deadline {}", rfc3339(deadline)));
            }
            text.push_str(")\n");
        }
        let listed = n.alerts.len() as u64;
        if u64::from(n.active) > listed && n.event != NotificationEvent::Resolved {
            text.push_str(&format!("  ... and {} more\n", u64::from(n.active) - listed));
        }
    }
    text.push('\n');
    if let Some(runbook) = &n.runbook {
        text.push_str(&format!("Runbook: {runbook}\n"));
    }
    if let Some(url) = public_url {
        text.push_str(&format!("mon: {url}\n"));
    }
    text.push_str(&format!("\nNotification {} at {}, rules {}.\n", n.id, rfc3339(n.at), n.program_hash));
    text
}

/// Text that fits inside a `Message-ID` (RFC 5322 `dot-atom-text`): other
/// characters, and `=`, become `=XX`, so that different ids stay
/// different.
fn msg_id_part(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        let allowed = byte.is_ascii_alphanumeric() || b"!#$%&'*+-/?^_`{|}~.".contains(&byte);
        if allowed {
            out.push(byte as char);
        } else {
            out.push_str(&format!("={byte:02X}"));
        }
    }
    let out = out.trim_matches('.').to_string();
    // Consecutive dots are not a dot-atom either.
    out.replace("..", ".=2E")
}

#[cfg(test)]
mod tests {
    use super::super::tests::{resolved, sample};
    use super::*;

    #[test]
    fn subject_and_body() {
        let n = sample();
        insta::assert_snapshot!(format!("Subject: {}\n\n{}", subject(&n), body(&n, Some("https://mon.example.com"))));
        assert_eq!(subject(&resolved()), "[mon] RESOLVED high trade_lifecycle.sys3_ack missing: 3 resolved");
    }

    #[test]
    fn message_id_and_thread_headers() {
        let from: Mailbox = "mon <mon@example.com>".parse().unwrap();
        let to: Vec<Mailbox> = vec!["a@example.com".parse().unwrap(), "b@example.com".parse().unwrap()];
        let bytes = message(&sample(), &from, &to, None).unwrap().formatted();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("Message-ID: <n-1=3A7@mon>"), "{text}");
        assert!(text.contains("In-Reply-To: <group.g=3Atrade_lifecycle/sys3_ack@mon>"), "{text}");
        assert!(text.contains("References: <group.g=3Atrade_lifecycle/sys3_ack@mon>"), "{text}");
        assert!(text.contains("To: a@example.com, b@example.com"), "{text}");
        // The same notification gives the same bytes.
        assert_eq!(message(&sample(), &from, &to, None).unwrap().formatted(), text.as_bytes());
    }

    #[test]
    fn ids_map_to_message_ids_one_to_one() {
        assert_eq!(msg_id_part("a.b-c_1"), "a.b-c_1");
        assert_ne!(msg_id_part("a:b"), msg_id_part("a=3Ab"));
        assert_eq!(msg_id_part("a b"), "a=20b");
    }
}
