//! A capture of the TLS stream (a pass-through proxy records both ways):
//! no topic, no payload key, no value in clear, in TLS 1.2 and 1.3.

use crate::device::{publish_once, Device};
use crate::prelude::*;
use crate::proxy::{Proxy, Tamper};
use crate::setup::OFFLOAD_ID;

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "disclosure",
    proves: &[Threat::InformationDisclosure],
    cases: &[
        Case::new("network capture (TLS 1.2)", Mode::Offload, EXPECTED, tls12),
        Case::new("network capture (TLS 1.3)", Mode::Offload, EXPECTED, tls13),
    ],
};

const EXPECTED: &str = "no plaintext topic or reading on the wire";

fn tls12(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    capture(cx, case, false)
}

fn tls13(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    capture(cx, case, true)
}

fn capture(cx: &mut Ctx<'_>, case: &Case, tls13: bool) -> Outcome {
    let proxy = match Proxy::start(cx.lab.broker_addr, Tamper::None) {
        Ok(p) => p,
        Err(e) => return Outcome::not_tried(format!("proxy failed: {e}")),
    };
    let dev = Device::boot(cx.lab, OFFLOAD_ID, case.mode, OFFLOAD_ID, false);
    let run = publish_once(dev, OFFLOAD_ID, proxy.addr(), |o| {
        o.server_name = Some("localhost".into());
        o.count = Some(3);
        o.tls13 = tls13;
    });
    let cap = proxy.capture();
    let secrets: [&[u8]; 3] = [b"m5go/env", b"temperature_c", b"\"seq\""];
    let leaked: Vec<String> = secrets
        .iter()
        .filter(|s| cap.contains(s))
        .map(|s| String::from_utf8_lossy(s).to_string())
        .collect();
    let cn_visible = cap.contains(OFFLOAD_ID.as_bytes());
    Outcome::new(
        leaked.is_empty() && run.pubacks.len() == 3 && cap.to_broker.len() > 100,
        if leaked.is_empty() {
            "nothing readable".into()
        } else {
            format!("LEAKED: {}", leaked.join(", "))
        },
        Evidence::measured(format!(
            "{} bytes captured, 3 readings published; topic, payload keys and values absent; the certificate CN '{OFFLOAD_ID}' is {} (TLS {} sends the client certificate {})",
            cap.to_broker.len() + cap.to_client.len(),
            if cn_visible { "visible" } else { "not visible" },
            if tls13 { "1.3" } else { "1.2" },
            if tls13 { "encrypted" } else { "in clear" }
        )),
    )
}
