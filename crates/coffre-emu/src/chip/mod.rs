//! The emulated ATECC608B, at I2C-transaction level.
//!
//! State is split as on the silicon: non-volatile ([`NvState`]: config with
//! its monotonic counters, OTP, data zone) survives sleep and power loss and is what the image
//! file stores; volatile state (TempKey, message digest buffer, alternate
//! key buffer, SHA context, I/O buffer) survives idle but not sleep,
//! watchdog expiry or power loss.

mod ecc;
mod exec;
mod keys;
mod sha;
pub mod silicon;
mod symmetric;

use std::path::PathBuf;
use std::time::Duration;

use coffre_proto::config::ConfigZone;
use coffre_proto::packet::{status_packet, word_address};
use coffre_proto::timing::{self, ClockDivider};
use coffre_proto::zone::{slot_offset, slot_size, DATA_SIZE, OTP_SIZE};
use coffre_proto::Status;
use zeroize::{Zeroize, Zeroizing};

use crate::clock::Timing;
use crate::device::{Device, Nack};

/// Non-volatile chip state: what an image file holds.
#[derive(Clone, PartialEq, Eq)]
pub struct NvState {
    /// The 128-byte config zone.
    pub config: ConfigZone,
    /// The 64-byte OTP zone.
    pub otp: [u8; OTP_SIZE],
    /// The data zone, slots back to back (see `coffre_proto::zone::slot_offset`).
    pub data: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for NvState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvState")
            .field("config", &self.config)
            .field("counter0", &self.config.counter(0))
            .field("counter1", &self.config.counter(1))
            .finish_non_exhaustive()
    }
}

impl NvState {
    /// A state with the given config and an all-zero OTP and data zone.
    pub fn new(config: ConfigZone) -> NvState {
        NvState {
            config,
            otp: [0; OTP_SIZE],
            data: Zeroizing::new(vec![0; DATA_SIZE]),
        }
    }

    /// The bytes of slot `slot`.
    pub fn slot(&self, slot: u8) -> &[u8] {
        let (o, n) = slot_range(slot);
        &self.data[o..o + n]
    }

    /// The bytes of slot `slot`, mutable.
    pub fn slot_mut(&mut self, slot: u8) -> &mut [u8] {
        let (o, n) = slot_range(slot);
        &mut self.data[o..o + n]
    }
}

fn slot_range(slot: u8) -> (usize, usize) {
    let s = slot & 0x0F;
    (slot_offset(s).unwrap_or(0), slot_size(s).unwrap_or(0))
}

/// Power state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    /// Asleep: only a wake pulse is seen.
    Sleep,
    /// Idle: like sleep for the bus, but volatile state is kept.
    Idle,
    /// Awake and accepting commands.
    Awake,
}

/// A 32- or 64-byte volatile register (TempKey, message digest buffer…)
/// with TempKey's flags (DS508 §2.5.1; CryptoAuthLib `atca_temp_key_t`).
#[derive(Clone)]
pub(crate) struct Register {
    pub value: Zeroizing<[u8; 64]>,
    /// 32 or 64 (64-byte loads feed the KDF and AES modes that read the
    /// upper half).
    pub len: usize,
    /// TempKey.SourceFlag: true when loaded from the host (pass-through),
    /// false when it includes an internal random number.
    pub from_input: bool,
    /// TempKey.GenDigData: made by GenDig over a data slot (`key_id`).
    pub gen_dig_data: bool,
    /// TempKey.GenKeyData: made by a GenKey digest of slot `key_id`.
    pub gen_key_data: bool,
    /// TempKey.NoMacFlag: made from a key whose SlotConfig.NoMac is set.
    pub no_mac: bool,
    /// TempKey.KeyID: the slot of the last GenDig/GenKey digest.
    pub key_id: u8,
    /// Holds a P-256 private key (GenKey with key id 0xFFFF), for ECDH.
    pub ecc_private: bool,
}

impl Register {
    pub fn new(bytes: &[u8], from_input: bool) -> Register {
        let mut value = Zeroizing::new([0u8; 64]);
        let n = bytes.len().min(64);
        value[..n].copy_from_slice(&bytes[..n]);
        Register {
            value,
            len: n,
            from_input,
            gen_dig_data: false,
            gen_key_data: false,
            no_mac: false,
            key_id: 0,
            ecc_private: false,
        }
    }

    pub fn digest(&self) -> [u8; 32] {
        let mut d = [0u8; 32];
        d.copy_from_slice(&self.value[..32]);
        d
    }

    /// The flags byte of Info State and of the Sign(Internal) message:
    /// b0–3 KeyID, b4 SourceFlag, b5 GenDigData, b6 GenKeyData, b7 NoMacFlag.
    pub fn flags(&self) -> u8 {
        (self.key_id & 0x0F)
            | (self.from_input as u8) << 4
            | (self.gen_dig_data as u8) << 5
            | (self.gen_key_data as u8) << 6
            | (self.no_mac as u8) << 7
    }
}

/// The SHA engine's context between SHA commands.
pub(crate) enum ShaContext {
    Plain(sha2::Sha256),
    Hmac(Box<hmac::Hmac<sha2::Sha256>>),
}

#[derive(Default)]
pub(crate) struct Volatile {
    pub tempkey: Option<Register>,
    pub msg_digest: Option<Register>,
    pub alt_key: Option<Register>,
    pub sha: Option<ShaContext>,
    pub volatile_key_permit: bool,
    /// AuthValid with AuthKeyID: set by a matching CheckMac.
    pub auth: Option<u8>,
    /// Set by a command that wrote TempKey (so the end-of-command rule
    /// that clears TempKey leaves the new value alone).
    pub tempkey_written: bool,
}

/// Something the chip could not save to its image file: the command that
/// made the change answered an execution error and the change was undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistError(pub String);

impl PersistError {
    fn new(e: &crate::image::ImageError) -> PersistError {
        // The whole chain, e.g. "chip.img: cannot write: No space left on device".
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        PersistError(msg)
    }
}

impl std::fmt::Display for PersistError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the emulated chip could not save its image ({}); the change was not made",
            self.0
        )
    }
}

impl std::error::Error for PersistError {}

/// Counters of what the chip has done (for tests and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Commands executed (any status).
    pub commands: u64,
    /// Wake pulses that woke the chip.
    pub wakes: u64,
    /// Watchdog expiries.
    pub watchdog_expiries: u64,
}

/// The emulated ATECC608B.
pub struct Atecc608 {
    nv: NvState,
    vol: Volatile,
    power: Power,
    timing: Timing,
    address: u8,
    output: Vec<u8>,
    out_pos: usize,
    input: Option<Vec<u8>>,
    ready_at: Duration,
    busy_until: Duration,
    watchdog_deadline: Option<Duration>,
    image: Option<PathBuf>,
    persist_error: Option<PersistError>,
    save_failed: bool,
    failure_mode: bool,
    fail_self_test: bool,
    stats: Stats,
}

impl std::fmt::Debug for Atecc608 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Atecc608")
            .field("address", &format_args!("0x{:02X}", self.address))
            .field("power", &self.power)
            .field("nv", &self.nv)
            .finish_non_exhaustive()
    }
}

impl Atecc608 {
    /// A chip, asleep, with the given non-volatile state.
    pub fn new(nv: NvState) -> Atecc608 {
        let address = effective_address(&nv.config);
        Atecc608 {
            nv,
            vol: Volatile::default(),
            power: Power::Sleep,
            timing: Timing::Instant,
            address,
            output: Vec::new(),
            out_pos: 0,
            input: None,
            ready_at: Duration::ZERO,
            busy_until: Duration::ZERO,
            watchdog_deadline: None,
            image: None,
            persist_error: None,
            save_failed: false,
            failure_mode: false,
            fail_self_test: false,
            stats: Stats::default(),
        }
    }

    /// Set the timing model.
    pub fn set_timing(&mut self, timing: Timing) {
        self.timing = timing;
    }

    /// Timing model in use.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Save every non-volatile change to `path` (atomically).
    pub fn persist_to(&mut self, path: impl Into<PathBuf>) {
        self.image = Some(path.into());
    }

    /// The image file this chip saves to, if any.
    pub fn image_path(&self) -> Option<&std::path::Path> {
        self.image.as_deref()
    }

    /// The last failure to save the image, cleared by this call.
    pub fn take_persist_error(&mut self) -> Option<PersistError> {
        self.persist_error.take()
    }

    /// Non-volatile state (read-only).
    pub fn nv(&self) -> &NvState {
        &self.nv
    }

    /// The config zone.
    pub fn config(&self) -> &ConfigZone {
        &self.nv.config
    }

    /// Power state.
    pub fn power(&self) -> Power {
        self.power
    }

    /// Activity counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Fault injection: expire the watchdog now (the chip falls asleep and
    /// loses TempKey and every volatile buffer).
    pub fn expire_watchdog(&mut self) {
        if self.power == Power::Awake {
            self.watchdog_deadline = Some(Duration::ZERO);
        }
    }

    /// Fault injection: make the next self test (and the power-on check at
    /// the next wake) fail, putting the chip in failure mode.
    pub fn inject_self_test_failure(&mut self, fail: bool) {
        self.fail_self_test = fail;
    }

    fn clock_divider(&self) -> ClockDivider {
        ClockDivider::from_bits(self.nv.config.chip_mode().clock_divider())
    }

    fn watchdog_period(&self) -> Duration {
        let ms = if self.nv.config.chip_mode().long_watchdog() {
            timing::WATCHDOG_LONG_MS
        } else {
            timing::WATCHDOG_SHORT_MS
        };
        Duration::from_millis(ms as u64)
    }

    fn clear_volatile(&mut self) {
        self.vol = Volatile::default();
        self.output.zeroize();
        self.output.clear();
        self.out_pos = 0;
        self.input = None;
    }

    fn go_to_sleep(&mut self) {
        self.power = Power::Sleep;
        self.watchdog_deadline = None;
        self.clear_volatile();
        // A new UserExtraAdd address takes effect after sleep.
        self.address = effective_address(&self.nv.config);
    }

    fn check_watchdog(&mut self, now: Duration) {
        if self.power == Power::Awake {
            if let Some(deadline) = self.watchdog_deadline {
                if now >= deadline {
                    self.stats.watchdog_expiries += 1;
                    tracing::debug!("emulated chip: watchdog expired, going to sleep");
                    self.go_to_sleep();
                }
            }
        }
    }

    fn responsive(&mut self, now: Duration) -> bool {
        self.check_watchdog(now);
        self.power == Power::Awake && now >= self.ready_at && now >= self.busy_until
    }

    fn set_output(&mut self, packet: Vec<u8>) {
        self.output.zeroize();
        self.output = packet;
        self.out_pos = 0;
    }

    /// Save the non-volatile state to the image, if any. A failure is kept
    /// for [`Atecc608::take_persist_error`] and makes the running command
    /// fail (see `execute`): the chip never reports success for a change
    /// its image does not hold.
    pub(crate) fn save(&mut self) {
        if let Some(path) = self.image.clone() {
            if let Err(e) = crate::image::save(&path, &self.nv) {
                self.save_failed = true;
                self.persist_error = Some(PersistError::new(&e));
            }
        }
    }
}

/// The address a chip answers to: config byte 16, or UserExtraAdd when
/// ChipMode bit 0 is set and it is non-zero.
fn effective_address(cfg: &ConfigZone) -> u8 {
    let extra = cfg.as_bytes()[coffre_proto::config::offset::USER_EXTRA_ADD];
    if cfg.chip_mode().user_extra_add_is_address() && extra != 0 {
        extra >> 1
    } else {
        cfg.i2c_address()
    }
}

impl Device for Atecc608 {
    fn address(&self) -> u8 {
        self.address
    }

    fn name(&self) -> &'static str {
        "atecc608b"
    }

    fn sda_low(&mut self, now: Duration, low_for: Duration) {
        self.check_watchdog(now);
        if low_for < Duration::from_micros(timing::T_WLO_US as u64) {
            return;
        }
        if self.power == Power::Awake {
            // Waking an awake chip does nothing in I2C mode.
            return;
        }
        self.stats.wakes += 1;
        self.power = Power::Awake;
        self.ready_at = match self.timing {
            Timing::Instant => now,
            Timing::Datasheet => now + Duration::from_micros(timing::T_WHI_US as u64),
        };
        self.busy_until = Duration::ZERO;
        self.watchdog_deadline = Some(now + self.watchdog_period());
        if self.fail_self_test {
            self.failure_mode = true;
        }
        let status = if self.failure_mode {
            Status::SelfTest
        } else {
            Status::AfterWake
        };
        self.set_output(status_packet(status).to_vec());
        self.input = None;
    }

    fn write(&mut self, now: Duration, data: &[u8]) -> Result<(), Nack> {
        if !self.responsive(now) {
            return Err(Nack::Address);
        }
        let Some((&word, rest)) = data.split_first() else {
            // An address-only probe is acknowledged.
            return Ok(());
        };
        match word {
            word_address::RESET => {
                if silicon::RESET_REWINDS_OUTPUT {
                    self.out_pos = 0;
                }
                Ok(())
            }
            word_address::SLEEP => {
                self.go_to_sleep();
                Ok(())
            }
            word_address::IDLE => {
                // Idle keeps TempKey and the buffers and stops the watchdog.
                self.power = Power::Idle;
                self.watchdog_deadline = None;
                self.output.clear();
                self.out_pos = 0;
                Ok(())
            }
            word_address::COMMAND => {
                // The input FIFO: bytes past `count` are ignored; execution
                // starts at the STOP condition.
                self.input = Some(rest.to_vec());
                Ok(())
            }
            _ => Err(Nack::Data),
        }
    }

    fn read(&mut self, now: Duration, buf: &mut [u8]) -> Result<(), Nack> {
        if !self.responsive(now) {
            return Err(Nack::Address);
        }
        for b in buf.iter_mut() {
            *b = match self.output.get(self.out_pos) {
                Some(&x) => {
                    self.out_pos += 1;
                    x
                }
                None => silicon::EMPTY_READ_FILL,
            };
        }
        Ok(())
    }

    fn stop(&mut self, now: Duration) {
        if let Some(mut body) = self.input.take() {
            let (packet, op) = self.execute(now, &body);
            body.zeroize();
            self.stats.commands += 1;
            let exec = match (self.timing, op) {
                (Timing::Datasheet, Some(op)) => {
                    timing::exec_time_ms(op, self.clock_divider()).unwrap_or(0)
                }
                _ => 0,
            };
            self.busy_until = now + Duration::from_millis(exec as u64);
            // The watchdog keeps running while the chip executes.
            self.set_output(packet);
        }
    }

    fn power_loss(&mut self) {
        self.go_to_sleep();
        self.failure_mode = false;
        self.busy_until = Duration::ZERO;
    }

    fn annotate(&self, write: bool, bytes: &[u8]) -> Option<String> {
        exec::annotate(write, bytes)
    }
}
