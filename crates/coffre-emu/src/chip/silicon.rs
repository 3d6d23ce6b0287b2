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

/// Whether UpdateExtra requires the config zone to be locked. CryptoAuthLib's
/// `calib_write_config_zone()` ends with two UpdateExtra commands on a chip
/// whose config is still unlocked and fails if they fail, so the silicon
/// accepts them.
pub const UPDATE_EXTRA_NEEDS_CONFIG_LOCK: bool = false;

/// Whether a slot lock (Lock mode `0x02 | slot << 2`) needs the data zone
/// locked. DS508 §2.4.3: the Lock command can set SlotLocked "either before
/// or after the Data zone is locked"; only the config lock is required.
pub const SLOT_LOCK_NEEDS_DATA_LOCK: bool = false;

/// Info mode 0x03 (GPIO) on a part in I2C mode: DS508 Table 9-26 says the
/// GPIO modes return an error when the pin is not configured for GPIO.
pub const INFO_GPIO_IN_I2C_MODE: Status = Status::Execution;

/// Verify with a public key that is not on P-256. No Microchip source
/// states it; a 608A user report (community.atmel.com comment 3072351)
/// shows 0x0F for a malformed chip-generated key and 0x01 for a valid
/// but wrong key.
pub const VERIFY_OFF_CURVE_KEY: Status = Status::Execution;

/// ECDH with a peer public key that is not on P-256 (same reasoning).
pub const ECDH_OFF_CURVE_KEY: Status = Status::Execution;

/// Whether GenDig over the OTP or a data slot needs the data zone locked
/// (the same precondition as reading them).
pub const GENDIG_NEEDS_DATA_LOCK: bool = true;

/// Status when the input MAC of an encrypted Write, PrivWrite or DeriveKey
/// does not match (DS508 §9.21 says only "an error").
pub const INPUT_MAC_MISMATCH: Status = Status::Execution;

/// Status when ChipOptions' KDF protection bits forbid the requested
/// output (clear output when encryption is required, or any output).
pub const KDF_OUTPUT_REFUSED: Status = Status::Execution;

/// KDF HKDF computes one HMAC-SHA256(key, message) (the HKDF-Extract step);
/// the 608's exact HKDF is described only in the NDA data sheet.
pub const KDF_HKDF_IS_ONE_HMAC: bool = true;

/// ECDH mode 0x04 (result to a slot) with a slot as source writes slot
/// KeyID | 1, as the 508-compatible mode does with ReadKey bit 3; with
/// TempKey as source it writes slot KeyID.
pub const ECDH_SLOT_TARGET_IS_NEXT_ODD: bool = true;

/// Verify(Validate/Invalidate) checks the signature with the parent public
/// key in the slot named by `SlotConfig[KeyID].ReadKey` (DS508 §2.2.6).
pub const VALIDATE_PARENT_IN_READKEY: bool = true;

/// Whether GenKey mode 0x10 digests the stored public key in its 72-byte
/// pad format. No: it digests X ‖ Y (64 bytes; pad bytes and the validity
/// nibble left out). CryptoAuthLib's verify_validate test, run on 608
/// silicon, computes the TempKey the chip must match with
/// `atcah_gen_key_msg` over the 64-byte key.
pub const GENKEY_STORED_PUBKEY_DIGEST_PADDED: bool = false;

/// Whether AES (ECB, GFM) leaves TempKey as it was. DS508 §2.5.1 clears
/// TempKey after every other command, but the 508 has no AES; CryptoAuthLib's
/// aes_encrypt_key_tempkey / aes_decrypt_key_tempkey tests load TempKey once
/// and run every AES block with it on 608 silicon.
pub const AES_KEEPS_TEMPKEY: bool = true;

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
