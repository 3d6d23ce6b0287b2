//! `coffre emu bench`: emulator throughput and timing fidelity.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use coffre_driver::{Atecc, DriverConfig};
use coffre_emu::board::Board;
use coffre_emu::clock::Timing;
use coffre_emu::presets::Preset;
use coffre_proto::command::{self, opcode, AccessSize, InfoMode, MessageSource, NonceTarget};
use coffre_proto::packet::{Command, MAX_PACKET};
use coffre_proto::timing::{exec_time_ms, ClockDivider};
use coffre_proto::zone::Zone;
use embedded_hal::i2c::I2c;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde_json::json;

use crate::output::print_json;

/// Run the benchmarks and print the figures.
pub fn run(reads: u32, json: bool) -> Result<()> {
    if reads == 0 {
        bail!("--reads must be at least 1");
    }
    // 1. Read throughput through the whole path: driver → embedded-hal I2c →
    //    emulated bus → chip, with wake, command, poll, response and idle
    //    for every Read, exactly as on hardware.
    let board = Board::new(Preset::Tngtls.build(), Timing::Instant);
    let mut chip = Atecc::new(board.bus.clone(), board.delay(), 0x35);
    let mut buf = [0u8; 32];
    // Warm-up.
    for _ in 0..100 {
        chip.read(Zone::Config, AccessSize::Block, 0, &mut buf)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let t0 = Instant::now();
    for i in 0..reads {
        let addr = ((i % 13) as u16) << 8 | (8 << 3);
        chip.read(Zone::Data, AccessSize::Block, addr, &mut buf)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let el = t0.elapsed();
    let per_s = reads as f64 / el.as_secs_f64();

    // 2. Datasheet timing: time from the end of the command write to the
    //    first successful response read, polling every 50 µs.
    let board = Board::new(Preset::Tngtls.build(), Timing::Datasheet);
    let mut rows = Vec::new();
    let digest = [0x42u8; 32];
    // A peer public key for ECDH, and the commands that prepare TempKey
    // (a random Nonce, then GenDig over slot 8) for GenDig, MAC and the
    // internal-message Sign.
    let peer = p256::SecretKey::random(&mut rand_core::OsRng)
        .public_key()
        .to_encoded_point(false);
    let nonce = command::nonce_random(&[7; 20], true);
    let gendig = Command::with_data(opcode::GENDIG, 0x02, 8, &[opcode::GENDIG, 0x02, 8, 0])?;
    let cases: Vec<(&str, Command, Vec<Command>)> = vec![
        ("Info", command::info(InfoMode::Revision), vec![]),
        (
            "Read",
            command::read(Zone::Config, AccessSize::Block, 0),
            vec![],
        ),
        ("Random", command::random(), vec![]),
        (
            "Nonce",
            command::nonce_passthrough(NonceTarget::TempKey, &digest)?,
            vec![],
        ),
        ("GenKey", command::genkey_public(0), vec![]),
        (
            "Sign",
            command::sign_external(0, MessageSource::MsgDigestBuffer),
            vec![command::nonce_passthrough(
                NonceTarget::MsgDigestBuffer,
                &digest,
            )?],
        ),
        (
            "Sign int",
            Command::new(opcode::SIGN, 0x00, 1),
            vec![nonce.clone(), gendig.clone()],
        ),
        (
            "ECDH",
            Command::with_data(opcode::ECDH, 0x0C, 0, &peer.as_bytes()[1..])?,
            vec![],
        ),
        ("GenDig", gendig.clone(), vec![nonce.clone()]),
        (
            "MAC",
            Command::new(opcode::MAC, 0x01, 6),
            vec![nonce.clone()],
        ),
        (
            "AES",
            Command::with_data(opcode::AES, 0x00, 9, &[0x5A; 16])?,
            vec![],
        ),
    ];
    for (name, cmd, setup) in &cases {
        let mut samples = Vec::new();
        for _ in 0..3 {
            let d = time_command(&board, cmd, setup)?;
            samples.push(d);
        }
        samples.sort();
        let median = coffre_agent::stats::percentile(&samples, 50.0).unwrap_or_default();
        let table = exec_time_ms(cmd.opcode, ClockDivider::M0).unwrap_or(0);
        let err = (median.as_secs_f64() * 1000.0 - table as f64) / table as f64 * 100.0;
        rows.push((name.to_string(), table, median, err));
    }

    // 3. The same Sign through the driver with its default polling, as
    //    a user sees it.
    let mut drv = Atecc::with_config(board.bus.clone(), board.delay(), 0x35, DriverConfig::new());
    let t0 = Instant::now();
    drv.sign_digest(0, &digest)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sign_driver = t0.elapsed();

    if json {
        let r: Vec<_> = rows
            .iter()
            .map(|(n, t, m, e)| {
                json!({"command": n, "table_ms": t, "measured_ms": m.as_secs_f64() * 1000.0, "error_pct": e})
            })
            .collect();
        return print_json(&json!({
            "read_throughput": {"reads": reads, "seconds": el.as_secs_f64(), "reads_per_second": per_s},
            "datasheet_timing": r,
            "sign_digest_through_driver_ms": sign_driver.as_secs_f64() * 1000.0,
        }));
    }
    println!(
        "emulator Read throughput (instant timing, driver → I2C → chip, wake+read+idle each):"
    );
    println!(
        "  {reads} Reads in {:.3} s = {:.0} Reads/s (target > 50000)",
        el.as_secs_f64(),
        per_s
    );
    println!();
    println!("datasheet timing (command write → response ready, median of 3):");
    println!("  command   table ms  measured ms  error");
    for (n, t, m, e) in &rows {
        println!(
            "  {:<8}  {:>8}  {:>11.2}  {:>+5.1}%{}",
            n,
            t,
            m.as_secs_f64() * 1000.0,
            e,
            if e.abs() <= 10.0 { "" } else { "  (over 10%)" }
        );
    }
    println!();
    println!(
        "Sign of a digest through the driver (Nonce 20 ms + Sign 115 ms + two wakes, 2 ms polling): {:.1} ms",
        sign_driver.as_secs_f64() * 1000.0
    );
    Ok(())
}

fn send(board: &Board, cmd: &Command) -> Result<()> {
    let mut bus = board.bus.clone();
    let mut b = [0u8; MAX_PACKET];
    let n = cmd.encode(&mut b)?;
    bus.write(0x35, &b[..n])
        .map_err(|e| anyhow::anyhow!("command write: {e}"))
}

fn wait_response(board: &Board) -> Result<Duration> {
    let mut bus = board.bus.clone();
    let t0 = Instant::now();
    let mut rsp = [0u8; 1];
    loop {
        if bus.read(0x35, &mut rsp).is_ok() {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > Duration::from_secs(3) {
            bail!("no response within 3 s");
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

fn time_command(board: &Board, cmd: &Command, setup: &[Command]) -> Result<Duration> {
    let mut bus = board.bus.clone();
    let _ = bus.write(0x00, &[]);
    std::thread::sleep(Duration::from_micros(1600));
    let mut w = [0u8; 4];
    bus.read(0x35, &mut w)
        .map_err(|e| anyhow::anyhow!("wake: {e}"))?;
    for s in setup {
        send(board, s)?;
        wait_response(board)?;
        check_status(board, s)?;
    }
    send(board, cmd)?;
    let d = wait_response(board)?;
    check_status(board, cmd)?;
    let _ = bus.write(0x35, &[0x02]);
    Ok(d)
}

/// After `wait_response`: read the response again from its start (word
/// address 0x00 rewinds it) and refuse an error status, so only commands
/// that really ran are timed.
fn check_status(board: &Board, cmd: &Command) -> Result<()> {
    let mut bus = board.bus.clone();
    let _ = bus.write(0x35, &[0x00]);
    let mut head = [0u8; 2];
    bus.read(0x35, &mut head)
        .map_err(|e| anyhow::anyhow!("response: {e}"))?;
    if head[0] == 4 && head[1] != 0 {
        bail!(
            "{} (0x{:02X}) answered status 0x{:02X}",
            opcode::name(cmd.opcode),
            cmd.opcode,
            head[1]
        );
    }
    Ok(())
}
