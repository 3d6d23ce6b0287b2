//! The driver: construction, wake/idle/sleep and command execution.

use core::fmt;

use coffre_proto::command::opcode;
use coffre_proto::packet::{self, parse_response, word_address, Command, WAKE_RESPONSE};
use coffre_proto::timing::{max_poll_ms, ClockDivider, T_WHI_US};
use coffre_proto::Status;
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{ErrorKind, I2c};

use crate::error::Error;

/// The I2C address of the general call, used for the wake pulse.
pub const GENERAL_CALL_ADDRESS: u8 = 0x00;

/// The wake answer of a chip whose power-on self test failed, with the CRC
/// computed over `04 07`.
pub const SELFTEST_FAIL_WAKE: [u8; 4] = packet::status_packet(Status::SelfTest);

/// The self-test failure wake answer as CryptoAuthLib's `hal_check_wake()`
/// spells it (`04 07 C4 40`; its CRC bytes are not the CRC of `04 07`).
/// Accepted too, so a real chip is recognised whichever form it sends.
pub const SELFTEST_FAIL_WAKE_CAL: [u8; 4] = [0x04, 0x07, 0xC4, 0x40];

/// Timing and retry settings of the driver.
///
/// The defaults follow CryptoAuthLib's polling build: wait 1 ms after
/// sending a command, then poll every 2 ms. A command is given up after
/// `timeout_factor` × its execution time in CryptoAuthLib's table
/// ([`coffre_proto::timing`]) + `timeout_margin_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverConfig {
    /// The chip's clock divider (ChipMode bits 7:3); selects the execution
    /// time table. Default [`ClockDivider::M0`], as shipped.
    pub clock_divider: ClockDivider,
    /// Wait before the first poll after a command, µs. Default 1000.
    pub poll_initial_us: u32,
    /// Wait between polls while the chip NACKs (busy), µs. Default 2000.
    pub poll_interval_us: u32,
    /// Timeout multiplier of the table execution time. Default 2.
    pub timeout_factor: u32,
    /// Timeout margin added to the scaled execution time, ms. Default 20.
    pub timeout_margin_ms: u32,
    /// How many times a failed step is repeated after its first attempt:
    /// wake (no ACK or an unexpected answer), command write (no ACK) and
    /// command resend (response CRC error, chip status 0xFF or 0xEE).
    /// Default 3.
    pub retries: u8,
    /// Treat I2C errors of kind [`ErrorKind::Other`] like a missing ACK
    /// (absent or busy chip). Linux adapters report a NACK as `EREMOTEIO`,
    /// which `linux-embedded-hal` 0.5 turns into `Other`; without this
    /// setting a busy chip would end a command at once. Default `true`. Set
    /// it to `false` with HALs that report NACKs precisely.
    pub other_errors_are_nacks: bool,
}

impl DriverConfig {
    /// The default settings (also [`Default::default`]).
    pub const fn new() -> DriverConfig {
        DriverConfig {
            clock_divider: ClockDivider::M0,
            poll_initial_us: 1000,
            poll_interval_us: 2000,
            timeout_factor: 2,
            timeout_margin_ms: 20,
            retries: 3,
            other_errors_are_nacks: true,
        }
    }

    /// The longest time the driver polls for `op`, in ms: factor × table
    /// time + margin (unknown opcodes take the longest table entry).
    pub const fn timeout_ms(&self, op: u8) -> u32 {
        max_poll_ms(op, self.clock_divider)
            .saturating_mul(self.timeout_factor)
            .saturating_add(self.timeout_margin_ms)
    }
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig::new()
    }
}

/// What answered a [`probe`](crate::probe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The chip woke and answered `04 11 33 43`.
    Present,
    /// The chip woke and reported a failed power-on self test (status 0x07).
    SelfTestFailed,
    /// Nothing acknowledged the address after the wake sequence.
    Absent,
    /// Something acknowledged but answered these bytes instead.
    Unexpected([u8; 4]),
}

/// An ATECC608 on an I2C bus.
///
/// Generic over any embedded-hal 1.0 [`I2c`] and [`DelayNs`]; the bounds sit
/// on the `impl` blocks. The driver owns the bus; [`Atecc::i2c_mut`] lends it
/// to other drivers on the same bus (sensors) between commands, and
/// [`Atecc::destroy`] gives it back.
///
/// Every command follows CryptoAuthLib's flow: wake, send, poll, check,
/// idle. Idle keeps TempKey and the message digest buffer, so a command that
/// builds on an earlier one (Sign after Nonce) works across two calls.
pub struct Atecc<I2C, D> {
    i2c: I2C,
    delay: D,
    address: u8,
    config: DriverConfig,
}

impl<I2C, D> fmt::Debug for Atecc<I2C, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Atecc")
            .field("address", &format_args!("0x{:02X}", self.address))
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<I2C, D> Atecc<I2C, D> {
    /// A driver for the chip at 7-bit `address` (see
    /// [`normalize_address`](crate::normalize_address) for 8-bit forms), with
    /// the default [`DriverConfig`].
    pub fn new(i2c: I2C, delay: D, address: u8) -> Self {
        Self::with_config(i2c, delay, address, DriverConfig::new())
    }

    /// A driver with explicit timing and retry settings.
    pub fn with_config(i2c: I2C, delay: D, address: u8, config: DriverConfig) -> Self {
        Atecc {
            i2c,
            delay,
            address,
            config,
        }
    }

    /// Give back the bus and the delay.
    pub fn destroy(self) -> (I2C, D) {
        (self.i2c, self.delay)
    }

    /// The bus, for other devices on it. The chip is idle between commands.
    pub fn i2c_mut(&mut self) -> &mut I2C {
        &mut self.i2c
    }

    /// The delay provider.
    pub fn delay_mut(&mut self) -> &mut D {
        &mut self.delay
    }

    /// The bus and the delay together (e.g. for [`probe`]).
    pub fn bus_and_delay(&mut self) -> (&mut I2C, &mut D) {
        (&mut self.i2c, &mut self.delay)
    }

    /// The chip's 7-bit address.
    pub fn address(&self) -> u8 {
        self.address
    }

    /// Talk to another address from now on (after UpdateExtra changed it and
    /// the chip slept).
    pub fn set_address(&mut self, address: u8) {
        self.address = address;
    }

    /// The timing and retry settings.
    pub fn config(&self) -> &DriverConfig {
        &self.config
    }

    /// Change the timing and retry settings (for example the clock divider
    /// read from ChipMode).
    pub fn config_mut(&mut self) -> &mut DriverConfig {
        &mut self.config
    }
}

/// Outcome of one poll of the response.
enum Poll {
    /// A frame was read; its count byte is the value.
    Frame(usize),
    /// The count byte is impossible for this buffer; nothing more was read.
    BadCount(u8),
    /// The chip did not acknowledge: still busy.
    Busy,
}

/// What the chip answered to the wake sequence.
enum Woken {
    Awake,
    SelfTestFailed,
}

/// Best-effort clearing of a buffer that may have held secrets.
pub(crate) fn wipe(buf: &mut [u8]) {
    buf.fill(0);
    core::hint::black_box(&*buf);
}

fn is_selftest_fail(b: &[u8; 4]) -> bool {
    *b == SELFTEST_FAIL_WAKE || *b == SELFTEST_FAIL_WAKE_CAL
}

/// Errors worth resending the command for: the packet or its answer was
/// damaged on the bus, or the chip did not run it.
fn resendable(e: &coffre_proto::Error) -> bool {
    matches!(
        e,
        coffre_proto::Error::ResponseCrc
            | coffre_proto::Error::ResponseLength { .. }
            | coffre_proto::Error::ChipSawBadCrc
            | coffre_proto::Error::WatchdogAboutToExpire
    )
}

impl<I2C, D, E> Atecc<I2C, D>
where
    I2C: I2c<Error = E>,
    E: embedded_hal::i2c::Error,
    D: DelayNs,
{
    fn is_nack(&self, e: &E) -> bool {
        match e.kind() {
            ErrorKind::NoAcknowledge(_) => true,
            ErrorKind::Other => self.config.other_errors_are_nacks,
            _ => false,
        }
    }

    /// Wake the chip, as CryptoAuthLib does on I2C.
    ///
    /// 1. A zero-length write to the general-call address 0x00. Nobody
    ///    acknowledges it (the error is ignored), but its address byte holds
    ///    SDA low for 8 bit times: 80 µs at 100 kHz, longer than the chip's
    ///    tWLO of 60 µs. At 400 kHz the pulse is only 20 µs and the chip
    ///    stays asleep: **the bus must run at 100 kHz** (on a Raspberry Pi,
    ///    `dtparam=i2c_arm_baudrate=100000` in `/boot/config.txt`).
    /// 2. Wait tWHI = 1500 µs.
    /// 3. Read 4 bytes from the chip: `04 11 33 43` means awake.
    ///
    /// No ACK on the read is retried [`DriverConfig::retries`] times, then
    /// reported as [`Error::NotPresent`]. Any other answer (a chip that was
    /// already awake answers with stale bytes) sends Idle and retries, then
    /// gives [`Error::WakeFailed`]. The self-test failure packet (`04 07` with
    /// a valid CRC) gives [`Error::SelfTestFailed`] at once.
    ///
    /// The pulse needs a HAL that performs zero-length writes (Linux
    /// `I2C_RDWR` does); a HAL that refuses them sends nothing, and the chip
    /// then looks absent.
    pub fn wake(&mut self) -> Result<(), Error<E>> {
        self.wake_inner(false).map(|_| ())
    }

    fn wake_inner(&mut self, accept_selftest_failure: bool) -> Result<Woken, Error<E>> {
        let mut last: Option<[u8; 4]> = None;
        for attempt in 0..=self.config.retries {
            let _ = self.i2c.write(GENERAL_CALL_ADDRESS, &[]);
            self.delay.delay_us(T_WHI_US);
            let mut b = [0u8; 4];
            match self.i2c.read(self.address, &mut b) {
                Ok(()) => {}
                Err(e) if self.is_nack(&e) => {
                    last = None;
                    continue;
                }
                Err(e) => return Err(Error::I2c(e)),
            }
            if b == WAKE_RESPONSE {
                return Ok(Woken::Awake);
            }
            if is_selftest_fail(&b) {
                if accept_selftest_failure {
                    return Ok(Woken::SelfTestFailed);
                }
                let _ = self.write_word_address(word_address::IDLE);
                return Err(Error::SelfTestFailed);
            }
            last = Some(b);
            if attempt < self.config.retries {
                // An awake chip ignores the wake pulse and keeps its output:
                // put it to idle so the next pulse wakes it afresh.
                let _ = self.write_word_address(word_address::IDLE);
            }
        }
        Err(match last {
            None => Error::NotPresent {
                address: self.address,
            },
            Some(b) => Error::WakeFailed(b),
        })
    }

    /// Tell whether a chip answers at the address: one wake sequence (with
    /// its retries), then Idle. Bus errors other than a missing ACK are
    /// returned as they are.
    pub fn probe(&mut self) -> Result<Probe, E> {
        match self.wake_inner(true) {
            Ok(w) => {
                let _ = self.write_word_address(word_address::IDLE);
                Ok(match w {
                    Woken::Awake => Probe::Present,
                    Woken::SelfTestFailed => Probe::SelfTestFailed,
                })
            }
            Err(Error::NotPresent { .. }) => Ok(Probe::Absent),
            Err(Error::WakeFailed(b)) => Ok(Probe::Unexpected(b)),
            Err(Error::I2c(e)) => Err(e),
            // wake_inner reports nothing else.
            Err(_) => Ok(Probe::Absent),
        }
    }

    fn write_word_address(&mut self, word: u8) -> Result<(), E> {
        self.i2c.write(self.address, &[word])
    }

    /// Put the chip in idle mode (word address 0x02): TempKey, the message
    /// digest buffer and the alternate key buffer are kept, the watchdog
    /// stops. The next command wakes it again.
    pub fn idle(&mut self) -> Result<(), Error<E>> {
        self.write_word_address(word_address::IDLE)
            .map_err(Error::I2c)
    }

    /// Put the chip to sleep (word address 0x01): all volatile state is
    /// lost; lowest power. The next command wakes it again.
    pub fn sleep(&mut self) -> Result<(), Error<E>> {
        self.write_word_address(word_address::SLEEP)
            .map_err(Error::I2c)
    }

    /// Run one command and return the response's data field, borrowed from
    /// `rsp` (data of a status-only success is empty).
    ///
    /// `rsp` must hold the whole response packet (count, data, CRC):
    /// [`packet::MAX_RESPONSE`] bytes always do. The flow is CryptoAuthLib's:
    ///
    /// 1. [wake](Self::wake);
    /// 2. write `03 count opcode p1 p2 data crc` (no ACK: wake again and
    ///    rewrite, up to [`DriverConfig::retries`] times);
    /// 3. wait [`DriverConfig::poll_initial_us`], then poll: write word
    ///    address 0x00, read the count byte, read the `count - 1` other bytes.
    ///    No ACK means busy: wait [`DriverConfig::poll_interval_us`] and poll
    ///    again until [`DriverConfig::timeout_ms`], then [`Error::Timeout`];
    /// 4. check the frame and CRC. A damaged response is read once more (word
    ///    address 0x00 rewinds the chip's output), then the command is resent;
    ///    chip status 0xFF (the chip saw a bad CRC) and 0xEE (watchdog about
    ///    to expire; the command was not run) resend the command, up to
    ///    [`DriverConfig::retries`] times;
    /// 5. idle the chip.
    ///
    /// Other chip statuses come back as [`Error::Chip`]. The SelfTest
    /// command is sent even when the wake reports a failed self test, since
    /// it is the way out of that state.
    pub fn execute<'r>(&mut self, cmd: &Command, rsp: &'r mut [u8]) -> Result<&'r [u8], Error<E>> {
        if rsp.len() < 4 {
            return Err(Error::InvalidArgument(
                "the response buffer must hold at least 4 bytes",
            ));
        }
        let mut pkt = [0u8; packet::MAX_PACKET];
        let result = match cmd.encode(&mut pkt) {
            Ok(n) => self.execute_packet(cmd.opcode, &pkt[..n], rsp),
            Err(e) => Err(Error::Protocol(e)),
        };
        wipe(&mut pkt);
        let len = result?;
        Ok(&rsp[1..1 + len])
    }

    /// Execute an encoded packet; returns the data length (data at
    /// `rsp[1..]`).
    fn execute_packet(&mut self, op: u8, pkt: &[u8], rsp: &mut [u8]) -> Result<usize, Error<E>> {
        let mut last = coffre_proto::Error::ResponseCrc;
        for attempt in 0..=self.config.retries {
            if attempt > 0 {
                // Back to a known state before resending.
                let _ = self.write_word_address(word_address::IDLE);
            }
            self.wake_inner(op == opcode::SELFTEST)?;
            self.send(op, pkt)?;
            match self.receive(op, rsp)? {
                Ok(len) => {
                    let _ = self.write_word_address(word_address::IDLE);
                    return Ok(len);
                }
                Err(e) if resendable(&e) => last = e,
                Err(e) => {
                    let _ = self.write_word_address(word_address::IDLE);
                    return Err(Error::from_proto(e));
                }
            }
        }
        let _ = self.write_word_address(word_address::IDLE);
        Err(Error::from_proto(last))
    }

    fn send(&mut self, op: u8, pkt: &[u8]) -> Result<(), Error<E>> {
        let mut attempt = 0;
        loop {
            match self.i2c.write(self.address, pkt) {
                Ok(()) => return Ok(()),
                Err(e) if self.is_nack(&e) && attempt < self.config.retries => {
                    attempt += 1;
                    self.wake_inner(op == opcode::SELFTEST)?;
                }
                Err(e) => return Err(Error::I2c(e)),
            }
        }
    }

    /// Wait for and check the response. The outer `Result` carries errors
    /// that end the command (bus, timeout); the inner one the response check.
    fn receive(
        &mut self,
        op: u8,
        rsp: &mut [u8],
    ) -> Result<Result<usize, coffre_proto::Error>, Error<E>> {
        let timeout_us = self.config.timeout_ms(op).saturating_mul(1000);
        let mut waited_us = self.config.poll_initial_us;
        self.delay.delay_us(self.config.poll_initial_us);
        let mut reread = false;
        loop {
            let checked = match self.poll(rsp)? {
                Poll::Busy => {
                    if waited_us >= timeout_us {
                        return Err(Error::Timeout {
                            opcode: op,
                            waited_ms: waited_us / 1000,
                        });
                    }
                    let d = self
                        .config
                        .poll_interval_us
                        .min(timeout_us - waited_us)
                        .max(1);
                    self.delay.delay_us(d);
                    waited_us = waited_us.saturating_add(d);
                    continue;
                }
                Poll::BadCount(count) => Err(coffre_proto::Error::ResponseLength {
                    count,
                    available: rsp.len(),
                }),
                Poll::Frame(count) => parse_response(&rsp[..count]).map(|d| d.len()),
            };
            match checked {
                Err(
                    coffre_proto::Error::ResponseCrc | coffre_proto::Error::ResponseLength { .. },
                ) if !reread => {
                    reread = true;
                }
                other => return Ok(other),
            }
        }
    }

    /// One poll: word address 0x00, then the count byte, then the rest, as
    /// two reads (the way CryptoAuthLib reads).
    fn poll(&mut self, rsp: &mut [u8]) -> Result<Poll, Error<E>> {
        match self.write_word_address(word_address::RESET) {
            Ok(()) => {}
            Err(e) if self.is_nack(&e) => return Ok(Poll::Busy),
            Err(e) => return Err(Error::I2c(e)),
        }
        match self.i2c.read(self.address, &mut rsp[..1]) {
            Ok(()) => {}
            Err(e) if self.is_nack(&e) => return Ok(Poll::Busy),
            Err(e) => return Err(Error::I2c(e)),
        }
        let count = rsp[0];
        let n = count as usize;
        if n < 4 || n > rsp.len() {
            return Ok(Poll::BadCount(count));
        }
        match self.i2c.read(self.address, &mut rsp[1..n]) {
            Ok(()) => Ok(Poll::Frame(n)),
            Err(e) if self.is_nack(&e) => Ok(Poll::Busy),
            Err(e) => Err(Error::I2c(e)),
        }
    }
}

/// Tell whether a chip answers at `address`, borrowing the bus (for example
/// before handing it to a sensor driver). Uses the default retries.
pub fn probe<I2C, D>(i2c: &mut I2C, delay: &mut D, address: u8) -> Result<Probe, I2C::Error>
where
    I2C: I2c,
    D: DelayNs,
{
    Atecc::new(i2c, delay, address).probe()
}
