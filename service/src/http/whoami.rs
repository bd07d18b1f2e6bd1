//! `GET /api/v1/whoami`: who the API takes the caller for (name, role,
//! and what vouched for them), so that a client (the command center) can
//! show the signed-in person and hide the actions their role may not take.
//!
//! What it must not do: decide anything. The role it reports is the one
//! the token check ([`super::authorize`]) found; every endpoint still
//! checks its own role, so a client that shows a button it should not
//! only earns a 403.

use axum::extract::State;
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use super::Api;
use crate::auth::{Caller, Credential, Role};

/// How the caller was authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Authentication {
    /// `[auth] enabled` is false: every endpoint is open to everyone.
    Off,
    /// An API token (`mon token create`).
    Token,
    /// A JWT from the identity provider of `[auth.oidc]`.
    Oidc,
}

/// The caller as the API sees them.
#[derive(Serialize, ToSchema)]
pub struct Whoami {
    /// The API token's name, or the JWT's `preferred_username`, `email`
    /// or `sub`; `anonymous` with auth off.
    name: String,
    /// What the caller may do. With auth off every endpoint is open, so
    /// `admin`: an anonymous caller may do everything.
    role: Role,
    authentication: Authentication,
    /// The issuer of `[auth.oidc]`, when configured (its JWTs are
    /// accepted as bearer values too); null otherwise.
    oidc_issuer: Option<String>,
}

/// Who the caller is: name, role and how they were authenticated.
#[utoipa::path(
    get,
    path = "/api/v1/whoami",
    tag = "operations",
    responses((status = 200, description = "The caller", body = Whoami))
)]
pub async fn whoami(State(api): State<Api>, caller: Option<Extension<Caller>>) -> Result<Json<Whoami>, ApiError> {
    let oidc_issuer = api.auth.as_ref().and_then(|a| a.oidc.as_ref()).map(|v| v.issuer().to_string());
    if api.auth.is_none() {
        return Ok(Json(Whoami {
            name: "anonymous".into(),
            role: Role::Admin,
            authentication: Authentication::Off,
            oidc_issuer,
        }));
    }
    // The token check runs before every route that needs a role and
    // hands over the caller; without one, this route was reached some
    // other way, and the answer is the one it would have given.
    let Some(Extension(caller)) = caller else {
        return Err(ApiError::unauthorized("this endpoint needs `Authorization: Bearer <token>`"));
    };
    let authentication = match caller.credential {
        Credential::Token => Authentication::Token,
        Credential::Oidc => Authentication::Oidc,
    };
    Ok(Json(Whoami { name: caller.name, role: caller.role, authentication, oidc_issuer }))
}
