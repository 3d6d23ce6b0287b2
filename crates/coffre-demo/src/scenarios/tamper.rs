//! A man in the middle flips one byte of the TLS stream: the broker
//! detects it and drops the link; the device reconnects and delivers.

use std::time::Duration;

use crate::device::{publish_once, Device};
use crate::prelude::*;
use crate::proxy::{Proxy, Tamper};
use crate::setup::OFFLOAD_ID;

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "tamper",
    proves: &[Threat::Tampering],
    cases: &[Case::new(
        "MITM flips one byte of the TLS stream",
        Mode::Offload,
        "broker detects it and drops the connection",
        run,
    )],
};

fn run(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    let mark = cx.log_mark();
    let proxy = match Proxy::start(cx.lab.broker_addr, Tamper::FlipFirstAppDataByte) {
        Ok(p) => p,
        Err(e) => return Outcome::not_tried(format!("proxy failed: {e}")),
    };
    let dev = Device::boot(cx.lab, OFFLOAD_ID, case.mode, OFFLOAD_ID, false);
    let run = publish_once(dev, OFFLOAD_ID, proxy.addr(), |o| {
        o.server_name = Some("localhost".into());
        o.backoff.max = Duration::from_millis(100);
    });
    let cap = proxy.capture();
    let line = cx.wait_log(mark, "OpenSSL Error");
    let dropped = !run.reconnects.is_empty();
    let pass = cap.flipped && line.is_some() && dropped && !run.pubacks.is_empty();
    Outcome::new(
        pass,
        if pass {
            "connection dropped; the device reconnected and delivered".into()
        } else {
            format!("flipped={} dropped={dropped}", cap.flipped)
        },
        Evidence::broker(line.unwrap_or_default()).with(
            Source::Device,
            format!(
                "{}; {}",
                run.disconnects
                    .iter()
                    .find(|d| !d.starts_with("clean"))
                    .cloned()
                    .unwrap_or_else(|| "link lost".into()),
                run.reconnects
                    .first()
                    .cloned()
                    .unwrap_or_else(|| run.error.clone().unwrap_or_default())
            ),
        ),
    )
}
