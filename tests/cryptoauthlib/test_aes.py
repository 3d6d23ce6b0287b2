"""AES: ECB encrypt/decrypt with a key in a slot or in TempKey, and GFM;
checked with `cryptography`'s AES and the GF(2^128) multiply."""

import os

import cryptoauthlib as cal

import layout
from layout import ok
import oracle


def test_aes_ecb_with_a_slot_key(chip):
    keys = os.urandom(64)  # four 16-byte keys in slot 10
    ok(cal.atcab_write_bytes_zone(2, 10, 0, keys, 64), "atcab_write_bytes_zone slot 10")
    for block in range(4):
        key = keys[16 * block:16 * block + 16]
        pt = os.urandom(16)
        ct = bytearray(16)
        ok(cal.atcab_aes_encrypt(10, block, pt, ct), f"atcab_aes_encrypt(slot 10, key block {block})")
        assert bytes(ct) == oracle.aes_ecb_encrypt(key, pt)
        back = bytearray(16)
        ok(cal.atcab_aes_decrypt(10, block, bytes(ct), back), f"atcab_aes_decrypt(slot 10, key block {block})")
        assert bytes(back) == pt
        other = os.urandom(16)
        ok(cal.atcab_aes_decrypt(10, block, other, back), "atcab_aes_decrypt of arbitrary data")
        assert bytes(back) == oracle.aes_ecb_decrypt(key, other)


def test_aes_ecb_with_the_key_in_tempkey(chip):
    keys = os.urandom(64)
    ok(cal.atcab_nonce_load(0x00, keys, 64), "atcab_nonce_load TempKey, 64 bytes")
    for block in range(4):
        key = keys[16 * block:16 * block + 16]
        pt = os.urandom(16)
        ct = bytearray(16)
        ok(cal.atcab_aes_encrypt(0xFFFF, block, pt, ct), f"atcab_aes_encrypt(TempKey, key block {block})")
        assert bytes(ct) == oracle.aes_ecb_encrypt(key, pt)
        back = bytearray(16)
        ok(cal.atcab_aes_decrypt(0xFFFF, block, bytes(ct), back), f"atcab_aes_decrypt(TempKey, key block {block})")
        assert bytes(back) == pt


def test_aes_gfm(chip):
    for _ in range(4):
        h, x = os.urandom(16), os.urandom(16)
        out = bytearray(16)
        ok(cal.atcab_aes_gfm(h, x, out), "atcab_aes_gfm")
        assert bytes(out) == oracle.gfm(h, x)


def test_aes_on_a_slot_that_is_not_an_aes_key_is_refused(chip):
    status = cal.atcab_aes_encrypt(12, 0, os.urandom(16), bytearray(16))
    assert status == cal.Status.ATCA_EXECUTION_ERROR, layout.name(status)
