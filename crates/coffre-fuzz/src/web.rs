//! The web explorer's request handling, fed requests a page on another
//! site (DNS rebinding, cross-origin fetches) or a broken client could send.

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use coffre_emu::presets::Preset;
use coffre_web::{router, AppState, ChipSource, LiveHub, WebConfig};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::bytes::Input;

struct World {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        // The images live as long as the process.
        let dir = tempfile::tempdir().expect("a temporary directory").keep();
        let img = dir.join("chip.img");
        coffre_emu::image::create(&img, &crate::preset(Preset::Tngtls), true).expect("image");
        let cfg = WebConfig {
            chips: vec![ChipSource::new("chip", &img)],
            live: LiveHub::new(8),
            ..WebConfig::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let app = rt.block_on(async { router(AppState::new(cfg)) });
        World { rt, app }
    })
}

fn text<'a>(input: &mut Input<'a>, max: usize) -> String {
    let n = input.u8() as usize % (max + 1);
    String::from_utf8_lossy(input.take(n)).into_owned()
}

/// Host names the explorer must answer to with no `--allow-host`: localhost
/// and loopback addresses, with or without a port.
fn loopback(host: &str) -> bool {
    let h = host.trim();
    if h.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
    {
        return true;
    }
    let name = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        h.rsplit_once(':').map_or(h, |(n, _)| n)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// One request. Never a panic or a hang; a Host that is not the explorer's
/// own, or an Origin of another site on the API, is never served.
pub fn request(data: &[u8]) {
    let mut input = Input::new(data);
    let method = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"][input.u8() as usize % 6];
    let paths = [
        "/",
        "/app.js",
        "/style.css",
        "/api/chips",
        "/api/chips/chip",
        "/api/chips/chip/transcript",
        "/api/scenarios",
        "/api/live",
    ];
    let choice = input.u8() as usize;
    let path = if choice < 200 {
        format!("{}{}", paths[choice % paths.len()], text(&mut input, 40))
    } else {
        format!("/{}", text(&mut input, 80))
    };
    // Streams never end by themselves: not for this target.
    if path.starts_with("/api/live/") {
        return;
    }
    let mut b = Request::builder().method(method).uri(path.as_str());
    let flags = input.u8();
    let host = (flags & 1 != 0).then(|| text(&mut input, 40));
    let origin = (flags & 2 != 0).then(|| text(&mut input, 40));
    if let Some(h) = &host {
        b = b.header("host", h.as_str());
    }
    if let Some(o) = &origin {
        b = b.header("origin", o.as_str());
    }
    if flags & 4 != 0 {
        b = b.header("sec-fetch-site", text(&mut input, 12).as_str());
    }
    let body = input.take(256).to_vec();
    let Ok(req) = b.body(Body::from(body)) else {
        return; // not a request a client could send
    };
    let w = world();
    let status = w.rt.block_on(async {
        let res = w.app.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let _ = res.into_body().collect().await;
        status
    });
    check(method, &path, host.as_deref(), origin.as_deref(), status);
}

/// The explorer's promises about one answer.
fn check(method: &str, path: &str, host: Option<&str>, origin: Option<&str>, status: StatusCode) {
    assert!(
        !status.is_server_error() || status.as_u16() == 502,
        "{method} {path}: {status}"
    );
    if let Some(h) = host {
        if !loopback(h) {
            assert!(
                !status.is_success(),
                "Host {h:?} was served {method} {path}: {status}"
            );
        }
    }
    if let Some(o) = origin {
        let other_site = o
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
            .is_some_and(|h| !loopback(h));
        if other_site && path.starts_with("/api") {
            assert!(
                !status.is_success(),
                "Origin {o:?} was served {method} {path}: {status}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_with_and_without_ports() {
        for h in [
            "localhost",
            "LOCALHOST:80",
            "127.0.0.1",
            "127.1.2.3:8080",
            "[::1]:3000",
            "::1",
        ] {
            assert!(loopback(h), "{h}");
        }
        for h in [
            "evil.test",
            "127.0.0.1.evil.test",
            "localhost.evil",
            "10.0.0.1",
            "",
            "[::2]:80",
        ] {
            assert!(!loopback(h), "{h}");
        }
    }

    #[test]
    #[should_panic(expected = "was served")]
    fn a_foreign_origin_served_on_the_api_is_reported() {
        check(
            "GET",
            "/api/chips",
            None,
            Some("http://evil.test"),
            StatusCode::OK,
        );
    }

    #[test]
    #[should_panic(expected = "was served")]
    fn a_foreign_host_served_is_reported() {
        check("GET", "/", Some("evil.test"), None, StatusCode::OK);
    }

    #[test]
    fn refusals_and_loopback_answers_pass() {
        check(
            "GET",
            "/api/chips",
            Some("evil.test"),
            None,
            StatusCode::FORBIDDEN,
        );
        check(
            "GET",
            "/api/chips",
            Some("localhost:8080"),
            Some("http://localhost:8080"),
            StatusCode::OK,
        );
    }
}
