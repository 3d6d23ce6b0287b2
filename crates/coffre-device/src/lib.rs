//! The device core of coffre: what a device does, without the IO.
//!
//! The same code runs on Linux (the `coffre-agent` driver: blocking socket
//! and rustls) and on the device's MCU (embedded-io-async and
//! embedded-tls). It is `no_std` with `alloc`; it reads no clock and opens
//! no socket.
//!
//! - [`boot`]: the lab's five boot steps over the secure element
//!   (coffre-driver over any embedded-hal I2C bus).
//! - [`reading`]: the one [`Reading`] type of the project — what goes on
//!   the wire, what the subscriber, the web explorer and the CLI show.
//! - [`queue`]: the queue interface ([`ReadingQueue`]) that numbers
//!   readings and keeps them until the broker acknowledges them, and an
//!   in-memory queue ([`MemoryQueue`]).
//! - [`link`]: TLS behind a trait ([`Link`]), and [`Connection`], which
//!   runs the sans-IO MQTT [`Session`] over any link.
//! - [`backoff`]: reconnection delays ([`Backoff`]).
//! - [`Clock`]: time comes in from the caller.
//! - `iokey` (feature `std`): the IO protection key of a hardened chip as
//!   the device keeps it.
//!
//! ```
//! use coffre_device::{MemoryQueue, Measurement, Reading, ReadingQueue};
//!
//! let mut q = MemoryQueue::new();
//! let m = Measurement { temperature_c: 21.5, humidity_pct: 40.0, pressure_hpa: 1013.2 };
//! let seq = q.next_seq();
//! let r = Reading::at_unix_micros("m5go", seq, 1_746_100_800_000_000, &m);
//! q.push(seq, r.to_json()).unwrap();
//! assert_eq!(q.front().unwrap().seq, 1);
//! assert!(q.front().unwrap().payload.starts_with(r#"{"device":"m5go","seq":1,"ts":"2025-05-01T12:00:00.000000Z""#));
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

pub mod backoff;
pub mod boot;
#[cfg(feature = "std")]
pub mod iokey;
pub mod link;
pub mod queue;
pub mod reading;

pub use backoff::Backoff;
pub use coffre_mqtt::{self as mqtt, Session};
pub use link::{Acked, Connection, Link, LinkError, OpenFailed, Opened, Recv};
pub use queue::{MemoryQueue, QueuedReading, ReadingQueue};
pub use reading::{Measurement, Reading, SensorError, SensorSource};

/// A monotonic clock, in milliseconds from any fixed origin.
///
/// The Linux agent passes a clock built on `std::time::Instant` (or a fake
/// one in tests); the firmware passes its tick counter.
pub trait Clock {
    /// Milliseconds since the clock's origin; never goes backwards.
    fn now_ms(&self) -> u64;
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now_ms(&self) -> u64 {
        (**self).now_ms()
    }
}
