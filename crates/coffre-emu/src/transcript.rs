//! A record of every I2C transaction on the emulated bus: what a logic
//! analyser clipped to SDA/SCL would capture.

use serde::Serialize;
use std::fmt;
use std::fmt::Write as _;

/// What happened on the wires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The host wrote bytes to the device.
    Write,
    /// The host read bytes from the device.
    Read,
    /// SDA was held low to wake devices (a write to address 0x00).
    Wake,
}

/// One I2C operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Bus clock, microseconds since the bus was created.
    pub t_us: u64,
    /// Direction.
    pub dir: Direction,
    /// 7-bit address on the wire.
    pub address: u8,
    /// Name of the device that answered, if any.
    pub device: Option<&'static str>,
    /// Whether the address was acknowledged.
    pub acked: bool,
    /// Bytes on the wire (for reads, as the host received them).
    #[serde(serialize_with = "hex_bytes")]
    pub bytes: Vec<u8>,
    /// What the bytes mean, when the device can tell.
    pub note: Option<String>,
}

fn hex_bytes<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(b))
}

/// Bytes as lowercase hex without separators.
pub fn hex(b: &[u8]) -> String {
    coffre_proto::hex::Hex::lower(b).to_string()
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = match self.dir {
            Direction::Write => "W",
            Direction::Read => "R",
            Direction::Wake => "WAKE",
        };
        write!(
            f,
            "{:>12.3} ms  {:<4} 0x{:02X} {:<9} {}",
            self.t_us as f64 / 1000.0,
            dir,
            self.address,
            self.device.unwrap_or("-"),
            if self.acked { "ACK " } else { "NACK" }
        )?;
        if !self.bytes.is_empty() {
            write!(
                f,
                " {}",
                coffre_proto::hex::Hex::upper(&self.bytes).spaced()
            )?;
        }
        if let Some(n) = &self.note {
            write!(f, "  ; {n}")?;
        }
        Ok(())
    }
}

/// A captured sequence of events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Transcript {
    /// Events in order.
    pub events: Vec<Event>,
}

impl Transcript {
    /// Human-readable text, one event per line.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for e in &self.events {
            let _ = writeln!(s, "{e}");
        }
        s
    }

    /// JSON lines, one event per line.
    pub fn to_json_lines(&self) -> String {
        let mut s = String::new();
        for e in &self.events {
            if let Ok(j) = serde_json::to_string(e) {
                s.push_str(&j);
                s.push('\n');
            }
        }
        s
    }

    /// Every byte that crossed the bus in either direction, concatenated
    /// per event (what a probe sees), for searching.
    pub fn wire_bytes(&self) -> Vec<u8> {
        self.events
            .iter()
            .flat_map(|e| e.bytes.iter().copied())
            .collect()
    }

    /// True if `needle` appears inside any single event's bytes, or spread
    /// over consecutive reads/writes (a probe reassembles multi-block
    /// transfers).
    pub fn contains(&self, needle: &[u8]) -> bool {
        if needle.is_empty() {
            return true;
        }
        self.events
            .iter()
            .any(|e| e.bytes.windows(needle.len()).any(|w| w == needle))
            || self.wire_bytes().windows(needle.len()).any(|w| w == needle)
    }
}
