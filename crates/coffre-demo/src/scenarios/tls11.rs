//! `openssl s_client` offers TLS 1.1 only: refused, TLS 1.2 is the minimum.

use crate::prelude::*;

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "tls-1.1",
    proves: &[Threat::InformationDisclosure],
    cases: &[Case::new(
        "TLS 1.1 offered",
        Mode::Any,
        "refused: TLS 1.2 minimum",
        run,
    )],
};

fn run(cx: &mut Ctx<'_>, _case: &Case) -> Outcome {
    let mark = cx.log_mark();
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &cx.lab.broker_addr.to_string(),
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
            "-CAfile",
        ])
        .arg(cx.lab.pki_dir.join("ca.crt.pem"))
        .stdin(std::process::Stdio::null())
        .output();
    let (ok, client) = match out {
        Ok(o) => (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .find(|l| l.contains("alert") || l.contains("error"))
                .unwrap_or("")
                .to_string(),
        ),
        Err(e) => (true, format!("openssl not runnable: {e}")),
    };
    let line = cx.wait_log(mark, "protocol");
    Outcome::new(
        !ok && line.is_some(),
        if ok {
            "TLS 1.1 ACCEPTED"
        } else {
            "handshake refused"
        },
        Evidence::broker(line.unwrap_or_default()).with(Source::Openssl, client),
    )
}
