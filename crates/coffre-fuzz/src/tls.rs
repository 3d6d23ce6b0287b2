//! Targets of the device's TLS layer, through the real stacks: arbitrary
//! bytes from a "broker" given to the Linux agent's rustls client (built by
//! `coffre_agent::tls::client_config`, TLS 1.2 and 1.3) and to the
//! firmware's embedded-tls client (`coffre_firmware::Firmware::connect`,
//! TLS 1.3, the device's `DeviceCrypto`).
//!
//! Beyond "no panic, no hang", both check the property the device relies
//! on: a handshake never completes with a broker that did not prove a
//! certificate issued by the device's CA. The fixtures (a test CA, the
//! broker's and a device's certificate and keys, `fuzz/fixtures/tls/`) are
//! test data made for this purpose, never used anywhere else.

use std::future::Future;
use std::io::{self, Read, Write};
use std::sync::{Arc, OnceLock};

use coffre_agent::identity::KeySource;
use coffre_agent::tls::{client_config, parse_certificates, TlsOptions};
use rustls::pki_types::ServerName;
use rustls::ClientConnection;

use crate::bytes::Input;

const CA: &[u8] = include_bytes!("../../../fuzz/fixtures/tls/ca.crt.pem");
const BROKER_CERT: &[u8] = include_bytes!("../../../fuzz/fixtures/tls/broker.crt.pem");
const BROKER_KEY: &[u8] = include_bytes!("../../../fuzz/fixtures/tls/broker.key.pem");
const DEVICE_CERT: &[u8] = include_bytes!("../../../fuzz/fixtures/tls/device.crt.pem");
const DEVICE_KEY: &[u8] = include_bytes!("../../../fuzz/fixtures/tls/device.key.pem");

fn device_key_der() -> Vec<u8> {
    use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
    let pem = std::str::from_utf8(DEVICE_KEY).expect("PEM is text");
    let key = p256::SecretKey::from_pkcs8_pem(pem).expect("the fixture key parses");
    key.to_pkcs8_der().expect("encodes").as_bytes().to_vec()
}

/// The agent's client configurations (TLS 1.2, TLS 1.3), built once.
fn configs() -> &'static [Arc<rustls::ClientConfig>; 2] {
    static C: OnceLock<[Arc<rustls::ClientConfig>; 2]> = OnceLock::new();
    C.get_or_init(|| {
        let make = |tls13| {
            let key = KeySource::lab_from_pkcs8(&device_key_der()).expect("the device key parses");
            client_config(
                CA,
                DEVICE_CERT,
                key,
                &TlsOptions {
                    tls13,
                    resumption: false,
                },
            )
            .expect("the fixture identity makes a client configuration")
        };
        [make(false), make(true)]
    })
}

/// A reader over the fuzzer's bytes, in chunks whose sizes the input also
/// chooses (records split across reads, as TCP may deliver them).
struct Chunks<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
}

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = match self.sizes.split_first() {
            Some((&s, rest)) => {
                self.sizes = rest;
                (s as usize).max(1)
            }
            None => usize::MAX,
        };
        let n = want.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Arbitrary broker bytes to the Linux agent's rustls client.
///
/// Input: byte 0 picks TLS 1.2 or 1.3; byte 1 how many chunk sizes follow;
/// then the chunk sizes; the rest is what the broker sends.
pub fn agent(data: &[u8]) {
    let mut input = Input::new(data);
    let tls13 = input.u8() & 1 == 1;
    let nsizes = input.u8() as usize % 16;
    let sizes = input.take(nsizes);
    let mut wire = Chunks {
        data: input.take(usize::MAX),
        sizes,
    };
    let config = configs()[tls13 as usize].clone();
    let name = ServerName::try_from("localhost").expect("a name");
    let mut conn = ClientConnection::new(config, name).expect("a client connection");
    let mut sink = io::sink();
    // Each round reads at least one byte or ends: bounded by the input.
    loop {
        while conn.wants_write() {
            conn.write_tls(&mut sink).expect("writing to a sink");
        }
        match conn.read_tls(&mut wire) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => break,
        }
        if let Err(e) = conn.process_new_packets() {
            // The error the agent turns into a message must say something.
            assert!(!e.to_string().is_empty());
            break;
        }
    }
    // Only a broker holding the fixture broker's key could finish it.
    assert!(
        conn.is_handshaking(),
        "the handshake completed with bytes that are not the fixture broker's"
    );
    // Application data the broker may have slipped in is never readable
    // before the handshake completes.
    let mut buf = [0u8; 64];
    if let Ok(n) = conn.reader().read(&mut buf) {
        assert_eq!(n, 0, "plaintext readable before the handshake");
    }
    let _ = conn.writer().write(b"not sent before the handshake");
}

/// An in-memory socket for embedded-tls: reads the fuzzer's bytes, drops
/// what is written.
struct Wire<'a> {
    inner: Chunks<'a>,
    sent: Option<&'a mut Vec<u8>>,
}

impl embedded_io_async::ErrorType for Wire<'_> {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::Read for Wire<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        Ok(self.inner.read(buf).unwrap_or(0))
    }
}

impl embedded_io_async::Write for Wire<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        if let Some(sent) = self.sent.as_mut() {
            sent.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A fixed-seed generator: the client's randoms do not decide whether an
/// input crashes, so a crash replays (and the firmware's seed, recorded
/// against the same randoms, decrypts).
fn fixed_rng() -> rand_chacha::ChaCha8Rng {
    rand_core::SeedableRng::seed_from_u64(1)
}

/// The device's clock, stopped.
struct NoClock;

impl coffre_device::Clock for NoClock {
    fn now_ms(&self) -> u64 {
        0
    }
}

/// Time never moves, so no deadline fires: the wire never waits, and the
/// handshake ends when the bytes do.
impl coffre_firmware::Timer for NoClock {
    fn sleep_until(&self, _at_ms: u64) -> impl Future<Output = ()> {
        std::future::pending()
    }
}

fn der_of(pem: &[u8]) -> Vec<u8> {
    parse_certificates(pem, "fixture").expect("a fixture certificate")[0]
        .as_ref()
        .to_vec()
}

/// Arbitrary broker bytes to the firmware's embedded-tls client, with the
/// device's `DeviceCrypto` (lab signer: the fixture key).
///
/// Input: byte 0 how many chunk sizes follow; the sizes; then the bytes.
pub fn firmware(data: &[u8]) {
    let mut input = Input::new(data);
    let nsizes = input.u8() as usize % 16;
    let sizes = input.take(nsizes);
    let wire = Wire {
        inner: Chunks {
            data: input.take(usize::MAX),
            sizes,
        },
        sent: None,
    };
    assert!(
        connect_firmware(wire).0.is_err(),
        "the handshake completed with bytes that are not the fixture broker's"
    );
}

/// `Firmware::connect` over `wire`, polled to the end (the wire never
/// waits, so that takes a bounded number of polls), and how many
/// CertificateVerify signatures the device made.
fn connect_firmware(wire: Wire<'_>) -> (Result<(), coffre_firmware::FirmwareError>, u32) {
    use coffre_firmware::{DeviceCrypto, Firmware, KeySigner, RECORD_READ_BUF, RECORD_WRITE_BUF};
    use coffre_mqtt::{Config, MqttVersion, Session};

    static DER: OnceLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = OnceLock::new();
    let (ca, cert, key) = DER.get_or_init(|| (der_of(CA), der_of(DEVICE_CERT), device_key_der()));
    let signer: KeySigner<crate::driver::FuzzBus<'static>, crate::driver::VirtualDelay> =
        KeySigner::lab_from_pkcs8(key).expect("the fixture key");
    let mut crypto = DeviceCrypto::new(fixed_rng(), ca, cert, signer);
    let (mut rbuf, mut wbuf) = (vec![0u8; RECORD_READ_BUF], vec![0u8; RECORD_WRITE_BUF]);
    let clock = NoClock;
    let r = {
        let fut = Firmware::connect(
            wire,
            &mut rbuf,
            &mut wbuf,
            "localhost",
            &mut crypto,
            Session::new(Config::new("fuzz-device", MqttVersion::V5)),
            &clock,
            None,
        );
        let mut fut = std::pin::pin!(fut);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut polls = 0u32;
        loop {
            if let std::task::Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
                break r.map(|_| ());
            }
            polls += 1;
            assert!(polls < 1_000_000, "the handshake future never finishes");
        }
    };
    (r, crypto.signatures().made)
}

/// Seeds: the fixture broker's real first flight (rustls server, TLS 1.2
/// and 1.3) for both targets; TLS 1.2's is plaintext up to the Finished,
/// so mutations reach certificate, key exchange and certificate request
/// parsing.
pub fn seeds(firmware: bool) -> Vec<Vec<u8>> {
    let certs = parse_certificates(BROKER_CERT, "fixture").expect("broker certificate");
    let key = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::PrivateKeyDer::from_pem_slice(BROKER_KEY).expect("broker key")
    };
    let mut out = Vec::new();
    let versions: &[bool] = if firmware { &[true] } else { &[false, true] };
    for &tls13 in versions {
        let version: &'static rustls::SupportedProtocolVersion = if tls13 {
            &rustls::version::TLS13
        } else {
            &rustls::version::TLS12
        };
        let roots = {
            let mut r = rustls::RootCertStore::empty();
            for c in parse_certificates(CA, "fixture").expect("CA") {
                r.add(c).expect("CA added");
            }
            Arc::new(r)
        };
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots,
            coffre_agent::tls::provider(),
        )
        .build()
        .expect("client verifier");
        let server = rustls::ServerConfig::builder_with_provider(coffre_agent::tls::provider())
            .with_protocol_versions(&[version])
            .expect("version")
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .expect("server config");
        let mut srv = rustls::ServerConnection::new(Arc::new(server)).expect("server");
        let name = ServerName::try_from("localhost").expect("name");
        let mut hello = Vec::new();
        if firmware {
            hello = firmware_client_hello();
        } else {
            let mut cli =
                ClientConnection::new(configs()[tls13 as usize].clone(), name).expect("client");
            cli.write_tls(&mut hello).expect("ClientHello");
        }
        srv.read_tls(&mut &hello[..]).expect("server reads");
        srv.process_new_packets()
            .expect("server accepts the ClientHello");
        let mut flight = Vec::new();
        while srv.wants_write() {
            srv.write_tls(&mut flight).expect("server writes");
        }
        let mut seed = if firmware {
            vec![0]
        } else {
            vec![tls13 as u8, 0]
        };
        seed.extend_from_slice(&flight);
        out.push(seed);
    }
    out
}

/// The firmware's own ClientHello (embedded-tls, the fixed-seed RNG).
fn firmware_client_hello() -> Vec<u8> {
    let mut hello = Vec::new();
    let wire = Wire {
        inner: Chunks {
            data: &[],
            sizes: &[],
        },
        sent: Some(&mut hello),
    };
    let _ = connect_firmware(wire);
    hello
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds are what a real server answers: the agent's client gets
    /// past the ServerHello with them (TLS 1.2: the certificate verifies,
    /// so the handshake stops only when the input ends).
    #[test]
    fn seeds_are_real_server_flights_and_run() {
        for s in seeds(false) {
            assert!(s.len() > 200, "a server flight: {} bytes", s.len());
            agent(&s);
        }
        for s in seeds(true) {
            assert!(s.len() > 100);
            firmware(&s);
        }
    }

    /// The firmware's seed gets through the broker's TLS 1.3 flight (the
    /// client's randoms are fixed, so the recorded answer decrypts): the
    /// device signs its CertificateVerify; the connection fails only when
    /// the input ends before the CONNACK.
    #[test]
    fn the_firmware_seed_completes_the_handshake() {
        let s = &seeds(true)[0];
        let wire = Wire {
            inner: Chunks {
                data: &s[1..],
                sizes: &[],
            },
            sent: None,
        };
        let (r, signed) = connect_firmware(wire);
        assert!(r.is_err());
        assert_eq!(signed, 1, "the device signed its CertificateVerify");
    }

    /// The TLS 1.2 seed's certificate chain verifies: mutations of it
    /// reach what comes after the certificate.
    #[test]
    fn the_tls12_seed_reaches_past_certificate_verification() {
        let s = &seeds(false)[0];
        let config = configs()[0].clone();
        let mut conn =
            ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
        let mut wire = &s[2..];
        let mut error = None;
        while conn.read_tls(&mut wire).unwrap() > 0 {
            if let Err(e) = conn.process_new_packets() {
                error = Some(e);
                break;
            }
        }
        // The server signed the key exchange over another ClientHello's
        // random: the flight fails there, after the chain verified (rustls
        // reports that signature as the certificate's BadSignature; a chain
        // from elsewhere would be UnknownIssuer).
        let e = error.expect("the signature over another random does not verify");
        assert_eq!(
            e,
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)
        );
    }
}
