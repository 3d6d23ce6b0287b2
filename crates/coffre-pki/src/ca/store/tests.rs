use super::*;

fn entry(id: &str, serial: &str) -> IndexEntry {
    let t = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
    IndexEntry {
        kind: Kind::Device,
        id: id.into(),
        serial: Serial::parse(serial).unwrap(),
        fingerprint_sha256: "AA".into(),
        status: Status::Issued,
        not_before: t,
        not_after: t,
        issued_at: t,
        revoked_at: None,
    }
}

/// A journal holding `n` devices d1..dn with serials 0A01.., in `dir`.
fn journal(dir: &std::path::Path, n: usize) -> Store {
    let mut s = Store::create(Layout::new(dir));
    let lock = s.lock_new().unwrap();
    s.compact(&lock).unwrap();
    let entries = (1..=n)
        .map(|i| entry(&format!("d{i}"), &format!("0A{i:02}")))
        .collect();
    s.append(&lock, entries).unwrap();
    s
}

#[test]
fn lookups_by_id_and_serial() {
    let d = tempfile::tempdir().unwrap();
    let mut s = journal(d.path(), 2);
    let lock = s.lock().unwrap();
    s.append(&lock, vec![entry("d1", "0A09")]).unwrap();
    assert_eq!(s.by_id("d1").count(), 2);
    assert_eq!(s.by_id("nobody").count(), 0);
    assert_eq!(
        s.by_serial(&Serial::parse("a02").unwrap()).unwrap().id,
        "d2"
    );
    let when = Timestamp::now();
    assert_eq!(s.revoke(&lock, "nobody", when), None);
    assert_eq!(s.revoke(&lock, "0a:09", when).unwrap().len(), 1);
    let again = s.revoke(&lock, "d1", when).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].serial.as_str(), "0A01");
    assert_eq!(s.revoke(&lock, "d1", when), Some(Vec::new()));
}

#[test]
fn a_second_handle_sees_what_the_first_appended() {
    let d = tempfile::tempdir().unwrap();
    let mut a = journal(d.path(), 1);
    let mut b = Store::open(Layout::new(d.path())).unwrap();
    let lock = a.lock().unwrap();
    a.append(&lock, vec![entry("d2", "0B02")]).unwrap();
    drop(lock);
    assert_eq!(b.index().certificates.len(), 1);
    let lock = b.lock().unwrap();
    assert_eq!(b.index().certificates.len(), 2);
    b.append(&lock, vec![entry("d3", "0B03")]).unwrap();
    drop(lock);
    // After a compaction by b (a new file), a reads it whole again.
    let lock = b.lock().unwrap();
    b.revoke(&lock, "d1", Timestamp::now()).unwrap();
    b.set_crl_number(&lock, 5);
    b.compact(&lock).unwrap();
    drop(lock);
    drop(a.lock().unwrap());
    assert_eq!(a.index(), b.index());
    assert_eq!(a.index().crl_number, 5);
    assert_eq!(a.by_id("d1").next().unwrap().status, Status::Revoked);
}

#[test]
fn a_torn_last_line_is_dropped_with_a_warning_and_nothing_else_is_lost() {
    let d = tempfile::tempdir().unwrap();
    let s = journal(d.path(), 3);
    let path = s.path();
    let whole = fs::read(&path).unwrap();
    // The process was killed in the middle of its write.
    let mut torn = whole.clone();
    torn.extend_from_slice(br#"{"op":"issue","kind":"device","id":"d4","ser"#);
    fs::write(&path, &torn).unwrap();
    let mut s = Store::open(Layout::new(d.path())).unwrap();
    assert_eq!(s.index().certificates.len(), 3);
    assert!(s.warnings()[0].contains("cut short"), "{:?}", s.warnings());
    // The file was cut back to whole lines, so the next append is sound.
    assert_eq!(fs::read(&path).unwrap(), whole);
    let lock = s.lock().unwrap();
    s.append(&lock, vec![entry("d4", "0A04")]).unwrap();
    drop(lock);
    let s = Store::open(Layout::new(d.path())).unwrap();
    assert_eq!(s.index().certificates.len(), 4);
    assert!(s.warnings().is_empty());

    // Zeros after a crash of the machine are a torn tail too.
    let mut zeros = fs::read(&path).unwrap();
    zeros.extend_from_slice(&[0u8; 64]);
    zeros.push(b'\n');
    fs::write(&path, &zeros).unwrap();
    let s = Store::open(Layout::new(d.path())).unwrap();
    assert_eq!(s.index().certificates.len(), 4);
    assert_eq!(s.warnings().len(), 1);
}

#[test]
fn a_damaged_line_before_the_end_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let s = journal(d.path(), 3);
    let path = s.path();
    let text = fs::read_to_string(&path).unwrap();
    let damaged = text.replacen("\"d2\"", "\"d2", 1);
    fs::write(&path, damaged).unwrap();
    let err = Store::open(Layout::new(d.path())).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("line 3"), "{err}");
    // Not a journal at all.
    fs::write(&path, "{\"op\":\"issue\"}\n").unwrap();
    assert!(Store::open(Layout::new(d.path())).is_err());
    fs::write(&path, "{\"op\":\"header\",\"format\":9,\"crl_number\":1}\n").unwrap();
    let err = Store::open(Layout::new(d.path())).unwrap_err();
    assert!(err.to_string().contains("format 9"), "{err}");
}

/// Found by the `pki_journal` fuzz target: a journal whose only line was
/// cut short opened as an empty PKI, and the next issue appended records
/// with no header before them: the PKI never opened again. Such a journal
/// (or an empty one) is refused, and left as it is.
#[test]
fn a_journal_without_a_whole_header_line_is_refused_and_left_alone() {
    let d = tempfile::tempdir().unwrap();
    let s = journal(d.path(), 1);
    let path = s.path();
    drop(s);
    for bytes in [&b""[..], b"{\"op\":\"head", b"\x07\x02\x00\x00"] {
        fs::write(&path, bytes).unwrap();
        let err = Store::open(Layout::new(d.path())).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("no whole line"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), bytes, "the journal was changed");
    }
}

#[test]
fn compaction_folds_revocations_into_one_line_per_certificate() {
    let d = tempfile::tempdir().unwrap();
    let mut s = journal(d.path(), 3);
    let lock = s.lock().unwrap();
    s.revoke(&lock, "d2", Timestamp::now()).unwrap();
    s.set_crl_number(&lock, 2);
    s.compact(&lock).unwrap();
    drop(lock);
    let text = fs::read_to_string(s.path()).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].contains("\"op\":\"header\"") && lines[0].contains("\"crl_number\":2"));
    assert!(lines[2].contains("\"status\":\"revoked\""), "{}", lines[2]);
    let back = Store::open(Layout::new(d.path())).unwrap();
    assert_eq!(back.index(), s.index());
    // No temporary file is left behind.
    let names = names(d.path());
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

#[test]
fn an_index_json_of_an_older_version_is_migrated_once() {
    let d = tempfile::tempdir().unwrap();
    let old = Index {
        format: INDEX_FORMAT,
        crl_number: 3,
        certificates: vec![entry("a", "0A01"), entry("b", "0B01")],
    };
    fs::write(
        d.path().join("index.json"),
        serde_json::to_vec_pretty(&old).unwrap(),
    )
    .unwrap();
    let s = Store::open(Layout::new(d.path())).unwrap();
    assert_eq!(s.index().certificates, old.certificates);
    assert_eq!(s.index().crl_number, 3);
    assert!(s.warnings()[0].contains("migrated"), "{:?}", s.warnings());
    assert!(!d.path().join("index.json").exists());
    assert!(d.path().join("index.json.migrated").exists());
    let again = Store::open(Layout::new(d.path())).unwrap();
    assert_eq!(again.index().certificates, old.certificates);
    assert!(again.warnings().is_empty());

    // A damaged old index is reported, not replaced.
    let e = tempfile::tempdir().unwrap();
    fs::write(e.path().join("index.json"), b"{ not json").unwrap();
    let err = Store::open(Layout::new(e.path())).unwrap_err();
    assert!(err.to_string().contains("index.json"), "{err}");
    assert!(!e.path().join("index.jsonl").exists());
}

#[test]
fn no_index_at_all_is_not_found() {
    let d = tempfile::tempdir().unwrap();
    let err = Store::open(Layout::new(d.path())).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(!d.path().join("index.lock").exists());
}

/// Seen in CI: two compactions by another handle gave the journal back
/// the inode number of the file a handle had read (the first compaction
/// freed it, the second's new file got it), so the handle took the new
/// file for the old one grown, and read it from the middle of a line.
/// A handle keeps the file it read open, so its inode cannot be reused.
#[test]
fn a_handle_is_not_fooled_by_a_reused_inode_after_two_compactions() {
    let d = tempfile::tempdir().unwrap();
    let mut a = journal(d.path(), 3);
    let mut b = Store::open(Layout::new(d.path())).unwrap();
    for round in 0..20u32 {
        drop(a.lock().unwrap());
        let lock = b.lock().unwrap();
        for k in 0..2 {
            let id = format!("r{round}-{k}");
            b.append(
                &lock,
                vec![entry(&id, &format!("{:04X}{k}", round + 0x100))],
            )
            .unwrap();
            b.revoke(&lock, &id, Timestamp::now()).unwrap();
            b.set_crl_number(&lock, u64::from(round) * 2 + k + 1);
            b.compact(&lock).unwrap();
        }
        drop(lock);
        let lock = a.lock().unwrap();
        drop(lock);
        assert_eq!(a.index(), b.index(), "round {round}");
    }
}

/// What a process that may not write the directory does (the CLI test
/// `a_read_only_pki_can_be_shown_but_not_changed` runs it on a read-only
/// mount): an older `index.json` is read as it is, not migrated.
#[test]
fn a_reader_that_may_not_write_reads_an_index_json_as_it_is() {
    let d = tempfile::tempdir().unwrap();
    let old = Index {
        format: INDEX_FORMAT,
        crl_number: 2,
        certificates: vec![entry("a", "0A01")],
    };
    let path = d.path().join("index.json");
    fs::write(&path, serde_json::to_vec(&old).unwrap()).unwrap();
    let mut s = Store::empty(Layout::new(d.path()));
    s.read_shared().unwrap();
    assert_eq!(s.index().certificates, old.certificates);
    assert_eq!(s.index().crl_number, 2);
    assert!(
        s.warnings()[0].contains("read as it is"),
        "{:?}",
        s.warnings()
    );
    assert_eq!(names(d.path()), ["index.json"]);
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
