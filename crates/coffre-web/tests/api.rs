//! The explorer's HTTP API over emulated chips.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use coffre_web::{router, serve, AppState, ChipSource, Event, LiveHub, Reading, WebConfig};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let res = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

async fn get_json(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let (s, _, body) = get(app, uri).await;
    (s, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn app(f: &common::Fixture) -> axum::Router {
    router(AppState::new(f.config(LiveHub::new(50))))
}

#[tokio::test]
async fn chip_list_names_every_chip() {
    let f = common::fixture();
    let (s, v) = get_json(&app(&f), "/api/chips").await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = v["chips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["publisher", "subscriber", "wrong chip"]);
    assert_eq!(v["chips"][0]["kind"], "emulated");
    assert!(v["chips"][0]["source"]
        .as_str()
        .unwrap()
        .contains("publisher.img"));
}

#[tokio::test]
async fn lab_chip_shows_its_slot8_key_in_words_and_findings() {
    let f = common::fixture();
    let (s, v) = get_json(&app(&f), "/api/chips/publisher").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["device"], "ATECC608B");
    assert_eq!(v["address"], "0x35");
    assert_eq!(v["locks"]["config_locked"], true);
    assert_eq!(v["locks"]["data_locked"], true);
    assert_eq!(v["locks"]["otp_locked"], true);
    assert_eq!(v["config_zone"]["size"], 128);
    assert_eq!(v["config_zone"]["hex"].as_str().unwrap().len(), 256);
    assert!(v["config_zone"]["fields"].as_array().unwrap().len() > 40);
    assert_eq!(v["otp"]["size"], 64);
    assert_eq!(v["otp"]["readable"], true);
    assert_eq!(v["otp"]["text"], "KQp2ZkD8");

    let slots = v["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 16);
    let sizes: Vec<u64> = slots.iter().map(|s| s["size"].as_u64().unwrap()).collect();
    assert_eq!(
        sizes,
        [36, 36, 36, 36, 36, 36, 36, 36, 416, 72, 72, 72, 72, 72, 72, 72]
    );

    let s8 = &slots[8];
    assert_eq!(s8["role"], "general data");
    assert_eq!(s8["class"], "clear-write");
    assert_eq!(s8["slot_config"]["raw"], "0x0F0F");
    assert_eq!(s8["key_config"]["raw"], "0x003C");
    assert_eq!(s8["slot_config"]["bits"].as_array().unwrap().len(), 7);
    assert_eq!(s8["key_config"]["bits"].as_array().unwrap().len(), 10);
    assert_eq!(s8["policy"]["read"], "anyone on the bus, in clear");
    assert_eq!(s8["policy"]["write"], "anyone on the bus, in clear");
    assert_eq!(s8["lock"]["lockable"], true);
    assert_eq!(s8["lock"]["slot_locked"], false);
    assert!(s8["lock"]["text"].as_str().unwrap().contains("0x22"));
    let c = &s8["content"];
    assert_eq!(c["kind"], "pkcs8-key");
    assert!(c["text"].as_str().unwrap().contains("PKCS#8"));
    assert!(c["label"]
        .as_str()
        .unwrap()
        .contains("anyone on the I2C bus"));
    let hex = c["hex"].as_str().unwrap();
    assert_eq!(hex.len(), 416 * 2);
    let der_len = usize::from_str_radix(&hex[..4], 16).unwrap();
    assert_eq!(c["key_range"], serde_json::json!([2, 2 + der_len]));
    assert!(s8["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == "private-key-readable" && f["severity"] == "critical"));
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == "private-key-readable" && f["slot"] == 8));
    assert_eq!(v["exposed_key_slots"], serde_json::json!([8]));

    // Slot 0: the factory key, sealed.
    let s0 = &slots[0];
    assert_eq!(s0["class"], "private-key");
    assert_eq!(s0["private_key"], true);
    assert_eq!(s0["content"]["readable"], false);
    assert!(s0["content"]["hex"].is_null());
    assert!(s0["policy"]["read"].as_str().unwrap().starts_with("nobody"));
    assert!(s0["policy"]["use"].as_str().unwrap().contains("ECDH"));
    // Slot 5: the device id, clear text, not writable.
    assert_eq!(slots[5]["class"], "clear-read");
    assert_eq!(slots[5]["content"]["kind"], "text");
    // Slot 7: secret.
    assert_eq!(slots[7]["class"], "secret");
}

#[tokio::test]
async fn offload_and_fresh_chips_show_no_key_in_clear() {
    let f = common::fixture();
    let app = app(&f);
    for name in ["subscriber", "wrong%20chip"] {
        let (s, v) = get_json(&app, &format!("/api/chips/{name}")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["exposed_key_slots"], serde_json::json!([]));
        let s8 = &v["slots"][8];
        assert_eq!(s8["content"]["kind"], "zeros", "{name}");
        assert!(s8["content"]["label"].is_null());
        assert!(!v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "private-key-readable"));
    }
}

#[tokio::test]
async fn sealed_private_keys_never_leave_the_server() {
    let f = common::fixture();
    let app = app(&f);
    for (name, image) in [
        ("publisher", &f.publisher),
        ("subscriber", &f.subscriber),
        ("wrong%20chip", &f.wrong),
    ] {
        let sealed = common::sealed_scalars(image);
        for uri in [
            format!("/api/chips/{name}"),
            format!("/api/chips/{name}/transcript"),
            format!("/api/chips/{name}/transcript?run=inspect"),
        ] {
            let (s, _, body) = get(&app, &uri).await;
            assert_eq!(s, StatusCode::OK, "{uri}: {body}");
            for w in &sealed {
                assert!(!body.contains(w.as_str()), "{uri} serves sealed key bytes");
            }
        }
    }
}

#[tokio::test]
async fn boot_transcript_marks_every_key_byte_on_the_wire() {
    let f = common::fixture();
    let app = app(&f);
    let (s, v) = get_json(&app, "/api/chips/publisher/transcript").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["run"], "boot");
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["probe", "init", "config zone", "locks", "slot 8"]);
    assert!(v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["error"].is_null()));

    // The key as the chip serves it.
    let (_, chip) = get_json(&app, "/api/chips/publisher").await;
    let slot8 = chip["slots"][8]["content"]["hex"]
        .as_str()
        .unwrap()
        .to_string();
    let der_len = usize::from_str_radix(&slot8[..4], 16).unwrap();
    assert_eq!(v["key"]["slots"], serde_json::json!([8]));
    assert_eq!(v["key"]["key_bytes_in_chip"], der_len);
    assert_eq!(v["key"]["key_bytes_on_wire"], der_len);
    assert_eq!(v["key"]["events_with_key"], (2 + der_len).div_ceil(32));
    assert!(v["summary"].as_str().unwrap().contains("private-key bytes"));
    assert!(v["key"]["label"].as_str().unwrap().contains("PKCS#8"));

    // Every marked range is key material, and together they spell the DER.
    let der = &slot8[4..4 + 2 * der_len];
    let mut seen = String::new();
    for e in v["events"].as_array().unwrap() {
        let hex = e["hex"].as_str().unwrap();
        for r in e["key"].as_array().unwrap() {
            let (a, b) = (
                r[0].as_u64().unwrap() as usize,
                r[1].as_u64().unwrap() as usize,
            );
            assert_eq!(e["dir"], "read");
            assert_eq!(e["step"], "slot 8");
            seen.push_str(&hex[2 * a..2 * b]);
        }
    }
    assert_eq!(seen, der);

    // Offload: nothing to mark.
    let (_, v) = get_json(&app, "/api/chips/subscriber/transcript").await;
    assert_eq!(v["key"]["key_bytes_on_wire"], 0);
    assert!(v["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["key"].as_array().unwrap().is_empty()));
    assert!(v["summary"]
        .as_str()
        .unwrap()
        .starts_with("No private-key byte"));
}

#[tokio::test]
async fn transcript_runs_and_errors() {
    let f = common::fixture();
    let app = app(&f);
    let (s, v) = get_json(&app, "/api/chips/publisher/transcript?run=inspect").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["run"], "inspect");
    assert!(v["key"]["key_bytes_on_wire"].as_u64().unwrap() > 100);
    let (s, v) = get_json(&app, "/api/chips/publisher/transcript?run=sniff").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("run=boot"));
    let (s, v) = get_json(&app, "/api/chips/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().unwrap().contains("/api/chips"));
    let (s, _) = get_json(&app, "/api/chips/nope/transcript").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = get_json(&app, "/no/such/page").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["error"].is_string());
}

#[tokio::test]
async fn a_damaged_image_is_reported_not_served() {
    let f = common::fixture();
    let bad = f.dir.path().join("bad.img");
    std::fs::write(&bad, b"not an image").unwrap();
    let cfg = WebConfig {
        chips: vec![ChipSource::new("bad", &bad)],
        ..WebConfig::default()
    };
    let app = router(AppState::new(cfg));
    let (s, v) = get_json(&app, "/api/chips/bad").await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("not a coffre chip image") && msg.contains("coffre emu new"),
        "{msg}"
    );
    let (s, _) = get_json(&app, "/api/chips/bad/transcript").await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn images_are_opened_read_only() {
    let f = common::fixture();
    let before: Vec<Vec<u8>> = [&f.publisher, &f.subscriber, &f.wrong]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let app = app(&f);
    for uri in [
        "/api/chips/publisher",
        "/api/chips/publisher/transcript",
        "/api/chips/subscriber/transcript?run=inspect",
        "/api/chips/wrong%20chip",
    ] {
        assert_eq!(get(&app, uri).await.0, StatusCode::OK);
    }
    let after: Vec<Vec<u8>> = [&f.publisher, &f.subscriber, &f.wrong]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(before == after, "an image file changed");
}

#[tokio::test]
async fn scenario_table_absent_then_present() {
    let f = common::fixture();
    let app = app(&f);
    let (s, v) = get_json(&app, "/api/scenarios").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["scenarios"], serde_json::json!([]));
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("coffre demo --json"));
    f.write_scenarios();
    let (_, v) = get_json(&app, "/api/scenarios").await;
    let list = v["scenarios"].as_array().unwrap();
    assert_eq!(list.len(), 4);
    assert_eq!(list[1]["name"], "wrong chip");
    assert_eq!(list[1]["evidence"], "mosquitto: bad signature");
    assert_eq!(list[3]["pass"], false);
    assert!(v["message"].is_null());
    // None configured at all.
    let bare = router(AppState::new(WebConfig::default()));
    let (_, v) = get_json(&bare, "/api/scenarios").await;
    assert!(v["source"].is_null() && v["message"].is_string());
}

#[tokio::test]
async fn page_and_assets_are_embedded_with_a_strict_policy() {
    let f = common::fixture();
    let app = app(&f);
    let (s, h, body) = get(&app, "/").await;
    assert_eq!(s, StatusCode::OK);
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(body.contains("<title>coffre — secure element explorer</title>"));
    assert!(body.contains("/app.js") && body.contains("/style.css"));
    assert!(!body.contains("http://") && !body.contains("https://"));
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"));
    let (s, h, js) = get(&app, "/app.js").await;
    assert_eq!(s, StatusCode::OK);
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .contains("javascript"));
    assert!(js.contains("/api/live/stream"));
    let (s, h, css) = get(&app, "/style.css").await;
    assert_eq!(s, StatusCode::OK);
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert!(css.contains(".die"));
    // A title with markup is escaped.
    let cfg = WebConfig {
        title: "<b>x</b>".into(),
        ..WebConfig::default()
    };
    let (_, _, body) = get(&router(AppState::new(cfg)), "/").await;
    assert!(body.contains("&lt;b&gt;x&lt;/b&gt;"));
}

fn reading(device: &str, seq: u64, t: f64) -> Reading {
    Reading {
        device: device.into(),
        seq,
        ts: "2025-05-01T10:00:00Z".into(),
        temperature_c: t,
        humidity_pct: 45.5,
        pressure_hpa: 1012.8,
    }
}

#[tokio::test]
async fn live_snapshot_keeps_the_last_readings() {
    let hub = LiveHub::new(3);
    let app = router(AppState::new(WebConfig {
        live: hub.clone(),
        ..WebConfig::default()
    }));
    for i in 0..5 {
        hub.push_reading(reading("m5go", i, 20.0 + i as f64));
    }
    hub.push_event(Event::now("connect", "m5go connected (mutual TLS)"));
    let (s, v) = get_json(&app, "/api/live").await;
    assert_eq!(s, StatusCode::OK);
    let list = v["devices"]["m5go"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[2]["seq"], 4);
    assert_eq!(list[2]["temperature_c"], 24.0);
    assert!(!list[2]["received_at"].as_str().unwrap().is_empty());
    assert_eq!(v["events"][0]["kind"], "connect");
    assert_eq!(v["capacity"], 3);
}

/// Read from `stream` until `needle` arrives or `deadline` passes.
async fn read_until(
    stream: &mut tokio::net::TcpStream,
    buf: &mut String,
    needle: &str,
    deadline: Instant,
) -> bool {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 4096];
    while !buf.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return false,
            Ok(Ok(n)) => buf.push_str(&String::from_utf8_lossy(&chunk[..n])),
        }
    }
    true
}

#[tokio::test]
async fn live_stream_sends_snapshot_then_items_and_ends_at_shutdown() {
    use tokio::io::AsyncWriteExt;
    let hub = LiveHub::new(10);
    hub.push_reading(reading("m5go", 1, 21.0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let cfg = WebConfig {
        live: hub.clone(),
        ..WebConfig::default()
    };
    let server = tokio::spawn(serve(cfg, listener, async {
        let _ = stop_rx.await;
    }));

    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"GET /api/live/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n",
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = String::new();
    assert!(
        read_until(&mut s, &mut buf, "event: snapshot", deadline).await,
        "{buf}"
    );
    assert!(buf.contains("text/event-stream"), "{buf}");
    assert!(
        read_until(&mut s, &mut buf, "\"seq\":1", deadline).await,
        "{buf}"
    );

    hub.push_reading(reading("m5go", 2, 22.25));
    assert!(
        read_until(&mut s, &mut buf, "event: reading", deadline).await,
        "{buf}"
    );
    assert!(
        read_until(&mut s, &mut buf, "22.25", deadline).await,
        "{buf}"
    );
    hub.push_event(Event::now("subscribe", "SUBACK for m5go/env"));
    assert!(
        read_until(&mut s, &mut buf, "SUBACK for m5go/env", deadline).await,
        "{buf}"
    );

    // Shutdown closes the open stream: serve returns promptly.
    let t = Instant::now();
    stop_tx.send(()).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve returned while a stream was open")
        .unwrap();
    assert!(r.is_ok());
    assert!(t.elapsed() < Duration::from_secs(5));
}

/// A raw HTTP/1.1 GET to `addr` with `headers`; the status code.
async fn raw_status(addr: std::net::SocketAddr, path: &str, headers: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

// Issue 15, item 9: DNS rebinding. A page on evil.example whose name now
// resolves to 127.0.0.1 sends Host: evil.example; a page on another site
// sends its Origin. Neither may read the API.
#[tokio::test]
async fn only_our_host_names_and_same_origin_requests_reach_the_api() {
    let f = common::fixture();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut cfg = f.config(LiveHub::new(10));
    cfg.allowed_hosts = vec!["lab.example".into()];
    let server = tokio::spawn(serve(cfg, listener, async {
        let _ = stop_rx.await;
    }));
    let port = addr.port();
    let chip = "/api/chips";
    let host = |h: &str| format!("Host: {h}\r\n");
    // Our own names.
    for h in [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".into(),
        format!("localhost:{port}"),
        "LAB.example".into(),
    ] {
        assert_eq!(raw_status(addr, chip, &host(&h)).await, 200, "{h}");
    }
    // Rebound names, and a missing or doubled Host.
    for h in [
        "evil.example",
        "evil.example:{port}",
        "127.0.0.1.evil.example",
        "localhost.evil.example",
        "",
    ] {
        assert_eq!(raw_status(addr, chip, &host(h)).await, 403, "{h}");
        assert_eq!(raw_status(addr, "/", &host(h)).await, 403, "{h}");
    }
    // Cross-origin requests from a browser.
    let ours = host(&format!("127.0.0.1:{port}"));
    for extra in [
        "Origin: http://evil.example\r\n".to_string(),
        "Origin: null\r\n".to_string(),
        "Sec-Fetch-Site: cross-site\r\n".to_string(),
        "Sec-Fetch-Site: same-site\r\n".to_string(),
    ] {
        let hs = format!("{ours}{extra}");
        assert_eq!(raw_status(addr, chip, &hs).await, 403, "{extra}");
        assert_eq!(
            raw_status(addr, "/api/live/stream", &hs).await,
            403,
            "{extra}"
        );
    }
    // The page itself, fetching its API.
    for extra in [
        format!("Origin: http://127.0.0.1:{port}\r\nSec-Fetch-Site: same-origin\r\n"),
        "Sec-Fetch-Site: none\r\n".to_string(),
    ] {
        let hs = format!("{ours}{extra}");
        assert_eq!(raw_status(addr, chip, &hs).await, 200, "{extra}");
    }
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}
