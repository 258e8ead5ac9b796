//! `/healthz` (the process answers), `/readyz` (the store answers too) and `/metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::model::KEYSET;
use crate::state::AppState;
use crate::store::Kind;

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match state.model.store().get(Kind::Keyset, KEYSET).await {
        Ok(Some(_)) => Ok(Json(json!({ "status": "ready" }))),
        Ok(None) => Err(ApiError::unavailable("the store has no signing keyset")),
        Err(e) => Err(ApiError::unavailable(format!(
            "the store is not readable: {e}"
        ))),
    }
}
