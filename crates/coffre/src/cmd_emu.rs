//! `coffre emu …`.

use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use coffre_emu::board::{Board, BoardKit};
use coffre_emu::clock::Timing;
use coffre_emu::image;
use coffre_emu::kit::KitTarget;
use coffre_emu::presets::Preset;
use coffre_proto::hex::Hex;
use serde_json::json;

use crate::output::{hex, print_json};

/// `coffre emu new`.
pub fn new(preset: Preset, out: &Path, force: bool, json: bool) -> Result<()> {
    let nv = preset.build();
    image::create(out, &nv, force)?;
    let cfg = &nv.config;
    if json {
        return print_json(&json!({
            "image": out.display().to_string(),
            "preset": preset.name(),
            "serial_number": hex(&cfg.serial_number()),
            "address": format!("0x{:02X}", cfg.i2c_address()),
            "config_locked": cfg.config_locked(),
            "data_locked": cfg.data_locked(),
        }));
    }
    println!(
        "created {} : emulated ATECC608B, preset {}, serial {}, address 0x{:02X}, config {}, data {}",
        out.display(),
        preset.name(),
        Hex::upper(&cfg.serial_number()).spaced(),
        cfg.i2c_address(),
        if cfg.config_locked() { "locked" } else { "unlocked" },
        if cfg.data_locked() { "locked" } else { "unlocked" },
    );
    println!("next: coffre chip info --bus emu:{}", out.display());
    Ok(())
}

/// `coffre emu serve`.
pub fn serve(
    image_path: &Path,
    listen: &str,
    timing: Timing,
    opts: coffre_emu::kit::ServeOptions,
) -> Result<()> {
    let board = Board::open(image_path, timing)?;
    let listener = TcpListener::bind(listen).with_context(|| {
        format!("cannot listen on {listen}: is the port in use? pick another with --listen 127.0.0.1:PORT")
    })?;
    let addr = listener.local_addr()?;
    let target: Arc<Mutex<dyn KitTarget>> = Arc::new(Mutex::new(BoardKit::new(board)));
    // Ctrl-C ends the process; every chip change is already saved
    // atomically, so nothing is lost.
    let stop = Arc::new(AtomicBool::new(false));
    eprintln!(
        "serving {} over the kit protocol on {addr} (Ctrl-C to stop); try: printf 'board:device(00)\\n' | nc {} {}",
        image_path.display(),
        addr.ip(),
        addr.port()
    );
    // Machine-readable line for scripts that started us with port 0.
    println!("listening {addr}");
    coffre_emu::kit::serve_with(listener, target, stop, opts).context("kit server failed")?;
    Ok(())
}
