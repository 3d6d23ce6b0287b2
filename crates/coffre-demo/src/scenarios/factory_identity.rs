//! A Trust&GO chip connects with the identity it shipped with: slot 0
//! signs the handshake and the certificate chain (device + signer) is the
//! one stored in the chip, rebuilt from its compressed form. No
//! provisioning step, no certificate from the project CA: the broker trusts
//! the factory root on its factory listener and knows the device by its
//! certificate's CN (`sn` + serial number).

use coffre_driver::Atecc;

use crate::device::{publish_once, Device};
use crate::prelude::*;
use crate::setup::FACTORY_CHIP;

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "factory-identity",
    proves: &[Threat::Spoofing],
    cases: &[
        Case::new(
            "factory identity: chain from the chip",
            Mode::Offload,
            "mutual TLS, username = the chip's CN, reading acknowledged",
            connects,
        ),
        Case::new(
            "factory identity: corrupted slot 10",
            Mode::Offload,
            "refused before any network activity",
            corrupted,
        ),
    ],
};

/// Boot the factory chip (slot 0 signs) and give it the chain it carries.
fn factory_device(cx: &Ctx<'_>) -> Result<Device, String> {
    let mut dev = Device::boot(cx.lab, FACTORY_CHIP, Mode::Offload, FACTORY_CHIP, false);
    let addr = dev
        .board
        .with_chip(|c| coffre_emu::device::Device::address(c));
    let mut chip = Atecc::new(dev.board.bus.clone(), dev.board.delay(), addr);
    let chain = coffre_provision::factory::read_chain(&mut chip).map_err(|e| e.to_string())?;
    coffre_pki::factory::verify_chain(
        &chain.device,
        &chain.signer,
        coffre_emu::factory::root_cert_der(),
        &chain.slot0_public_key,
        time::OffsetDateTime::now_utc(),
    )
    .map_err(|e| e.to_string())?;
    let Some(identity) = dev.identity.as_mut() else {
        return Err(format!(
            "the factory chip did not boot: {:?}",
            dev.boot_error.as_ref().map(|e| e.to_string())
        ));
    };
    identity.cert_chain_pem = format!(
        "{}{}",
        coffre_pki::util::to_pem("CERTIFICATE", &chain.device),
        coffre_pki::util::to_pem("CERTIFICATE", &chain.signer)
    )
    .into_bytes();
    Ok(dev)
}

fn connects(cx: &mut Ctx<'_>, _case: &Case) -> Outcome {
    let id = cx.lab.factory_id.clone();
    let dev = match factory_device(cx) {
        Ok(d) => d,
        Err(e) => return Outcome::new(false, "chain refused", Evidence::measured(e)),
    };
    let mark = cx.log_mark();
    let run = publish_once(dev, &id, cx.lab.factory_addr, |_| {});
    let line = cx.wait_log(mark, &format!("u'{id}'"));
    // Any MQTT 5 success code (0x10 "no matching subscribers" included).
    let acked = run.pubacks.iter().find(|p| p.1 < 0x80).map(|p| p.1);
    let ok = !run.connected.is_empty() && acked.is_some() && line.is_some();
    Outcome::new(
        ok,
        if ok {
            format!("connected as {id}, PUBACK 0x{:02X}", acked.unwrap_or(0))
        } else {
            format!("not accepted: {}", run.error.unwrap_or_default())
        },
        Evidence::measured(run.connected.first().cloned().unwrap_or_default())
            .with(Source::Broker, line.unwrap_or_default()),
    )
}

fn corrupted(cx: &mut Ctx<'_>, _case: &Case) -> Outcome {
    // A copy of the factory chip with one bit flipped in its stored
    // device certificate's signature.
    let image = cx.lab.chip(FACTORY_CHIP);
    let copy = cx.lab.chip("trustngo-corrupted");
    let made = coffre_emu::image::load(&image).and_then(|mut nv| {
        nv.slot_mut(10)[9] ^= 0x01;
        coffre_emu::image::create(&copy, &nv, true)
    });
    if let Err(e) = made {
        return Outcome::not_tried(format!("could not make the corrupted chip: {e}"));
    }
    let (board, _drv) = match crate::setup::open(&copy) {
        Ok(x) => x,
        Err(e) => return Outcome::not_tried(e.to_string()),
    };
    let addr = board.with_chip(|c| coffre_emu::device::Device::address(c));
    let mut chip = Atecc::new(board.bus.clone(), board.delay(), addr);
    let mark = cx.log_mark();
    let verdict = coffre_provision::factory::read_chain(&mut chip)
        .map_err(|e| e.to_string())
        .and_then(|chain| {
            coffre_pki::factory::verify_chain(
                &chain.device,
                &chain.signer,
                coffre_emu::factory::root_cert_der(),
                &chain.slot0_public_key,
                time::OffsetDateTime::now_utc(),
            )
            .map_err(|e| e.to_string())
        });
    let refused = verdict.is_err();
    let connections = cx.lab.log.since(mark).iter().filter(|l| l.contains("New connection")).count();
    Outcome::new(
        refused && connections == 0,
        if refused { "refused, no connection opened" } else { "ACCEPTED" },
        Evidence::measured(verdict.err().unwrap_or_default()),
    )
}
