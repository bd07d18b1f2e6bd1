//! `trade_lifecycle` (System 1 -> 2 -> 3 -> 4): trades ingested, verified,
//! sent to System 3, acknowledged and sent to System 4, with the trouble
//! each book tends to have.

use serde_json::{json, Value};

use crate::demo::draw::Draw;
use crate::demo::outbox::{timestamp, Outbox, STREAM_TRADES};
use crate::demo::SECOND;
use crate::rng::SplitMix64;

/// System 1 replays its outbox after a restart: the same trade again, with a
/// new envelope id (the rule drops it as a duplicate).
const OUTBOX_REPLAY: f64 = 0.01;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TradeFate {
    Clean,
    /// System 2's event publisher lags its outbound queue: `sent_to_sys3` beats `trade_verified`.
    SentBeforeVerified,
    /// Static-data checks take over a minute (at risk) ...
    SlowVerify,
    /// ... or over the 2 minutes allowed (late, missing if past the 30 s grace).
    LateVerify,
    /// System 3 replies after 3 minutes (at risk) ...
    SlowAck,
    /// ... or after 5 (at risk, missing past the grace, late).
    LateAck,
    /// System 3 never replies: missing, and paged.
    SilentSys3,
    /// System 3 refuses the trade: failure.
    Nack,
}

/// A trading book and the trouble its flow tends to have.
struct Book {
    name: &'static str,
    region: &'static str,
    market: &'static str,
    product: &'static str,
    currency: &'static str,
    notional: (i64, i64),
    traders: &'static [&'static str],
    weight: u32,
    troubles: &'static [(TradeFate, f64)],
}

const BOOKS: &[Book] = &[
    // The reference book: nothing goes wrong here, so its group stays green.
    Book {
        name: "EQ-LDN-1",
        region: "EMEA",
        market: "XLON",
        product: "EQUITY",
        currency: "GBP",
        notional: (20_000, 900_000),
        traders: &["Alice Smith", "Tom Reid"],
        weight: 3,
        troubles: &[],
    },
    Book {
        name: "EQ-LDN-2",
        region: "EMEA",
        market: "XPAR",
        product: "EQUITY",
        currency: "EUR",
        notional: (20_000, 600_000),
        traders: &["Dana Martin", "Eva Novak"],
        weight: 2,
        troubles: &[(TradeFate::SentBeforeVerified, 0.08)],
    },
    Book {
        name: "FX-LDN-3",
        region: "EMEA",
        market: "XOFF",
        product: "FX_FWD",
        currency: "EUR",
        notional: (1_000_000, 20_000_000),
        traders: &["Erik Larsen"],
        weight: 2,
        troubles: &[(TradeFate::SlowVerify, 0.08), (TradeFate::LateVerify, 0.03)],
    },
    Book {
        name: "EQ-NY-1",
        region: "AMER",
        market: "XNAS",
        product: "EQUITY",
        currency: "USD",
        notional: (30_000, 800_000),
        traders: &["Fay Okafor", "Sam Wilson"],
        weight: 3,
        troubles: &[(TradeFate::SlowAck, 0.04)],
    },
    Book {
        name: "RATES-NY-2",
        region: "AMER",
        market: "XNYS",
        product: "IRS",
        currency: "USD",
        notional: (5_000_000, 50_000_000),
        traders: &["Bob Jones"],
        weight: 1,
        troubles: &[(TradeFate::Nack, 0.05)],
    },
    Book {
        name: "EQ-HK-1",
        region: "APAC",
        market: "XHKG",
        product: "EQUITY",
        currency: "HKD",
        notional: (100_000, 3_000_000),
        traders: &["Chen Wei", "Kenji Sato"],
        weight: 2,
        troubles: &[(TradeFate::LateAck, 0.05), (TradeFate::SilentSys3, 0.015), (TradeFate::SlowAck, 0.03)],
    },
];

/// Why System 3 refuses a trade.
const NACK_REASONS: &[&str] = &["UNKNOWN_COUNTERPARTY", "SSI_MISSING", "TRADE_DATE_MISMATCH"];

pub(crate) fn plan_trade(rng: &mut SplitMix64, trade_id: &str, t0: i64, out: &mut Outbox) {
    const S: u64 = STREAM_TRADES;
    let book = rng.weighted(BOOKS, |b| b.weight);
    let fate = rng.fate(book.troubles, TradeFate::Clean);
    let notional = rng.between(book.notional.0 / 1000, book.notional.1 / 1000) as f64 * 1000.0;
    // The trade was struck a moment before System 1 captured it.
    let trade_time = t0 - rng.between(300, 4 * SECOND);
    let ingested = [
        ("trade_id", json!(trade_id)),
        ("book", json!(book.name)),
        ("region", json!(book.region)),
        ("market", json!(book.market)),
        ("product", json!(book.product)),
        ("notional", json!(notional)),
        ("currency", json!(book.currency)),
        ("trade_time", json!(timestamp(trade_time))),
        ("trader", json!(rng.pick(book.traders))),
    ];
    out.add(S, t0, "sys1", "trade_ingested", &ingested);
    if rng.chance(OUTBOX_REPLAY) {
        out.add(S, t0 + rng.between(5 * SECOND, 60 * SECOND), "sys1", "trade_ingested", &ingested);
    }

    let verify_after = match fate {
        TradeFate::SlowVerify => rng.between(65 * SECOND, 115 * SECOND),
        TradeFate::LateVerify => rng.between(125 * SECOND, 175 * SECOND),
        _ => rng.between(3 * SECOND, 40 * SECOND),
    };
    let (verified_at, sent3_at) = if fate == TradeFate::SentBeforeVerified {
        // The trade goes out on time; the verification event trails it.
        let sent3 = t0 + verify_after;
        (sent3 + rng.between(SECOND, 6 * SECOND), sent3)
    } else {
        let verified = t0 + verify_after;
        (verified, verified + rng.between(3 * SECOND, 20 * SECOND))
    };
    let checks = rng.between(11, 13);
    out.add(
        S,
        verified_at,
        "sys2",
        "trade_verified",
        &[("trade_id", json!(trade_id)), ("system", json!("S2")), ("checks_passed", json!(checks))],
    );
    out.add(
        S,
        sent3_at,
        "sys2",
        "sent_to_sys3",
        &[("trade_id", json!(trade_id)), ("message_id", json!(format!("S3-{}", &trade_id[2..])))],
    );

    let reply = match fate {
        TradeFate::SilentSys3 => None,
        TradeFate::Nack => Some(("NACK", rng.between(5 * SECOND, 60 * SECOND))),
        TradeFate::SlowAck => Some(("ACK", rng.between(185 * SECOND, 290 * SECOND))),
        TradeFate::LateAck => Some(("ACK", rng.between(310 * SECOND, 420 * SECOND))),
        _ => Some(("ACK", rng.between(8 * SECOND, 90 * SECOND))),
    };
    let Some((status, after)) = reply else { return };
    let replied_at = sent3_at + after;
    let reason = if status == "NACK" { json!(rng.pick(NACK_REASONS)) } else { Value::Null };
    out.add(
        S,
        replied_at,
        "sys3",
        "sys3_reply",
        &[
            ("ref", json!(trade_id)),
            ("status", json!(status)),
            ("reason", reason),
            ("message_id", json!(format!("R-{}", &trade_id[2..]))),
        ],
    );
    if status == "ACK" {
        out.add(
            S,
            replied_at + rng.between(2 * SECOND, 25 * SECOND),
            "sys2",
            "sent_to_sys4",
            &[("trade_id", json!(trade_id)), ("message_id", json!(format!("S4-{}", &trade_id[2..])))],
        );
    }
}
