//! A certificate from another CA, for the chip's own key: refused.

use super::refused::refused_certificate;
use crate::prelude::*;
use crate::setup::FOREIGN_ID;

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "foreign-ca",
    proves: &[Threat::Spoofing],
    cases: &[Case::new(
        "certificate from a foreign CA",
        Mode::Offload,
        "refused: broker sends alert UnknownCA",
        run,
    )],
};

fn run(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    refused_certificate(cx, case, "wrong", FOREIGN_ID, "UnknownCA")
}
