//! Microchip's manifest, tampered with: three emulated Trust&GO parts are
//! listed in a manifest signed by the emulated manifest signer; one bit of
//! one entry's payload is flipped. The import refuses that entry, naming
//! it, and accepts the other two: nothing of the tampered entry is kept.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use coffre_provision::trust_manifest::{emulated_entry, emulated_signer, verify};

use crate::prelude::*;

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "manifest-tamper",
    proves: &[Threat::Tampering, Threat::Spoofing],
    cases: &[Case::new(
        "manifest entry with one flipped bit",
        Mode::Any,
        "that entry refused and named; the others import",
        run,
    )],
};

/// Parts in the manifest, and the one tampered with.
const PARTS: usize = 3;
const TAMPERED: usize = 1;

fn run(_cx: &mut Ctx<'_>, _case: &Case) -> Outcome {
    let (key, cert) = match emulated_signer() {
        Ok(s) => s,
        Err(e) => return Outcome::not_tried(format!("manifest signer: {e}")),
    };
    let mut entries = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..PARTS {
        let nv = coffre_emu::presets::Preset::Tngtls.build();
        match emulated_entry(&nv, &key, &cert) {
            Ok(e) => entries.push(e),
            Err(e) => return Outcome::not_tried(format!("emulated part: {e}")),
        }
        ids.push(coffre_proto::hex::Hex::lower(&nv.config.serial_number()).to_string());
    }
    // One bit flipped in the middle of one entry's payload.
    let payload = entries[TAMPERED]["payload"].as_str().unwrap_or_default().to_string();
    let Ok(mut bytes) = URL_SAFE_NO_PAD.decode(&payload) else {
        return Outcome::not_tried("the payload is not base64url");
    };
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    entries[TAMPERED]["payload"] = serde_json::Value::String(URL_SAFE_NO_PAD.encode(&bytes));
    let text = serde_json::Value::Array(entries).to_string();
    let results = match verify(
        text.as_bytes(),
        std::slice::from_ref(&cert),
        coffre_emu::factory::root_cert_der(),
        time::OffsetDateTime::now_utc(),
    ) {
        Ok(r) => r,
        Err(e) => return Outcome::new(false, "manifest refused whole", Evidence::measured(e.to_string())),
    };
    let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let named = refused.len() == 1
        && refused[0].index == TAMPERED
        && refused[0].unique_id.as_deref() == Some(ids[TAMPERED].as_str());
    Outcome::new(
        named && accepted == PARTS - 1,
        format!("{} refused, {accepted} imported", refused.len()),
        Evidence::measured(
            refused
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        ),
    )
}
