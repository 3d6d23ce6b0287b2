//! The firmware's code path: the device core's MQTT session over
//! embedded-io-async and embedded-tls (crate `coffre-firmware`, what the
//! MCU links), here over tokio's TCP through `embedded-io-adapters`. It
//! publishes readings over mutual TLS 1.3, the CertificateVerify signed by
//! the (emulated) chip; the first reading rides with the CONNECT, as on
//! Linux; the subscriber must receive them all, in order.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coffre_agent::{Event, SeqStatus, SubscriberOptions};
use coffre_device::boot::{BootKey, BootOptions, KeyMode};
use coffre_device::{MemoryQueue, Measurement, Reading, ReadingQueue};
use coffre_firmware::{DeviceCrypto, Firmware, KeySigner, RECORD_READ_BUF, RECORD_WRITE_BUF};
use coffre_mqtt::{Config, MqttVersion, QoS, Session};
use embedded_io_adapters::tokio_1::FromTokio;

use crate::device::{Device, Listening};
use crate::prelude::*;
use crate::setup::{self, LAB_ID, OFFLOAD_ID, SUB_ID};

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "firmware-core",
    proves: &[Threat::Spoofing],
    cases: &[
        Case::new(
            "firmware core: embedded-tls publisher → subscriber",
            Mode::Offload,
            "mutual TLS 1.3, chip signs; 5 readings arrive in order, the first with the CONNECT",
            run,
        ),
        Case::new(
            "firmware core: embedded-tls publisher → subscriber",
            Mode::Lab,
            "mutual TLS 1.3, slot-8 key signs; 5 readings arrive in order, the first with the CONNECT",
            run,
        ),
        Case::new(
            "firmware core: device clock 20 years ahead",
            Mode::Offload,
            "the broker certificate has expired for the device: no connection",
            run_clock_ahead,
        ),
    ],
};

fn device_id(mode: Mode) -> &'static str {
    match mode {
        Mode::Lab => LAB_ID,
        Mode::Offload | Mode::Any => OFFLOAD_ID,
    }
}

const READINGS: u64 = 5;

/// What the firmware run did.
#[derive(Default)]
struct FwRun {
    handshake_ms: f64,
    signatures: u32,
    pubacks: Vec<u8>,
    /// The first reading went out right behind the CONNECT.
    first_with_connect: bool,
    error: Option<String>,
}

fn run(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    let id = device_id(case.mode);
    let sub = Device::boot(cx.lab, SUB_ID, Mode::Offload, SUB_ID, false);
    let Some(sub_identity) = sub.identity else {
        return Outcome::not_tried("the subscriber did not boot");
    };
    let mut sopts = SubscriberOptions::new(cx.lab.broker_addr.into(), SUB_ID);
    sopts.max_messages = Some(READINGS);
    let listening = Listening::start(sopts, sub_identity, Vec::new(), |seqs, ev| {
        if let Event::Received(d) = ev {
            if let (Some(r), Some(st)) = (&d.reading, d.status) {
                seqs.push((r.device.clone(), r.seq, st));
            }
        }
    });
    listening.wait_subscribed(Duration::from_secs(5));
    let fw = publish(cx, id, case.mode);
    listening.wait_finished(Duration::from_secs(5));
    let seqs = match listening.finish() {
        Ok(s) => s,
        Err(e) => return Outcome::not_tried(format!("subscriber error: {e}")),
    };
    let mine: Vec<_> = seqs.iter().filter(|s| s.0 == id).collect();
    let in_order = mine
        .iter()
        .enumerate()
        .all(|(i, s)| i == 0 || matches!(s.2, SeqStatus::InOrder));
    let all = mine.len() as u64 == READINGS && in_order && fw.error.is_none();
    let mut evidence = Evidence::default().with(
        Source::Subscriber,
        format!("seq {:?}", mine.iter().map(|s| s.1).collect::<Vec<_>>()),
    );
    evidence = match &fw.error {
        Some(e) => evidence.with(Source::Client, e.clone()),
        None => evidence.with(
            Source::Device,
            format!(
                "embedded-tls TLS 1.3 handshake + CONNACK {:.1} ms, {} CertificateVerify signed by {}; first reading {} the CONNECT; PUBACKs {:?}",
                fw.handshake_ms,
                fw.signatures,
                if id == LAB_ID { "the slot-8 key (then zeroized)" } else { "the chip" },
                if fw.first_with_connect { "sent with" } else { "sent after" },
                fw.pubacks
            ),
        ),
    };
    Outcome::new(
        all && fw.signatures >= 1 && fw.first_with_connect,
        format!(
            "{} of {READINGS} received{}",
            mine.len(),
            if in_order { ", in order" } else { ", OUT OF ORDER" }
        ),
        evidence,
    )
}

/// The certificate dates are checked against the device's wall clock
/// (the firmware: SNTP): 20 years on, the broker's certificate has
/// expired and the handshake is refused by the device itself.
fn run_clock_ahead(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    const AHEAD_SECS: u64 = 20 * 366 * 86_400;
    let fw = publish_at(cx, device_id(case.mode), case.mode, AHEAD_SECS);
    let refused = fw
        .error
        .as_deref()
        .is_some_and(|e| e.contains("InvalidCertificate"));
    Outcome::new(
        refused && fw.pubacks.is_empty(),
        match &fw.error {
            Some(e) => format!("refused: {e}"),
            None => "CONNECTED with an expired broker certificate".into(),
        },
        Evidence::default().with(
            Source::Device,
            format!(
                "device clock set {} days ahead; embedded-tls checked the broker certificate's dates against it",
                AHEAD_SECS / 86_400
            ),
        ),
    )
}

fn publish(cx: &Ctx<'_>, id: &str, mode: Mode) -> FwRun {
    publish_at(cx, id, mode, 0)
}

/// Boot, connect and publish, the device's wall clock `ahead_secs` ahead
/// of the host's.
fn publish_at(cx: &Ctx<'_>, id: &str, mode: Mode, ahead_secs: u64) -> FwRun {
    let mut out = FwRun::default();
    let fail = |mut out: FwRun, e: String| {
        out.error = Some(e);
        out
    };
    let (_board, chip) = match setup::open(&cx.lab.chip(id)) {
        Ok(x) => x,
        Err(e) => return fail(out, e.to_string()),
    };
    let opts = BootOptions {
        mode: match mode {
            Mode::Lab => KeyMode::Lab,
            Mode::Offload | Mode::Any => KeyMode::Offload { slot: 0 },
        },
        allow_unlocked: false,
        io_key: None,
    };
    let signer = match coffre_device::boot::boot(chip, &opts, &mut |_, _| {}) {
        Ok((BootKey::Offload { chip, slot }, _)) => KeySigner::Chip { chip, slot },
        Ok((BootKey::Lab { slot8 }, _)) => {
            // The PKCS#8 DER out of the slot's bytes; both buffers are
            // zeroized when dropped, the signing key with the provider.
            let der = match coffre_pki::lab::decode_slot8(&slot8) {
                Ok(d) => d,
                Err(e) => return fail(out, format!("slot 8: {e}")),
            };
            match KeySigner::lab_from_pkcs8(&der) {
                Some(k) => k,
                None => return fail(out, "slot 8 holds no P-256 PKCS#8 key".into()),
            }
        }
        Err(e) => return fail(out, format!("boot: {e}")),
    };
    let der = |pem: &[u8], what| {
        coffre_agent::tls::parse_certificates(pem, what).map(|c| c[0].as_ref().to_vec())
    };
    let cert_pem = std::fs::read(cx.lab.cert(id)).unwrap_or_default();
    let (ca, cert) = match (
        der(&cx.lab.ca_pem, "the CA certificate"),
        der(&cert_pem, "the device certificate"),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return fail(out, e.to_string()),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(out, e.to_string()),
    };
    let broker = cx.lab.broker_addr;
    // The broker certificate's dates are checked against the host's
    // clock, as the firmware checks them against SNTP.
    coffre_firmware::set_unix_time(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + ahead_secs,
    );
    let mut crypto = DeviceCrypto::new(rand_core::OsRng, &ca, &cert, signer);
    let r: Result<(f64, Vec<u8>, bool), String> = rt.block_on(async {
        let clock = coffre_firmware::host::TokioTimer::new();
        let mut pubacks = Vec::new();
        let socket = tokio::net::TcpStream::connect(broker)
            .await
            .map_err(|e| e.to_string())?;
        let _ = socket.set_nodelay(true);
        let (mut rbuf, mut wbuf) = (vec![0u8; RECORD_READ_BUF], vec![0u8; RECORD_WRITE_BUF]);
        let mut queue = MemoryQueue::new();
        let take = |queue: &mut MemoryQueue, i: u64| {
            let seq = queue.next_seq();
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64);
            let m = Measurement {
                temperature_c: 21.0 + i as f32 / 10.0,
                humidity_pct: 45.0,
                pressure_hpa: 1013.0,
            };
            let _ = queue.push(seq, Reading::at_unix_micros(id, seq, now, &m).to_json());
        };
        // The first reading rides with the CONNECT, as on Linux.
        take(&mut queue, 0);
        let first = queue.front().cloned();
        let t0 = Instant::now();
        let (mut fw, _, sent) = Firmware::connect(
            FromTokio::new(socket),
            &mut rbuf,
            &mut wbuf,
            "localhost",
            &mut crypto,
            Session::new(Config::new(id, MqttVersion::V5)),
            &clock,
            first
                .as_ref()
                .map(|r| ("m5go/env", r.payload.as_bytes(), QoS::AtLeastOnce)),
        )
        .await
        .map_err(|e| e.to_string())?;
        let handshake_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let with_connect = matches!(sent, Some(Some(_)));
        for i in 0..READINGS {
            if i > 0 {
                take(&mut queue, i);
            }
            let Some(r) = queue.front().cloned() else {
                break;
            };
            let ack = match sent {
                Some(Some(packet)) if i == 0 => fw.wait_puback(&clock, packet).await,
                _ => {
                    fw.publish(&clock, "m5go/env", r.payload.as_bytes(), QoS::AtLeastOnce)
                        .await
                }
            }
            .map_err(|e| e.to_string())?;
            pubacks.push(ack.reason.0);
            let _ = queue.ack(r.seq);
        }
        fw.disconnect(&clock).await.map_err(|e| e.to_string())?;
        Ok((handshake_ms, pubacks, with_connect))
    });
    let signed = crypto.signatures();
    out.signatures = signed.made;
    match r {
        Ok((ms, acks, with_connect)) => {
            out.handshake_ms = ms;
            out.pubacks = acks;
            out.first_with_connect = with_connect;
        }
        Err(e) if signed.failure.is_some() => {
            out.error = Some(format!("{e} (the chip failed to sign: {:?})", signed.failure));
        }
        Err(e) => out.error = Some(e),
    }
    out
}
