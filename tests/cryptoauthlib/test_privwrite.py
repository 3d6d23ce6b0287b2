"""PrivWrite: a private key written in the clear before the data lock and
encrypted (with the write MAC) after it; checked by the public key the chip
derives and by signatures `cryptography` verifies."""

import os

import cryptoauthlib as cal

import layout
from layout import ok
import oracle


def check_slot_holds(slot, key):
    pub = bytearray(64)
    ok(cal.atcab_get_pubkey(slot, pub), f"atcab_get_pubkey({slot})")
    assert bytes(pub) == oracle.raw_public(key)
    digest = os.urandom(32)
    sig = bytearray(64)
    ok(cal.atcab_sign(slot, digest, sig), f"atcab_sign({slot})")
    assert oracle.ecdsa_verify(pub, digest, sig)


def test_privwrite_encrypted_after_the_data_lock(chip):
    # CryptoAuthLib's priv_write_encrypted: slot 7, write key 4.
    key = oracle.new_key()
    ok(cal.atcab_priv_write(7, bytes(4) + oracle.private_bytes(key), 4, layout.SLOT4_KEY, os.urandom(20)),
       "atcab_priv_write(7, encrypted)")
    check_slot_holds(7, key)


def test_privwrite_with_a_wrong_write_key_is_refused(chip):
    before = bytearray(64)
    ok(cal.atcab_get_pubkey(7, before), "atcab_get_pubkey(7)")
    key = oracle.new_key()
    status = cal.atcab_priv_write(7, bytes(4) + oracle.private_bytes(key), 4, bytes(32), os.urandom(20))
    assert status != cal.Status.ATCA_SUCCESS
    after = bytearray(64)
    ok(cal.atcab_get_pubkey(7, after), "atcab_get_pubkey(7)")
    assert after == before


def test_privwrite_clear_is_refused_after_the_data_lock(chip):
    key = oracle.new_key()
    status = layout.priv_write_clear(7, bytes(4) + oracle.private_bytes(key))
    assert status == cal.Status.ATCA_EXECUTION_ERROR, layout.name(status)


def test_privwrite_clear_before_the_data_lock(blank):
    # CryptoAuthLib's priv_write_unencrypted (data zone unlocked).
    ok(cal.atcab_write_config_zone(layout.CONFIG), "atcab_write_config_zone")
    ok(cal.atcab_lock_config_zone(), "atcab_lock_config_zone")
    key = oracle.new_key()
    ok(layout.priv_write_clear(0, bytes(4) + oracle.private_bytes(key)), "atcab_priv_write(0, clear)")
    check_slot_holds(0, key)
