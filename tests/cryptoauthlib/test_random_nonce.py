"""Random and Nonce, checked through the MAC the chip computes over TempKey."""

import os

import cryptoauthlib as cal

from host import Host
import layout
from layout import ok
import oracle


def test_random_before_config_lock_is_the_test_pattern(blank):
    out = bytearray(32)
    ok(cal.atcab_random(out), "atcab_random")
    assert bytes(out) == bytes([0xFF, 0xFF, 0x00, 0x00] * 8)


def test_random_after_config_lock_differs_each_time(tng):
    a, b = bytearray(32), bytearray(32)
    ok(cal.atcab_random(a), "atcab_random")
    ok(cal.atcab_random(b), "atcab_random")
    assert a != b and bytes(a) != bytes([0xFF, 0xFF, 0x00, 0x00] * 8)


def mac_over_tempkey(sn, host):
    """MAC(slot 4 key || TempKey, serial number included). Mode bit 2 must
    match TempKey.SourceFlag (0 random, 1 pass-through), or the chip refuses."""
    mode = 0x41 | (0x04 if host.temp_key.source_flag else 0)
    resp = bytearray(32)
    ok(cal.atcab_mac(mode, 4, bytes(32), resp), f"atcab_mac mode 0x{mode:02X}")
    expected = host.mac(mode, 4, layout.SLOT4_KEY, sn)
    assert bytes(resp) == expected
    assert expected == oracle.mac_response(mode, 4, layout.SLOT4_KEY, host.temp_key.bytes32(), sn)


def test_mac_refuses_a_tempkey_whose_source_flag_does_not_match(chip):
    ok(cal.atcab_nonce(os.urandom(32)), "atcab_nonce pass-through")
    status = cal.atcab_mac(0x41, 4, bytes(32), bytearray(32))
    assert status == cal.Status.ATCA_EXECUTION_ERROR, layout.name(status)


def test_nonce_random_mode_tempkey(chip):
    sn = layout.serial_number()
    num_in = os.urandom(20)
    rand_out = bytearray(32)
    ok(cal.atcab_nonce_rand(num_in, rand_out), "atcab_nonce_rand")
    host = Host()
    tk = host.nonce(0x00, num_in, rand_out)
    assert tk == oracle.nonce_tempkey(rand_out, num_in)
    mac_over_tempkey(sn, host)


def test_nonce_pass_through_tempkey(chip):
    sn = layout.serial_number()
    value = os.urandom(32)
    ok(cal.atcab_nonce(value), "atcab_nonce pass-through")
    host = Host()
    assert host.nonce(0x03, value) == value
    mac_over_tempkey(sn, host)


def test_nonce_load_into_message_digest_buffer_and_sign_from_it(chip):
    digest = os.urandom(32)
    ok(cal.atcab_nonce_load(0x40, digest, 32), "atcab_nonce_load message-digest buffer")
    sig = bytearray(64)
    ok(cal.atcab_sign_base(0xA0, 0, sig), "Sign external from the message-digest buffer")
    pub = bytearray(64)
    ok(cal.atcab_get_pubkey(0, pub), "atcab_get_pubkey(0)")
    assert oracle.ecdsa_verify(pub, digest, sig)
