//! A certificate revoked before the broker started (it is in the CRL the
//! broker loaded): refused.

use super::refused::refused_certificate;
use crate::prelude::*;
use crate::setup::REVOKED_ID;

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "revoked-cert",
    proves: &[Threat::Spoofing],
    cases: &[Case::new(
        "revoked certificate (CRL)",
        Mode::Offload,
        "refused: broker sends alert CertificateRevoked",
        run,
    )],
};

fn run(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    refused_certificate(cx, case, "revoked", REVOKED_ID, "CertificateRevoked")
}
