//! `coffre emu bench`: the emulator's throughput and the fidelity of its
//! datasheet timing. [`run`] measures and returns an [`EmulatorReport`];
//! it prints nothing.

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
use serde::Serialize;

/// Read throughput through driver → embedded-hal I2c → emulated bus → chip.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Read commands timed.
    pub reads: u32,
    /// Time they took, seconds.
    pub seconds: f64,
    /// Reads per second.
    pub reads_per_second: f64,
}

/// One command's datasheet timing as the emulator plays it.
#[derive(Debug, Clone, Serialize)]
pub struct TimingRow {
    /// Command name.
    pub command: String,
    /// The datasheet's maximum execution time, ms.
    pub table_ms: u32,
    /// Command write → response ready, median of 3, ms.
    pub measured_ms: f64,
    /// (measured − table) / table, percent.
    pub error_pct: f64,
}

/// What `coffre emu bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct EmulatorReport {
    /// Instant timing: Read throughput.
    pub read_throughput: Throughput,
    /// Datasheet timing, command by command.
    pub datasheet_timing: Vec<TimingRow>,
    /// A Sign of a digest through the driver with its default polling, ms.
    pub sign_digest_through_driver_ms: f64,
}

/// Measure the emulator: `reads` Read commands through the whole I2C path,
/// then each command's datasheet timing (median of 3) against the table.
pub fn run(reads: u32) -> Result<EmulatorReport> {
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
        rows.push(TimingRow {
            command: name.to_string(),
            table_ms: table,
            measured_ms: median.as_secs_f64() * 1000.0,
            error_pct: err,
        });
    }

    // 3. The same Sign through the driver with its default polling, as
    //    a user sees it.
    let mut drv = Atecc::with_config(board.bus.clone(), board.delay(), 0x35, DriverConfig::new());
    let t0 = Instant::now();
    drv.sign_digest(0, &digest)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sign_driver = t0.elapsed();

    Ok(EmulatorReport {
        read_throughput: Throughput {
            reads,
            seconds: el.as_secs_f64(),
            reads_per_second: per_s,
        },
        datasheet_timing: rows,
        sign_digest_through_driver_ms: sign_driver.as_secs_f64() * 1000.0,
    })
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
