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
    let mut text = state.metrics.render();
    if let Some(lag) = state.model.store().watch_lag() {
        text.push_str(
            "# HELP jwtgate_store_watch_lag_seconds How long ago the store's watch last knew this server had every change.\n",
        );
        text.push_str("# TYPE jwtgate_store_watch_lag_seconds gauge\n");
        text.push_str(&format!(
            "jwtgate_store_watch_lag_seconds {:.3}\n",
            lag.as_secs_f64()
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match state.model.store().probe(Kind::Keyset, KEYSET).await {
        Ok(true) => Ok(Json(json!({ "status": "ready" }))),
        Ok(false) => Err(ApiError::unavailable("the store has no signing keyset")),
        Err(e) => Err(ApiError::unavailable(format!(
            "the store is not readable: {e}"
        ))),
    }
}
