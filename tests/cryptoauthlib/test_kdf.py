"""KDF: PRF (TLS 1.2 P_SHA256), AES and HKDF, with sources TempKey and the
alternate key buffer and targets output, encrypted output, TempKey and a
slot. CryptoAuthLib's own test vectors (measured on silicon) and the
algorithms written out here agree."""

import os

import cryptoauthlib as cal

from host import io_decrypt
import layout
from layout import ok
import oracle

ALG_PRF, ALG_AES, ALG_HKDF = 0x00, 0x20, 0x40
SRC_TEMPKEY, SRC_ALTKEYBUF = 0x00, 0x03
TGT_TEMPKEY, TGT_SLOT, TGT_OUTPUT, TGT_OUTPUT_ENC = 0x00, 0x08, 0x10, 0x14
PRF_KEY_32, PRF_TARGET_64 = 0x01, 0x100
HKDF_MSG_INPUT = 0x02

NONCE = bytes(range(16)) * 2
DATA16 = bytes(range(16))
# atca_tests_kdf.c expected_kdf_prf / expected_kdf_aes
CAL_PRF_VECTOR = bytes.fromhex(
    "1EBCBE62005AB948FDFFE1C402AABA354EC676050C9BC1AAE1FF5B1509A4A04A"
    "44254664C2A480F5B77EA2D1020C7BA4B3640C4AC793324C26D6FDDFDB1F011A")
CAL_AES_VECTOR = bytes.fromhex("0A940BB5416EF045F1C39458C653EA5A") + bytes(16)


def p_sha256(secret, seed, n):
    out, a = b"", seed
    while len(out) < n:
        a = oracle.hmac_sha256(secret, a)
        out += oracle.hmac_sha256(secret, a + seed)
    return out[:n]


def kdf(mode, key_id, details, message):
    out, out_nonce = bytearray(64), bytearray(32)
    ok(cal.atcab_kdf(mode, key_id, details, message, out, out_nonce), f"atcab_kdf mode 0x{mode:02X}")
    return bytes(out), bytes(out_nonce)


def test_oracles_reproduce_cryptoauthlibs_vectors():
    assert p_sha256(NONCE, DATA16, 64) == CAL_PRF_VECTOR
    assert oracle.aes_ecb_encrypt(NONCE[:16], DATA16) + bytes(16) == CAL_AES_VECTOR


def test_kdf_prf_to_output(chip):
    ok(cal.atcab_nonce(NONCE), "atcab_nonce")
    out, _ = kdf(ALG_PRF | SRC_TEMPKEY | TGT_OUTPUT, 0x1234,
                 PRF_KEY_32 | PRF_TARGET_64 | (len(DATA16) << 24), DATA16)
    assert out == CAL_PRF_VECTOR
    key, msg = os.urandom(32), os.urandom(40)
    ok(cal.atcab_nonce(key), "atcab_nonce")
    out, _ = kdf(ALG_PRF | SRC_TEMPKEY | TGT_OUTPUT, 0, PRF_KEY_32 | (len(msg) << 24), msg)
    assert out[:32] == p_sha256(key, msg, 32)


def test_kdf_prf_from_the_alternate_key_buffer_to_tempkey(chip):
    key, msg = os.urandom(32), os.urandom(32)
    ok(cal.atcab_nonce_load(0x80, key, 32), "atcab_nonce_load alternate key buffer")
    kdf(ALG_PRF | SRC_ALTKEYBUF | TGT_TEMPKEY, 0, PRF_KEY_32 | (len(msg) << 24), msg)
    data = os.urandom(20)
    mac = bytearray(32)
    ok(cal.atcab_sha_hmac(data, len(data), 0xFFFF, mac, 0xC0), "atcab_sha_hmac(TempKey)")
    assert bytes(mac) == oracle.hmac_sha256(p_sha256(key, msg, 32), data)


def test_kdf_prf_to_a_slot(chip):
    # CryptoAuthLib's kdf_prf_output: target slot 5 (key id 0x0500), which
    # this configuration lets anyone read in the clear.
    key, msg = os.urandom(32), os.urandom(32)
    ok(cal.atcab_nonce(key), "atcab_nonce")
    kdf(ALG_PRF | SRC_TEMPKEY | TGT_SLOT, 0x0500, PRF_KEY_32 | (len(msg) << 24), msg)
    out = bytearray(32)
    ok(cal.atcab_read_zone(2, 5, 0, 0, out, 32), "atcab_read_zone slot 5")
    assert bytes(out) == p_sha256(key, msg, 32)


def test_kdf_prf_encrypted_output(chip):
    key = os.urandom(32)
    details = PRF_KEY_32 | PRF_TARGET_64 | (len(DATA16) << 24)
    ok(cal.atcab_nonce(key), "atcab_nonce")
    enc, out_nonce = kdf(ALG_PRF | SRC_TEMPKEY | TGT_OUTPUT_ENC, 0x1234, details, DATA16)
    assert io_decrypt(layout.SLOT4_KEY, out_nonce, enc) == p_sha256(key, DATA16, 64)


def test_kdf_aes(chip):
    ok(cal.atcab_nonce(NONCE), "atcab_nonce")
    out, _ = kdf(ALG_AES | SRC_TEMPKEY | TGT_OUTPUT, 0x1234, 0, DATA16)
    assert out[:32] == CAL_AES_VECTOR
    key, msg = os.urandom(32), os.urandom(16)
    ok(cal.atcab_nonce(key), "atcab_nonce")
    enc, out_nonce = kdf(ALG_AES | SRC_TEMPKEY | TGT_OUTPUT_ENC, 0, 0, msg)
    assert io_decrypt(layout.SLOT4_KEY, out_nonce, enc[:32]) == oracle.aes_ecb_encrypt(key[:16], msg) + bytes(16)


def test_kdf_hkdf(chip):
    # HKDF on the 608 is the extract step: HMAC-SHA256 keyed with the source
    # key over the message.
    key, msg = os.urandom(32), os.urandom(16)
    ok(cal.atcab_nonce(key), "atcab_nonce")
    out, _ = kdf(ALG_HKDF | SRC_TEMPKEY | TGT_OUTPUT, 0, HKDF_MSG_INPUT | (len(msg) << 24), msg)
    assert out[:32] == oracle.hmac_sha256(key, msg)
    ok(cal.atcab_nonce(key), "atcab_nonce")
    enc, out_nonce = kdf(ALG_HKDF | SRC_TEMPKEY | TGT_OUTPUT_ENC, 0, HKDF_MSG_INPUT | (len(msg) << 24), msg)
    assert io_decrypt(layout.SLOT4_KEY, out_nonce, enc[:32]) == oracle.hmac_sha256(key, msg)
