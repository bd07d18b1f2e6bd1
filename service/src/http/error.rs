//! The one error shape of the whole HTTP API:
//! `{"error": {"code": "...", "message": "...", "details": ...}}`.
//!
//! `code` is a word from [`ErrorCode`], stable for programs to match;
//! `message` is for people; `details` is an object (for a 400,
//! `details.field` names the parameter or body field at fault) or null.
//! Extractor rejections (a body over the size limit, a malformed query)
//! and the router's own 404 and 405 take this shape too. An internal
//! failure is logged with its cause and answered with a generic message:
//! the answer never carries a file path, a sled error or a panic.

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

/// What went wrong, as a stable word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: a parameter or body field is wrong; `details.field` names it.
    InvalidRequest,
    /// 401 with `WWW-Authenticate: Bearer`: no token, or not a known one.
    Unauthorized,
    /// 403: the token's role is below the one the endpoint needs.
    Forbidden,
    /// 404: no such resource (or route).
    NotFound,
    /// 405: the route exists, not with this method.
    MethodNotAllowed,
    /// 409: the resource's state does not allow it.
    Conflict,
    /// 413: the body is over the configured limit.
    PayloadTooLarge,
    /// 503 with `Retry-After`: the input queue is full.
    Busy,
    /// 503: shutting down, or not able to answer now; 502 from a standby
    /// whose forwarded request got no answer back (it may have been applied).
    Unavailable,
    /// 500: a failure of the service itself; the details are in its log.
    Internal,
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorInfo {
    pub code: ErrorCode,
    pub message: String,
    /// An object with what the error is about (`field` for a 400), or null.
    #[schema(value_type = Option<Object>)]
    pub details: Value,
}

/// An error answer on its way out.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>, details: Value) -> ApiError {
        ApiError { status, code, message: message.into(), details }
    }

    /// A 400 naming the parameter or body field at fault.
    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message, json!({ "field": field }))
    }

    pub fn not_found(message: impl Into<String>, details: Value) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message, details)
    }

    /// 401: no credentials, or not known ones.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message, Value::Null)
    }

    /// The input queue is full: retry in a second.
    pub fn busy() -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Busy, "busy; retry", Value::Null)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, message, Value::Null)
    }

    /// A failure of the service itself: `what` failed because of `cause`.
    /// Both go to the log; the client gets a generic message.
    pub fn internal(what: &str, cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "HTTP API: {what}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; the service's log has the details",
            Value::Null,
        )
    }

    /// An unknown query parameter, naming it and the known ones.
    pub fn unknown_parameter(name: &str, known: &[&str]) -> ApiError {
        ApiError::invalid(name, format!("unknown parameter `{name}`; the parameters are {}", known.join(", ")))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let busy = self.code == ErrorCode::Busy;
        let unauthorized = self.code == ErrorCode::Unauthorized;
        let body = ErrorBody { error: ErrorInfo { code: self.code, message: self.message, details: self.details } };
        let mut response = (self.status, Json(body)).into_response();
        if busy {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if unauthorized {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"mon\""));
        }
        response
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> ApiError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                "the body is over the service's limit (`[http] max_body_bytes`)",
                json!({ "field": "body" }),
            )
        } else {
            ApiError::invalid("body", format!("cannot read the body: {}", rejection.body_text()))
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::invalid("query", format!("cannot read the query string: {}", rejection.body_text()))
    }
}

/// The router's answer for a path it does not serve.
pub async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no endpoint at {}", uri.path()), json!({ "path": uri.path() }))
}

/// The router's answer for a method a path does not take (axum adds `Allow`).
pub async fn no_method(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        format!("this endpoint does not take {method}"),
        json!({ "method": method.as_str() }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_internal_error_says_nothing_of_its_cause() {
        let response = ApiError::internal("reading records", "sled: /var/lib/mon/db: corrupted").into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 10_000).await.unwrap_or_default();
        let value: Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(value["error"]["code"], "internal");
        assert!(!value.to_string().contains("sled"), "{value}");
        assert!(value["error"]["details"].is_null());
    }

    #[tokio::test]
    async fn busy_says_when_to_retry() {
        let response = ApiError::busy().into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes()), Some(&b"1"[..]));
    }
}
