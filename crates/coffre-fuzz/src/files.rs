//! Targets of files coffre finds on disk after a crash, a restore or a
//! careless hand: the device's durable queue.

use coffre_agent::queue::{DurableQueue, ACKED_FILE, QUEUE_FILE};

/// A queue directory whose marker and queue file hold arbitrary bytes
/// (the first byte splits the input between them). Opening it never
/// panics; what it keeps is consistent; and it reopens to the same state.
pub fn queue(data: &[u8]) {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = (cut as usize).min(rest.len());
    let (marker, file) = rest.split_at(cut);
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join(ACKED_FILE), marker).expect("write marker");
    std::fs::write(dir.path().join(QUEUE_FILE), file).expect("write queue");
    let Ok(q) = DurableQueue::open(dir.path()) else {
        return;
    };
    let acked = q.acked();
    let seqs: Vec<u64> = q.iter().map(|r| r.seq).collect();
    assert!(
        seqs.iter().all(|&s| s > acked),
        "a reading at or below the marker is pending"
    );
    assert!(
        seqs.iter().all(|&s| s < q.next_seq()),
        "the next sequence number reuses a pending one"
    );
    let next = q.next_seq();
    drop(q);
    let again = DurableQueue::open(dir.path()).expect("a queue that opened reopens");
    let seqs2: Vec<u64> = again.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, seqs2, "reopening changed the pending readings");
    assert!(
        again.next_seq() >= next,
        "reopening moved sequence numbers back"
    );
}

/// The PKI's files: a copy of a small PKI (`fuzz/fixtures/pki`, a test CA
/// made for this) whose journal `index.jsonl` holds arbitrary bytes.
///
/// A journal that does not open is left as it was (nothing of the operator's
/// record is lost or rewritten); one that opens keeps every certificate it
/// listed through the next issue and a reopening.
pub fn journal(data: &[u8]) {
    use coffre_pki::ca::{IssueOptions, Pki};
    const FILES: &[(&str, &[u8])] = &[
        (
            "ca.crt.pem",
            include_bytes!("../../../fuzz/fixtures/pki/ca.crt.pem"),
        ),
        (
            "ca.key.pem",
            include_bytes!("../../../fuzz/fixtures/pki/ca.key.pem"),
        ),
        (
            "broker.crt.pem",
            include_bytes!("../../../fuzz/fixtures/pki/broker.crt.pem"),
        ),
        (
            "broker.key.pem",
            include_bytes!("../../../fuzz/fixtures/pki/broker.key.pem"),
        ),
        (
            "crl.pem",
            include_bytes!("../../../fuzz/fixtures/pki/crl.pem"),
        ),
        (
            "devices/fuzz-device.crt.pem",
            include_bytes!("../../../fuzz/fixtures/pki/devices/fuzz-device.crt.pem"),
        ),
    ];
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::create_dir(dir.path().join("devices")).expect("devices directory");
    for (name, bytes) in FILES {
        std::fs::write(dir.path().join(name), bytes).expect("write fixture");
    }
    let index = dir.path().join("index.jsonl");
    std::fs::write(&index, data).expect("write journal");
    let mut pki = match Pki::open(dir.path()) {
        Ok(p) => p,
        Err(e) => {
            assert!(!e.to_string().is_empty(), "an error says what is wrong");
            let after = std::fs::read(&index).expect("the journal is still there");
            assert_eq!(after, data, "a journal that does not open was rewritten");
            return;
        }
    };
    let before = pki.index().certificates.clone();
    let key = p256::SecretKey::from_slice(&[7u8; 32])
        .expect("a fixed key")
        .public_key();
    let issued = pki.issue_device("fuzz-new-device", &key, &IssueOptions::default());
    drop(pki);
    let again = Pki::open(dir.path()).expect("a PKI that opened reopens");
    let after = &again.index().certificates;
    for e in &before {
        assert!(
            after
                .iter()
                .any(|a| a.serial == e.serial && a.status == e.status),
            "certificate {} was lost",
            e.serial
        );
    }
    if let Ok(cert) = issued {
        assert!(
            after.iter().any(|a| a.serial == cert.serial),
            "the certificate just issued is not in the journal"
        );
    }
}
