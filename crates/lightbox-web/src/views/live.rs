//! Live worklist: `GET /ui/worklist/events` is a server-sent event stream of
//! the organization's study changes, each as the row HTML this user would see
//! (`event: study`, data `{"id", "html"}`). app.js replaces a row on the page,
//! or puts a new study on top. Changes come from the store: the API's, the web
//! app's and DICOM ingest's writes, in this process and (on PostgreSQL, by
//! LISTEN/NOTIFY) in every other replica.
//!
//! The stream does not keep the session alive: it ends when the session has
//! ended (checked every [`RECHECK`]), and the browser's reconnect then finds
//! no session. One stream per tab (browsers allow ~6 HTTP/1.1 connections per host).

use super::worklist::{row_html, Row};
use crate::login::WebUser;
use crate::WebState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use lightbox_domain::Timestamp;
use lightbox_store::StudyChange;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

const RECHECK: Duration = Duration::from_secs(30);

pub async fn events(State(state): State<WebState>, user: WebUser) -> Response {
    let mut changes = state.store.subscribe_study_changes();
    let stream = async_stream(move |tx| async move {
        let mut recheck = tokio::time::interval(RECHECK);
        recheck.tick().await;
        let mut shutdown = state.shutdown.clone();
        loop {
            tokio::select! {
                // The server is stopping: end the stream so the connection can close.
                _ = shutdown.changed() => return,
                change = changes.recv() => match change {
                    Ok(StudyChange::Changed { org_id, study_id }) if org_id == user.org_id => {
                        let Ok(Some(study)) = state.store.study(user.org_id, &study_id).await else {
                            continue;
                        };
                        let row = Row::of(&study, &user, "/ui/worklist");
                        let row = super::worklist::with_images(&state, &user, vec![row]).await.remove(0);
                        let data = serde_json::json!({ "id": study.id.as_str(), "html": row_html(row) });
                        if tx.send(Event::default().event("study").data(data.to_string())).await.is_err() {
                            return;
                        }
                    }
                    Ok(StudyChange::Changed { .. }) => {}
                    // Missed changes: the page reloads its rows.
                    Ok(StudyChange::Missed) | Err(RecvError::Lagged(_)) => {
                        if tx.send(Event::default().event("reload").data("")).await.is_err() {
                            return;
                        }
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = recheck.tick() => {
                    if !session_alive(&state, &user).await {
                        return;
                    }
                }
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn session_alive(state: &WebState, user: &WebUser) -> bool {
    let Ok(Some(session)) = state.store.web_session(user.token_hash()).await else {
        return false;
    };
    let now = Timestamp::now();
    let idle = state.config.idle_timeout.as_millis() as i64;
    now < session.expires_at && now.millis() - session.last_seen_at.millis() < idle
}

/// A stream fed by a task through a small channel (no extra crate for one generator).
fn async_stream<F, Fut>(producer: F) -> impl futures_util::Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(producer(tx));
    ReceiverStream(rx)
}

struct ReceiverStream(tokio::sync::mpsc::Receiver<Event>);

impl futures_util::Stream for ReceiverStream {
    type Item = Result<Event, Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|event| event.map(Ok))
    }
}
