//! WADO-RS rendered and thumbnail resources (PS3.18 10.4.1.1.3, 10.4.1.1.4):
//! frames decoded, windowed and encoded as JPEG or PNG.

use crate::AppState;
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
}
