//! `order_flow` and `trade_confirmation` (the grouped metrics example):
//! orders from placement to a confirmed trade, with the trouble each
//! listing tends to have.

use serde_json::{json, Value};

use crate::demo::draw::Draw;
use crate::demo::outbox::{Outbox, STREAM_ORDERS};
use crate::demo::{MINUTE, SECOND};
use crate::rng::SplitMix64;

/// Orders with a limit price (the others are market orders).
const LIMIT_SHARE: f64 = 0.4;
/// Pre-trade risk refuses the order before it is routed.
const PRE_TRADE_REJECT: f64 = 0.02;
/// The venue refuses a routed order.
const VENUE_REJECT: f64 = 0.01;
/// The client cancels a resting limit order.
const CLIENT_CANCEL: f64 = 0.12;
/// The client's cancel crosses the fill on the wire and arrives after it.
const CANCEL_CROSSES_FILL: f64 = 0.03;
/// A limit order rests on the book for more than 15 minutes.
const LONG_REST: f64 = 0.02;
/// Confirmations that say AFFIRMED (the others say MATCHED).
const AFFIRMED_SHARE: f64 = 0.35;

/// What can go wrong for the orders of one listing, as probabilities.
struct OrderTroubles {
    /// Routed after the 10 s warning (at risk) ...
    slow_route: f64,
    /// ... or never (missing after 30 s).
    never_routed: f64,
    /// Market orders whose fill is published before the routing event.
    fill_before_route: f64,
    /// Booked after the 1 min warning (at risk) ...
    slow_booking: f64,
    /// ... or after the 2 min deadline (missing, then late).
    late_booking: f64,
    /// The counterparty disputes the trade: failure.
    dispute: f64,
    /// Confirmed after 45 min (at risk) ...
    slow_confirm: f64,
    /// ... or never (missing after 1 h).
    never_confirmed: f64,
}

const CLEAN: OrderTroubles = OrderTroubles {
    slow_route: 0.0,
    never_routed: 0.0,
    fill_before_route: 0.0,
    slow_booking: 0.0,
    late_booking: 0.0,
    dispute: 0.0,
    slow_confirm: 0.0,
    never_confirmed: 0.0,
};

/// A product on a venue, with its booking book and typical prices and sizes.
struct Listing {
    market: &'static str,
    region: &'static str,
    product: &'static str,
    book: &'static str,
    weight: u32,
    price: (f64, f64),
    /// Order size range, in lots.
    lots: (i64, i64),
    lot: i64,
    troubles: OrderTroubles,
}

const LISTINGS: &[Listing] = &[
    Listing {
        market: "XLON",
        region: "EMEA",
        product: "EQUITY",
        book: "EQ-LDN-1",
        weight: 3,
        price: (80.0, 120.0),
        lots: (1, 100),
        lot: 100,
        troubles: CLEAN,
    },
    Listing {
        market: "XLON",
        region: "EMEA",
        product: "ETF",
        book: "ETF-LDN-1",
        weight: 1,
        price: (60.0, 80.0),
        lots: (5, 50),
        lot: 100,
        troubles: CLEAN,
    },
    // A Paris counterparty keeps disputing prices.
    Listing {
        market: "XPAR",
        region: "EMEA",
        product: "EQUITY",
        book: "EQ-PAR-1",
        weight: 2,
        price: (40.0, 90.0),
        lots: (1, 60),
        lot: 100,
        troubles: OrderTroubles { dispute: 0.03, ..CLEAN },
    },
    Listing {
        market: "XNYS",
        region: "AMER",
        product: "EQUITY",
        book: "EQ-NY-1",
        weight: 2,
        price: (30.0, 60.0),
        lots: (1, 50),
        lot: 100,
        troubles: CLEAN,
    },
    // The options gateway is slow to route, and sometimes loses an order.
    Listing {
        market: "XNYS",
        region: "AMER",
        product: "OPTION",
        book: "OPT-NY-1",
        weight: 1,
        price: (1.5, 12.0),
        lots: (1, 100),
        lot: 1,
        troubles: OrderTroubles { slow_route: 0.08, never_routed: 0.01, ..CLEAN },
    },
    // The router's drop copy lags: the fill is published before the routing.
    Listing {
        market: "XNAS",
        region: "AMER",
        product: "EQUITY",
        book: "EQ-NY-2",
        weight: 2,
        price: (100.0, 250.0),
        lots: (1, 30),
        lot: 50,
        troubles: OrderTroubles { fill_before_route: 0.05, ..CLEAN },
    },
    Listing {
        market: "XNAS",
        region: "AMER",
        product: "ETF",
        book: "ETF-NY-1",
        weight: 1,
        price: (380.0, 440.0),
        lots: (1, 20),
        lot: 10,
        troubles: CLEAN,
    },
    // The futures booking engine falls behind.
    Listing {
        market: "XHKF",
        region: "APAC",
        product: "FUTURE",
        book: "FUT-HK-1",
        weight: 1,
        price: (19_800.0, 20_100.0),
        lots: (1, 30),
        lot: 1,
        troubles: OrderTroubles { slow_booking: 0.10, late_booking: 0.04, ..CLEAN },
    },
    // Hong Kong counterparties confirm late, some only the next morning.
    Listing {
        market: "XHKG",
        region: "APAC",
        product: "EQUITY",
        book: "EQ-HK-2",
        weight: 1,
        price: (20.0, 400.0),
        lots: (1, 40),
        lot: 100,
        troubles: OrderTroubles { slow_confirm: 0.05, never_confirmed: 0.015, ..CLEAN },
    },
];

const CLIENTS: &[&str] = &[
    "Jane Doe",
    "Raj Patel",
    "Mia Chen",
    "Kenji Sato",
    "Lena Vogel",
    "Omar Haddad",
    "Tom Reid",
    "Priya Shah",
    "Sam Wilson",
    "Ana Lim",
    "Leo Park",
    "Eva Novak",
];
const PRE_TRADE_REASONS: &[&str] = &["PRE_TRADE_LIMIT", "RESTRICTED_INSTRUMENT", "CREDIT_LIMIT"];
const VENUE_REASONS: &[&str] = &["VENUE_REJECT", "PRICE_BAND"];

pub(crate) fn plan_order(rng: &mut SplitMix64, tag: &str, n: u64, t0: i64, out: &mut Outbox) {
    const S: u64 = STREAM_ORDERS;
    let order_id = format!("O-{tag}-{n:05}");
    let listing = rng.weighted(LISTINGS, |l| l.weight);
    let trouble = &listing.troubles;
    let limit = rng.chance(LIMIT_SHARE);
    let qty = rng.between(listing.lots.0, listing.lots.1 + 1) * listing.lot;
    let price = cents(listing.price.0 + rng.unit() * (listing.price.1 - listing.price.0));
    let side = if rng.chance(0.5) { "BUY" } else { "SELL" };
    out.add(
        S,
        t0,
        "oms",
        "order_placed",
        &[
            ("order_id", json!(order_id)),
            ("account", json!(format!("ACC-{}", rng.between(1000, 4000)))),
            ("client_name", json!(rng.pick(CLIENTS))),
            ("market", json!(listing.market)),
            ("region", json!(listing.region)),
            ("product", json!(listing.product)),
            ("side", json!(side)),
            ("qty", json!(qty)),
            ("limit_price", if limit { json!(price) } else { Value::Null }),
        ],
    );
    let id = || json!(order_id);
    if rng.chance(PRE_TRADE_REJECT) {
        let reason = rng.pick(PRE_TRADE_REASONS);
        out.add(
            S,
            t0 + rng.between(100, 800),
            "oms-risk",
            "order_rejected",
            &[("order_id", id()), ("reason", json!(reason))],
        );
        return;
    }

    let route_after = if rng.chance(trouble.never_routed) {
        return; // the gateway lost it: the order sits in `placed` until the routing goes missing
    } else if rng.chance(trouble.slow_route) {
        rng.between(11 * SECOND, 28 * SECOND)
    } else {
        rng.between(100, 2 * SECOND)
    };
    let routed_at = t0 + route_after;
    let routed = [("order_id", id()), ("venue", json!(listing.market))];
    if rng.chance(VENUE_REJECT) {
        out.add(S, routed_at, "oms-router", "order_routed", &routed);
        let reason = rng.pick(VENUE_REASONS);
        out.add(
            S,
            routed_at + rng.between(50, 600),
            "oms",
            "order_rejected",
            &[("order_id", id()), ("reason", json!(reason))],
        );
        return;
    }
    if limit && rng.chance(CLIENT_CANCEL) {
        out.add(S, routed_at, "oms-router", "order_routed", &routed);
        out.add(
            S,
            routed_at + rng.between(20 * SECOND, 8 * MINUTE),
            "oms",
            "order_cancelled",
            &[("order_id", id()), ("reason", json!("CLIENT_REQUEST"))],
        );
        return;
    }

    // Market orders fill at once; limit orders rest until the price comes to them.
    let fill_after = if !limit {
        rng.between(300, 6 * SECOND)
    } else if rng.chance(LONG_REST) {
        rng.between(16 * MINUTE, 40 * MINUTE)
    } else {
        rng.between(5 * SECOND, 6 * MINUTE)
    };
    let filled_at = routed_at + fill_after;
    let avg_price = if limit { price } else { cents(price * (1.0 + (rng.unit() - 0.5) * 0.002)) };
    let filled = [("order_id", id()), ("filled_qty", json!(qty)), ("avg_price", json!(avg_price))];
    if !limit && rng.chance(trouble.fill_before_route) {
        out.add(S, filled_at, "oms", "order_filled", &filled);
        out.add(S, filled_at + rng.between(300, 2500), "oms-router", "order_routed", &routed);
    } else {
        out.add(S, routed_at, "oms-router", "order_routed", &routed);
        out.add(S, filled_at, "oms", "order_filled", &filled);
    }
    if limit && rng.chance(CANCEL_CROSSES_FILL) {
        out.add(
            S,
            filled_at + rng.between(100, 1500),
            "oms",
            "order_cancelled",
            &[("order_id", id()), ("reason", json!("CLIENT_REQUEST"))],
        );
    }

    let book_after = if rng.chance(trouble.late_booking) {
        rng.between(125 * SECOND, 170 * SECOND)
    } else if rng.chance(trouble.slow_booking) {
        rng.between(62 * SECOND, 115 * SECOND)
    } else {
        rng.between(5 * SECOND, 50 * SECOND)
    };
    let booked_at = filled_at + book_after;
    let trade_id = format!("BK-{tag}-{n:05}");
    out.add(
        S,
        booked_at,
        "booking-engine",
        "trade_booked",
        &[
            ("trade_id", json!(trade_id)),
            ("order_id", id()),
            ("market", json!(listing.market)),
            ("region", json!(listing.region)),
            ("product", json!(listing.product)),
            ("book", json!(listing.book)),
        ],
    );
    plan_confirmation(rng, trouble, &trade_id, booked_at, out);
}

/// The counterparty's answer to a booked trade (`trade_confirmation`).
fn plan_confirmation(rng: &mut SplitMix64, trouble: &OrderTroubles, trade_id: &str, booked_at: i64, out: &mut Outbox) {
    if rng.chance(trouble.never_confirmed) {
        return;
    }
    let (outcome, after) = if rng.chance(trouble.dispute) {
        ("DISPUTED", rng.between(5 * MINUTE, 25 * MINUTE))
    } else {
        let outcome = if rng.chance(AFFIRMED_SHARE) { "AFFIRMED" } else { "MATCHED" };
        if rng.chance(trouble.slow_confirm) {
            (outcome, rng.between(46 * MINUTE, 58 * MINUTE))
        } else {
            (outcome, rng.between(MINUTE, 30 * MINUTE))
        }
    };
    out.add(
        STREAM_ORDERS,
        booked_at + after,
        "confirmations",
        "trade_confirmed",
        &[("trade_id", json!(trade_id)), ("outcome", json!(outcome))],
    );
}

fn cents(price: f64) -> f64 {
    (price * 100.0).round() / 100.0
}
