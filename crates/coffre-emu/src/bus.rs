//! The emulated I2C bus: devices, transcript and fault injection behind an
//! embedded-hal 1.0 `I2c` implementation.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use embedded_hal::i2c::{ErrorKind, I2c, NoAcknowledgeSource, Operation, SevenBitAddress};

use crate::clock::{Clock, EmuDelay, Timing};
use crate::device::{lock, Device, Nack};
use crate::transcript::{Direction, Event, Transcript};

/// Error returned by the emulated bus (an embedded-hal `ErrorKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusError(pub ErrorKind);

impl std::fmt::Display for BusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address) => {
                f.write_str("no device acknowledged the address")
            }
            ErrorKind::NoAcknowledge(_) => f.write_str("a data byte was not acknowledged"),
            other => write!(f, "I2C error: {other:?}"),
        }
    }
}

impl std::error::Error for BusError {}

impl embedded_hal::i2c::Error for BusError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

/// A byte flip applied to bytes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corruption {
    /// Only transfers to/from this 7-bit address.
    pub address: u8,
    /// Index of the byte to flip (clamped to the last byte of the transfer).
    pub byte_index: usize,
    /// XOR mask.
    pub xor: u8,
    /// How many transfers to corrupt.
    pub remaining: u32,
    /// Only transfers at least this long (e.g. 5 to spare wake and status reads).
    pub min_len: usize,
}

/// Faults the bus injects.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Addresses whose device is unplugged (address NACK).
    pub absent: HashSet<u8>,
    /// Addresses whose device, once it accepts its next command packet,
    /// never finishes executing it: every later access is NACKed, as for a
    /// chip stuck busy.
    pub stuck_busy: HashSet<u8>,
    stuck_now: HashSet<u8>,
    /// Corrupt bytes the host writes.
    pub corrupt_write: Option<Corruption>,
    /// Corrupt bytes the host reads.
    pub corrupt_read: Option<Corruption>,
    /// `(address, n)`: the device is pulled off the bus right after it
    /// accepts its n-th further command packet (word address 0x03),
    /// mid-command: it loses power and its answer never comes.
    pub pull_after_commands: Option<(u8, u32)>,
}

struct Attached {
    dev: Box<dyn Device>,
}

struct BusState {
    devices: Vec<Attached>,
    transcript: Option<Transcript>,
    faults: Faults,
    frequency_hz: u32,
}

/// The emulated bus. Cloning gives another handle on the same bus, so a
/// chip driver, sensor drivers and a test can share it.
#[derive(Clone)]
pub struct EmuBus {
    state: Arc<Mutex<BusState>>,
    clock: Clock,
}

impl std::fmt::Debug for EmuBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmuBus")
            .field("addresses", &self.scan_quiet())
            .finish()
    }
}

impl EmuBus {
    /// An empty bus on a real clock with the given timing.
    pub fn new(timing: Timing) -> EmuBus {
        EmuBus::with_clock(Clock::real(timing))
    }

    /// An empty bus on `clock`.
    pub fn with_clock(clock: Clock) -> EmuBus {
        EmuBus {
            state: Arc::new(Mutex::new(BusState {
                devices: Vec::new(),
                transcript: None,
                faults: Faults::default(),
                frequency_hz: 100_000,
            })),
            clock,
        }
    }

    fn st(&self) -> std::sync::MutexGuard<'_, BusState> {
        lock(&self.state)
    }

    /// The bus clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// A `DelayNs` on the bus clock (for drivers).
    pub fn delay(&self) -> EmuDelay {
        self.clock.delay()
    }

    /// Attach a device.
    pub fn attach(&self, dev: Box<dyn Device>) {
        self.st().devices.push(Attached { dev });
    }

    /// Attach a device and keep a typed handle on it.
    pub fn attach_shared<T: Device + 'static>(&self, dev: T) -> Arc<Mutex<T>> {
        let shared = Arc::new(Mutex::new(dev));
        self.attach(Box::new(shared.clone()));
        shared
    }

    /// Bus frequency in Hz (default 100 kHz). At 400 kHz the write to
    /// address 0x00 holds SDA low for only 20 µs, too short to wake an
    /// ATECC608 (tWLO = 60 µs), exactly as on real hardware.
    pub fn set_frequency(&self, hz: u32) {
        self.st().frequency_hz = hz.max(1);
    }

    /// Start (or restart) recording a transcript.
    pub fn start_transcript(&self) {
        self.st().transcript = Some(Transcript::default());
    }

    /// Stop recording and return what was captured.
    pub fn take_transcript(&self) -> Transcript {
        self.st().transcript.take().unwrap_or_default()
    }

    /// A copy of the transcript so far (recording continues).
    pub fn transcript(&self) -> Transcript {
        self.st().transcript.clone().unwrap_or_default()
    }

    /// Change the fault plan.
    pub fn faults<R>(&self, f: impl FnOnce(&mut Faults) -> R) -> R {
        f(&mut self.st().faults)
    }

    /// Unplug (`false`) or plug back (`true`) the device at `address`.
    /// Unplugging cuts its power: volatile state is lost.
    pub fn set_present(&self, address: u8, present: bool) {
        let mut st = self.st();
        if present {
            st.faults.absent.remove(&address);
        } else {
            st.faults.absent.insert(address);
            for a in st.devices.iter_mut() {
                if a.dev.address() == address {
                    a.dev.power_loss();
                }
            }
        }
    }

    /// Addresses that acknowledge a zero-length write, as `i2cdetect` finds
    /// them (devices asleep do not answer; wake them first).
    pub fn scan(&mut self) -> Vec<u8> {
        (0x03..=0x77u8)
            .filter(|&a| self.write(a, &[]).is_ok())
            .collect()
    }

    fn scan_quiet(&self) -> Vec<u8> {
        let st = self.st();
        st.devices.iter().map(|a| a.dev.address()).collect()
    }

    fn record(&self, st: &mut BusState, ev: Event) {
        if let Some(t) = st.transcript.as_mut() {
            t.events.push(ev);
        }
    }

    fn wake_pulse(&self, st: &mut BusState, now: Duration, data: &[u8]) {
        // Address byte 0x00 + W: 8 low bit times, then each leading zero
        // data byte adds 8 more (the ACK bit in between is released high,
        // so only the address byte counts when nobody acknowledges).
        let _ = data;
        let bit = Duration::from_nanos(1_000_000_000 / st.frequency_hz as u64);
        let low = bit * 8;
        let absent = st.faults.absent.clone();
        for a in st.devices.iter_mut() {
            if !absent.contains(&a.dev.address()) {
                a.dev.sda_low(now, low);
            }
        }
        let ev = Event {
            t_us: now.as_micros() as u64,
            dir: Direction::Wake,
            address: 0,
            device: None,
            acked: false,
            bytes: data.to_vec(),
            note: Some(format!("SDA low {} us", low.as_micros())),
        };
        self.record(st, ev);
    }

    fn run(&mut self, address: u8, ops: &mut [Operation<'_>]) -> Result<(), BusError> {
        let nack = BusError(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
        let now = self.clock.now();
        let mut guard = self.st();
        let st = &mut *guard;
        if address == 0 {
            let data: Vec<u8> = ops
                .iter()
                .filter_map(|o| match o {
                    Operation::Write(w) => Some(w.to_vec()),
                    Operation::Read(_) => None,
                })
                .flatten()
                .collect();
            self.wake_pulse(st, now, &data);
            return Err(nack);
        }
        let idx = if st.faults.absent.contains(&address) {
            None
        } else {
            st.devices.iter().position(|a| a.dev.address() == address)
        };
        let Some(idx) = idx else {
            let (dir, bytes) = match ops.first() {
                Some(Operation::Write(w)) => (Direction::Write, w.to_vec()),
                _ => (Direction::Read, Vec::new()),
            };
            let ev = Event {
                t_us: now.as_micros() as u64,
                dir,
                address,
                device: None,
                acked: false,
                bytes,
                note: None,
            };
            self.record(st, ev);
            return Err(nack);
        };
        if !st.faults.stuck_busy.contains(&address) {
            st.faults.stuck_now.remove(&address);
        }
        let stuck = st.faults.stuck_now.contains(&address);
        let mut result = Ok(());
        let mut any_acked = false;
        for op in ops.iter_mut() {
            match op {
                Operation::Write(w) => {
                    let mut bytes = w.to_vec();
                    if let Some(c) = st.faults.corrupt_write.as_mut() {
                        apply(c, address, &mut bytes);
                    }
                    if st.faults.corrupt_write.is_some_and(|c| c.remaining == 0) {
                        st.faults.corrupt_write = None;
                    }
                    let dev = &mut st.devices[idx].dev;
                    let r = if stuck {
                        Err(Nack::Address)
                    } else {
                        dev.write(now, &bytes)
                    };
                    let note = dev.annotate(true, &bytes);
                    let name = dev.name();
                    let is_command = r.is_ok() && bytes.first() == Some(&0x03);
                    self.record(
                        st,
                        Event {
                            t_us: now.as_micros() as u64,
                            dir: Direction::Write,
                            address,
                            device: Some(name),
                            acked: r.is_ok(),
                            bytes,
                            note,
                        },
                    );
                    if let Err(n) = r {
                        result = Err(nack_error(n));
                        break;
                    }
                    any_acked = true;
                    if is_command && st.faults.stuck_busy.contains(&address) {
                        st.faults.stuck_now.insert(address);
                    }
                    if is_command {
                        if let Some((a, n)) = st.faults.pull_after_commands.as_mut() {
                            if *a == address {
                                if *n == 0 {
                                    st.faults.pull_after_commands = None;
                                    st.faults.absent.insert(address);
                                    st.devices[idx].dev.stop(now);
                                    st.devices[idx].dev.power_loss();
                                    return Ok(());
                                }
                                *n -= 1;
                            }
                        }
                    }
                }
                Operation::Read(buf) => {
                    let dev = &mut st.devices[idx].dev;
                    let r = if stuck {
                        Err(Nack::Address)
                    } else {
                        dev.read(now, buf)
                    };
                    if r.is_ok() {
                        if let Some(c) = st.faults.corrupt_read.as_mut() {
                            apply(c, address, buf);
                        }
                        if st.faults.corrupt_read.is_some_and(|c| c.remaining == 0) {
                            st.faults.corrupt_read = None;
                        }
                    }
                    let dev = &st.devices[idx].dev;
                    let note = if r.is_ok() {
                        dev.annotate(false, buf)
                    } else {
                        None
                    };
                    let name = dev.name();
                    let ev = Event {
                        t_us: now.as_micros() as u64,
                        dir: Direction::Read,
                        address,
                        device: Some(name),
                        acked: r.is_ok(),
                        bytes: if r.is_ok() { buf.to_vec() } else { Vec::new() },
                        note,
                    };
                    self.record(st, ev);
                    if let Err(n) = r {
                        result = Err(nack_error(n));
                        break;
                    }
                    any_acked = true;
                }
            }
        }
        if any_acked || result.is_ok() {
            st.devices[idx].dev.stop(now);
        }
        result
    }
}

fn nack_error(n: Nack) -> BusError {
    BusError(ErrorKind::NoAcknowledge(match n {
        Nack::Address => NoAcknowledgeSource::Address,
        Nack::Data => NoAcknowledgeSource::Data,
    }))
}

fn apply(c: &mut Corruption, address: u8, bytes: &mut [u8]) {
    if c.address != address || c.remaining == 0 || bytes.is_empty() || bytes.len() < c.min_len {
        return;
    }
    let i = c.byte_index.min(bytes.len() - 1);
    bytes[i] ^= c.xor;
    c.remaining -= 1;
}

impl embedded_hal::i2c::ErrorType for EmuBus {
    type Error = BusError;
}

impl I2c<SevenBitAddress> for EmuBus {
    fn transaction(
        &mut self,
        address: SevenBitAddress,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        self.run(address, operations)
    }
}
