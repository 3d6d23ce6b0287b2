//! What the index holds, and the journal's lines.

use serde::{Deserialize, Serialize};

use crate::types::{Serial, Timestamp};

/// Version of the journal format written by this crate.
pub const JOURNAL_FORMAT: u32 = 2;

/// What a certificate in the index is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The CA itself.
    Ca,
    /// The MQTT broker (TLS server).
    Broker,
    /// A device (TLS client).
    Device,
}

/// Status of a certificate in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Issued and not revoked.
    Issued,
    /// Revoked: listed in `crl.pem`.
    Revoked,
}

/// One certificate in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// What it is for.
    pub kind: Kind,
    /// Subject CN (for devices: the device id).
    pub id: String,
    /// Serial number, upper-case hex as `openssl x509 -serial` prints it.
    pub serial: Serial,
    /// SHA-256 fingerprint, as `openssl x509 -fingerprint -sha256` prints it.
    pub fingerprint_sha256: String,
    /// Issued or revoked.
    pub status: Status,
    /// notBefore.
    pub not_before: Timestamp,
    /// notAfter.
    pub not_after: Timestamp,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
}

/// The content of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Format version of the file it was read from.
    pub format: u32,
    /// Number of the last CRL written.
    pub crl_number: u64,
    /// Every certificate issued, oldest first.
    pub certificates: Vec<IndexEntry>,
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(crate) enum Record {
    /// First line: the format and the number of the last CRL written.
    Header {
        /// [`JOURNAL_FORMAT`].
        format: u32,
        /// Number of the last CRL written.
        crl_number: u64,
    },
    /// A certificate was issued.
    Issue(IndexEntry),
    /// A certificate was revoked.
    Revoke {
        /// Its serial.
        serial: Serial,
        /// When.
        at: Timestamp,
    },
}

/// Split `buf` into records. Returns the records, the bytes consumed (whole
/// lines only) and whether a last line was cut short; or the line number
/// and what is wrong with a damaged whole line.
pub(crate) fn parse_lines(
    buf: &[u8],
    from_start: bool,
) -> std::result::Result<(Vec<Record>, usize, bool), (usize, String)> {
    let mut records = Vec::new();
    let mut used = 0;
    let mut n = 0;
    while used < buf.len() {
        let rest = &buf[used..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            // No newline: a write cut short.
            return Ok((records, used, true));
        };
        let line = &rest[..end];
        if line.iter().all(|&b| b == 0) && !line.is_empty() {
            // Zeros where a line should be: blocks allocated, never written
            // (a crash of the machine rather than of the process).
            if rest[end + 1..].iter().all(|&b| b == 0 || b == b'\n') {
                return Ok((records, used, true));
            }
        }
        let r: Record =
            serde_json::from_slice(line).map_err(|e| (n, format!("not a journal record ({e})")))?;
        if n == 0 && from_start && !matches!(r, Record::Header { .. }) {
            return Err((0, "the journal does not start with its header".into()));
        }
        if let Record::Header { format, .. } = r {
            if format != JOURNAL_FORMAT {
                return Err((
                    n,
                    format!("format {format} is not the supported format {JOURNAL_FORMAT}"),
                ));
            }
        }
        records.push(r);
        used += end + 1;
        n += 1;
    }
    Ok((records, used, false))
}
