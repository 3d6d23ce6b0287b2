//! Every wait of the driver has a time limit: against a peer that accepts
//! the connection and never answers, `connect` ends with a timeout at the
//! session's response timeout, by the device's timer (a fake one here:
//! it jumps to the deadline at once, so the test takes no time).

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use coffre_device::Clock;
use coffre_firmware::{
    within, DeviceCrypto, Firmware, FirmwareError, KeySigner, Timer, RECORD_READ_BUF,
    RECORD_WRITE_BUF,
};
use coffre_mqtt::{Config, MqttVersion, Session};
use embedded_hal_mock::eh1::delay::NoopDelay;
use embedded_hal_mock::eh1::i2c::Mock;

/// A peer that takes every byte and never sends one.
struct SilentPeer {
    written: usize,
}

impl embedded_io_async::ErrorType for SilentPeer {
    type Error = Infallible;
}

impl embedded_io_async::Read for SilentPeer {
    async fn read(&mut self, _buf: &mut [u8]) -> Result<usize, Infallible> {
        std::future::pending().await
    }
}

impl embedded_io_async::Write for SilentPeer {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.written += buf.len();
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// A timer whose sleeps end at once, moving its clock to their deadline.
struct FakeTimer {
    now: Cell<u64>,
    sleeps: Cell<u32>,
}

impl Clock for FakeTimer {
    fn now_ms(&self) -> u64 {
        self.now.get()
    }
}

impl Timer for FakeTimer {
    async fn sleep_until(&self, at_ms: u64) {
        self.sleeps.set(self.sleeps.get() + 1);
        self.now.set(self.now.get().max(at_ms));
    }
}

/// Poll `f` to completion on this thread (the futures here never wait for
/// a wake-up: the peer never answers, the fake timer is ready at once).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("the future neither finished nor timed out");
}

#[test]
fn a_silent_broker_ends_the_handshake_at_the_response_timeout() {
    let timer = FakeTimer {
        now: Cell::new(1_000),
        sleeps: Cell::new(0),
    };
    let mut config = Config::new("m5go", MqttVersion::V5);
    config.response_timeout_ms = 2_500;
    let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
    let signer = KeySigner::<Mock, NoopDelay>::Lab(key);
    // Neither certificate is looked at: the handshake never gets that far.
    let crypto = DeviceCrypto::new(rand_core::OsRng, b"ca", b"cert", signer);
    let (mut rbuf, mut wbuf) = (vec![0u8; RECORD_READ_BUF], vec![0u8; RECORD_WRITE_BUF]);
    let mut peer = SilentPeer { written: 0 };
    let r = block_on(Firmware::connect(
        &mut peer,
        &mut rbuf,
        &mut wbuf,
        "localhost",
        crypto,
        Session::new(config),
        &timer,
        None,
    ));
    match r {
        Err(FirmwareError::Timeout {
            waiting_for,
            after_ms,
        }) => {
            assert_eq!(waiting_for, "the TLS handshake");
            assert_eq!(after_ms, 2_500);
        }
        Err(e) => panic!("expected a timeout, got {e}"),
        Ok(_) => panic!("a silent peer completed a handshake"),
    }
    // The ClientHello went out; the time limit is the timer's, not a guess.
    assert!(peer.written > 0);
    assert_eq!(timer.sleeps.get(), 1);
    assert_eq!(timer.now_ms(), 3_500);
}

#[test]
fn within_gives_the_output_when_the_future_is_first() {
    let timer = FakeTimer {
        now: Cell::new(0),
        sleeps: Cell::new(0),
    };
    assert_eq!(
        block_on(within(timer.sleep_until(10), async { 42 })),
        Some(42)
    );
    assert_eq!(
        block_on(within(timer.sleep_until(10), std::future::pending::<u8>())),
        None
    );
    assert_eq!(timer.now_ms(), 10);
}
