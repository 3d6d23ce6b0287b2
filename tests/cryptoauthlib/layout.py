"""The configuration the suite gives a blank chip, and how it gives it.

The config zone is CryptoAuthLib's own `test_ecc608_configdata`
(test/api_calib/test_calib_config.c), which its test suite runs on real
ATECC608 parts; the slot roles below are read from it:

| slot | SlotConfig | KeyConfig | role |
| --- | --- | --- | --- |
| 0 | 0x2FAF | 0x0033 | P-256 private: sign ext/int, ECDH (output to slot 1 on request), GenKey |
| 1 | 0x44C4 | 0x001C | secret, encrypted read/write with key 4 (ECDH output of slot 0) |
| 2 | 0x2087 | 0x0013 | P-256 private: sign ext/int, ECDH, GenKey |
| 3 | 0xF4C4 | 0x001C | secret, encrypted read, DeriveKey with MAC (parent 4) |
| 4 | 0x0F8F | 0x003C | secret, clear writes: the IO protection key and MAC/HMAC key |
| 5 | 0x0F0F | 0x103A | AES key type, clear |
| 6 | 0x8F9F | 0x001C | secret, NoMac |
| 7 | 0x6483 | 0x0033 | P-256 private: sign, GenKey, PrivWrite (encrypted, key 4) |
| 8 | 0x44C4 | 0x001C | secret data, encrypted read/write with key 4 |
| 9 | 0x64C4 | 0x001C | secret, encrypted read/write, DeriveKey (roll, no MAC) |
| 10 | 0x0F0F | 0x0038 | AES key slot, clear |
| 11 | 0x0F0F | 0x0030 | P-256 public key (verify stored) |
| 12, 13 | 0x0F0F | 0x003C | clear data |
| 14 | 0x0F0F | 0x0032 | P-256 public key with PubInfo (validate/invalidate) |
| 15 | 0x0F0F | 0x0030 | P-256 public key |

ChipOptions 0x400E: IO protection key enabled (slot 4), KDF AES enabled,
ECDH and KDF output in the clear allowed.
"""

import cryptoauthlib as cal
from cryptoauthlib.library import AtcaReference, get_cryptoauthlib

ADDRESS8 = 0xC0

CONFIG = bytes([
    0x01, 0x23, 0x00, 0x00, 0x00, 0x00, 0x60, 0x00, 0x04, 0x05, 0x06, 0x07, 0xEE, 0x01, 0x01, 0x00,
    0xC0, 0x00, 0xA1, 0x00, 0xAF, 0x2F, 0xC4, 0x44, 0x87, 0x20, 0xC4, 0xF4, 0x8F, 0x0F, 0x0F, 0x0F,
    0x9F, 0x8F, 0x83, 0x64, 0xC4, 0x44, 0xC4, 0x64, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F,
    0x0F, 0x0F, 0x0F, 0x0F, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF,
    0x00, 0x00, 0x00, 0x00, 0xFF, 0x84, 0x03, 0xBC, 0x09, 0x69, 0x76, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0x0E, 0x40, 0x00, 0x00, 0x00, 0x00,
    0x33, 0x00, 0x1C, 0x00, 0x13, 0x00, 0x1C, 0x00, 0x3C, 0x00, 0x3A, 0x10, 0x1C, 0x00, 0x33, 0x00,
    0x1C, 0x00, 0x1C, 0x00, 0x38, 0x00, 0x30, 0x00, 0x3C, 0x00, 0x3C, 0x00, 0x32, 0x00, 0x30, 0x00,
])

# CryptoAuthLib's g_slot4_key: the IO protection key and the MAC/HMAC key.
SLOT4_KEY = bytes.fromhex("3780e63d4968ade5d822c013fcc323845d1b569fe705b60006feec145a0db1e3")
IO_KEY_SLOT = 4
# Known secrets written in the clear before the data lock.
SLOT1_VALUE = bytes(range(0x10, 0x30))
SLOT3_VALUE = bytes(range(0x30, 0x50))
SLOT6_VALUE = bytes(range(0x50, 0x70))
SLOT8_VALUE = bytes((7 * i + 3) & 0xFF for i in range(416))
SLOT9_VALUE = bytes(range(0x70, 0x90))
OTP_VALUE = bytes((0xA5 ^ i) for i in range(64))


def name(status):
    try:
        return f"{cal.Status(status).name} (0x{status & 0xFF:02X})"
    except ValueError:
        return f"0x{status & 0xFF:02X}"


def ok(status, what):
    """Assert a CryptoAuthLib call succeeded, naming the call and the status."""
    assert status == cal.Status.ATCA_SUCCESS, f"{what}: {name(status)}"


def slot_config(config, slot):
    return config[20 + 2 * slot] | config[21 + 2 * slot] << 8


def key_config(config, slot):
    return config[96 + 2 * slot] | config[97 + 2 * slot] << 8


def configure(served):
    """Configure and lock a blank chip as a CryptoAuthLib user does."""
    ok(cal.atcab_write_config_zone(CONFIG), "atcab_write_config_zone")
    ok(cal.atcab_lock_config_zone(), "atcab_lock_config_zone")
    for slot, value in [
        (1, SLOT1_VALUE),
        (3, SLOT3_VALUE),
        (4, SLOT4_KEY),
        (6, SLOT6_VALUE),
        (9, SLOT9_VALUE),
    ]:
        ok(cal.atcab_write_zone(2, slot, 0, 0, value, 32), f"atcab_write_zone slot {slot}")
    ok(cal.atcab_write_bytes_zone(2, 8, 0, SLOT8_VALUE, len(SLOT8_VALUE)), "atcab_write_bytes_zone slot 8")
    ok(cal.atcab_write_bytes_zone(1, 0, 0, OTP_VALUE, len(OTP_VALUE)), "atcab_write_bytes_zone OTP")
    for slot in (0, 2, 7):
        pub = bytearray(64)
        ok(cal.atcab_genkey(slot, pub), f"atcab_genkey slot {slot}")
    ok(cal.atcab_lock_data_zone(), "atcab_lock_data_zone")
    locked = AtcaReference(False)
    ok(cal.atcab_is_locked(1, locked), "atcab_is_locked data")
    assert locked.value, "data zone not locked after atcab_lock_data_zone"


def serial_number():
    sn = bytearray(9)
    ok(cal.atcab_read_serial_number(sn), "atcab_read_serial_number")
    return bytes(sn)


def read_config():
    cfg = bytearray(128)
    ok(cal.atcab_read_config_zone(cfg), "atcab_read_config_zone")
    return bytes(cfg)


# The Python wrappers pass bytes(x) for optional pointers, so they cannot send
# NULL where the C API means "none"; these call libcryptoauth.so directly.


def derivekey(mode, target, mac=None):
    """atcab_derivekey(); mac=None sends no MAC (roll/create without one)."""
    return get_cryptoauthlib().atcab_derivekey(mode, target, None if mac is None else bytes(mac))


def priv_write_clear(slot, priv36):
    """atcab_priv_write() with write_key NULL: the unencrypted PrivWrite."""
    return get_cryptoauthlib().atcab_priv_write(slot, bytes(priv36), 0, None, bytes(20))
