//! Text messages through an HTTP gateway (`[notify.sms] url`): one
//! `POST {"to", "message", "id"}` per phone number, with
//! `Authorization: Bearer <token>` when a token is configured. The message
//! is the summary cut to one SMS (160 characters); `id` is the
//! notification's, for the gateway to drop a repeat.

use mon_runtime::alerts::Notification;
use serde_json::{json, Value};

use super::truncate;

/// One SMS segment of the GSM alphabet.
pub const MESSAGE_MAX: usize = 160;

/// The body for one phone number.
pub fn payload(n: &Notification, to: &str) -> Value {
    json!({"to": to, "message": truncate(&n.summary, MESSAGE_MAX), "id": n.id})
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;

    #[test]
    fn the_summary_cut_to_one_message() {
        let mut n = sample();
        n.summary = "x".repeat(500);
        let body = payload(&n, "+441234567890");
        assert_eq!(body["to"], "+441234567890");
        assert_eq!(body["id"], n.id);
        assert_eq!(body["message"].as_str().unwrap().chars().count(), MESSAGE_MAX);
        assert_eq!(payload(&sample(), "+1")["message"], sample().summary);
    }
}
