//! Helpers shared by the broker's integration tests.

use std::net::SocketAddr;
use std::path::Path;

use coffre_pki::{IssueOptions, Pki};
use p256::pkcs8::EncodePrivateKey;

/// A free port on 127.0.0.1.
pub fn free_port() -> SocketAddr {
    coffre_fs::free_loopback_addr().unwrap()
}

/// Issue a certificate for a new key named `id`; the key goes to
/// `dir/<id>.key.pem`.
pub fn device(pki: &mut Pki, dir: &Path, id: &str) {
    let sk = p256::SecretKey::random(&mut rand_core::OsRng);
    pki.issue_device(id, &sk.public_key(), &IssueOptions::default())
        .unwrap();
    let pem = sk.to_pkcs8_pem(Default::default()).unwrap();
    std::fs::write(dir.join(format!("{id}.key.pem")), pem.as_bytes()).unwrap();
}
