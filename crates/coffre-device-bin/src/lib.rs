//! The device program's library: what both `coffre-device` and the `coffre`
//! CLI need to reach a chip, and nothing more.
//!
//! [`bus`]: the `--bus` specification (`linux:/dev/i2c-N[@ADDR]`,
//! `emu:IMAGE[@ADDR]`) and the bus it opens. The emulator is compiled in
//! only with the `emu` feature (the default; `coffre` always has it), and
//! used only when an `emu:` bus is asked for.

pub mod bus;
