//! The embedded-tls driver (crate `coffre-firmware`) measured on the host:
//! handshake time (TCP connect → TLS 1.3 with the chip signing → CONNACK),
//! and the memory it needs — the size of its futures (what an MCU's async
//! task holds on its stack), its record buffers, and the heap the MQTT
//! session uses.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, Result};
use coffre_agent::stats::percentile_of;
use coffre_device::boot::{BootKey, BootOptions, KeyMode};
use coffre_firmware::{DeviceCrypto, Firmware, KeySigner, RECORD_READ_BUF, RECORD_WRITE_BUF};
use coffre_mqtt::{Config, MqttVersion, QoS, Session};
use embedded_io_adapters::tokio_1::FromTokio;
use serde::Serialize;

/// What the embedded-tls driver costs.
#[derive(Debug, Clone, Serialize)]
pub struct FirmwareRow {
    /// Connections measured.
    pub runs: usize,
    /// Median TCP connect → TLS 1.3 handshake (chip signs, emulator
    /// instant timing) → CONNACK, ms.
    pub connect_median_ms: f64,
    /// The same with the chip in datasheet timing (wake, Nonce, Sign as a
    /// real ATECC608B takes them), over `datasheet_runs` runs, ms.
    pub connect_datasheet_median_ms: f64,
    /// Connections measured in datasheet timing.
    pub datasheet_runs: usize,
    /// Size of the connect future (handshake + CONNACK), bytes: the stack
    /// an async task needs for it.
    pub connect_future_bytes: usize,
    /// Size of the publish future (QoS 1 publish + PUBACK), bytes.
    pub publish_future_bytes: usize,
    /// TLS record buffers (read + write), bytes: static on the MCU.
    pub record_buffers_bytes: usize,
    /// Heap held by the MQTT session after CONNACK and one publish, bytes
    /// (its buffers; embedded-tls itself allocates nothing).
    pub session_heap_bytes: usize,
}

/// Connections measured with the chip in datasheet timing (each waits
/// for a real Sign, ~140 ms).
const DATASHEET_RUNS: usize = 5;

fn der(pem: &[u8], what: &'static str) -> Result<Vec<u8>> {
    Ok(coffre_agent::tls::parse_certificates(pem, what)?[0]
        .as_ref()
        .to_vec())
}

/// Measure `runs` connections of device `id` (its chip in `chip_img`).
pub fn firmware_row(
    d: &Path,
    chip_img: &Path,
    id: &str,
    broker: SocketAddr,
    runs: usize,
) -> Result<FirmwareRow> {
    let ca = der(
        &std::fs::read(d.join("pki/ca.crt.pem"))?,
        "the CA certificate",
    )?;
    let cert = der(
        &std::fs::read(d.join(format!("pki/devices/{id}.crt.pem")))?,
        "the device certificate",
    )?;
    // Certificate dates checked against the host's clock (the firmware:
    // SNTP).
    coffre_firmware::set_unix_time(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let mut times = Vec::with_capacity(runs);
    let mut row = FirmwareRow {
        runs,
        connect_median_ms: f64::NAN,
        connect_datasheet_median_ms: f64::NAN,
        datasheet_runs: runs.min(DATASHEET_RUNS),
        connect_future_bytes: 0,
        publish_future_bytes: 0,
        record_buffers_bytes: RECORD_READ_BUF + RECORD_WRITE_BUF,
        session_heap_bytes: 0,
    };
    let mut slow = Vec::with_capacity(row.datasheet_runs);
    for i in 0..runs + row.datasheet_runs {
        let timing = if i < runs {
            coffre_emu::clock::Timing::Instant
        } else {
            coffre_emu::clock::Timing::Datasheet
        };
        let board = coffre_emu::board::Board::open(chip_img, timing)?;
        let chip = coffre_driver::Atecc::new(board.bus.clone(), board.delay(), 0x35);
        let opts = BootOptions {
            mode: KeyMode::Offload { slot: 0 },
            allow_unlocked: false,
            io_key: None,
        };
        let signer = match coffre_device::boot::boot(chip, &opts, &mut |_, _| {}) {
            Ok((BootKey::Offload { chip, slot }, _)) => KeySigner::Chip { chip, slot },
            Ok(_) => return Err(anyhow!("the boot did not keep the key in the chip")),
            Err(e) => return Err(anyhow!("boot: {e}")),
        };
        let mut crypto = DeviceCrypto::new(rand_core::OsRng, &ca, &cert, signer);
        rt.block_on(async {
            let clock = coffre_firmware::host::TokioTimer::new();
            let (mut rbuf, mut wbuf) = (vec![0u8; RECORD_READ_BUF], vec![0u8; RECORD_WRITE_BUF]);
            let t0 = Instant::now();
            let socket = tokio::net::TcpStream::connect(broker).await?;
            socket.set_nodelay(true)?;
            let connect = Firmware::connect(
                FromTokio::new(socket),
                &mut rbuf,
                &mut wbuf,
                "localhost",
                &mut crypto,
                Session::new(Config::new(id, MqttVersion::V5)),
                &clock,
                None,
            );
            row.connect_future_bytes = std::mem::size_of_val(&connect);
            let (mut fw, _, _) = connect.await.map_err(|e| anyhow!("{e}"))?;
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            if i < runs {
                times.push(ms);
            } else {
                slow.push(ms);
            }
            let publish = fw.publish(&clock, "m5go/env", b"{}", QoS::AtLeastOnce);
            row.publish_future_bytes = std::mem::size_of_val(&publish);
            publish.await.map_err(|e| anyhow!("{e}"))?;
            row.session_heap_bytes = fw.session().heap_bytes();
            fw.disconnect(&clock).await.map_err(|e| anyhow!("{e}"))?;
            Ok::<(), anyhow::Error>(())
        })?;
        if crypto.signatures().made == 0 {
            return Err(anyhow!("the chip made no signature"));
        }
    }
    row.connect_median_ms = percentile_of(&mut times, 50.0).unwrap_or(f64::NAN);
    row.connect_datasheet_median_ms = percentile_of(&mut slow, 50.0).unwrap_or(f64::NAN);
    Ok(row)
}
