"""Read and Write, in the clear and encrypted (the library's own
atcab_read_enc / atcab_write_enc, which run GenDig and compute the
encryption and the write MAC on the host)."""

import os

import cryptoauthlib as cal

import layout
from layout import ok

CONFIG, OTP, DATA = 0, 1, 2


def test_config_zone_reads_back_what_the_suite_wrote(chip):
    cfg = layout.read_config()
    # Bytes 16..127 minus the counters, UserExtra/lock bytes (CryptoAuthLib's
    # read_config_zone test compares the same ranges).
    assert cfg[16:52] == layout.CONFIG[16:52]
    assert cfg[68:84] == layout.CONFIG[68:84]
    assert cfg[90:128] == layout.CONFIG[90:128]
    assert cfg[86] == 0x00 and cfg[87] == 0x00, "config and data locked"


def test_clear_slot_and_otp_read_back(chip):
    data = os.urandom(72)  # slot 12: 72 bytes, clear read/write always
    ok(cal.atcab_write_bytes_zone(DATA, 12, 0, data, len(data)), "atcab_write_bytes_zone slot 12")
    back = bytearray(72)
    ok(cal.atcab_read_bytes_zone(DATA, 12, 0, back, 72), "atcab_read_bytes_zone slot 12")
    assert bytes(back) == data
    otp = bytearray(64)
    ok(cal.atcab_read_bytes_zone(OTP, 0, 0, otp, 64), "atcab_read_bytes_zone OTP")
    assert bytes(otp) == layout.OTP_VALUE


def test_secret_slot_is_not_readable_in_the_clear(chip):
    out = bytearray(32)
    status = cal.atcab_read_zone(DATA, 8, 0, 0, out, 32)
    assert status == cal.Status.ATCA_EXECUTION_ERROR, layout.name(status)


def test_encrypted_read_returns_what_was_written_in_the_clear(chip):
    # Slots 1, 8 and 9: EncryptRead with ReadKey 4. Their contents were
    # written in the clear before the data lock; the library decrypts with
    # the TempKey it computes from GenDig.
    for slot, block, expected in [
        (1, 0, layout.SLOT1_VALUE),
        (8, 0, layout.SLOT8_VALUE[0:32]),
        (8, 3, layout.SLOT8_VALUE[96:128]),
        (9, 0, layout.SLOT9_VALUE),
    ]:
        out = bytearray(32)
        ok(cal.atcab_read_enc(slot, block, out, layout.SLOT4_KEY, 4, os.urandom(20)), f"atcab_read_enc slot {slot}")
        assert bytes(out) == expected, f"slot {slot} block {block}"


def test_encrypted_read_with_the_wrong_key_gives_garbage(chip):
    out = bytearray(32)
    wrong = bytes(32)
    status = cal.atcab_read_enc(8, 0, out, wrong, 4, os.urandom(20))
    # The chip cannot tell: it encrypts with the TempKey of a GenDig over
    # the real key; the host decrypts with a TempKey from the wrong one.
    ok(status, "atcab_read_enc with a wrong key")
    assert bytes(out) != layout.SLOT8_VALUE[0:32]


def test_encrypted_write_then_encrypted_read(chip):
    data = os.urandom(32)
    ok(cal.atcab_write_enc(8, 5, data, layout.SLOT4_KEY, 4, os.urandom(20)), "atcab_write_enc slot 8 block 5")
    out = bytearray(32)
    ok(cal.atcab_read_enc(8, 5, out, layout.SLOT4_KEY, 4, os.urandom(20)), "atcab_read_enc slot 8 block 5")
    assert bytes(out) == data
    # The neighbouring blocks are untouched.
    ok(cal.atcab_read_enc(8, 4, out, layout.SLOT4_KEY, 4, os.urandom(20)), "atcab_read_enc slot 8 block 4")
    assert bytes(out) == layout.SLOT8_VALUE[128:160]


def test_encrypted_write_with_a_wrong_key_is_refused(chip):
    status = cal.atcab_write_enc(8, 5, os.urandom(32), bytes(32), 4, os.urandom(20))
    # The write MAC does not match: the chip refuses (CheckMac-style miscompare
    # or execution error) and the slot keeps its value.
    assert status != cal.Status.ATCA_SUCCESS
    out = bytearray(32)
    ok(cal.atcab_read_enc(8, 5, out, layout.SLOT4_KEY, 4, os.urandom(20)), "atcab_read_enc slot 8 block 5")
    assert bytes(out) == layout.SLOT8_VALUE[160:192]


def test_clear_write_to_an_encrypt_only_slot_is_refused(chip):
    status = cal.atcab_write_zone(DATA, 8, 0, 0, bytes(32), 32)
    assert status == cal.Status.ATCA_EXECUTION_ERROR, layout.name(status)
