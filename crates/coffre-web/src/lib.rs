//! The coffre web explorer.
//!
//! One page, served from this library, shows what a secure element really
//! holds and who may touch it:
//!
//! - **the chip drawn to scale**: config zone (128 B), OTP zone (64 B) and the
//!   16 data slots (36, 416 and 72 B) as blocks whose areas follow their
//!   sizes, coloured by access policy, with lock badges. Selecting a zone
//!   shows its SlotConfig/KeyConfig bits in words, who may read, write and
//!   use it, its content and the audit findings about it. Several chips sit
//!   side by side (for example the publisher, the subscriber and a wrong
//!   chip);
//! - **live readings** pushed into a [`LiveHub`] by the subscriber, drawn as
//!   charts, with the connection events and the last scenario table;
//! - **the bus**: a transcript of what a probe on SDA/SCL captures while the
//!   device boots, with the bytes of a private key marked.
//!
//! Chips are read through [`ChipBackend`]. [`ChipSource`] is the emulated
//! chip in an image file, opened read-only for each request; a real I2C bus
//! can be added as another implementation (see [`chip::dump_chip`], which
//! does the reading over any embedded-hal bus).
//!
//! The library does no printing. A binary starts it with [`serve`], keeps
//! a clone of the [`LiveHub`] for its subscriber, and ends it with the
//! shutdown future (Ctrl-C in the CLI):
//!
//! ```
//! use coffre_web::{serve, ChipSource, LiveHub, Reading, WebConfig};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! let image = dir.path().join("chip.img");
//! let chip = coffre_emu::presets::Preset::Tngtls.build();
//! coffre_emu::image::create(&image, &chip, false).unwrap();
//!
//! let hub = LiveHub::new(300);
//! let cfg = WebConfig {
//!     chips: vec![ChipSource::new("publisher", &image)],
//!     live: hub.clone(),
//!     ..WebConfig::default()
//! };
//! let rt = tokio::runtime::Runtime::new().unwrap();
//! rt.block_on(async {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//!     let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//!     let server = tokio::spawn(serve(cfg, listener, async {
//!         let _ = stopped.await;
//!     }));
//!     // What the subscriber does with every message on m5go/env.
//!     hub.push_reading(Reading {
//!         device: "m5go".into(),
//!         seq: 1,
//!         ts: "2025-05-01T10:00:00Z".into(),
//!         temperature_c: 21.4,
//!         humidity_pct: 48.0,
//!         pressure_hpa: 1012.5,
//!     });
//!     stop.send(()).unwrap();
//!     server.await.unwrap().unwrap();
//! });
//! assert_eq!(hub.snapshot().devices["m5go"].len(), 1);
//! ```
//!
//! What the page never shows: bytes the chip itself refuses to give out.
//! It shows the content of slots the chip serves in clear to anyone on the
//! bus — in the source lab that includes the device's private key in
//! slot 8, which is the very point of the explorer — and labels such bytes
//! as private-key material.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod api;
mod assets;
pub mod chip;
pub mod explain;
mod host;
pub mod live;
pub mod scenarios;
pub mod transcript;
mod view;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

pub use chip::{ChipBackend, ChipDump, ChipSource};
pub use live::{Event, LiveHub, LiveSnapshot, Reading, Received};
pub use scenarios::Scenario;

/// The address the explorer listens on unless told otherwise: loopback
/// only, since the page shows what the chips serve in clear.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Why a request could not be answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// No chip of that name is configured.
    #[error("no chip named '{0}' is configured; GET /api/chips lists the chips")]
    UnknownChip(String),
    /// The chip could not be opened or read.
    #[error("chip '{name}': {message}")]
    Chip {
        /// The chip's name.
        name: String,
        /// What went wrong, and what to do.
        message: String,
    },
    /// The source cannot record a bus transcript (a real bus).
    #[error("chip '{0}': {1}")]
    NoTranscript(String, String),
    /// A blocking task failed.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What the server shows.
#[derive(Clone)]
pub struct WebConfig {
    /// Emulated chips (image files), in the order shown.
    pub chips: Vec<ChipSource>,
    /// Other chip sources (for example a real bus), shown after `chips`.
    pub backends: Vec<Arc<dyn ChipBackend>>,
    /// The scenario table written by `coffre demo --json`, if any.
    pub scenarios_json: Option<PathBuf>,
    /// The live readings and events; keep a clone to push into it.
    pub live: LiveHub,
    /// The page's title.
    pub title: String,
    /// Host names the explorer answers to besides the address it listens
    /// on (and `localhost` on a loopback or wildcard address): the names a
    /// browser uses to reach it through a proxy or a DNS name of its own.
    /// Any other `Host` is refused (DNS rebinding).
    pub allowed_hosts: Vec<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            chips: Vec::new(),
            backends: Vec::new(),
            scenarios_json: None,
            live: LiveHub::new(live::DEFAULT_CAPACITY),
            title: "coffre — secure element explorer".into(),
            allowed_hosts: Vec::new(),
        }
    }
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("chips", &self.chips)
            .field(
                "backends",
                &self.backends.iter().map(|b| b.name()).collect::<Vec<_>>(),
            )
            .field("scenarios_json", &self.scenarios_json)
            .field("title", &self.title)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}

/// The state the routes share; build it with [`AppState::new`].
#[derive(Clone)]
pub struct AppState {
    pub(crate) chips: Arc<Vec<Arc<dyn ChipBackend>>>,
    pub(crate) scenarios_json: Option<PathBuf>,
    pub(crate) live: LiveHub,
    pub(crate) title: String,
    pub(crate) stop: tokio::sync::watch::Receiver<bool>,
    pub(crate) hosts: Arc<host::HostPolicy>,
    /// Keeps the stop channel open when the state was not made by [`serve`].
    _stop_tx: Option<Arc<tokio::sync::watch::Sender<bool>>>,
}

impl AppState {
    /// The state for `cfg`. Server-sent event streams of a router built
    /// from it end only when the client leaves; [`serve`] also ends them at
    /// shutdown.
    /// Without a listener to go by, it answers `localhost`, loopback
    /// addresses and `cfg.allowed_hosts`.
    pub fn new(cfg: WebConfig) -> AppState {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut state = AppState::with_stop(cfg, rx, None);
        state._stop_tx = Some(Arc::new(tx));
        state
    }

    fn with_stop(
        cfg: WebConfig,
        stop: tokio::sync::watch::Receiver<bool>,
        listen: Option<std::net::SocketAddr>,
    ) -> AppState {
        let mut chips: Vec<Arc<dyn ChipBackend>> = cfg
            .chips
            .into_iter()
            .map(|c| Arc::new(c) as Arc<dyn ChipBackend>)
            .collect();
        chips.extend(cfg.backends);
        AppState {
            chips: Arc::new(chips),
            scenarios_json: cfg.scenarios_json,
            live: cfg.live,
            title: cfg.title,
            hosts: Arc::new(host::HostPolicy::new(listen, &cfg.allowed_hosts)),
            stop,
            _stop_tx: None,
        }
    }

    /// The live hub the page shows.
    pub fn live(&self) -> &LiveHub {
        &self.live
    }

    pub(crate) fn chip(&self, name: &str) -> Result<Arc<dyn ChipBackend>, WebError> {
        self.chips
            .iter()
            .find(|c| c.name() == name)
            .cloned()
            .ok_or_else(|| WebError::UnknownChip(name.to_string()))
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field(
                "chips",
                &self.chips.iter().map(|b| b.name()).collect::<Vec<_>>(),
            )
            .field("scenarios_json", &self.scenarios_json)
            .finish()
    }
}

/// The explorer's routes, all `GET`:
///
/// | path | answer |
/// |---|---|
/// | `/` | the page (`/app.js` and `/style.css` with it) |
/// | `/api/chips` | `{title, chips: [{name, kind, source}]}` |
/// | `/api/chips/{name}` | serial, device, address, locks, config zone (bytes and every field in words), OTP zone, 16 slots (size, role, class, SlotConfig/KeyConfig raw and every bit in words, read/write/use policy in words, lock state, content hex and kind, findings), all findings |
/// | `/api/chips/{name}/transcript[?run=boot\|inspect]` | what crosses the bus while the chip is read, private-key bytes marked per event |
/// | `/api/scenarios` | `{source, modified, scenarios: [{id?, name, expected, observed, evidence, pass}], message, registry: [{id, proves, cases, verdict}]}` |
/// | `/api/live` | the [`LiveSnapshot`] |
/// | `/api/live/stream` | server-sent events: `snapshot` first, then `reading` and `event` |
///
/// Every request must name this server in `Host` (see
/// [`WebConfig::allowed_hosts`]), and `/api/…` requests from a browser must
/// come from the explorer's own page (`Origin`, `Sec-Fetch-Site`); others
/// get 403.
///
/// Errors are JSON `{error}` with 403 (host or origin refused), 404 (unknown chip or path), 400 (bad
/// query), 409 (no transcript from this source) or 502 (chip unreadable).
pub fn router(state: AppState) -> axum::Router {
    api::router(state)
}

/// Serve the explorer on `listener` until `shutdown` completes. Live
/// streams are closed at shutdown, so open pages do not hold it up.
pub async fn serve(
    cfg: WebConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let state = AppState::with_stop(cfg, rx, listener.local_addr().ok());
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, chips = state.chips.len(), "web explorer listening");
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = tx.send(true);
        })
        .await
}
