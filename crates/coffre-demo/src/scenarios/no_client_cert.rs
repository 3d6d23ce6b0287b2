//! A TLS client that offers no certificate: the broker refuses the
//! handshake before any MQTT.

use std::sync::Arc;

use crate::prelude::*;
use crate::setup::Lab;

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "no-client-cert",
    proves: &[Threat::Spoofing, Threat::DenialOfService],
    cases: &[Case::new(
        "no client certificate",
        Mode::Any,
        "handshake refused",
        run,
    )],
};

fn run(cx: &mut Ctx<'_>, _case: &Case) -> Outcome {
    let mark = cx.log_mark();
    let r = no_cert_connect(cx.lab);
    let line = cx.wait_log(mark, "certificate");
    Outcome::new(
        r.is_err() && line.is_some(),
        r.err().unwrap_or_else(|| "CONNECTED".into()),
        Evidence::broker(line.unwrap_or_default()),
    )
}

/// Connect with rustls, trusting the lab's CA, offering no certificate.
fn no_cert_connect(lab: &Lab) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&lab.ca_pem).flatten() {
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let copts = coffre_agent::mqtt::ClientOptions::new(lab.broker_addr.into(), "no-cert");
    coffre_agent::mqtt::Client::connect(&copts, Arc::new(cfg))
        .map(|_| ())
        .map_err(|e| e.to_string())
}
