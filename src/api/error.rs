//! The one error type of the HTTP API and its response: `{"error": code, "message": text}` with
//! the matching status. Handlers return `Result<_, ApiError>`; nothing else builds error bodies.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 503: the store failed. The cause (etcd's addresses, file paths) goes to the server log,
    /// not to the client, who may be anyone.
    pub fn unavailable(cause: impl Into<String>) -> ApiError {
        let cause = cause.into();
        tracing::warn!(%cause, "answering 503: the store is unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the store is unavailable; the server log says why",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.code, "message": self.message }));
        (self.status, body).into_response()
    }
}
