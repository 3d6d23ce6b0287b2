//! `coffre firmware config`: the settings file the ESP32-C3 firmware
//! embeds (settings, CA and device certificates), written from the PKI.
//! The Wi-Fi password is never written: the firmware build reads it from
//! COFFRE_WIFI_PASSWORD.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use coffre_device::boot::KeyMode;
use coffre_firmware::config::{parse_broker, parse_chip_address, parse_key_mode, DEFAULT_TOPIC};
use coffre_firmware::Settings;
use coffre_pki::ca::layout::Layout;

use crate::output::{print_json, say};

/// `coffre firmware …`.
#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)] // clap's --help text, not rustdoc
#[derive(Subcommand, Debug)]
pub enum FirmwareCommand {
    /// Write the settings file the firmware build embeds: broker, Wi-Fi network, key
    /// mode, and the CA and device certificates from the PKI.
    #[command(
        after_help = "The file is checked by the parser the firmware runs, then written \
atomically. It holds no secret: the Wi-Fi password is taken from COFFRE_WIFI_PASSWORD when the \
firmware is built (`make firmware`), and the key stays in the chip.\n\nExample:\n  \
coffre pki init --broker-name broker.lab\n  \
coffre provision --bus linux:/dev/i2c-1@0x35 --id m5go-1\n  \
coffre firmware config --pki pki --id m5go-1 --broker 192.168.1.10:8883 --server-name broker.lab --wifi-ssid lab\n  \
COFFRE_WIFI_PASSWORD=… make firmware"
    )]
    Config(ConfigArgs),
}

/// `coffre firmware config`.
#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)] // clap's --help text, not rustdoc
#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// PKI directory (its ca.crt.pem and devices/<ID>.crt.pem are embedded).
    #[arg(long, default_value = "pki")]
    pub pki: PathBuf,
    /// Device id: its certificate's CN, the MQTT client id.
    #[arg(long)]
    pub id: String,
    /// The broker, HOST:PORT (an IPv4 address or a name the network's DNS resolves).
    #[arg(long, value_name = "HOST:PORT")]
    pub broker: String,
    /// The name checked against the broker certificate (default: the broker's host).
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// Wi-Fi network name (the password comes from COFFRE_WIFI_PASSWORD at build time).
    #[arg(long, value_name = "NAME")]
    pub wifi_ssid: String,
    /// Topic of the readings.
    #[arg(long, default_value = DEFAULT_TOPIC)]
    pub topic: String,
    /// Seconds between two readings.
    #[arg(long, default_value_t = 10)]
    pub interval: u32,
    /// MQTT keep alive, seconds (longer than --interval).
    #[arg(long, default_value_t = 60)]
    pub keep_alive: u16,
    /// Key mode: 'offload N' (the chip signs with slot N: 0, 2, 3, 4) or 'lab' (slot 8;
    /// the firmware must be built with its `lab` feature).
    #[arg(long, default_value = "offload 0", value_parser = parse_key)]
    pub key: KeyMode,
    /// The secure element's I2C address (Unit ATECC608B: 0x35).
    #[arg(long, default_value = "0x35", value_parser = parse_address)]
    pub chip_address: u8,
    /// SNTP server for certificate dates ('none': the time this file was written is the
    /// lower bound).
    #[arg(long, default_value = "pool.ntp.org")]
    pub ntp: String,
    /// Mark the file as an example (the firmware builds with it and never goes online).
    #[arg(long)]
    pub example: bool,
    /// The file to write.
    #[arg(long, default_value = "firmware/esp32c3/settings.conf")]
    pub out: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_key(s: &str) -> std::result::Result<KeyMode, String> {
    parse_key_mode(&s.replace(':', " "))
        .ok_or_else(|| "expected 'offload N' (N = 0, 2, 3, 4) or 'lab'".to_owned())
}

fn parse_address(s: &str) -> std::result::Result<u8, String> {
    parse_chip_address(s).ok_or_else(|| "expected a 7-bit I2C address such as 0x35".to_owned())
}

fn der_of(path: &std::path::Path, what: &'static str) -> Result<Vec<u8>> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let certs = coffre_agent::tls::parse_certificates(&pem, what)?;
    Ok(certs[0].as_ref().to_vec())
}

/// `coffre firmware …`.
pub fn run(cmd: FirmwareCommand) -> Result<()> {
    match cmd {
        FirmwareCommand::Config(a) => config(&a),
    }
}

fn config(a: &ConfigArgs) -> Result<()> {
    let layout = Layout::new(&a.pki);
    let ca_der = der_of(&layout.ca_cert(), "the CA certificate")
        .context("no CA: create the PKI with 'coffre pki init'")?;
    let cert_der =
        der_of(&layout.device_cert(&a.id), "the device certificate").with_context(|| {
            format!(
                "no certificate for device '{}': provision it first ('coffre provision --id {}')",
                a.id, a.id
            )
        })?;
    let Some((broker_host, broker_port)) = parse_broker(&a.broker) else {
        bail!("--broker: expected HOST:PORT, got '{}'", a.broker);
    };
    let issued_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let settings = Settings {
        id: a.id.clone(),
        server_name: a.server_name.clone().unwrap_or_else(|| broker_host.clone()),
        broker_host,
        broker_port,
        wifi_ssid: a.wifi_ssid.clone(),
        topic: a.topic.clone(),
        interval_secs: a.interval,
        keep_alive_secs: a.keep_alive,
        key: a.key,
        chip_address: a.chip_address,
        ntp: (a.ntp != "none").then(|| a.ntp.clone()),
        issued_at,
        example: a.example,
        ca_der,
        cert_der,
    };
    let text = settings.to_text();
    // What the firmware will read: checked by its own parser.
    let parsed = Settings::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    if parsed.ca_der != settings.ca_der || parsed.cert_der != settings.cert_der {
        bail!("the certificates do not read back from the settings file");
    }
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            bail!(
                "{} does not exist: run this from the repository's top directory, or give --out",
                dir.display()
            );
        }
    }
    coffre_fs::write_atomic(&a.out, text.as_bytes(), 0o644)
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    if a.json {
        return print_json(&serde_json::json!({
            "path": a.out,
            "id": parsed.id,
            "broker": format!("{}:{}", parsed.broker_host, parsed.broker_port),
            "server_name": parsed.server_name,
            "wifi_ssid": parsed.wifi_ssid,
            "key": coffre_firmware::config::key_mode_str(parsed.key),
            "chip_address": parsed.chip_address,
            "example": parsed.example,
        }));
    }
    say!(
        "wrote {}: device {}, broker {}:{} (name {}), Wi-Fi \"{}\", key {}",
        a.out.display(),
        parsed.id,
        parsed.broker_host,
        parsed.broker_port,
        parsed.server_name,
        parsed.wifi_ssid,
        coffre_firmware::config::key_mode_str(parsed.key)
    );
    say!("next: COFFRE_WIFI_PASSWORD=… make firmware   (the password is read at build time, never written)");
    Ok(())
}
