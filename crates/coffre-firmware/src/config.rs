//! The firmware's settings: the file `coffre firmware config` writes and
//! the firmware build embeds (settings, the CA certificate and the device
//! certificate). Never the Wi-Fi password: the build takes it from the
//! environment.
//!
//! ```text
//! # coffre firmware settings for device m5go-1 (`coffre firmware config`)
//! id = m5go-1
//! broker = 192.168.1.10:8883
//! server-name = localhost
//! wifi-ssid = lab
//! topic = m5go/env
//! interval-secs = 10
//! keep-alive-secs = 60
//! key = offload 0
//! chip-address = 0x35
//! ntp = pool.ntp.org
//! issued-at = 1764600000
//! ca:
//! -----BEGIN CERTIFICATE-----
//! …
//! -----END CERTIFICATE-----
//! certificate:
//! -----BEGIN CERTIFICATE-----
//! …
//! -----END CERTIFICATE-----
//! ```
//!
//! `example = yes` marks a file made for the emulator's test PKI: it
//! builds, and the firmware refuses to go online with it.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use coffre_device::boot::KeyMode;

/// The topic of the lab.
pub const DEFAULT_TOPIC: &str = "m5go/env";

/// The firmware's settings.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// Device id: MQTT client id and the readings' `device`.
    pub id: String,
    /// Broker host name or IPv4 address.
    pub broker_host: String,
    /// Broker port (8883).
    pub broker_port: u16,
    /// The name checked against the broker certificate (default: the
    /// broker host).
    pub server_name: String,
    /// Wi-Fi network name.
    pub wifi_ssid: String,
    /// Topic of the readings.
    pub topic: String,
    /// Seconds between two readings.
    pub interval_secs: u32,
    /// MQTT keep alive, seconds.
    pub keep_alive_secs: u16,
    /// Where the key is: offload (slot 0, or 2–4) or lab (slot 8).
    pub key: KeyMode,
    /// I2C address of the secure element (7-bit).
    pub chip_address: u8,
    /// SNTP server (`none`: no SNTP, the `issued-at` bound only).
    pub ntp: Option<String>,
    /// Unix time the file was written: a lower bound for the clock when
    /// SNTP does not answer.
    pub issued_at: u64,
    /// Made for the emulator's test PKI: never goes online.
    pub example: bool,
    /// The CA certificate (DER) that must have issued the broker's.
    pub ca_der: Vec<u8>,
    /// The device certificate (DER).
    pub cert_der: Vec<u8>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("id", &self.id)
            .field("broker_host", &self.broker_host)
            .field("broker_port", &self.broker_port)
            .field("server_name", &self.server_name)
            .field("wifi_ssid", &self.wifi_ssid)
            .field("key", &self.key)
            .field("example", &self.example)
            .finish_non_exhaustive()
    }
}

/// What is wrong with a settings file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line, 0 when the whole file is concerned.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "firmware settings: {}", self.message)
        } else {
            write!(f, "firmware settings, line {}: {}", self.line, self.message)
        }
    }
}

impl core::error::Error for ConfigError {}

fn err(line: usize, message: impl ToString) -> ConfigError {
    ConfigError {
        line,
        message: message.to_string(),
    }
}

/// `key = offload N` (N = 0, 2, 3 or 4) or `key = lab`.
pub fn parse_key_mode(v: &str) -> Option<KeyMode> {
    let mut w = v.split_whitespace();
    match (w.next(), w.next(), w.next()) {
        (Some("lab"), None, None) => Some(KeyMode::Lab),
        (Some("offload"), slot, None) => {
            let slot: u8 = slot.unwrap_or("0").parse().ok()?;
            matches!(slot, 0 | 2..=4).then_some(KeyMode::Offload { slot })
        }
        _ => None,
    }
}

/// The `key` value of a key mode (what [`parse_key_mode`] reads back).
pub fn key_mode_str(mode: KeyMode) -> String {
    match mode {
        KeyMode::Lab => "lab".into(),
        KeyMode::Offload { slot } => alloc::format!("offload {slot}"),
    }
}

/// A 7-bit I2C address, `0x35` or `53`.
pub fn parse_chip_address(v: &str) -> Option<u8> {
    let a = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u8::from_str_radix(h, 16).ok()?,
        None => v.parse().ok()?,
    };
    (0x08..=0x77).contains(&a).then_some(a)
}

/// `HOST:PORT` (port 8883 when left out).
pub fn parse_broker(v: &str) -> Option<(String, u16)> {
    let (host, port) = match v.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (v, 8883),
    };
    (!host.is_empty() && port != 0 && !host.contains(char::is_whitespace))
        .then(|| (host.to_string(), port))
}

impl Settings {
    /// Parse a settings file.
    pub fn parse(text: &str) -> Result<Settings, ConfigError> {
        let mut id = None;
        let mut broker = None;
        let mut server_name = None;
        let mut ssid = None;
        let mut topic = None;
        let mut interval = 10u32;
        let mut keep_alive = 60u16;
        let mut key = KeyMode::Offload { slot: 0 };
        let mut chip_address = 0x35u8;
        let mut ntp = Some("pool.ntp.org".to_string());
        let mut issued_at = 0u64;
        let mut example = false;
        let mut ca = None;
        let mut cert = None;
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
        while let Some((n, line)) = lines.next() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(label) = line.strip_suffix(':') {
                let slot = match label {
                    "ca" => &mut ca,
                    "certificate" => &mut cert,
                    other => return Err(err(n, alloc::format!("unknown section `{other}:`"))),
                };
                let mut pem = String::new();
                for (m, l) in lines.by_ref() {
                    pem.push_str(l);
                    pem.push('\n');
                    if l.starts_with("-----END") {
                        break;
                    }
                    if m > n + 200 {
                        return Err(err(n, "certificate without an END line"));
                    }
                }
                let (kind, der) = pem_rfc7468::decode_vec(pem.as_bytes())
                    .map_err(|e| err(n, alloc::format!("`{label}:` is not one PEM block ({e})")))?;
                if kind != "CERTIFICATE" {
                    return Err(err(
                        n,
                        alloc::format!("`{label}:` holds a {kind}, not a CERTIFICATE"),
                    ));
                }
                *slot = Some(der);
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(err(n, "expected `name = value`"));
            };
            let (k, v) = (k.trim(), v.trim());
            let bad = |what: &str| err(n, alloc::format!("{k}: {what}"));
            match k {
                "id" if !v.is_empty() && v.len() <= 64 => id = Some(v.to_string()),
                "id" => return Err(bad("1 to 64 characters")),
                "broker" => {
                    broker = Some(parse_broker(v).ok_or_else(|| bad("expected HOST:PORT"))?)
                }
                "server-name" => server_name = Some(v.to_string()),
                "wifi-ssid" if v.len() <= 32 => ssid = Some(v.to_string()),
                "wifi-ssid" => return Err(bad("at most 32 bytes")),
                "topic" if !v.is_empty() => topic = Some(v.to_string()),
                "interval-secs" => {
                    interval = v
                        .parse()
                        .ok()
                        .filter(|s| (1..=86_400).contains(s))
                        .ok_or_else(|| bad("1 to 86400"))?
                }
                "keep-alive-secs" => {
                    keep_alive = v
                        .parse()
                        .ok()
                        .filter(|s| *s >= 5)
                        .ok_or_else(|| bad("5 to 65535"))?
                }
                "key" => {
                    key = parse_key_mode(v)
                        .ok_or_else(|| bad("`offload N` (N = 0, 2, 3, 4) or `lab`"))?
                }
                "chip-address" => {
                    chip_address = parse_chip_address(v)
                        .ok_or_else(|| bad("a 7-bit I2C address such as 0x35"))?
                }
                "ntp" => ntp = (v != "none" && !v.is_empty()).then(|| v.to_string()),
                "issued-at" => issued_at = v.parse().map_err(|_| bad("Unix seconds"))?,
                "example" => example = matches!(v, "yes" | "true"),
                _ => return Err(err(n, alloc::format!("unknown setting `{k}`"))),
            }
        }
        let missing = |what: &str| {
            err(
                0,
                alloc::format!("`{what}` is missing; write the file with `coffre firmware config`"),
            )
        };
        let (broker_host, broker_port) = broker.ok_or_else(|| missing("broker"))?;
        let settings = Settings {
            id: id.ok_or_else(|| missing("id"))?,
            server_name: server_name.unwrap_or_else(|| broker_host.clone()),
            broker_host,
            broker_port,
            wifi_ssid: ssid.ok_or_else(|| missing("wifi-ssid"))?,
            topic: topic.unwrap_or_else(|| DEFAULT_TOPIC.to_string()),
            interval_secs: interval,
            keep_alive_secs: keep_alive,
            key,
            chip_address,
            ntp,
            issued_at,
            example,
            ca_der: ca.ok_or_else(|| missing("ca:"))?,
            cert_der: cert.ok_or_else(|| missing("certificate:"))?,
        };
        if u32::from(settings.keep_alive_secs) <= settings.interval_secs {
            return Err(err(
                0,
                alloc::format!(
                    "keep-alive-secs ({}) must be longer than interval-secs ({}): the firmware reads from the broker only while it publishes",
                    settings.keep_alive_secs, settings.interval_secs
                ),
            ));
        }
        Ok(settings)
    }

    /// The file for these settings (what [`Settings::parse`] reads back).
    pub fn to_text(&self) -> String {
        use core::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# coffre firmware settings for device {} (written by `coffre firmware config`).",
            self.id
        );
        let _ = writeln!(
            s,
            "# The Wi-Fi password is not here: the build reads COFFRE_WIFI_PASSWORD."
        );
        if self.example {
            let _ = writeln!(s, "# EXAMPLE: made for the emulator's test PKI; the firmware refuses to go online with it.");
            let _ = writeln!(s, "example = yes");
        }
        let _ = writeln!(s, "id = {}", self.id);
        let _ = writeln!(s, "broker = {}:{}", self.broker_host, self.broker_port);
        let _ = writeln!(s, "server-name = {}", self.server_name);
        let _ = writeln!(s, "wifi-ssid = {}", self.wifi_ssid);
        let _ = writeln!(s, "topic = {}", self.topic);
        let _ = writeln!(s, "interval-secs = {}", self.interval_secs);
        let _ = writeln!(s, "keep-alive-secs = {}", self.keep_alive_secs);
        let _ = writeln!(s, "key = {}", key_mode_str(self.key));
        let _ = writeln!(s, "chip-address = 0x{:02X}", self.chip_address);
        let _ = writeln!(s, "ntp = {}", self.ntp.as_deref().unwrap_or("none"));
        let _ = writeln!(s, "issued-at = {}", self.issued_at);
        for (label, der) in [("ca", &self.ca_der), ("certificate", &self.cert_der)] {
            let _ = writeln!(s, "{label}:");
            if let Ok(pem) =
                pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, der)
            {
                s.push_str(&pem);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Settings {
        Settings {
            id: "m5go-1".into(),
            broker_host: "192.168.1.10".into(),
            broker_port: 8883,
            server_name: "localhost".into(),
            wifi_ssid: "lab net".into(),
            topic: DEFAULT_TOPIC.into(),
            interval_secs: 10,
            keep_alive_secs: 60,
            key: KeyMode::Offload { slot: 2 },
            chip_address: 0x35,
            ntp: Some("pool.ntp.org".into()),
            issued_at: 1_764_600_000,
            example: false,
            ca_der: alloc::vec![0x30, 0x03, 0x02, 0x01, 0x01],
            cert_der: alloc::vec![0x30, 0x03, 0x02, 0x01, 0x02],
        }
    }

    #[test]
    fn round_trips() {
        let s = sample();
        assert_eq!(Settings::parse(&s.to_text()).unwrap(), s);
        let mut e = sample();
        e.example = true;
        e.ntp = None;
        e.key = KeyMode::Lab;
        assert_eq!(Settings::parse(&e.to_text()).unwrap(), e);
    }

    #[test]
    fn says_what_is_wrong_and_where() {
        let text = sample().to_text();
        let bad = text.replace("key = offload 2", "key = offload 1");
        let e = Settings::parse(&bad).unwrap_err();
        assert_eq!(e.line, 10, "{e}");
        assert!(e.to_string().contains("offload N"), "{e}");
        let no_ca = text.replacen("ca:", "# ca:", 1);
        assert!(Settings::parse(&no_ca).is_err());
        let slow = text.replace("keep-alive-secs = 60", "keep-alive-secs = 10");
        assert!(Settings::parse(&slow)
            .unwrap_err()
            .to_string()
            .contains("keep-alive"));
        assert!(Settings::parse("wat")
            .unwrap_err()
            .to_string()
            .contains("line 1"));
        assert!(Settings::parse("")
            .unwrap_err()
            .to_string()
            .contains("coffre firmware config"));
    }

    #[test]
    fn the_committed_example_parses_and_stays_offline() {
        let s = Settings::parse(include_str!("../../../firmware/esp32c3/example.conf")).unwrap();
        assert!(s.example, "example.conf must be marked `example = yes`");
        assert_eq!(s.key, KeyMode::Offload { slot: 0 });
        assert!(coffre_atcacert::der::subject_public_key(&s.cert_der).is_ok());
    }

    #[test]
    fn small_values() {
        assert_eq!(parse_broker("b:1883"), Some(("b".into(), 1883)));
        assert_eq!(parse_broker("b"), Some(("b".into(), 8883)));
        assert_eq!(parse_broker(":1"), None);
        assert_eq!(
            parse_key_mode("offload"),
            Some(KeyMode::Offload { slot: 0 })
        );
        assert_eq!(parse_key_mode("offload 8"), None);
        assert_eq!(parse_chip_address("0x35"), Some(0x35));
        assert_eq!(parse_chip_address("0x6A"), Some(0x6A));
        assert_eq!(parse_chip_address("0x80"), None);
    }
}
