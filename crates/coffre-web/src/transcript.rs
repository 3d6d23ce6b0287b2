//! What a probe on SDA/SCL sees while the device reads its chip, with the
//! bytes of private keys marked.

use coffre_emu::transcript::{Direction, Event};
use coffre_pki::audit::{classify, Content};
use coffre_proto::zone::BLOCK_SIZE;
use serde::Serialize;

use crate::chip::{CaptureRun, CaptureStep};

/// Private-key bytes inside a slot's content: `[start, end)`.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRegion {
    /// The slot.
    pub slot: u8,
    /// The slot's bytes as the chip serves them.
    pub slot_bytes: Vec<u8>,
    /// Start of the key material in the slot.
    pub start: usize,
    /// End (exclusive).
    pub end: usize,
}

impl std::fmt::Debug for KeyRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRegion")
            .field("slot", &self.slot)
            .field("start", &self.start)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl Drop for KeyRegion {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.slot_bytes);
    }
}

/// The key regions of slots whose content is a length-prefixed PKCS#8 key.
pub fn key_regions(slots: &[Option<zeroize::Zeroizing<Vec<u8>>>]) -> Vec<KeyRegion> {
    slots
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            let b = b.as_ref()?;
            match classify(b) {
                Content::LabPkcs8Key { der_len, .. } => Some(KeyRegion {
                    slot: i as u8,
                    slot_bytes: b.to_vec(),
                    start: 2,
                    end: 2 + der_len,
                }),
                _ => None,
            }
        })
        .collect()
}

/// Byte ranges `[start, end)` of `bytes` (one bus event) that carry key
/// material: every 32-byte block of a key slot that holds key bytes is
/// looked for in the event, and the key part of each match is marked.
pub fn mark_key_bytes(bytes: &[u8], regions: &[KeyRegion]) -> Vec<[usize; 2]> {
    let mut marks: Vec<[usize; 2]> = Vec::new();
    for r in regions {
        for (b, block) in r.slot_bytes.chunks(BLOCK_SIZE).enumerate() {
            let at = b * BLOCK_SIZE;
            let (ks, ke) = (r.start.max(at), r.end.min(at + block.len()));
            if ks >= ke || block.len() < 4 {
                continue;
            }
            let mut from = 0;
            while let Some(pos) = find(&bytes[from..], block) {
                let p = from + pos;
                marks.push([p + ks - at, p + ke - at]);
                from = p + 1;
            }
        }
    }
    marks.sort_unstable();
    marks.dedup();
    marks
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[derive(Debug, Serialize)]
pub(crate) struct TranscriptView {
    chip: String,
    run: &'static str,
    source: String,
    steps: Vec<StepView>,
    events: Vec<EventView>,
    key: KeyView,
    summary: String,
}

#[derive(Debug, Serialize)]
struct StepView {
    step: &'static str,
    text: String,
    events: usize,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct EventView {
    step: &'static str,
    t_us: u64,
    dir: Direction,
    address: String,
    device: Option<&'static str>,
    acked: bool,
    hex: String,
    note: Option<String>,
    key: Vec<[usize; 2]>,
}

#[derive(Debug, Serialize)]
struct KeyView {
    slots: Vec<u8>,
    key_bytes_in_chip: usize,
    key_bytes_on_wire: usize,
    events_with_key: usize,
    label: Option<&'static str>,
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// Build the page's view of a capture.
pub(crate) fn transcript_view(
    chip: &str,
    source: String,
    run: CaptureRun,
    steps: &[CaptureStep],
    regions: &[KeyRegion],
) -> TranscriptView {
    let mut events = Vec::new();
    let mut on_wire = 0;
    let mut with_key = 0;
    let mut step_views = Vec::new();
    for s in steps {
        step_views.push(StepView {
            step: s.step,
            text: s.text.clone(),
            events: s.transcript.events.len(),
            error: s.error.clone(),
        });
        for e in &s.transcript.events {
            let key = if e.dir == Direction::Read {
                mark_key_bytes(&e.bytes, regions)
            } else {
                Vec::new()
            };
            if !key.is_empty() {
                with_key += 1;
                on_wire += key.iter().map(|[a, b]| b - a).sum::<usize>();
            }
            events.push(event_view(s.step, e, key));
        }
    }
    let in_chip: usize = regions.iter().map(|r| r.end - r.start).sum();
    let slots: Vec<u8> = regions.iter().map(|r| r.slot).collect();
    let summary = if on_wire > 0 {
        format!(
            "A probe on SDA/SCL captures {on_wire} private-key bytes in {with_key} read responses: the whole PKCS#8 key of slot {} crosses the bus in clear.",
            slots
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else if in_chip > 0 {
        "The chip holds a readable private key, but this run did not read it.".into()
    } else {
        "No private-key byte crosses the bus in this run.".into()
    };
    TranscriptView {
        chip: chip.to_string(),
        run: run.name(),
        source,
        steps: step_views,
        events,
        key: KeyView {
            slots,
            key_bytes_in_chip: in_chip,
            key_bytes_on_wire: on_wire,
            events_with_key: with_key,
            label: (on_wire > 0).then_some(crate::view::KEY_LABEL),
        },
        summary,
    }
}

fn event_view(step: &'static str, e: &Event, key: Vec<[usize; 2]>) -> EventView {
    let marked: usize = key.iter().map(|[a, b]| b - a).sum();
    let note = match (&e.note, marked) {
        (Some(n), 0) => Some(n.clone()),
        (Some(n), m) => Some(format!("{n}; {m} private-key bytes")),
        (None, 0) => None,
        (None, m) => Some(format!("response data: {m} private-key bytes")),
    };
    EventView {
        step,
        t_us: e.t_us,
        dir: e.dir,
        address: format!("0x{:02X}", e.address),
        device: e.device,
        acked: e.acked,
        hex: hex_upper(&e.bytes),
        note,
        key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_only_key_part_of_a_block() {
        let mut slot = vec![0u8; 416];
        slot[0] = 0;
        slot[1] = 40;
        for (i, b) in slot[2..42].iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        let r = KeyRegion {
            slot: 8,
            slot_bytes: slot.clone(),
            start: 2,
            end: 42,
        };
        // A read response: count, block 1, CRC.
        let mut ev = vec![35u8];
        ev.extend_from_slice(&slot[32..64]);
        ev.extend_from_slice(&[0xAA, 0xBB]);
        assert_eq!(mark_key_bytes(&ev, std::slice::from_ref(&r)), vec![[1, 11]]);
        let mut ev0 = vec![35u8];
        ev0.extend_from_slice(&slot[0..32]);
        assert_eq!(
            mark_key_bytes(&ev0, std::slice::from_ref(&r)),
            vec![[3, 33]]
        );
        // An all-zero block of padding is never searched.
        assert!(mark_key_bytes(&[0u8; 35], &[r]).is_empty());
    }
}
