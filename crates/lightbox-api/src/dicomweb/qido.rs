//! QIDO-RS (PS3.18 10.6): searches answered from the index alone.

use crate::AppState;
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
}
