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

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::Api;

/// The one page: the script picks the view from the path.
const SHELL: &str = include_str!("../../assets/index.html");
const STYLE: &str = include_str!("../../assets/ui.css");
const SCRIPT: &str = include_str!("../../assets/ui.js");
/// mon's own health, shown on every page.
const HEALTH: &str = include_str!("../../assets/health.js");
/// The stage page and trend charts, and uPlot (MIT, docs/DEPENDENCIES.md).
const STAGE_ASSETS: [(&str, &str, &str); 4] = [
    ("/ui/stage.js", "text/javascript; charset=utf-8", include_str!("../../assets/stage.js")),
    ("/ui/stage.css", "text/css; charset=utf-8", include_str!("../../assets/stage.css")),
    ("/ui/uPlot.iife.min.js", "text/javascript; charset=utf-8", include_str!("../../assets/vendor/uPlot.iife.min.js")),
    ("/ui/uPlot.min.css", "text/css; charset=utf-8", include_str!("../../assets/vendor/uPlot.min.css")),
];

/// Scripts and styles only from this origin, and no inline script: a
/// payload excerpt or a key shown on a page can never run as code. The
/// page connects to this origin only, and, with `[auth.oidc]`, to the
/// identity provider's (its discovery document and token endpoint, for
/// the browser's sign-in).
fn content_security_policy(identity_provider: Option<&str>) -> String {
    let connect = identity_provider.map_or_else(|| "'self'".to_string(), |origin| format!("'self' {origin}"));
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src {connect}; \
         frame-ancestors 'none'"
    )
}

/// `scheme://host[:port]` of an issuer URL, if it is one a policy can name
/// (http or https, and nothing that would end the directive).
fn origin_of(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let host_end = rest.find('/').unwrap_or(rest.len());
    let origin = &url[..url.len() - rest.len() + host_end];
    let host = &rest[..host_end];
    let plain = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    plain.then_some(origin)
}

/// The page routes and their assets, merged into the API's router outside
/// the token check.
pub fn routes() -> Router<Api> {
    Router::new()
        .route("/", get(shell))
        .route("/w/{workflow}", get(shell))
        .route("/w/{workflow}/i/{key}", get(shell))
        // The first slice's paths: links in the wild keep working.
        .route("/workflows/{workflow}", get(shell))
        .route("/items/{workflow}/{key}", get(shell))
        .route("/alerts", get(shell))
        .route("/events", get(shell))
        .route("/rules", get(shell))
        // Where the identity provider sends the browser back after sign-in.
        .route("/oidc/callback", get(shell))
        .route("/w/{workflow}/s/{stage}", get(shell))
        .route("/ui/ui.css", get(|| asset("text/css; charset=utf-8", STYLE)))
        .route("/ui/ui.js", get(|| asset("text/javascript; charset=utf-8", SCRIPT)))
        .route("/ui/health.js", get(|| asset("text/javascript; charset=utf-8", HEALTH)))
}

/// The stage page's script and style and the chart library, kept apart
/// from [`routes`] so that each page's assets are listed in one place.
pub fn stage_assets() -> Router<Api> {
    STAGE_ASSETS.iter().fold(Router::new(), |router, &(path, content_type, body)| {
        router.route(path, get(move || asset(content_type, body)))
    })
}

async fn shell(State(api): State<Api>) -> Response {
    let issuer = api.auth.as_ref().and_then(|a| a.oidc.as_ref()).map(|v| v.issuer().to_string());
    let policy = content_security_policy(issuer.as_deref().and_then(origin_of));
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
            (header::CONTENT_SECURITY_POLICY, policy),
            (header::CACHE_CONTROL, "no-cache".to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_only_the_identity_providers_origin() {
        assert_eq!(origin_of("https://idp.example.com/realms/ops"), Some("https://idp.example.com"));
        assert_eq!(origin_of("http://127.0.0.1:8081"), Some("http://127.0.0.1:8081"));
        assert_eq!(origin_of("https://[::1]:9000/x"), Some("https://[::1]:9000"));
        assert_eq!(origin_of("ftp://idp.example.com"), None);
        assert_eq!(origin_of("https://idp.example.com; script-src *"), None);
        assert_eq!(origin_of("https:///path"), None);
        assert!(content_security_policy(None).contains("connect-src 'self';"));
        assert!(content_security_policy(Some("https://idp.example.com"))
            .contains("connect-src 'self' https://idp.example.com;"));
    }
}
