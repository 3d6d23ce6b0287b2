//! A minimal host for emulator tests, written against the protocol core
//! only (not the driver), so a driver bug cannot hide an emulator bug.
#![allow(dead_code, reason = "each test file uses a different subset")]

use coffre_emu::board::Board;
use coffre_emu::clock::{Clock, Timing};
use coffre_emu::presets::Preset;
use coffre_proto::packet::{parse_response, Command, MAX_PACKET};
use coffre_proto::Error;
use embedded_hal::i2c::I2c;
use std::time::Duration;

pub struct Host {
    pub board: Board,
    pub addr: u8,
}

impl Host {
    pub fn new(preset: Preset) -> Host {
        Host::on(Board::with_clock(
            preset.build(),
            Timing::Instant,
            Clock::manual(),
        ))
    }

    pub fn on(board: Board) -> Host {
        let addr = board.with_chip(|c| coffre_emu::device::Device::address(c));
        Host { board, addr }
    }

    pub fn advance(&self, d: Duration) {
        self.board.bus.clock().advance(d);
    }

    /// Wake pulse, tWHI, read the 4-byte after-wake answer.
    pub fn wake(&mut self) -> Result<[u8; 4], coffre_emu::bus::BusError> {
        let _ = self.board.bus.write(0x00, &[]);
        self.advance(Duration::from_micros(1500));
        let mut r = [0u8; 4];
        self.board.bus.read(self.addr, &mut r)?;
        Ok(r)
    }

    pub fn idle(&mut self) {
        self.board.bus.write(self.addr, &[0x02]).unwrap();
    }

    pub fn sleep(&mut self) {
        self.board.bus.write(self.addr, &[0x01]).unwrap();
    }

    /// Send a raw body (no word address) and read the response the way
    /// CryptoAuthLib does: count byte, then the rest.
    pub fn raw(&mut self, body: &[u8]) -> Vec<u8> {
        let mut w = vec![0x03];
        w.extend_from_slice(body);
        self.board.bus.write(self.addr, &w).expect("command ACKed");
        self.read_response()
    }

    pub fn read_response(&mut self) -> Vec<u8> {
        let mut count = [0u8; 1];
        for _ in 0..5000 {
            if self.board.bus.read(self.addr, &mut count).is_ok() {
                let mut rest = vec![0u8; count[0].max(1) as usize - 1];
                self.board.bus.read(self.addr, &mut rest).unwrap();
                let mut r = vec![count[0]];
                r.extend(rest);
                return r;
            }
            self.advance(Duration::from_millis(1));
        }
        panic!("chip never answered");
    }

    /// Wake, run `cmd`, idle; the decoded data or the chip's error.
    pub fn run(&mut self, cmd: &Command) -> Result<Vec<u8>, Error> {
        self.wake().expect("chip wakes");
        let mut b = [0u8; MAX_PACKET];
        let n = cmd.encode_body(&mut b).unwrap();
        let rsp = self.raw(&b[..n]);
        self.idle();
        parse_response(&rsp).map(|d| d.to_vec())
    }

    pub fn status(&mut self, cmd: &Command) -> Result<(), Error> {
        self.run(cmd).map(|_| ())
    }
}
