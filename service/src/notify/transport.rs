//! The HTTP side of every HTTP receiver: one POST with a timeout, and its
//! outcome classified for the outbox.
//!
//! The classification (docs/service.md, "Notifications"): a 2xx status is
//! accepted; 408, 429 and 5xx, a timeout, a refused or broken connection
//! and a reply that is not HTTP may pass, so they are [`Retry::Later`];
//! any other status (4xx, and 3xx: redirects are not followed, since a
//! moved endpoint is a setting to fix) is [`Retry::Never`]. A URL that
//! holds a secret (a Slack webhook) is never put into a message: errors
//! name the target as the rules wrote it (`secret("SLACK_URL")`).

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::{SendFailure, Target};
use crate::error::{Domain, Error, Retry};

/// The client every HTTP receiver shares (one connection pool).
#[derive(Clone, Debug)]
pub struct Http {
    client: reqwest::Client,
}

/// The longest piece of a refusal's body that is kept in its message:
/// enough for PagerDuty's or Slack's reason.
const BODY_EXCERPT: usize = 300;

impl Http {
    pub fn new(timeout: Duration) -> Result<Http, Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mon/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::new(Domain::Config, Retry::Never, "cannot make the HTTP client").caused_by(e))?;
        Ok(Http { client })
    }

    /// POSTs `body` as JSON to `url` with `headers`; `target` names the
    /// receiver in a failure's message.
    pub async fn post_json(
        &self,
        target: &Target,
        url: &str,
        headers: &[(&'static str, String)],
        body: &serde_json::Value,
    ) -> Result<(), SendFailure> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let value = HeaderValue::from_str(value)
                .map_err(|_| SendFailure::never(format!("{}: header {name} is not valid", target.shown)))?;
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SendFailure::never(format!("{}: `{name}` is not a header name", target.shown)))?;
            map.insert(name, value);
        }
        let response = self.client.post(url).headers(map).json(body).send().await.map_err(|e| failure_of(target, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry = classify_status(status.as_u16());
        // The reason the receiver gives, if it arrives within the timeout.
        let text = response.text().await.unwrap_or_default();
        let excerpt: String = text.chars().take(BODY_EXCERPT).collect();
        let excerpt = excerpt.trim();
        let mut message = format!("{}: answered {status}", target.shown);
        if !excerpt.is_empty() {
            message.push_str(&format!(": {excerpt}"));
        }
        Err(SendFailure { retry, message })
    }
}

/// What an HTTP status says about trying again.
pub fn classify_status(status: u16) -> Retry {
    match status {
        408 | 429 | 500..=599 => Retry::Later,
        _ => Retry::Never,
    }
}

/// A request that got no HTTP answer: the receiver may come back, so it
/// is retried, except for a request that cannot be made at all.
fn failure_of(target: &Target, error: reqwest::Error) -> SendFailure {
    let what = if error.is_timeout() {
        "no answer within the timeout"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_builder() {
        return SendFailure::never(format!("{}: the request cannot be made", target.shown));
    } else {
        "the answer is not HTTP or the connection broke"
    };
    // Why `without_url`: the URL may be the secret (a Slack webhook).
    let error = error.without_url();
    let mut detail = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(&error);
    let mut causes = Vec::new();
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    if let Some(last) = causes.last() {
        detail = format!(" ({last})");
    }
    SendFailure::later(format!("{}: {what}{detail}", target.shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_that_may_pass_are_retried_later() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert_eq!(classify_status(status), Retry::Later, "{status}");
        }
        for status in [301, 400, 401, 403, 404, 410, 413, 422] {
            assert_eq!(classify_status(status), Retry::Never, "{status}");
        }
    }
}
