"""Sign (external, internal) and Verify (external, stored, validate),
checked with `cryptography`'s ECDSA."""

import os

import cryptoauthlib as cal
from cryptoauthlib.library import AtcaReference

from host import Host
import layout
from layout import ok
import oracle


def pubkey(slot):
    pub = bytearray(64)
    ok(cal.atcab_get_pubkey(slot, pub), f"atcab_get_pubkey({slot})")
    return bytes(pub)


def test_sign_external_verifies_with_cryptography(tng):
    pub = pubkey(0)
    for _ in range(3):
        digest = os.urandom(32)
        sig = bytearray(64)
        ok(cal.atcab_sign(0, digest, sig), "atcab_sign(0)")
        assert oracle.ecdsa_verify(pub, digest, sig)
        assert not oracle.ecdsa_verify(pub, bytes([digest[0] ^ 1]) + digest[1:], sig)


def test_sign_internal_of_a_gendig_digest(chip):
    # CryptoAuthLib's sign_internal_ecc: Nonce, GenDig over slot 4, Sign
    # internal with slot 0 (ReadKey bit 1 set). The signed digest is the
    # datasheet's 55-byte message (atcah_sign_internal_msg).
    sn = layout.serial_number()
    config = layout.read_config()
    host = Host()
    num_in = os.urandom(20)
    rand_out = bytearray(32)
    ok(cal.atcab_nonce_rand(num_in, rand_out), "atcab_nonce_rand")
    host.nonce(0x00, num_in, rand_out)
    ok(cal.atcab_gendig(2, 4, b"", 0), "atcab_gendig data slot 4")
    host.gen_dig(2, 4, sn, stored_value=layout.SLOT4_KEY)
    sig = bytearray(64)
    ok(cal.atcab_sign_internal(0, False, True, sig), "atcab_sign_internal(0)")
    digest, _, message = host.sign_internal_digest(0x40, 0, config, sn)
    assert oracle.sha256(message) == digest
    assert oracle.ecdsa_verify(pubkey(0), digest, sig)


def test_sign_internal_needs_a_gendig_or_genkey_tempkey(chip):
    ok(cal.atcab_nonce(os.urandom(32)), "atcab_nonce pass-through")
    status = cal.atcab_sign_internal(0, False, True, bytearray(64))
    assert status == cal.Status.ATCA_EXECUTION_ERROR, layout.name(status)


def test_sign_internal_on_a_key_without_internal_sign_is_refused(tng):
    # TNGTLS slot 0 allows external signatures only.
    ok(cal.atcab_nonce_rand(os.urandom(20), bytearray(32)), "atcab_nonce_rand")
    ok(cal.atcab_gendig(0, 0, b"", 0), "atcab_gendig config block 0")
    status = cal.atcab_sign_internal(0, False, True, bytearray(64))
    assert status == cal.Status.ATCA_EXECUTION_ERROR, layout.name(status)


def test_verify_external(tng):
    key = oracle.new_key()
    pub = oracle.raw_public(key)
    digest = os.urandom(32)
    sig = oracle.ecdsa_sign(key, digest)
    verified = AtcaReference(False)
    ok(cal.atcab_verify_extern(digest, sig, pub, verified), "atcab_verify_extern")
    assert verified.value
    bad = bytes([sig[0] ^ 0x80]) + sig[1:]
    ok(cal.atcab_verify_extern(digest, bad, pub, verified), "atcab_verify_extern (bad signature)")
    assert not verified.value


def test_verify_external_with_an_off_curve_public_key(tng):
    # docs/chip-facts.md §10: a public key off the curve is not a mismatch
    # (0x01) but an execution error (0x0F, VERIFY_OFF_CURVE_KEY).
    key = oracle.new_key()
    pub = bytearray(oracle.raw_public(key))
    pub[63] ^= 0x01
    digest = os.urandom(32)
    sig = oracle.ecdsa_sign(key, digest)
    verified = AtcaReference(True)
    status = cal.atcab_verify_extern(digest, sig, bytes(pub), verified)
    assert status == cal.Status.ATCA_EXECUTION_ERROR, layout.name(status)
    assert not verified.value


def test_verify_stored(chip):
    key = oracle.new_key()
    ok(cal.atcab_write_pubkey(11, oracle.raw_public(key)), "atcab_write_pubkey(11)")
    digest = os.urandom(32)
    sig = oracle.ecdsa_sign(key, digest)
    verified = AtcaReference(False)
    ok(cal.atcab_verify_stored(digest, sig, 11, verified), "atcab_verify_stored(11)")
    assert verified.value
    ok(cal.atcab_verify_stored(os.urandom(32), sig, 11, verified), "atcab_verify_stored(11), other digest")
    assert not verified.value


def test_verify_validate_and_invalidate(chip):
    # CryptoAuthLib's verify_validate, with the validation authority's key
    # outside the chip: slot 14 (PubInfo) is validated by the key in
    # slot 15 (slot 14's ReadKey).
    sn = layout.serial_number()
    config = layout.read_config()
    authority = oracle.new_key()
    validator_slot = layout.slot_config(config, 14) & 0x0F
    assert validator_slot == 15
    ok(cal.atcab_write_pubkey(validator_slot, oracle.raw_public(authority)), "atcab_write_pubkey(15)")

    device_key = oracle.new_key()
    public = oracle.raw_public(device_key)
    ok(cal.atcab_write_pubkey(14, public), "atcab_write_pubkey(14)")
    head = bytearray(4)
    ok(cal.atcab_read_zone(2, 14, 0, 0, head, 4), "atcab_read_zone slot 14")
    assert head[0] >> 4 == 0xA, "a write invalidates a PubInfo public key"
    msg = os.urandom(32)
    msg_sig = oracle.ecdsa_sign(device_key, msg)
    verified = AtcaReference(False)
    status = cal.atcab_verify_stored(msg, msg_sig, 14, verified)
    assert status == cal.Status.ATCA_EXECUTION_ERROR, "verify with an invalidated key: " + layout.name(status)

    nonce = bytes(32)
    host = Host()
    host.nonce(0x03, nonce)
    other = bytes(3)
    host.gen_key_msg(0x10, 14, public, other, sn)
    digest, verify_other, _ = host.sign_internal_digest(0x00, 0, None, sn)
    validation_sig = oracle.ecdsa_sign(authority, digest)

    ok(cal.atcab_nonce(nonce), "atcab_nonce pass-through")
    ok(cal.atcab_genkey_base(0x10, 14, other, None), "atcab_genkey_base(pubkey digest, 14)")
    ok(cal.atcab_verify_validate(14, validation_sig, verify_other, verified), "atcab_verify_validate(14)")
    assert verified.value
    ok(cal.atcab_read_zone(2, 14, 0, 0, head, 4), "atcab_read_zone slot 14")
    assert head[0] >> 4 == 0x5, "validated"
    ok(cal.atcab_verify_stored(msg, msg_sig, 14, verified), "atcab_verify_stored(14) after validation")
    assert verified.value

    # CryptoAuthLib's verify_invalidate: the same authority invalidates it
    # again (validation message with the invalidate flag).
    host = Host()
    host.nonce(0x03, nonce)
    host.gen_key_msg(0x10, 14, public, other, sn)
    digest, verify_other, _ = host.sign_internal_digest(0x00, 0, None, sn, for_invalidate=True)
    invalidation_sig = oracle.ecdsa_sign(authority, digest)
    ok(cal.atcab_nonce(nonce), "atcab_nonce pass-through")
    ok(cal.atcab_genkey_base(0x10, 14, other, None), "atcab_genkey_base(pubkey digest, 14)")
    ok(cal.atcab_verify_invalidate(14, invalidation_sig, verify_other, verified), "atcab_verify_invalidate(14)")
    assert verified.value
    ok(cal.atcab_read_zone(2, 14, 0, 0, head, 4), "atcab_read_zone slot 14")
    assert head[0] >> 4 == 0xA, "invalidated"
    status = cal.atcab_verify_stored(msg, msg_sig, 14, verified)
    assert status == cal.Status.ATCA_EXECUTION_ERROR, "verify with an invalidated key: " + layout.name(status)
