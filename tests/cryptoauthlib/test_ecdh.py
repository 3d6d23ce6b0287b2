"""ECDH: clear output, output to slot N|1 (read back encrypted), output to
TempKey, IO-encrypted output, and the TempKey private key of GenKey 0xFFFF;
every premaster secret checked against `cryptography`'s ECDH."""

import os

import cryptoauthlib as cal

from host import io_decrypt
import layout
from layout import ok
import oracle

ECDH_TEMPKEY_OUT = 0x08  # mode: output copied to TempKey


def pubkey(slot):
    pub = bytearray(64)
    ok(cal.atcab_get_pubkey(slot, pub), f"atcab_get_pubkey({slot})")
    return bytes(pub)


def test_ecdh_clear_output(chip):
    # Slot 2: ReadKey bit 2 (ECDH) set, bit 3 clear -> output in the clear.
    peer = oracle.new_key()
    pms = bytearray(32)
    ok(cal.atcab_ecdh(2, oracle.raw_public(peer), pms), "atcab_ecdh(2)")
    assert bytes(pms) == oracle.ecdh(peer, pubkey(2))


def test_ecdh_clear_output_on_the_tngtls_identity_key(tng):
    peer = oracle.new_key()
    pms = bytearray(32)
    ok(cal.atcab_ecdh(0, oracle.raw_public(peer), pms), "atcab_ecdh(0)")
    assert bytes(pms) == oracle.ecdh(peer, pubkey(0))


def test_ecdh_output_to_the_next_slot_read_back_encrypted(chip):
    # Slot 0: ReadKey bit 3 set -> the premaster secret goes to slot 1,
    # which the library reads with atcab_read_enc (ReadKey 4).
    peer = oracle.new_key()
    pms = bytearray(32)
    ok(cal.atcab_ecdh_enc(0, oracle.raw_public(peer), pms, layout.SLOT4_KEY, 4, os.urandom(20)), "atcab_ecdh_enc(0)")
    assert bytes(pms) == oracle.ecdh(peer, pubkey(0))


def test_ecdh_output_to_tempkey(chip):
    peer = oracle.new_key()
    expected = oracle.ecdh(peer, pubkey(2))
    pms = bytearray(32)
    nonce = bytearray(32)
    ok(cal.atcab_ecdh_base(ECDH_TEMPKEY_OUT, 2, oracle.raw_public(peer), pms, nonce), "ECDH slot 2 -> TempKey")
    # Nothing comes out; TempKey holds the secret: HMAC keyed by TempKey.
    data = os.urandom(40)
    mac = bytearray(32)
    ok(cal.atcab_sha_hmac(data, len(data), 0xFFFF, mac, 0xC0), "atcab_sha_hmac(TempKey)")
    assert bytes(mac) == oracle.hmac_sha256(expected, data)


def test_ecdh_io_encrypted_output(chip):
    # Encrypted output with the IO protection key (slot 4, ChipOptions).
    peer = oracle.new_key()
    pms = bytearray(32)
    ok(cal.atcab_ecdh_ioenc(2, oracle.raw_public(peer), pms, layout.SLOT4_KEY), "atcab_ecdh_ioenc(2)")
    assert bytes(pms) == oracle.ecdh(peer, pubkey(2))


def test_ecdh_io_encrypted_output_decrypted_with_atcah(chip):
    peer = oracle.new_key()
    out = bytearray(32)
    out_nonce = bytearray(32)
    # Mode 0x0E: source slot, output encrypted, copy to output buffer.
    ok(cal.atcab_ecdh_base(0x0E, 2, oracle.raw_public(peer), out, out_nonce), "ECDH mode 0x0E")
    assert io_decrypt(layout.SLOT4_KEY, bytes(out_nonce), bytes(out)) == oracle.ecdh(peer, pubkey(2))
    assert bytes(out) != oracle.ecdh(peer, pubkey(2))


def test_ecdh_with_the_tempkey_private_key(chip):
    pub = bytearray(64)
    ok(cal.atcab_genkey(0xFFFF, pub), "atcab_genkey(0xFFFF)")
    peer = oracle.new_key()
    pms = bytearray(32)
    ok(cal.atcab_ecdh_tempkey(oracle.raw_public(peer), pms), "atcab_ecdh_tempkey")
    assert bytes(pms) == oracle.ecdh(peer, pub)
    # And IO-encrypted from the same TempKey key.
    pms2 = bytearray(32)
    ok(cal.atcab_genkey(0xFFFF, pub), "atcab_genkey(0xFFFF)")
    ok(cal.atcab_ecdh_tempkey_ioenc(oracle.raw_public(peer), pms2, layout.SLOT4_KEY), "atcab_ecdh_tempkey_ioenc")
    assert bytes(pms2) == oracle.ecdh(peer, pub)


def test_ecdh_on_a_key_without_ecdh_permission_is_refused(chip):
    # Slot 7: ReadKey 3 (signatures only).
    status = cal.atcab_ecdh(7, oracle.raw_public(oracle.new_key()), bytearray(32))
    assert status == cal.Status.ATCA_EXECUTION_ERROR, layout.name(status)


def test_ecdh_with_an_off_curve_point_is_refused(chip):
    pub = bytearray(oracle.raw_public(oracle.new_key()))
    pub[63] ^= 1
    status = cal.atcab_ecdh(2, bytes(pub), bytearray(32))
    assert status != cal.Status.ATCA_SUCCESS
