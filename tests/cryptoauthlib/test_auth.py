"""GenDig, MAC, CheckMac and DeriveKey, against the datasheet's message
layouts as CryptoAuthLib's host helpers compute them (atcah_*), following
CryptoAuthLib's own tests of these commands."""

import os

import cryptoauthlib as cal
from cryptoauthlib.library import AtcaReference

from host import Host
import layout
from layout import ok
import oracle

GENDIG_CONFIG, GENDIG_OTP, GENDIG_DATA, GENDIG_SHARED_NONCE, GENDIG_COUNTER, GENDIG_KEY_CONFIG = 0, 1, 2, 3, 4, 5


def random_nonce(host):
    num_in = os.urandom(20)
    rand_out = bytearray(32)
    ok(cal.atcab_nonce_rand(num_in, rand_out), "atcab_nonce_rand")
    host.nonce(0x00, num_in, rand_out)


def check_tempkey_by_mac(host, sn):
    resp = bytearray(32)
    ok(cal.atcab_mac(0x41, 4, bytes(32), resp), "atcab_mac(key 4 || TempKey)")  # challenge unused
    assert bytes(resp) == host.mac(0x41, 4, layout.SLOT4_KEY, sn)


def test_mac_key_and_challenge(chip):
    sn = layout.serial_number()
    challenge = os.urandom(32)
    for mode in (0x00, 0x40, 0x10 | 0x40, 0x20):
        resp = bytearray(32)
        ok(cal.atcab_mac(mode, 4, challenge, resp), f"atcab_mac mode 0x{mode:02X}")
        expected = oracle.mac_response(mode, 4, layout.SLOT4_KEY, challenge, sn, layout.OTP_VALUE[:13])
        assert bytes(resp) == expected, f"mode 0x{mode:02X}"
        assert expected == Host().mac(mode, 4, layout.SLOT4_KEY, sn, challenge=challenge, otp=layout.OTP_VALUE[:13])


def test_mac_with_tempkey_blocks(chip):
    sn = layout.serial_number()
    challenge = os.urandom(32)
    for mode, key_id in [(0x41, 4), (0x42, 0), (0x43, 0)]:
        host = Host()
        random_nonce(host)
        resp = bytearray(32)
        # With block 2 from TempKey the library sends no challenge.
        ok(cal.atcab_mac(mode, key_id, challenge, resp), f"atcab_mac mode 0x{mode:02X}")
        expected = host.mac(mode, key_id, layout.SLOT4_KEY, sn, challenge=challenge if mode & 0x01 == 0 else None)
        assert bytes(resp) == expected, f"mode 0x{mode:02X}"


def test_mac_on_a_nomac_key_is_refused(chip):
    status = cal.atcab_mac(0x00, 6, os.urandom(32), bytearray(32))
    assert status == cal.Status.ATCA_EXECUTION_ERROR, layout.name(status)


def test_gendig_every_zone(chip):
    sn = layout.serial_number()
    config = layout.read_config()
    counter0 = AtcaReference(0)
    ok(cal.atcab_counter_read(0, counter0), "atcab_counter_read(0)")
    cases = [
        ("config block 1", GENDIG_CONFIG, 1, dict(stored_value=config[32:64]), b""),
        ("OTP block 0", GENDIG_OTP, 0, dict(stored_value=layout.OTP_VALUE[:32]), b""),
        ("data slot 4", GENDIG_DATA, 4, dict(stored_value=layout.SLOT4_KEY), b""),
        ("data slot 9", GENDIG_DATA, 9, dict(stored_value=layout.SLOT9_VALUE), b""),
        ("counter 0", GENDIG_COUNTER, 0, dict(counter=counter0.value), b""),
        ("key config 4", GENDIG_KEY_CONFIG, 4, dict(
            slot_conf=layout.slot_config(config, 4), key_conf=layout.key_config(config, 4),
            slot_locked=1, counter=counter0.value), b""),
    ]
    for label, zone, key_id, kw, other in cases:
        host = Host()
        random_nonce(host)
        ok(cal.atcab_gendig(zone, key_id, other, len(other)), f"atcab_gendig {label}")
        host.gen_dig(zone, key_id, sn, **kw)
        check_tempkey_by_mac(host, sn)


def test_gendig_shared_nonce(chip):
    # CryptoAuthLib's gendig_shared_nonce: key id 0x0004 and 0x8004.
    sn = layout.serial_number()
    for key_id in (0x0004, 0x8004):
        host = Host()
        random_nonce(host)
        other = os.urandom(32)
        ok(cal.atcab_gendig(GENDIG_SHARED_NONCE, key_id, other, 32), f"atcab_gendig shared nonce 0x{key_id:04X}")
        host.gen_dig(GENDIG_SHARED_NONCE, key_id, sn, other_data=other)
        check_tempkey_by_mac(host, sn)


def test_checkmac_accepts_the_right_response_only(chip):
    sn = layout.serial_number()
    challenge = os.urandom(32)
    other = bytes([0x08, 0x00, 0x04, 0x00]) + os.urandom(9)
    client = Host().check_mac(0x00, 4, sn, layout.SLOT4_KEY, challenge, other)
    ok(cal.atcab_checkmac(0x00, 4, challenge, client, other), "atcab_checkmac")
    wrong = bytes([client[0] ^ 1]) + client[1:]
    status = cal.atcab_checkmac(0x00, 4, challenge, wrong, other)
    assert status == cal.Status.ATCA_CHECKMAC_VERIFY_FAILED, layout.name(status)


def test_checkmac_with_tempkey(chip):
    sn = layout.serial_number()
    host = Host()
    random_nonce(host)
    other = os.urandom(13)
    client = host.check_mac(0x01, 4, sn, layout.SLOT4_KEY, bytes(32), other)
    ok(cal.atcab_checkmac(0x01, 4, bytes(32), client, other), "atcab_checkmac (TempKey)")


def test_derivekey_roll_without_mac(chip):
    # CryptoAuthLib's derivekey test: slot 9 (DeriveKey roll, no MAC). The
    # new key is read back with an encrypted read and checked by CheckMac.
    sn = layout.serial_number()
    host = Host()
    random_nonce(host)
    ok(layout.derivekey(0x00, 9), "atcab_derivekey(9)")
    derived = host.derive_key(0x00, 9, layout.SLOT9_VALUE, sn)
    out = bytearray(32)
    ok(cal.atcab_read_enc(9, 0, out, layout.SLOT4_KEY, 4, os.urandom(20)), "atcab_read_enc(9)")
    assert bytes(out) == derived
    host = Host()
    random_nonce(host)
    challenge = os.urandom(32)
    client = host.check_mac(0x00, 9, sn, derived, challenge, bytes(13))
    ok(cal.atcab_checkmac(0x00, 9, challenge, client, bytes(13)), "atcab_checkmac with the derived key")


def test_derivekey_with_an_authorizing_mac(chip):
    # CryptoAuthLib's derivekey_mac: slot 3, parent key 4, MAC required.
    sn = layout.serial_number()
    host = Host()
    random_nonce(host)
    mac = host.derive_key_mac(0x00, 3, layout.SLOT4_KEY, sn)
    ok(layout.derivekey(0x00, 3, mac), "atcab_derivekey(3, mac)")
    derived = host.derive_key(0x00, 3, layout.SLOT4_KEY, sn)
    out = bytearray(32)
    ok(cal.atcab_read_enc(3, 0, out, layout.SLOT4_KEY, 4, os.urandom(20)), "atcab_read_enc(3)")
    assert bytes(out) == derived


def test_derivekey_with_a_wrong_mac_is_refused(chip):
    host = Host()
    random_nonce(host)
    status = layout.derivekey(0x00, 3, bytes(32))
    assert status != cal.Status.ATCA_SUCCESS
    out = bytearray(32)
    ok(cal.atcab_read_enc(3, 0, out, layout.SLOT4_KEY, 4, os.urandom(20)), "atcab_read_enc(3)")
    assert bytes(out) == layout.SLOT3_VALUE
