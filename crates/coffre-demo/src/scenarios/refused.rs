//! What the refused-certificate scenarios share: a device presenting a
//! certificate the broker must refuse, and the TLS alert it must get.

use crate::device::{publish_once, Device};
use crate::prelude::*;

/// A device with chip `chip` presents the certificate of `cert_id`; the
/// broker must refuse it ("certificate verify failed") with `alert`.
pub(super) fn refused_certificate(
    cx: &mut Ctx<'_>,
    case: &Case,
    chip: &str,
    cert_id: &str,
    alert: &str,
) -> Outcome {
    let needle = "certificate verify failed";
    let mark = cx.log_mark();
    let dev = Device::boot(cx.lab, chip, case.mode, cert_id, false);
    let run = publish_once(dev, cert_id, cx.lab.broker_addr, |o| o.preflight = false);
    let line = cx.wait_log(mark, needle);
    let err = run.error.unwrap_or_default();
    Outcome::new(
        run.connected.is_empty() && line.is_some() && err.contains(alert),
        if run.connected.is_empty() {
            format!(
                "refused with alert {}",
                if err.contains(alert) {
                    alert
                } else {
                    "(other)"
                }
            )
        } else {
            "CONNECTED".into()
        },
        Evidence::broker(line.unwrap_or_else(|| format!("(no '{needle}' line)")))
            .with(Source::Client, err),
    )
}
