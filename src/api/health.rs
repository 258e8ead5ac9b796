//! `/healthz` (the process answers) and `/readyz` (the store answers too).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::model::KEYSET;
use crate::state::AppState;
use crate::store::Kind;

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
