//! Test fixtures: a CA made with rcgen, emulated Trust&GO boards, and a real
//! `mosquitto` on a free loopback port.
// Each test binary uses a different part.
#![allow(dead_code)]

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use coffre_agent::identity::{DriverSigner, KeySource};
use coffre_agent::{BrokerAddr, EnvSensors, Identity};
use coffre_driver::Atecc;
use coffre_emu::board::Board;
use coffre_emu::bus::EmuBus;
use coffre_emu::clock::{EmuDelay, Timing};
use coffre_emu::presets::Preset;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256,
};
use zeroize::Zeroizing;

pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// The device ids the ACL knows.
pub const LAB_ID: &str = "m5go-lab";
pub const CHIP_ID: &str = "m5go-chip";
pub const MONITOR_ID: &str = "m5stack-monitor";

/// A P-256 public key given as X ‖ Y, for rcgen.
struct RawP256(Vec<u8>);

impl PublicKeyData for RawP256 {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

/// A CA in a directory, with the broker's certificate and key.
pub struct Pki {
    pub dir: PathBuf,
    ca_params: CertificateParams,
    ca_key: KeyPair,
    pub ca_pem: String,
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    d.push(DnType::OrganizationName, "coffre tests");
    d
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.distinguished_name = dn("coffre test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca_pem = ca_cert.pem();
        fs::write(dir.join("ca.pem"), &ca_pem).unwrap();

        let pki = Pki {
            dir: dir.to_owned(),
            ca_params,
            ca_key,
            ca_pem,
        };
        let broker_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        p.distinguished_name = dn("localhost");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&broker_key, &pki.issuer()).unwrap();
        fs::write(dir.join("broker.pem"), cert.pem()).unwrap();
        fs::write(dir.join("broker.key"), broker_key.serialize_pem()).unwrap();
        pki
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.ca_params, &self.ca_key)
    }

    fn client_params(cn: &str) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = dn(cn);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p
    }

    /// A device certificate for a P-256 public key X ‖ Y.
    pub fn issue_for_xy(&self, cn: &str, xy: &[u8; 64]) -> String {
        let mut raw = vec![0x04];
        raw.extend_from_slice(xy);
        Self::client_params(cn)
            .signed_by(&RawP256(raw), &self.issuer())
            .unwrap()
            .pem()
    }

    /// A fresh software key (PKCS#8 DER) and its certificate.
    pub fn issue_new_key(&self, cn: &str) -> (Zeroizing<Vec<u8>>, String) {
        let (der, _, cert) = self.issue_new_key_pem(cn);
        (der, cert)
    }

    /// A fresh software key as PKCS#8 DER and PEM, and its certificate.
    pub fn issue_new_key_pem(&self, cn: &str) -> (Zeroizing<Vec<u8>>, Zeroizing<String>, String) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = Self::client_params(cn)
            .signed_by(&key, &self.issuer())
            .unwrap();
        (
            Zeroizing::new(key.serialize_der()),
            Zeroizing::new(key.serialize_pem()),
            cert.pem(),
        )
    }

    pub fn identity(&self, cert_pem: &str, key: KeySource) -> Identity {
        Identity {
            ca_pem: self.ca_pem.clone().into_bytes(),
            cert_chain_pem: cert_pem.as_bytes().to_vec(),
            key,
        }
    }

    /// The monitor's identity (a software key: it is not the device
    /// under test).
    pub fn monitor_identity(&self) -> Identity {
        let (key, cert) = self.issue_new_key(MONITOR_ID);
        self.identity(&cert, KeySource::lab_from_pkcs8(&key).unwrap())
    }
}

/// A Trust&GO board as shipped.
pub fn board() -> Board {
    Board::new(Preset::Tngtls.build(), Timing::Instant)
}

pub fn driver(board: &Board) -> Atecc<EmuBus, EmuDelay> {
    Atecc::new(board.bus.clone(), board.delay(), 0x35)
}

pub fn sensors(board: &Board) -> EnvSensors<EmuBus, EmuDelay> {
    EnvSensors::new(board.bus.clone(), board.delay())
}

/// Lab mode: a key generated off-chip, written to slot 8 in the lab's
/// format (2-byte length, PKCS#8 DER, zero padding), read back through the
/// driver. Returns the key source and the device certificate.
pub fn lab_device(pki: &Pki, board: &Board, id: &str) -> (KeySource, String) {
    let (der, cert) = pki.issue_new_key(id);
    let mut slot = Zeroizing::new(vec![0u8; 416]);
    slot[..2].copy_from_slice(&(der.len() as u16).to_be_bytes());
    slot[2..2 + der.len()].copy_from_slice(&der);
    let mut chip = driver(board);
    chip.write_slot(8, &slot).unwrap();
    let key = KeySource::read_lab(&mut chip, 8).unwrap();
    (key, cert)
}

/// Chip mode: the factory key of slot 0 signs; the certificate is issued
/// for its public key.
pub fn chip_device(pki: &Pki, board: &Board, id: &str) -> (KeySource, String) {
    let signer = DriverSigner::new(driver(board), 0);
    let xy = coffre_agent::ChipSigner::public_key(&signer).unwrap();
    let cert = pki.issue_for_xy(id, &xy);
    (KeySource::chip(signer), cert)
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    coffre_fs::free_loopback_addr().unwrap().port()
}

/// Mosquitto settings that vary between tests.
#[derive(Clone)]
pub struct BrokerConfig {
    pub nodelay: bool,
    pub acl: String,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            nodelay: true,
            acl: format!(
                "user {LAB_ID}\ntopic write m5go/env\n\n\
                 user {CHIP_ID}\ntopic write m5go/env\n\n\
                 user {MONITOR_ID}\ntopic read m5go/env\n"
            ),
        }
    }
}

/// A running `mosquitto`, stopped (SIGTERM) on drop.
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    conf: PathBuf,
    starts: usize,
}

impl Broker {
    pub fn start(pki: &Pki, cfg: &BrokerConfig) -> Broker {
        let dir = pki.dir.clone();
        fs::write(dir.join("acl"), &cfg.acl).unwrap();
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        let d = dir.display();
        let text = format!(
            "user root\n\
             per_listener_settings false\n\
             listener {port} 127.0.0.1\n\
             cafile {d}/ca.pem\n\
             certfile {d}/broker.pem\n\
             keyfile {d}/broker.key\n\
             require_certificate true\n\
             use_identity_as_username true\n\
             tls_version tlsv1.2\n\
             acl_file {d}/acl\n\
             persistence true\n\
             persistence_location {d}/\n\
             autosave_interval 1\n\
             set_tcp_nodelay {}\n\
             log_dest file {d}/mosquitto.log\n\
             log_type all\n\
             log_timestamp_format %H:%M:%S\n",
            cfg.nodelay
        );
        fs::write(&conf, text).unwrap();
        let mut b = Broker {
            child: None,
            port,
            dir,
            conf,
            starts: 0,
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed at /usr/sbin/mosquitto");
        self.child = Some(child);
        // Wait for this start's "running" line (a TCP probe would leave a
        // failed-handshake line in the log).
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.log().matches(" running").count() < self.starts + 1 {
            if let Some(Some(status)) = self.child.as_mut().map(|c| c.try_wait().unwrap()) {
                panic!("mosquitto exited with {status}; log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        self.starts += 1;
    }

    pub fn addr(&self) -> BrokerAddr {
        BrokerAddr::new("127.0.0.1", self.port)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }

    /// Wait until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait until the log contains `needle` at least `n` times.
    pub fn wait_log_count(&self, needle: &str, n: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.log().matches(needle).count() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM (mosquitto saves its persistence database) and wait.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Stop, then start again on the same port with the same database.
    pub fn restart(&mut self) {
        self.stop();
        let mut log = fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("mosquitto.log"))
            .unwrap();
        writeln!(log, "---- test: broker restart ----").unwrap();
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Collects events from a callback running on another thread.
pub fn channel<T>() -> (mpsc::Sender<T>, mpsc::Receiver<T>) {
    mpsc::channel()
}
