//! The real sensor drivers, over the emulated bus, read what the model says.

use std::time::Duration;

use coffre_emu::board::Board;
use coffre_emu::clock::{Clock, Timing};
use coffre_emu::presets::Preset;
use coffre_sensors::{bmp280, sht30};

#[test]
fn drivers_read_the_model_within_resolution() {
    let board = Board::with_clock(Preset::Tngtls.build(), Timing::Instant, Clock::manual());
    let mut bus = board.bus.clone();
    let mut delay = board.delay();
    let env = board.environment();
    let sht = sht30::Sht30::new(sht30::DEFAULT_ADDRESS);
    let bmp = bmp280::Bmp280::init(&mut bus, bmp280::DEFAULT_ADDRESS).unwrap();
    for minute in [0u64, 7, 30, 90] {
        board.bus.clock().advance(Duration::from_secs(minute * 60));
        let t0 = board.bus.clock().now();
        let m = sht.measure(&mut bus, &mut delay).unwrap();
        let truth = env.at(t0);
        assert!(
            (m.temperature_c as f64 - truth.temperature_c).abs() < 0.01,
            "{m:?} vs {truth:?}"
        );
        assert!(
            (m.humidity_pct as f64 - truth.humidity_pct).abs() < 0.01,
            "{m:?} vs {truth:?}"
        );
        let t1 = board.bus.clock().now();
        let p = bmp.measure(&mut bus, &mut delay).unwrap();
        let truth = env.at(t1);
        assert!(
            (p.temperature_c as f64 - truth.temperature_c).abs() < 0.01,
            "{p:?} vs {truth:?}"
        );
        assert!(
            (p.pressure_hpa as f64 - truth.pressure_hpa).abs() < 0.02,
            "{p:?} vs {truth:?}"
        );
    }
}

#[test]
fn two_boards_live_in_different_rooms() {
    let a = Board::new(Preset::Tngtls.build(), Timing::Instant);
    let b = Board::new(Preset::Tngtls.build(), Timing::Instant);
    assert_ne!(a.environment(), b.environment());
}
