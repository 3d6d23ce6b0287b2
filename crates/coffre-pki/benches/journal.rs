//! Issuing a fleet's certificates one at a time and as one batch, and
//! opening a large journal. Prints figures; asserts nothing about time.
//!
//! `cargo bench -p coffre-pki --bench journal [-- N]` (default N = 1000).

use std::time::Instant;

use coffre_pki::ca::IssueRequest;
use coffre_pki::{InitOptions, IssueOptions, Pki};

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let key = p256::SecretKey::random(&mut rand_core::OsRng).public_key();
    let requests = |prefix: &str| -> Vec<IssueRequest> {
        (0..n)
            .map(|i| IssueRequest {
                id: format!("{prefix}{i:06}"),
                public_key: key,
            })
            .collect()
    };

    let tmp = tempfile::tempdir().expect("a temporary directory");
    let mut pki = Pki::init(tmp.path(), &InitOptions::default()).expect("init");
    let t = Instant::now();
    for r in requests("one-") {
        pki.issue_device(&r.id, &r.public_key, &IssueOptions::default())
            .expect("issue");
    }
    let single = t.elapsed();

    let t = Instant::now();
    pki.issue_batch(&requests("batch-"), &IssueOptions::default())
        .expect("batch");
    let batch = t.elapsed();

    let t = Instant::now();
    let reopened = Pki::open(tmp.path()).expect("open");
    let open = t.elapsed();
    let entries = reopened.index().certificates.len();
    let bytes = std::fs::metadata(reopened.index_path()).map_or(0, |m| m.len());

    let t = Instant::now();
    let mut reopened = reopened;
    reopened.revoke("one-000000").expect("revoke");
    let revoke = t.elapsed();

    let per = |d: std::time::Duration| d.as_secs_f64() * 1e3 / n as f64;
    println!(
        "{n} device certificates, journal on {}",
        tmp.path().display()
    );
    println!(
        "  one at a time   {:>8.1} ms total  {:.3} ms/cert (lock + append + sync + file sync each)",
        single.as_secs_f64() * 1e3,
        per(single)
    );
    println!(
        "  one batch       {:>8.1} ms total  {:.3} ms/cert (one lock, one append + sync, one syncfs)",
        batch.as_secs_f64() * 1e3,
        per(batch)
    );
    println!(
        "  open            {:>8.1} ms for {entries} entries ({bytes} bytes of journal)",
        open.as_secs_f64() * 1e3
    );
    println!(
        "  revoke          {:>8.1} ms (CRL + compaction of the journal)",
        revoke.as_secs_f64() * 1e3
    );
}
