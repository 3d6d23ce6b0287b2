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
