//! The index as a journal: batches, many handles at once, a PKI made by an
//! older version, and compaction when the CRL is written.

mod common;

use std::fs;

use coffre_pki::ca::{Index, IssueRequest, Kind, Status, Verdict};
use coffre_pki::{Error, InitOptions, IssueOptions, Pki};
use p256::PublicKey;

fn pk() -> PublicKey {
    PublicKey::from(common::device_key().verifying_key())
}

fn requests(prefix: &str, n: usize) -> Vec<IssueRequest> {
    (1..=n)
        .map(|i| IssueRequest {
            id: format!("{prefix}{i:04}"),
            public_key: pk(),
        })
        .collect()
}

#[test]
fn a_batch_is_indexed_written_and_verifiable() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pki = Pki::init(tmp.path(), &InitOptions::default()).unwrap();
    let before = fs::read(pki.index_path()).unwrap().len();
    let issued = pki
        .issue_batch(&requests("k-", 200), &IssueOptions::default())
        .unwrap();
    assert_eq!(issued.len(), 200);
    // One line per certificate, appended after what was there.
    let journal = fs::read_to_string(pki.index_path()).unwrap();
    assert!(journal.len() > before);
    assert_eq!(journal.lines().count(), 3 + 200);
    let reopened = Pki::open(tmp.path()).unwrap();
    for c in &issued {
        assert_eq!(fs::read_to_string(&c.path).unwrap(), c.pem);
        let e = reopened.store().by_serial(&c.serial).unwrap();
        assert_eq!((e.id.as_str(), e.kind), (c.id.as_str(), Kind::Device));
        assert_eq!(reopened.store().by_id(&c.id).count(), 1);
    }
    assert_eq!(
        pki.verify(issued[7].pem.as_bytes()).unwrap(),
        Verdict::Valid
    );
    let serials: std::collections::HashSet<_> = issued.iter().map(|c| c.serial.clone()).collect();
    assert_eq!(serials.len(), 200);
    // No temporary file is left behind.
    let dir = tmp.path().join("devices");
    assert!(fs::read_dir(&dir).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with('.')));
}

#[test]
fn a_batch_that_cannot_be_issued_whole_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pki = Pki::init(tmp.path(), &InitOptions::default()).unwrap();
    pki.issue_device("k-0002", &pk(), &IssueOptions::default())
        .unwrap();
    let journal = fs::read(pki.index_path()).unwrap();
    let err = pki
        .issue_batch(&requests("k-", 3), &IssueOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::DeviceExists { .. }), "{err}");
    let mut twice = requests("x-", 2);
    twice.push(twice[0].clone());
    let err = pki
        .issue_batch(&twice, &IssueOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateId(_)), "{err}");
    let mut bad = requests("y-", 2);
    bad[1].id = "../escape".into();
    let err = pki.issue_batch(&bad, &IssueOptions::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidId { .. }), "{err}");
    assert_eq!(fs::read(pki.index_path()).unwrap(), journal);
    assert_eq!(fs::read_dir(tmp.path().join("devices")).unwrap().count(), 1);
}

#[test]
fn handles_in_many_threads_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    Pki::init(tmp.path(), &InitOptions::default()).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let dir = tmp.path();
            s.spawn(move || {
                let mut pki = Pki::open(dir).unwrap();
                for i in 0..10 {
                    pki.issue_device(&format!("t{t}-{i}"), &pk(), &IssueOptions::default())
                        .unwrap();
                }
                pki.issue_batch(&requests(&format!("b{t}-"), 10), &IssueOptions::default())
                    .unwrap();
                pki.revoke(&format!("t{t}-0")).unwrap();
            });
        }
    });
    let pki = Pki::open(tmp.path()).unwrap();
    let devices = pki
        .index()
        .certificates
        .iter()
        .filter(|e| e.kind == Kind::Device);
    assert_eq!(devices.count(), 80);
    let s = pki.show().unwrap();
    assert_eq!(s.crl.revoked, 4);
    // Each revocation wrote a CRL: 1 at init, then 4.
    assert_eq!(s.crl.number, 5);
}

#[test]
fn a_pki_made_by_an_older_version_keeps_working() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut pki = Pki::init(d, &InitOptions::default()).unwrap();
    let old = pki
        .issue_device("old", &pk(), &IssueOptions::default())
        .unwrap();
    // Turn it into the older layout: the index in index.json, format 1.
    let index = Index {
        format: 1,
        ..pki.index().clone()
    };
    fs::write(
        d.join("index.json"),
        serde_json::to_vec_pretty(&index).unwrap(),
    )
    .unwrap();
    fs::remove_file(d.join("index.jsonl")).unwrap();
    fs::remove_file(d.join("index.lock")).unwrap();
    drop(pki);

    let mut pki = Pki::open(d).unwrap();
    assert!(pki.show().unwrap().warnings[0].contains("migrated"));
    assert!(d.join("index.json.migrated").exists() && !d.join("index.json").exists());
    pki.issue_device("new", &pk(), &IssueOptions::default())
        .unwrap();
    pki.revoke("old").unwrap();
    assert!(matches!(
        pki.verify(old.pem.as_bytes()).unwrap(),
        Verdict::Revoked { .. }
    ));
    let again = Pki::open(d).unwrap();
    assert!(again.show().unwrap().warnings.is_empty());
    let ids: Vec<_> = again
        .index()
        .certificates
        .iter()
        .map(|e| (e.id.as_str(), e.status))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("coffre CA", Status::Issued),
            ("localhost", Status::Issued),
            ("old", Status::Revoked),
            ("new", Status::Issued)
        ]
    );
}

#[test]
fn writing_the_crl_compacts_the_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pki = Pki::init(tmp.path(), &InitOptions::default()).unwrap();
    pki.issue_batch(&requests("k-", 5), &IssueOptions::default())
        .unwrap();
    pki.revoke("k-0003").unwrap();
    pki.refresh_crl().unwrap();
    let text = fs::read_to_string(pki.index_path()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Header, CA, broker, five devices; the revocation folded in.
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[0]["crl_number"], 3);
    assert!(lines.iter().all(|l| l["op"] != "revoke"));
    assert_eq!(lines[5]["status"], "revoked");
    assert_eq!(Pki::open(tmp.path()).unwrap().index(), pki.index());
}

#[test]
fn a_torn_last_line_costs_only_that_line() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pki = Pki::init(tmp.path(), &InitOptions::default()).unwrap();
    pki.issue_batch(&requests("k-", 3), &IssueOptions::default())
        .unwrap();
    // kill -9 in the middle of an append.
    let mut j = fs::read(pki.index_path()).unwrap();
    let whole = j.len();
    j.extend_from_slice(b"{\"op\":\"issue\",\"kind\":\"dev");
    fs::write(pki.index_path(), &j).unwrap();
    let mut pki = Pki::open(tmp.path()).unwrap();
    let w = &pki.show().unwrap().warnings;
    assert!(w[0].contains("cut short"), "{w:?}");
    assert_eq!(fs::read(pki.index_path()).unwrap().len(), whole);
    pki.issue_device("k-0004", &pk(), &IssueOptions::default())
        .unwrap();
    let again = Pki::open(tmp.path()).unwrap();
    assert_eq!(again.index().certificates.len(), 2 + 4);
}
