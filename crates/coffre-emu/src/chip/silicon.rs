//! Every choice the emulator makes where public sources do not settle what
//! the silicon does, in one place, so each can be corrected when better
//! evidence appears. `docs/chip-facts.md` gives the sources and the
//! reasoning for each.

use coffre_proto::Status;

/// Status for a config-zone write after the config zone is locked.
/// CryptoAuthLib documents only "must be unlocked"; an execution error is
/// what the chip returns for every other state-forbidden access.
pub const CONFIG_WRITE_AFTER_LOCK: Status = Status::Execution;

/// Status for Lock on a zone (or slot) that is already locked.
pub const RELOCK: Status = Status::Execution;

/// Status for a Lock whose summary CRC does not match the zone contents.
pub const LOCK_CRC_MISMATCH: Status = Status::Execution;

/// Status for data-zone or OTP writes while the config zone is unlocked.
/// The datasheet's lock model requires the configuration to be fixed
/// before any slot is written; CryptoAuthLib's tests always lock config
/// first.
pub const DATA_WRITE_BEFORE_CONFIG_LOCK: Status = Status::Execution;

/// Status for an address outside the zone or slot (block past the end,
/// slot above 15): the command's parameters are illegal.
pub const BAD_ADDRESS: Status = Status::Parse;

/// What a 32-byte read returns for bytes past the end of a 36- or 72-byte
/// slot (CryptoAuthLib's `calib_read_pubkey` reads block 2 of a 72-byte
/// slot with a 32-byte read and uses only 8 bytes, so the read succeeds).
pub const PAST_SLOT_END_FILL: u8 = 0x00;

/// What an I2C read returns once the output buffer is exhausted, or when
/// nothing is pending. An idle I2C bus reads as 0xFF (pull-ups).
pub const EMPTY_READ_FILL: u8 = 0xFF;

/// Whether word address 0x00 ("reset") rewinds the output buffer so the
/// last response can be read again. CryptoAuthLib sends it before every
/// response read and relies on it to retry a read after a CRC error.
pub const RESET_REWINDS_OUTPUT: bool = true;

/// Whether UpdateExtra requires the config zone to be locked.
pub const UPDATE_EXTRA_NEEDS_CONFIG_LOCK: bool = true;

/// Whether external-message Sign requires the data zone to be locked.
/// The ATECC508A data sheet lists no such condition for Sign (it needs a
/// valid key and message); see docs/chip-facts.md.
pub const SIGN_NEEDS_DATA_LOCK: bool = false;

/// Whether GenKey (create) requires the config zone to be locked.
pub const GENKEY_NEEDS_CONFIG_LOCK: bool = true;

/// Whether Sign and Verify invalidate the message source (TempKey or the
/// message digest buffer) after use.
pub const SIGN_INVALIDATES_SOURCE: bool = true;

/// Whether a 4-byte write to the data zone is allowed after the data zone
/// is locked (clear-text writes to a WriteConfig=Always slot).
pub const WORD_WRITES_AFTER_DATA_LOCK: bool = true;

/// The wake response when the power-on self test has failed. CryptoAuthLib
/// checks for `04 07 C4 40`, but `C4 40` is not the CRC of `04 07`; we send
/// the computed CRC (`04 07 40 C2`).
pub const SELFTEST_FAIL_WAKE_USES_COMPUTED_CRC: bool = true;

/// The 32-byte pattern Random returns before the config zone is locked.
pub const UNLOCKED_RANDOM_PATTERN: [u8; 32] = [
    0xFF, 0xFF, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00,
    0xFF, 0xFF, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00,
];
