"""GenKey: private key creation, public key, TempKey (key id 0xFFFF), and the
PubKey digest modes."""

import os

import cryptoauthlib as cal

from host import Host
import layout
from layout import ok
import oracle


def test_genkey_creates_a_key_that_signs(chip):
    pub = bytearray(64)
    ok(cal.atcab_genkey(2, pub), "atcab_genkey(2)")
    again = bytearray(64)
    ok(cal.atcab_get_pubkey(2, again), "atcab_get_pubkey(2)")
    assert pub == again
    oracle.public_key(pub)  # on the curve
    digest = os.urandom(32)
    sig = bytearray(64)
    ok(cal.atcab_sign(2, digest, sig), "atcab_sign(2)")
    assert oracle.ecdsa_verify(pub, digest, sig)
    new = bytearray(64)
    ok(cal.atcab_genkey(2, new), "atcab_genkey(2) again")
    assert new != pub


def test_genkey_on_tngtls_factory_slot_is_refused(tng):
    # TNGTLS slot 0: WriteConfig has no GenKey bit (docs/chip-facts.md §8).
    status = cal.atcab_genkey(0, bytearray(64))
    assert status == cal.Status.ATCA_EXECUTION_ERROR, layout.name(status)


def test_genkey_into_tempkey_keeps_the_private_key_for_ecdh(chip):
    pub = bytearray(64)
    ok(cal.atcab_genkey(0xFFFF, pub), "atcab_genkey(0xFFFF)")
    peer = oracle.new_key()
    pms = bytearray(32)
    ok(cal.atcab_ecdh_tempkey(oracle.raw_public(peer), pms), "atcab_ecdh_tempkey")
    assert bytes(pms) == oracle.ecdh(peer, pub)


def test_genkey_digest_mode_over_a_private_key(chip):
    # Mode 0x08: public key of slot 0, and TempKey = SHA-256 of the datasheet's
    # GenKey message over the previous TempKey (atcah_gen_key_msg).
    sn = layout.serial_number()
    expected_pub = bytearray(64)
    ok(cal.atcab_get_pubkey(0, expected_pub), "atcab_get_pubkey(0)")
    host = Host()
    num_in = os.urandom(20)
    rand_out = bytearray(32)
    ok(cal.atcab_nonce_rand(num_in, rand_out), "atcab_nonce_rand")
    host.nonce(0x00, num_in, rand_out)
    pub = bytearray(64)
    ok(cal.atcab_genkey_base(0x08, 0, b"\x00\x00\x00", pub), "atcab_genkey_base(digest, slot 0)")
    assert pub == expected_pub
    host.gen_key_msg(0x08, 0, bytes(pub), None, sn)
    resp = bytearray(32)
    ok(cal.atcab_mac(0x41, 4, bytes(32), resp), "atcab_mac over the GenKey digest")
    assert bytes(resp) == host.mac(0x41, 4, layout.SLOT4_KEY, sn)


def test_genkey_pubkey_digest_of_a_stored_public_key(chip):
    # Mode 0x10 on slot 14 (a public key slot), other data 3 bytes.
    sn = layout.serial_number()
    pub = oracle.raw_public(oracle.new_key())
    ok(cal.atcab_write_pubkey(14, pub), "atcab_write_pubkey(14)")
    value = os.urandom(32)
    ok(cal.atcab_nonce(value), "atcab_nonce pass-through")
    host = Host()
    host.nonce(0x03, value)
    other = b"\x11\x22\x33"
    ok(cal.atcab_genkey_base(0x10, 14, other, None), "atcab_genkey_base(pubkey digest, slot 14)")
    host.gen_key_msg(0x10, 14, pub, other, sn)
    resp = bytearray(32)
    # TempKey started from a pass-through nonce: MAC mode bit 2 set.
    ok(cal.atcab_mac(0x45, 4, bytes(32), resp), "atcab_mac over the PubKey digest")
    assert bytes(resp) == host.mac(0x45, 4, layout.SLOT4_KEY, sn)
