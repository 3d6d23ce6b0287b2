//! Microchip "kit protocol" front end for the emulated chip.
//!
//! Microchip's USB/UART evaluation kits speak a line-oriented ASCII protocol:
//! the host sends `<target>:<command>(<hex>)\n` and the kit answers
//! `<status>(<hex>)\n`. CryptoAuthLib's kit HID/UART HALs (`lib/hal/kit_protocol.c`)
//! are the host side; `app/kit_host/ascii_kit_host.c` is Microchip's kit-side
//! parser. This module re-implements the kit side so that tools outside Rust
//! can drive an emulated ATECC608 over TCP.
//!
//! * [`KitSession`] is the sans-IO parser: one request line in, one reply line out.
//! * [`LineFramer`] cuts a byte stream into lines and enforces the kit's line limit.
//! * [`serve`] runs both over a [`TcpListener`].
//!
//! The chip itself is reached through the [`KitTarget`] trait.
//!
//! See `docs/kit-protocol.md` for the wire format, examples and the places
//! where this implementation deliberately differs from the C parser.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tracing::debug;

/// Largest request the kit accepts, in bytes, including the terminating `\n`
/// (`KIT_MESSAGE_SIZE_MAX` in `ascii_kit_host.h` for builds without TA support).
pub const KIT_MESSAGE_SIZE_MAX: usize = 512;

/// Most arguments (target, command, sub-command, data) one line may carry;
/// `kit_host_process_line()` has room for four.
const MAX_TOKENS: usize = 4;

/// How often [`serve`] polls for new clients and for the stop flag.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How long [`serve`] waits for a client to take a reply before dropping it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Limits [`serve_with`] puts on its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// Clients served at once (one thread each). A client above the limit
    /// gets [`busy_reply`] and is disconnected.
    pub max_clients: usize,
    /// A client that sends nothing for this long is disconnected (after
    /// [`IDLE_REPLY`]), freeing its place.
    pub idle_timeout: Duration,
}

impl Default for ServeOptions {
    /// 16 clients, 5 minutes of silence.
    fn default() -> Self {
        ServeOptions {
            max_clients: 16,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// What a client above [`ServeOptions::max_clients`] reads before the
/// server closes its connection. Not a kit status line: a kit host reports
/// it as a protocol error, and a person reading it knows why.
pub fn busy_reply(max_clients: usize) -> String {
    format!("busy: {max_clients} clients are connected, the server's limit; try again later\n")
}

/// What an idle client reads before the server closes its connection.
pub const IDLE_REPLY: &str = "idle: nothing received for too long; closing\n";

/// When a client has been silent too long: bytes and time in, "close it
/// now?" out. Time is an argument, so it is tested without waiting.
#[derive(Debug, Clone, Copy)]
pub struct IdleTimer {
    limit: Duration,
    last: Instant,
}

impl IdleTimer {
    /// A timer that starts at `now`.
    pub fn new(limit: Duration, now: Instant) -> IdleTimer {
        IdleTimer { limit, last: now }
    }

    /// Bytes arrived at `now`.
    pub fn activity(&mut self, now: Instant) {
        self.last = now;
    }

    /// Whether the client has been silent for the whole limit at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last) >= self.limit
    }
}

/// The response a healthy chip gives after a wake (`hal_check_wake()`).
pub const WAKE_RESPONSE: [u8; 4] = [0x04, 0x11, 0x33, 0x43];

/// The after-wake response CryptoAuthLib treats as "chip in self-test failure".
pub const SELFTEST_FAIL_RESPONSE: [u8; 4] = [0x04, 0x07, 0xC4, 0x40];

/// Kit status bytes, the low byte of CryptoAuthLib's `ATCA_STATUS` values
/// (`lib/atca_status.h`).
pub mod status {
    /// `ATCA_SUCCESS`.
    pub const SUCCESS: u8 = 0x00;
    /// `ATCA_WAKE_FAILED`: no valid wake token.
    pub const WAKE_FAILED: u8 = 0xD0;
    /// `ATCA_STATUS_SELFTEST_ERROR`: the chip woke up in self-test failure mode.
    pub const SELFTEST_ERROR: u8 = 0xD7;
    /// `ATCA_FUNC_FAIL`: the command cannot run in the current state.
    pub const FUNC_FAIL: u8 = 0xE0;
    /// `ATCA_GEN_FAIL`: unspecified error.
    pub const GEN_FAIL: u8 = 0xE1;
    /// `ATCA_BAD_PARAM`: unknown command, missing argument, malformed hex.
    pub const BAD_PARAM: u8 = 0xE2;
    /// `ATCA_INVALID_SIZE`: a count or length is out of range.
    pub const INVALID_SIZE: u8 = 0xE4;
    /// `ATCA_RX_FAIL`: a response was started but not completed.
    pub const RX_FAIL: u8 = 0xE6;
    /// `ATCA_RX_NO_RESPONSE`: the chip did not answer.
    pub const RX_NO_RESPONSE: u8 = 0xE7;
    /// `ATCA_COMM_FAIL`: communication with the chip failed.
    pub const COMM_FAIL: u8 = 0xF0;
    /// `ATCA_TIMEOUT`: timed out waiting for the chip.
    pub const TIMEOUT: u8 = 0xF1;
}

/// Errors of the kit layer. Each maps to a kit status byte ([`KitError::status`]),
/// which is what the client sees as `SS()`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KitError {
    /// The chip did not answer at all (asleep, not present, NACK).
    NoResponse,
    /// The chip started answering but the response was incomplete.
    RxFail,
    /// Timed out waiting for the chip.
    Timeout,
    /// The bus failed; the text says how.
    Comm(String),
    /// Wake did not produce a valid wake token.
    WakeFailed,
    /// Unknown command, missing argument or malformed hex in a request.
    BadParam(String),
    /// A length is out of range: over-long line, count byte not matching the packet.
    InvalidSize(String),
    /// The command cannot be carried out, e.g. `board:device` past the last device.
    FuncFail(String),
    /// Any other status byte, passed to the client as is.
    Status(u8),
}

impl KitError {
    /// The kit status byte sent to the client for this error.
    pub fn status(&self) -> u8 {
        match self {
            KitError::NoResponse => status::RX_NO_RESPONSE,
            KitError::RxFail => status::RX_FAIL,
            KitError::Timeout => status::TIMEOUT,
            KitError::Comm(_) => status::COMM_FAIL,
            KitError::WakeFailed => status::WAKE_FAILED,
            KitError::BadParam(_) => status::BAD_PARAM,
            KitError::InvalidSize(_) => status::INVALID_SIZE,
            KitError::FuncFail(_) => status::FUNC_FAIL,
            KitError::Status(s) => *s,
        }
    }
}

impl fmt::Display for KitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KitError::NoResponse => f.write_str("device did not respond"),
            KitError::RxFail => f.write_str("incomplete response from device"),
            KitError::Timeout => f.write_str("timed out waiting for device"),
            KitError::Comm(why) => write!(f, "communication failure: {why}"),
            KitError::WakeFailed => f.write_str("wake failed"),
            KitError::BadParam(why) => write!(f, "bad parameter: {why}"),
            KitError::InvalidSize(why) => write!(f, "invalid size: {why}"),
            KitError::FuncFail(why) => write!(f, "function failed: {why}"),
            KitError::Status(s) => write!(f, "kit status 0x{s:02X}"),
        }
    }
}

impl std::error::Error for KitError {}

/// What the kit talks to: the emulated chip behind an emulated bus.
pub trait KitTarget: Send {
    /// Device type name as the kit reports it, e.g. `"ECC608"`
    /// (the names of `kit_id_from_devtype()` in `kit_protocol.c`).
    fn device_name(&self) -> &str;

    /// 8-bit I2C address as the kit reports it (e.g. `0x6A` for Trust&GO,
    /// `0xC0` for a blank part).
    fn address8(&self) -> u8;

    /// Interface name as the kit reports it: `"TWI"`, `"SWI"` or `"SPI"`.
    fn interface_name(&self) -> &str {
        "TWI"
    }

    /// Wake the chip and return its after-wake response (`04 11 33 43` when healthy).
    fn wake(&mut self) -> Result<Vec<u8>, KitError>;

    /// Put the chip in idle mode.
    fn idle(&mut self) -> Result<(), KitError>;

    /// Put the chip to sleep.
    fn sleep(&mut self) -> Result<(), KitError>;

    /// Send one command packet (count, opcode, param1, param2, data, CRC; without
    /// the `0x03` word address), wait for execution, and return the full
    /// response packet (count, status or data, CRC).
    fn transmit(&mut self, packet: &[u8]) -> Result<Vec<u8>, KitError>;
}

/// First-level targets (`kit_host_target_map`). "ta" is absent: no TA100 support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Board,
    Device,
}

const TARGETS: &[(&str, Layer)] = &[
    ("board", Layer::Board),
    ("ecc", Layer::Device),
    ("sha", Layer::Device),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BoardCmd {
    Version,
    Firmware,
    Device,
}

const BOARD_CMDS: &[(&str, BoardCmd)] = &[
    ("version", BoardCmd::Version),
    ("firmware", BoardCmd::Firmware),
    ("device", BoardCmd::Device),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeviceCmd {
    Wake,
    Idle,
    Sleep,
    Talk,
    Physical,
    /// Extension: `e:select(AA)` without the `physical:` layer.
    Select,
}

const DEVICE_CMDS: &[(&str, DeviceCmd)] = &[
    ("wake", DeviceCmd::Wake),
    ("idle", DeviceCmd::Idle),
    ("sleep", DeviceCmd::Sleep),
    ("talk", DeviceCmd::Talk),
    ("physical", DeviceCmd::Physical),
    ("select", DeviceCmd::Select),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PhysicalCmd {
    Select,
}

const PHYSICAL_CMDS: &[(&str, PhysicalCmd)] = &[("select", PhysicalCmd::Select)];

/// `kit_host_process_cmd()`: the first entry whose name starts with `token` wins,
/// so `e` means `ecc`, `w` means `wake`, and an empty token means the first entry.
fn lookup<T: Copy>(table: &[(&str, T)], token: &str) -> Option<T> {
    table
        .iter()
        .find(|(name, _)| name.starts_with(token))
        .map(|(_, v)| *v)
}

/// Split a request line into tokens as `kit_host_process_line()` does:
/// `:` and `(` start a new token, `)` ends the current one (anything after it up
/// to the next delimiter is ignored), letters are lower-cased.
/// The line must not contain its `\n`.
fn tokenize(line: &str) -> Result<Vec<String>, KitError> {
    let mut tokens = vec![String::new()];
    let mut closed = false;
    for c in line.chars() {
        match c {
            ':' | '(' => {
                if tokens.len() == MAX_TOKENS {
                    return Err(KitError::BadParam(format!("more than {MAX_TOKENS} fields")));
                }
                tokens.push(String::new());
                closed = false;
            }
            ')' => closed = true,
            '\0' => {}
            _ if !closed => {
                if let Some(last) = tokens.last_mut() {
                    last.push(c.to_ascii_lowercase());
                }
            }
            _ => {}
        }
    }
    Ok(tokens)
}

/// Parse an argument the way `(uint8_t)strtol(arg, NULL, 16)` does: optional
/// leading blanks, sign and `0x`, then hex digits up to the first other
/// character; no digits gives 0; the result is truncated to a byte.
fn strtol_hex_u8(arg: &str) -> u8 {
    let s = arg.trim_start();
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let s = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_hexdigit()) => rest,
        _ => s,
    };
    let mut value: i64 = 0;
    for c in s.chars() {
        let Some(d) = c.to_digit(16) else { break };
        value = value.saturating_mul(16).saturating_add(i64::from(d));
    }
    if negative {
        value = value.wrapping_neg();
    }
    // Truncation is the point: the C code casts the long to uint8_t.
    (value & 0xFF) as u8
}

/// Decode the hex data of a request. Blanks between digits are allowed
/// (CryptoAuthLib's `atcab_hex2bin()` skips them); any other non-hex character
/// and an odd number of digits are rejected.
fn parse_hex(text: &str) -> Result<Vec<u8>, KitError> {
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut high: Option<u8> = None;
    for c in text.chars() {
        if c == ' ' || c == '\t' {
            continue;
        }
        let Some(d) = c.to_digit(16) else {
            return Err(KitError::BadParam(format!("not a hex digit: {c:?}")));
        };
        // to_digit(16) is below 16, so the narrowing is exact.
        let d = d as u8;
        match high.take() {
            None => high = Some(d),
            Some(h) => out.push((h << 4) | d),
        }
    }
    if high.is_some() {
        return Err(KitError::BadParam("odd number of hex digits".into()));
    }
    Ok(out)
}

/// Upper-case hex without separators, as `atcab_bin2hex_()` writes it for the kit.
fn to_hex(data: &[u8]) -> String {
    coffre_proto::hex::Hex::upper(data).to_string()
}

/// Format a reply line: `SS(HEX)\n` (`kit_host_format_response()`).
fn reply(status: u8, data: &[u8]) -> String {
    format!("{status:02X}({})\n", to_hex(data))
}

/// The reply for an error: its status and no data.
fn error_reply(err: &KitError) -> String {
    reply(err.status(), &[])
}

/// One client's view of the kit: the sans-IO protocol state machine.
///
/// Feed it complete request lines with [`KitSession::process_line`] and send
/// back the returned reply. The only state is whether a device has been
/// selected with `e:physical:select(AA)`; device commands fail with
/// `E2()` (`ATCA_BAD_PARAM`) until then, as in `ascii_kit_host.c`.
#[derive(Debug, Default, Clone)]
pub struct KitSession {
    selected: bool,
}

impl KitSession {
    /// A fresh session with no device selected.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a device has been selected on this session.
    pub fn is_selected(&self) -> bool {
        self.selected
    }

    /// Process one request line and return the reply line, `\n` included.
    ///
    /// `line` may or may not end in `\n` (or `\r\n`); NUL bytes are ignored.
    /// Lines longer than [`KIT_MESSAGE_SIZE_MAX`] (counting the `\n`) are
    /// answered with `E4()`.
    pub fn process_line(&mut self, line: &[u8], target: &mut dyn KitTarget) -> String {
        match self.dispatch(line, target) {
            Ok(r) => r,
            Err(e) => {
                debug!(error = %e, "kit request failed");
                error_reply(&e)
            }
        }
    }

    /// The reply for a line that was cut because it exceeded [`KIT_MESSAGE_SIZE_MAX`].
    pub fn overlong_reply() -> String {
        error_reply(&KitError::InvalidSize(format!(
            "line longer than {KIT_MESSAGE_SIZE_MAX} bytes"
        )))
    }

    fn dispatch(&mut self, line: &[u8], target: &mut dyn KitTarget) -> Result<String, KitError> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line: Vec<u8> = line.iter().copied().filter(|&b| b != 0).collect();
        if line.len() + 1 > KIT_MESSAGE_SIZE_MAX {
            return Err(KitError::InvalidSize(format!(
                "line longer than {KIT_MESSAGE_SIZE_MAX} bytes"
            )));
        }
        let text = String::from_utf8_lossy(&line);
        let tokens = tokenize(&text)?;
        let (first, rest) = tokens
            .split_first()
            .ok_or_else(|| KitError::BadParam("empty line".into()))?;
        let layer = lookup(TARGETS, first)
            .ok_or_else(|| KitError::BadParam(format!("unknown target {first:?}")))?;
        let (cmd, args) = rest
            .split_first()
            .ok_or_else(|| KitError::BadParam("missing command".into()))?;
        match layer {
            Layer::Board => {
                let cmd = lookup(BOARD_CMDS, cmd)
                    .ok_or_else(|| KitError::BadParam(format!("unknown board command {cmd:?}")))?;
                self.board(cmd, args, target)
            }
            Layer::Device => {
                let cmd = lookup(DEVICE_CMDS, cmd)
                    .ok_or_else(|| KitError::BadParam(format!("unknown device command {cmd:?}")))?;
                self.device(cmd, args, target)
            }
        }
    }

    fn board(
        &mut self,
        cmd: BoardCmd,
        args: &[String],
        target: &mut dyn KitTarget,
    ) -> Result<String, KitError> {
        match cmd {
            BoardCmd::Version => Ok(reply(status::SUCCESS, env!("CARGO_PKG_VERSION").as_bytes())),
            BoardCmd::Firmware => Ok(reply(status::SUCCESS, b"coffre-emu")),
            BoardCmd::Device => {
                let arg = args
                    .first()
                    .ok_or_else(|| KitError::FuncFail("board:device needs an index".into()))?;
                let index = strtol_hex_u8(arg);
                if index != 0 {
                    return Err(KitError::FuncFail(format!("no device at index {index}")));
                }
                Ok(format!(
                    "{} {} 00({:02X})\n",
                    target.device_name(),
                    target.interface_name(),
                    target.address8()
                ))
            }
        }
    }

    fn device(
        &mut self,
        cmd: DeviceCmd,
        args: &[String],
        target: &mut dyn KitTarget,
    ) -> Result<String, KitError> {
        match cmd {
            DeviceCmd::Physical => {
                let (sub, sub_args) = args
                    .split_first()
                    .ok_or_else(|| KitError::BadParam("missing physical command".into()))?;
                match lookup(PHYSICAL_CMDS, sub) {
                    Some(PhysicalCmd::Select) => Ok(self.select(sub_args, target)),
                    None => Err(KitError::BadParam(format!(
                        "unknown physical command {sub:?}"
                    ))),
                }
            }
            DeviceCmd::Select => Ok(self.select(args, target)),
            _ if !self.selected => Err(KitError::BadParam("no device selected".into())),
            DeviceCmd::Wake => match target.wake()? {
                r if r == WAKE_RESPONSE => Ok(reply(status::SUCCESS, &r)),
                r if r == SELFTEST_FAIL_RESPONSE => Ok(reply(status::SELFTEST_ERROR, &r)),
                r => {
                    debug!(response = %to_hex(&r), "unexpected wake response");
                    Err(KitError::WakeFailed)
                }
            },
            DeviceCmd::Idle => {
                target.idle()?;
                Ok(reply(status::SUCCESS, &[]))
            }
            DeviceCmd::Sleep => {
                target.sleep()?;
                Ok(reply(status::SUCCESS, &[]))
            }
            DeviceCmd::Talk => {
                let hex = args
                    .first()
                    .ok_or_else(|| KitError::BadParam("talk needs a packet".into()))?;
                let packet = parse_hex(hex)?;
                match packet.first() {
                    None => return Err(KitError::InvalidSize("empty packet".into())),
                    Some(&count) if usize::from(count) != packet.len() => {
                        return Err(KitError::InvalidSize(format!(
                            "count byte 0x{count:02X} but {} bytes given",
                            packet.len()
                        )))
                    }
                    Some(_) => {}
                }
                self.talk(&packet, target)
            }
        }
    }

    /// `kit_host_ca_select()`: select the device if the address matches; the
    /// reply is `00()` either way.
    fn select(&mut self, args: &[String], target: &mut dyn KitTarget) -> String {
        if let Some(arg) = args.first() {
            let address = strtol_hex_u8(arg);
            if address == target.address8() {
                self.selected = true;
            } else {
                debug!(address, "select: no device at this address");
            }
        }
        reply(status::SUCCESS, &[])
    }

    /// `kit_host_ca_talk()` runs `calib_execute_command()`: wake, send, receive,
    /// idle. The wake outcome is not checked (a chip that stayed awake is fine);
    /// the idle runs whatever happened. The chip's response goes back whole, status
    /// packets included, so the host sees the chip's own error code.
    fn talk(&mut self, packet: &[u8], target: &mut dyn KitTarget) -> Result<String, KitError> {
        match target.wake() {
            Ok(r) if r == WAKE_RESPONSE => {}
            Ok(r) => debug!(response = %to_hex(&r), "wake before talk: unexpected response"),
            Err(e) => debug!(error = %e, "wake before talk failed"),
        }
        let result = target.transmit(packet);
        if let Err(e) = target.idle() {
            debug!(error = %e, "idle after talk failed");
        }
        let response = result?;
        if response.is_empty() {
            return Err(KitError::NoResponse);
        }
        Ok(reply(status::SUCCESS, &response))
    }
}

/// One unit cut from a byte stream by [`LineFramer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line, without its `\n`.
    Line(Vec<u8>),
    /// A line longer than [`KIT_MESSAGE_SIZE_MAX`] was received and dropped;
    /// answer it with [`KitSession::overlong_reply`].
    TooLong,
}

/// Cuts a byte stream into request lines.
///
/// Lines end at `\n`. NUL bytes are dropped (HID reports arrive zero-padded).
/// A line that would not fit the kit's buffer of [`KIT_MESSAGE_SIZE_MAX`] bytes
/// (`\n` included) is discarded up to its `\n` and reported once as
/// [`Frame::TooLong`]. A partial line is kept until more bytes arrive.
#[derive(Debug, Default, Clone)]
pub struct LineFramer {
    buf: Vec<u8>,
    overflow: bool,
}

impl LineFramer {
    /// An empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add received bytes and return the frames they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        for &b in bytes {
            match b {
                0 => {}
                b'\n' => {
                    if self.overflow {
                        frames.push(Frame::TooLong);
                    } else {
                        frames.push(Frame::Line(std::mem::take(&mut self.buf)));
                    }
                    self.buf.clear();
                    self.overflow = false;
                }
                _ if self.overflow => {}
                _ => {
                    if self.buf.len() + 1 >= KIT_MESSAGE_SIZE_MAX {
                        self.overflow = true;
                        self.buf.clear();
                    } else {
                        self.buf.push(b);
                    }
                }
            }
        }
        frames
    }

    /// Bytes of the unfinished line held so far.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Serve the kit protocol on `listener` until `stop` is set, with the
/// default [`ServeOptions`].
pub fn serve(
    listener: TcpListener,
    target: Arc<Mutex<dyn KitTarget>>,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    serve_with(listener, target, stop, ServeOptions::default())
}

/// Serve the kit protocol on `listener` until `stop` is set.
///
/// Each client gets its own thread, up to `opts.max_clients`; a client
/// over the limit is told so ([`busy_reply`]) and disconnected, and one
/// silent for `opts.idle_timeout` is disconnected too, so neither a flood
/// of connections nor forgotten ones exhaust the process. Each client
/// thread and [`KitSession`]; all of them share
/// `target`, which is locked for one request at a time. The listener is
/// switched to non-blocking mode and polled every [`POLL_INTERVAL`]; client
/// threads check `stop` as often. When `stop` is set, `serve` closes the
/// listener, waits for the client threads to finish and returns `Ok(())`.
///
/// Returns an error if the listener cannot be configured, a client thread
/// cannot be spawned, or `accept` fails with anything but a transient error.
pub fn serve_with(
    listener: TcpListener,
    target: Arc<Mutex<dyn KitTarget>>,
    stop: Arc<AtomicBool>,
    opts: ServeOptions,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    debug!(local = ?listener.local_addr().ok(), "kit server listening");
    let mut clients: Vec<JoinHandle<()>> = Vec::new();
    let result = accept_loop(&listener, &target, &stop, &mut clients, opts);
    drop(listener);
    for handle in clients {
        if handle.join().is_err() {
            debug!("kit client thread panicked");
        }
    }
    debug!("kit server stopped");
    result
}

fn accept_loop(
    listener: &TcpListener,
    target: &Arc<Mutex<dyn KitTarget>>,
    stop: &Arc<AtomicBool>,
    clients: &mut Vec<JoinHandle<()>>,
    opts: ServeOptions,
) -> io::Result<()> {
    while !stop.load(Ordering::SeqCst) {
        // Forget threads whose client has gone (a finished thread needs no join).
        clients.retain(|h| !h.is_finished());
        match listener.accept() {
            Ok((stream, peer)) if clients.len() >= opts.max_clients => {
                debug!(%peer, limit = opts.max_clients, "kit client refused: too many clients");
                refuse(stream, &busy_reply(opts.max_clients));
            }
            Ok((stream, peer)) => {
                debug!(%peer, "kit client connected");
                let target = Arc::clone(target);
                let stop = Arc::clone(stop);
                let idle = opts.idle_timeout;
                let handle = thread::Builder::new()
                    .name(format!("kit-client-{peer}"))
                    .spawn(move || run_client(stream, peer, &target, &stop, idle))?;
                clients.push(handle);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(POLL_INTERVAL),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::TimedOut
                ) =>
            {
                debug!(error = %e, "transient accept error");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Tell a client why it is being dropped, without letting it hold up the
/// accept loop, and close.
fn refuse(mut stream: TcpStream, line: &str) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(POLL_INTERVAL));
    let _ = stream.write_all(line.as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn run_client(
    stream: TcpStream,
    peer: SocketAddr,
    target: &Mutex<dyn KitTarget>,
    stop: &AtomicBool,
    idle: Duration,
) {
    match handle_client(stream, target, stop, idle) {
        Ok(()) => debug!(%peer, "kit client disconnected"),
        Err(e) => debug!(%peer, error = %e, "kit client dropped"),
    }
}

fn handle_client(
    mut stream: TcpStream,
    target: &Mutex<dyn KitTarget>,
    stop: &AtomicBool,
    idle: Duration,
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    let mut timer = IdleTimer::new(idle, Instant::now());
    stream.set_read_timeout(Some(POLL_INTERVAL))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    // Replies are small and latency-bound; failure to set this is harmless.
    let _ = stream.set_nodelay(true);
    let mut session = KitSession::new();
    let mut framer = LineFramer::new();
    let mut buf = [0u8; 1024];
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        if timer.expired(Instant::now()) {
            debug!("kit client idle: closing");
            refuse(stream, IDLE_REPLY);
            return Ok(());
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                timer.activity(Instant::now());
                n
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        for frame in framer.push(&buf[..n]) {
            let answer = match frame {
                Frame::Line(line) => {
                    debug!(request = %String::from_utf8_lossy(&line), "kit request");
                    let mut guard = target.lock().unwrap_or_else(PoisonError::into_inner);
                    session.process_line(&line, &mut *guard)
                }
                Frame::TooLong => {
                    debug!("kit request over {} bytes dropped", KIT_MESSAGE_SIZE_MAX);
                    KitSession::overlong_reply()
                }
            };
            debug!(reply = %answer.trim_end(), "kit reply");
            stream.write_all(answer.as_bytes())?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_timer_expires_only_after_the_whole_silence() {
        let t0 = Instant::now();
        let mut t = IdleTimer::new(Duration::from_secs(10), t0);
        assert!(!t.expired(t0 + Duration::from_secs(9)));
        t.activity(t0 + Duration::from_secs(9));
        assert!(!t.expired(t0 + Duration::from_secs(18)));
        assert!(t.expired(t0 + Duration::from_secs(19)));
        // A clock read before the last activity is not an expiry.
        assert!(!t.expired(t0));
    }

    /// A chip stand-in that records calls and answers every command with a
    /// fixed response.
    #[derive(Default)]
    struct Fake {
        calls: Vec<String>,
        wake: Option<Vec<u8>>,
        response: Vec<u8>,
        fail_transmit: bool,
    }

    impl KitTarget for Fake {
        fn device_name(&self) -> &str {
            "ECC608"
        }
        fn address8(&self) -> u8 {
            0x6A
        }
        fn wake(&mut self) -> Result<Vec<u8>, KitError> {
            self.calls.push("wake".into());
            Ok(self.wake.clone().unwrap_or_else(|| WAKE_RESPONSE.to_vec()))
        }
        fn idle(&mut self) -> Result<(), KitError> {
            self.calls.push("idle".into());
            Ok(())
        }
        fn sleep(&mut self) -> Result<(), KitError> {
            self.calls.push("sleep".into());
            Ok(())
        }
        fn transmit(&mut self, packet: &[u8]) -> Result<Vec<u8>, KitError> {
            self.calls.push(format!("tx {}", to_hex(packet)));
            if self.fail_transmit {
                Err(KitError::NoResponse)
            } else {
                Ok(self.response.clone())
            }
        }
    }

    fn run(session: &mut KitSession, fake: &mut Fake, line: &str) -> String {
        session.process_line(line.as_bytes(), fake)
    }

    fn selected() -> (KitSession, Fake) {
        let mut s = KitSession::new();
        let mut f = Fake::default();
        assert_eq!(run(&mut s, &mut f, "E:physical:select(6A)\n"), "00()\n");
        assert!(s.is_selected());
        (s, f)
    }

    #[test]
    fn tokenizer_matches_c_parser() {
        assert_eq!(
            tokenize("E:physical:select(6A)").unwrap(),
            ["e", "physical", "select", "6a"]
        );
        assert_eq!(
            tokenize("board:device(00)").unwrap(),
            ["board", "device", "00"]
        );
        assert_eq!(tokenize("e:w()").unwrap(), ["e", "w", ""]);
        assert_eq!(tokenize("e:w()junk").unwrap(), ["e", "w", ""]);
        assert_eq!(tokenize("e:w").unwrap(), ["e", "w"]);
        assert!(tokenize("a:b:c:d:e").is_err());
    }

    #[test]
    fn lookup_is_prefix_first_match() {
        assert_eq!(lookup(TARGETS, "e"), Some(Layer::Device));
        assert_eq!(lookup(TARGETS, "ecc"), Some(Layer::Device));
        assert_eq!(lookup(TARGETS, "s"), Some(Layer::Device));
        assert_eq!(lookup(TARGETS, "b"), Some(Layer::Board));
        assert_eq!(lookup(TARGETS, ""), Some(Layer::Board));
        assert_eq!(lookup(TARGETS, "ecc608"), None);
        assert_eq!(lookup(TARGETS, "d"), None);
        assert_eq!(lookup(DEVICE_CMDS, "s"), Some(DeviceCmd::Sleep));
        assert_eq!(lookup(DEVICE_CMDS, "se"), Some(DeviceCmd::Select));
        assert_eq!(lookup(DEVICE_CMDS, "t"), Some(DeviceCmd::Talk));
        assert_eq!(lookup(DEVICE_CMDS, "r"), None);
    }

    #[test]
    fn strtol_like_parsing() {
        assert_eq!(strtol_hex_u8("6a"), 0x6A);
        assert_eq!(strtol_hex_u8("0x6A"), 0x6A);
        assert_eq!(strtol_hex_u8(" c0"), 0xC0);
        assert_eq!(strtol_hex_u8("7"), 7);
        assert_eq!(strtol_hex_u8(""), 0);
        assert_eq!(strtol_hex_u8("zz"), 0);
        assert_eq!(strtol_hex_u8("16a"), 0x6A);
        assert_eq!(strtol_hex_u8("0x"), 0);
    }

    #[test]
    fn hex_parsing() {
        assert_eq!(
            parse_hex("0730000000035d").unwrap(),
            [0x07, 0x30, 0, 0, 0, 0x03, 0x5D]
        );
        assert_eq!(parse_hex("07 30").unwrap(), [0x07, 0x30]);
        assert_eq!(parse_hex("").unwrap(), Vec::<u8>::new());
        assert!(parse_hex("073").is_err());
        assert!(parse_hex("07zz").is_err());
        assert_eq!(to_hex(&[0x04, 0x11, 0xab]), "0411AB");
    }

    #[test]
    fn discovery() {
        let mut s = KitSession::new();
        let mut f = Fake::default();
        assert_eq!(
            run(&mut s, &mut f, "board:device(00)\n"),
            "ECC608 TWI 00(6A)\n"
        );
        assert_eq!(run(&mut s, &mut f, "b:d(0)\n"), "ECC608 TWI 00(6A)\n");
        assert_eq!(run(&mut s, &mut f, "board:device(01)\n"), "E0()\n");
        assert_eq!(run(&mut s, &mut f, "board:device\n"), "E0()\n");
        assert_eq!(
            run(&mut s, &mut f, "board:version()\n"),
            reply(0, env!("CARGO_PKG_VERSION").as_bytes())
        );
        assert!(run(&mut s, &mut f, "board:firmware()\n").starts_with("00("));
        assert!(f.calls.is_empty());
    }

    #[test]
    fn device_commands_need_selection() {
        let mut s = KitSession::new();
        let mut f = Fake::default();
        assert_eq!(run(&mut s, &mut f, "e:w()\n"), "E2()\n");
        // A select for another address still answers 00() but selects nothing.
        assert_eq!(run(&mut s, &mut f, "e:physical:select(C0)\n"), "00()\n");
        assert!(!s.is_selected());
        assert_eq!(run(&mut s, &mut f, "e:i()\n"), "E2()\n");
        // Without the physical layer, and via the "sha" target.
        assert_eq!(run(&mut s, &mut f, "S:select(6a)\n"), "00()\n");
        assert!(s.is_selected());
        assert!(f.calls.is_empty());
    }

    #[test]
    fn wake_idle_sleep() {
        let (mut s, mut f) = selected();
        assert_eq!(run(&mut s, &mut f, "e:w()\n"), "00(04113343)\n");
        assert_eq!(run(&mut s, &mut f, "E:i()\r\n"), "00()\n");
        assert_eq!(run(&mut s, &mut f, "e:sleep()"), "00()\n");
        assert_eq!(f.calls, ["wake", "idle", "sleep"]);
        f.wake = Some(SELFTEST_FAIL_RESPONSE.to_vec());
        assert_eq!(run(&mut s, &mut f, "e:w()\n"), "D7(0407C440)\n");
        f.wake = Some(vec![0xFF, 0xFF]);
        assert_eq!(run(&mut s, &mut f, "e:w()\n"), "D0()\n");
    }

    #[test]
    fn talk_wraps_wake_and_idle() {
        let (mut s, mut f) = selected();
        f.response = vec![0x07, 0x00, 0x00, 0x60, 0x03, 0xAA, 0xBB];
        assert_eq!(
            run(&mut s, &mut f, "E:t(0730000000035D)\n"),
            "00(0700006003AABB)\n"
        );
        assert_eq!(f.calls, ["wake", "tx 0730000000035D", "idle"]);
        // Chip status packets travel inside the reply.
        f.response = vec![0x04, 0x0F, 0x23, 0x42];
        assert_eq!(
            run(&mut s, &mut f, "e:talk(07 30 00 00 00 03 5d)\n"),
            "00(040F2342)\n"
        );
        // Bus failures become the kit status; the chip is still idled.
        f.calls.clear();
        f.fail_transmit = true;
        assert_eq!(run(&mut s, &mut f, "e:t(0730000000035D)\n"), "E7()\n");
        assert_eq!(f.calls, ["wake", "tx 0730000000035D", "idle"]);
    }

    #[test]
    fn talk_rejects_bad_packets() {
        let (mut s, mut f) = selected();
        assert_eq!(run(&mut s, &mut f, "e:t(07300000035D)\n"), "E4()\n");
        assert_eq!(run(&mut s, &mut f, "e:t()\n"), "E4()\n");
        assert_eq!(run(&mut s, &mut f, "e:t(0730000000035)\n"), "E2()\n");
        assert_eq!(run(&mut s, &mut f, "e:t(07300000000G5D)\n"), "E2()\n");
        assert_eq!(run(&mut s, &mut f, "e:t\n"), "E2()\n");
        assert!(f.calls.is_empty());
    }

    #[test]
    fn unknown_and_malformed_lines() {
        let (mut s, mut f) = selected();
        for line in [
            "\n",
            "x:w()\n",
            "e:r()\n",
            "e:sd\n",
            "board\n",
            "e:physical:interface:i2c\n",
            "a:b:c:d:e\n",
        ] {
            assert_eq!(run(&mut s, &mut f, line), "E2()\n", "{line:?}");
        }
        let long = format!("e:t({})\n", "0".repeat(KIT_MESSAGE_SIZE_MAX));
        assert_eq!(run(&mut s, &mut f, &long), "E4()\n");
        assert_eq!(KitSession::overlong_reply(), "E4()\n");
        assert!(f.calls.is_empty());
    }

    #[test]
    fn nul_bytes_are_ignored() {
        let (mut s, mut f) = selected();
        assert_eq!(s.process_line(b"\0\0e:w()\n\0\0", &mut f), "00(04113343)\n");
    }

    #[test]
    fn framer_cuts_lines() {
        let mut fr = LineFramer::new();
        assert!(fr.push(b"board:dev").is_empty());
        assert_eq!(fr.pending(), 9);
        assert_eq!(
            fr.push(b"ice(00)\ne:w()\n\0\0e:"),
            [
                Frame::Line(b"board:device(00)".to_vec()),
                Frame::Line(b"e:w()".to_vec())
            ]
        );
        assert_eq!(fr.push(b"i()\n"), [Frame::Line(b"e:i()".to_vec())]);
    }

    #[test]
    fn framer_limits_line_length() {
        let mut fr = LineFramer::new();
        // 511 characters plus '\n' is the longest accepted line.
        let max = vec![b'a'; KIT_MESSAGE_SIZE_MAX - 1];
        let mut input = max.clone();
        input.push(b'\n');
        assert_eq!(fr.push(&input), [Frame::Line(max)]);
        let mut too_long = vec![b'a'; KIT_MESSAGE_SIZE_MAX];
        too_long.push(b'\n');
        too_long.extend_from_slice(b"e:w()\n");
        assert_eq!(fr.push(&too_long[..300]), []);
        assert_eq!(
            fr.push(&too_long[300..]),
            [Frame::TooLong, Frame::Line(b"e:w()".to_vec())]
        );
    }

    #[test]
    fn error_display_and_status() {
        assert_eq!(KitError::NoResponse.status(), 0xE7);
        assert_eq!(KitError::Status(0x42).status(), 0x42);
        assert_eq!(
            KitError::BadParam("x".into()).to_string(),
            "bad parameter: x"
        );
    }
}
