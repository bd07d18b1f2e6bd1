//! The command center: the browser pages of `mon run` / `mon demo`
//! (wallboard, workflow map, item lifecycle, alerts, event search, rule
//! editor), served from assets embedded in the binary, so there is no
//! build step beyond `cargo build` and nothing to install next to it.
//!
//! What it must not do: read the engine or the stores. Every page is the
//! same static shell; its script (`service/assets/ui.js`) reads and acts
//! through the public `/api/v1` API with the user's own token, like any
//! other client, so everything the UI does is also scriptable. These routes
//! are not API routes: they are neither under `/api/v1` nor in the OpenAPI
//! document, and they need no token (the data behind them does).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::Api;

/// The one page: the script picks the view from the path.
const SHELL: &str = include_str!("../../assets/index.html");
const STYLE: &str = include_str!("../../assets/ui.css");
const SCRIPT: &str = include_str!("../../assets/ui.js");
/// The stage page and trend charts, and uPlot (MIT, docs/DEPENDENCIES.md).
const STAGE_ASSETS: [(&str, &str, &str); 4] = [
    ("/ui/stage.js", "text/javascript; charset=utf-8", include_str!("../../assets/stage.js")),
    ("/ui/stage.css", "text/css; charset=utf-8", include_str!("../../assets/stage.css")),
    ("/ui/uPlot.iife.min.js", "text/javascript; charset=utf-8", include_str!("../../assets/vendor/uPlot.iife.min.js")),
    ("/ui/uPlot.min.css", "text/css; charset=utf-8", include_str!("../../assets/vendor/uPlot.min.css")),
];

/// Scripts and styles only from this origin, and no inline script: a
/// payload excerpt or a key shown on a page can never run as code.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/// The page routes and their assets, merged into the API's router outside
/// the token check.
pub fn routes() -> Router<Api> {
    Router::new()
        .route("/", get(shell))
        .route("/workflows/{workflow}", get(shell))
        .route("/items/{workflow}/{key}", get(shell))
        .route("/alerts", get(shell))
        .route("/events", get(shell))
        .route("/rules", get(shell))
        .route("/w/{workflow}/s/{stage}", get(shell))
        .route("/ui/ui.css", get(|| asset("text/css; charset=utf-8", STYLE)))
        .route("/ui/ui.js", get(|| asset("text/javascript; charset=utf-8", SCRIPT)))
}

/// The stage page's script and style and the chart library, kept apart
/// from [`routes`] so that each page's assets are listed in one place.
pub fn stage_assets() -> Router<Api> {
    STAGE_ASSETS.iter().fold(Router::new(), |router, &(path, content_type, body)| {
        router.route(path, get(move || asset(content_type, body)))
    })
}

async fn shell() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SHELL,
    )
        .into_response()
}

/// An embedded asset; `no-cache` so that a browser revalidates after an
/// upgrade instead of running an old script against a new API.
async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}
