"""SHA: plain digests, HMAC with a slot key or TempKey, and the output
targets (TempKey, message-digest buffer) checked by signing from them."""

import hashlib
import os

import cryptoauthlib as cal
from cryptoauthlib.library import AtcaReference

import layout
from layout import ok
import oracle

TARGET_TEMPKEY, TARGET_MSGDIGBUF, TARGET_OUT_ONLY = 0x00, 0x40, 0xC0
SHA_START, SHA_UPDATE, SHA_END = 0x00, 0x01, 0x02


def test_sha_matches_hashlib(tng):
    for n in (0, 1, 55, 56, 63, 64, 65, 200, 1000):
        msg = os.urandom(n)
        digest = bytearray(32)
        ok(cal.atcab_sha(n, msg, digest), f"atcab_sha({n} bytes)")
        assert bytes(digest) == hashlib.sha256(msg).digest(), f"{n} bytes"


def test_sha_hmac_with_a_slot_key(chip):
    for n in (0, 32, 64, 100):
        data = os.urandom(n)
        mac = bytearray(32)
        ok(cal.atcab_sha_hmac(data, n, 4, mac, TARGET_OUT_ONLY), f"atcab_sha_hmac(slot 4, {n} bytes)")
        assert bytes(mac) == oracle.hmac_sha256(layout.SLOT4_KEY, data)


def test_sha_hmac_with_tempkey_as_the_key(chip):
    key = os.urandom(32)
    ok(cal.atcab_nonce_load(0x00, key, 32), "atcab_nonce_load TempKey")
    data = os.urandom(77)
    mac = bytearray(32)
    ok(cal.atcab_sha_hmac(data, len(data), 0xFFFF, mac, TARGET_OUT_ONLY), "atcab_sha_hmac(TempKey)")
    assert bytes(mac) == oracle.hmac_sha256(key, data)


def test_sha_hmac_to_the_message_digest_buffer_then_sign_it(chip):
    data = os.urandom(48)
    mac = bytearray(32)
    ok(cal.atcab_sha_hmac(data, len(data), 4, mac, TARGET_MSGDIGBUF), "atcab_sha_hmac -> message-digest buffer")
    expected = oracle.hmac_sha256(layout.SLOT4_KEY, data)
    assert bytes(mac) == expected
    sig = bytearray(64)
    ok(cal.atcab_sign_base(0xA0, 0, sig), "Sign external from the message-digest buffer")
    pub = bytearray(64)
    ok(cal.atcab_get_pubkey(0, pub), "atcab_get_pubkey(0)")
    assert oracle.ecdsa_verify(pub, expected, sig)


def sha_to(target, msg):
    ok(cal.atcab_sha_base(SHA_START, 0, b"", bytearray(0), AtcaReference(0)), "SHA start")
    size = AtcaReference(32)
    out = bytearray(32)
    ok(cal.atcab_sha_base(SHA_END | target, len(msg), msg, out, size), f"SHA end, target 0x{target:02X}")
    return bytes(out[: size.value])


def test_sha_end_to_tempkey_then_sign_it(chip):
    msg = os.urandom(40)
    out = sha_to(TARGET_TEMPKEY, msg)
    assert out == hashlib.sha256(msg).digest()
    sig = bytearray(64)
    ok(cal.atcab_sign_base(0x80, 0, sig), "Sign external from TempKey")
    pub = bytearray(64)
    ok(cal.atcab_get_pubkey(0, pub), "atcab_get_pubkey(0)")
    assert oracle.ecdsa_verify(pub, hashlib.sha256(msg).digest(), sig)


def test_sha_end_to_message_digest_buffer_then_verify_from_it(chip):
    msg = os.urandom(40)
    digest = hashlib.sha256(msg).digest()
    out = sha_to(TARGET_MSGDIGBUF, msg)
    assert out == digest
    key = oracle.new_key()
    sig = oracle.ecdsa_sign(key, digest)
    # Verify external, message from the message-digest buffer (mode 0x22).
    status = cal.atcab_verify(0x22, 0x0004, sig, oracle.raw_public(key), b"", bytearray(32))
    ok(status, "Verify external from the message-digest buffer")
