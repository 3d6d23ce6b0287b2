//! The kit-protocol daemon's framer and session, in front of an emulated
//! chip, fed whatever a TCP client could send.

use coffre_emu::board::{Board, BoardKit};
use coffre_emu::clock::Timing;
use coffre_emu::kit::{Frame, KitSession, LineFramer};
use coffre_emu::presets::Preset;

/// Longest reply the session may write: the kit protocol's line limit.
const MAX_REPLY: usize = 4096;

/// Bytes from a client, cut into lines and answered one by one. Every
/// reply is one printable line ending in `\n`.
pub fn session(data: &[u8]) {
    let (preset, data) = match data.split_first() {
        Some((b, rest)) if b & 1 == 1 => (Preset::Blank, rest),
        Some((_, rest)) => (Preset::Tngtls, rest),
        None => (Preset::Tngtls, data),
    };
    let mut target = BoardKit::new(Board::new(crate::preset(preset), Timing::Instant));
    let mut session = KitSession::new();
    let mut framer = LineFramer::new();
    // Feed in two pieces, as TCP may split a request anywhere.
    let cut = data.len() / 2;
    for part in [&data[..cut], &data[cut..]] {
        for frame in framer.push(part) {
            let reply = match frame {
                Frame::Line(line) => session.process_line(&line, &mut target),
                Frame::TooLong => KitSession::overlong_reply(),
            };
            assert!(reply.ends_with('\n'), "reply without a line end: {reply:?}");
            assert!(reply.len() <= MAX_REPLY, "reply of {} bytes", reply.len());
            assert_eq!(
                reply.matches('\n').count(),
                1,
                "reply of several lines: {reply:?}"
            );
            assert!(
                reply
                    .bytes()
                    .all(|b| b == b'\n' || (0x20..0x7F).contains(&b)),
                "non-printable reply: {reply:?}"
            );
        }
    }
}
