//! The routes.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use crate::chip::{CaptureRun, ChipBackend};
use crate::live::LiveMessage;
use crate::{assets, scenarios, transcript, view, AppState, WebError};

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = match &self {
            WebError::UnknownChip(_) => StatusCode::NOT_FOUND,
            WebError::NoTranscript(..) => StatusCode::CONFLICT,
            WebError::Chip { .. } => StatusCode::BAD_GATEWAY,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/style.css", get(style_css))
        .route("/api/chips", get(list_chips))
        .route("/api/chips/{name}", get(chip_detail))
        .route("/api/chips/{name}/transcript", get(chip_transcript))
        .route("/api/scenarios", get(scenario_table))
        .route("/api/live", get(live_snapshot))
        .route("/api/live/stream", get(live_stream))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            host_and_origin,
        ))
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

/// Refuse a `Host` that is not this server (DNS rebinding) and, on the
/// API, a browser request from another site.
async fn host_and_origin(
    State(st): State<AppState>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let h = req.headers();
    let text = |name: &str| {
        h.get(name)
            .map(|v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let forbidden = |msg: String| {
        (
            StatusCode::FORBIDDEN,
            Json(serde_json::json!({ "error": msg })),
        )
            .into_response()
    };
    let hosts: Vec<_> = h.get_all(header::HOST).iter().collect();
    match hosts.as_slice() {
        // No Host at all: not a browser (HTTP/1.1 browsers always send it).
        [] => {}
        [one] if st.hosts.allows(&String::from_utf8_lossy(one.as_bytes())) => {}
        _ => {
            let shown = hosts
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect::<Vec<_>>()
                .join(", ");
            return forbidden(format!(
                "host '{shown}' is not a name this explorer answers to; reach it by the address it listens on, or start it with --allow-host NAME"
            ));
        }
    }
    if req.uri().path().starts_with("/api/") {
        if let Some(why) = st.hosts.cross_origin(
            text(header::ORIGIN.as_str()).as_deref(),
            text("sec-fetch-site").as_deref(),
        ) {
            return forbidden(why);
        }
    }
    next.run(req).await
}

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({
            "error": "no such page; the explorer is at / and its API under /api/chips, /api/live, /api/scenarios"
        })),
    )
        .into_response()
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn index(State(st): State<AppState>) -> Html<String> {
    Html(assets::INDEX_HTML.replace("{{title}}", &escape_html(&st.title)))
}

async fn app_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        assets::APP_JS,
    )
}

async fn style_css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        assets::STYLE_CSS,
    )
}

#[derive(Serialize)]
struct ChipListItem {
    name: String,
    kind: &'static str,
    source: String,
}

async fn list_chips(State(st): State<AppState>) -> Json<serde_json::Value> {
    let chips: Vec<ChipListItem> = st
        .chips
        .iter()
        .map(|c| ChipListItem {
            name: c.name().to_string(),
            kind: c.kind(),
            source: c.describe(),
        })
        .collect();
    Json(serde_json::json!({ "title": st.title, "chips": chips }))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
}

async fn chip_detail(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    let chip = st.chip(&name)?;
    let v = blocking(move || {
        let dump = chip.read()?;
        let v = view::chip_view(chip.name(), chip.kind(), &dump);
        serde_json::to_value(v).map_err(|e| WebError::Internal(e.to_string()))
    })
    .await?;
    Ok(Json(v).into_response())
}

#[derive(Deserialize)]
struct TranscriptQuery {
    run: Option<String>,
}

async fn chip_transcript(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<TranscriptQuery>,
) -> Result<Response, WebError> {
    let run = match q.run.as_deref() {
        None | Some("boot") => CaptureRun::Boot,
        Some("inspect") => CaptureRun::Inspect,
        Some(other) => {
            return Ok((
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({
                    "error": format!("unknown run '{other}': use run=boot (the device's boot reads) or run=inspect")
                })),
            )
                .into_response())
        }
    };
    let chip = st.chip(&name)?;
    let v = blocking(move || capture_view(chip.as_ref(), run)).await?;
    Ok(Json(v).into_response())
}

fn capture_view(chip: &dyn ChipBackend, run: CaptureRun) -> Result<serde_json::Value, WebError> {
    let steps = chip.capture(run)?;
    // The slot contents, to know which bytes on the wire are key bytes.
    let regions = match chip.read() {
        Ok(dump) => transcript::key_regions(&dump.slots),
        Err(_) => Vec::new(),
    };
    let v = transcript::transcript_view(chip.name(), chip.describe(), run, &steps, &regions);
    serde_json::to_value(v).map_err(|e| WebError::Internal(e.to_string()))
}

async fn scenario_table(State(st): State<AppState>) -> Json<scenarios::ScenarioTable> {
    let path = st.scenarios_json.clone();
    let table = tokio::task::spawn_blocking(move || scenarios::load(path.as_deref()))
        .await
        .unwrap_or_else(|e| scenarios::ScenarioTable {
            source: None,
            modified: None,
            scenarios: Vec::new(),
            message: Some(format!("internal error: {e}")),
            registry: Vec::new(),
        });
    Json(table)
}

async fn live_snapshot(State(st): State<AppState>) -> Json<crate::LiveSnapshot> {
    Json(st.live.snapshot())
}

struct StreamState {
    first: Option<sse::Event>,
    rx: tokio::sync::broadcast::Receiver<LiveMessage>,
    stop: tokio::sync::watch::Receiver<bool>,
    hub: crate::LiveHub,
}

fn snapshot_event(hub: &crate::LiveHub) -> sse::Event {
    json_event("snapshot", &hub.snapshot())
}

fn json_event(name: &str, v: &impl Serialize) -> sse::Event {
    sse::Event::default()
        .event(name)
        .json_data(v)
        .unwrap_or_else(|_| sse::Event::default().comment("unserialisable item skipped"))
}

async fn live_stream(
    State(st): State<AppState>,
) -> Sse<impl Stream<Item = Result<sse::Event, Infallible>>> {
    // Subscribe before the snapshot: nothing is lost in between (the page
    // drops the few items it may then see twice).
    let rx = st.live.subscribe();
    let s = StreamState {
        first: Some(snapshot_event(&st.live)),
        rx,
        stop: st.stop.clone(),
        hub: st.live.clone(),
    };
    let stream = futures_util::stream::unfold(s, |mut s| async move {
        if let Some(first) = s.first.take() {
            return Some((Ok(first), s));
        }
        loop {
            if *s.stop.borrow() {
                return None;
            }
            tokio::select! {
                r = s.rx.recv() => {
                    let ev = match r {
                        Ok(LiveMessage::Reading(r)) => json_event("reading", &r),
                        Ok(LiveMessage::Event(e)) => json_event("event", &e),
                        Err(RecvError::Lagged(_)) => snapshot_event(&s.hub),
                        Err(RecvError::Closed) => return None,
                    };
                    return Some((Ok(ev), s));
                }
                c = s.stop.changed() => {
                    if c.is_err() {
                        return None;
                    }
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
