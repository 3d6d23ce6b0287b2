//! A connected device is revoked: the broker reloads the CRL and cuts its
//! session within 2 s, refuses its reconnection, and the other devices do
//! not notice.

use std::time::{Duration, Instant};

use crate::device::{publish_once, Device, Watched};
use crate::prelude::*;
use crate::setup::{LIVE_ID, OFFLOAD_ID, SUB_ID};

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "live-revocation",
    proves: &[Threat::Spoofing, Threat::ElevationOfPrivilege],
    cases: &[Case::new(
        "revoked while connected",
        Mode::Offload,
        "cut within 2 s, reconnects refused",
        run,
    )],
};

/// The longest a revoked session may live on.
const LIMIT: Duration = Duration::from_secs(2);

fn run(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    let (victim, other) = match (
        Watched::start(cx.lab, LIVE_ID, LIVE_ID),
        Watched::start(cx.lab, SUB_ID, SUB_ID),
    ) {
        (Ok(v), Ok(o)) => (v, o),
        (Err(e), _) | (_, Err(e)) => return Outcome::not_tried(e),
    };
    for w in [&victim, &other] {
        if !w.wait(Duration::from_secs(5), |w| w.subscribed) {
            return Outcome::not_tried("the subscribers did not subscribe");
        }
    }
    let mark = cx.log_mark();
    let t0 = Instant::now();
    let revoked = coffre_pki::Pki::open(&cx.lab.pki_dir)
        .and_then(|mut pki| pki.revoke(LIVE_ID))
        .map_err(|e| e.to_string())
        .and_then(|_| {
            cx.lab
                .broker
                .revoke_live(&[LIVE_ID])
                .map_err(|e| e.to_string())
        });
    let live = match revoked {
        Ok(r) => r,
        Err(e) => return Outcome::not_tried(format!("revocation failed: {e}")),
    };
    victim.wait(LIMIT * 2, |w| !w.disconnects.is_empty());
    let cut_after = victim.seen().disconnects.first().map(|d| d.0 - t0);
    let (seen_victim, _) = victim.finish();

    // It comes back: refused at the handshake.
    let dev = Device::boot(cx.lab, LIVE_ID, case.mode, LIVE_ID, false);
    let retry = publish_once(dev, LIVE_ID, cx.lab.broker_addr, |o| o.preflight = false);
    let refused = retry.connected.is_empty()
        && retry
            .error
            .as_deref()
            .is_some_and(|e| e.contains("CertificateRevoked"));
    let broker_refused = cx.wait_log(mark, "certificate verify failed");

    // The other subscriber is still there and still gets readings.
    let dev = Device::boot(cx.lab, OFFLOAD_ID, Mode::Offload, OFFLOAD_ID, false);
    let after = Instant::now();
    let published = publish_once(dev, OFFLOAD_ID, cx.lab.broker_addr, |_| {});
    let delivered = other.wait(Duration::from_secs(3), |w| {
        w.readings
            .iter()
            .any(|r| r.0 >= after && r.1 == OFFLOAD_ID)
    });
    let (seen_other, _) = other.finish();
    let other_kept = seen_other.connected == 1 && seen_other.disconnects.is_empty();

    let in_time = cut_after.is_some_and(|d| d <= LIMIT);
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    Outcome::new(
        in_time && refused && broker_refused.is_some() && delivered && other_kept && published.error.is_none(),
        match cut_after {
            Some(d) if refused => format!("cut in {}, reconnect refused", ms(d)),
            Some(d) => format!("cut in {}, reconnect ACCEPTED", ms(d)),
            None => "NOT cut".into(),
        },
        Evidence::measured(format!(
            "revoke → session cut as the device saw it: {}; broker reloaded its CRL in {}, cut {} in {}",
            cut_after.map(ms).unwrap_or_else(|| "never".into()),
            ms(live.reload),
            live.cut.join(", "),
            ms(live.total)
        ))
        .with(
            Source::Broker,
            cx.log_since(mark)
                .into_iter()
                .find(|l| l.contains(&format!("Client {LIVE_ID} been disconnected")))
                .unwrap_or_else(|| "(no disconnection line)".into()),
        )
        .with(
            Source::Client,
            format!(
                "{LIVE_ID}: {} | reconnect: {}",
                seen_victim
                    .disconnects
                    .first()
                    .map(|d| d.1.clone())
                    .unwrap_or_default(),
                retry.error.unwrap_or_else(|| "CONNECTED".into())
            ),
        )
        .with(
            Source::Subscriber,
            format!(
                "{SUB_ID}: {} session, {} disconnection, reading after the revocation {}",
                seen_other.connected,
                seen_other.disconnects.len(),
                if delivered { "received" } else { "MISSING" }
            ),
        ),
    )
}
