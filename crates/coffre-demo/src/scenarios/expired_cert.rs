//! An expired certificate, for the chip's own key: refused.

use super::refused::refused_certificate;
use crate::prelude::*;
use crate::setup::EXPIRED_ID;

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "expired-cert",
    proves: &[Threat::Spoofing],
    cases: &[Case::new(
        "expired certificate",
        Mode::Offload,
        "refused: broker sends alert CertificateExpired",
        run,
    )],
};

fn run(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    refused_certificate(cx, case, "wrong", EXPIRED_ID, "CertificateExpired")
}
