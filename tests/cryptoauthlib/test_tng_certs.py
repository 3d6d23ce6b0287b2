"""The factory certificates of a tngtls image, as CryptoAuthLib's TNG code
rebuilds them (tng_get_device_pubkey, tng_atcacert_read_device_cert,
tng_atcacert_read_signer_cert), checked with `cryptography` and compared
byte for byte with `coffre chip certs`."""

import re

import cryptoauthlib as cal
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import conftest
import layout
from layout import ok
import oracle

PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def raw(public_key):
    return oracle.raw_public(public_key)


def read_certs():
    device, status, signer = conftest.tng_certs()
    ok(status, "tng_atcacert_read_device_cert")
    return device, signer


def test_device_pubkey_is_slot_0(tng):
    pub = bytearray(64)
    ok(cal.tng_get_device_pubkey(pub), "tng_get_device_pubkey")
    slot0 = bytearray(64)
    ok(cal.atcab_get_pubkey(0, slot0), "atcab_get_pubkey(0)")
    assert pub == slot0


def test_certificates_rebuild_into_a_valid_chain(tng):
    device_der, signer_der = read_certs()
    device = x509.load_der_x509_certificate(device_der)
    signer = x509.load_der_x509_certificate(signer_der)
    slot0 = bytearray(64)
    ok(cal.atcab_get_pubkey(0, slot0), "atcab_get_pubkey(0)")
    assert raw(device.public_key()) == bytes(slot0)
    assert device.issuer == signer.subject
    device.verify_directly_issued_by(signer)
    # The serial number of the chip is in the device certificate's subject
    # or serial (the TNG definitions derive it from the chip's SN).
    assert isinstance(signer.public_key(), ec.EllipticCurvePublicKey)


def test_each_image_has_its_own_device_certificate(tmp_path):
    ders = []
    for i in range(2):
        d = tmp_path / str(i)
        d.mkdir()
        s = conftest.serve(conftest.new_image(d, "tngtls"), 0x6A)
        try:
            ders.append(read_certs()[0])
        finally:
            s.close()
    assert ders[0] != ders[1]


def test_coffre_chip_certs_matches_cryptoauthlib_byte_for_byte(tmp_path):
    image = conftest.new_image(tmp_path, "tngtls")
    printed = conftest.coffre("chip", "certs", "--bus", f"emu:{image}").encode()
    ours = [x509.load_pem_x509_certificate(b).public_bytes(serialization.Encoding.DER) for b in PEM.findall(printed)]
    assert ours, "coffre chip certs printed no PEM certificate"
    s = conftest.serve(image, 0x6A)
    try:
        device_der, signer_der = read_certs()
    finally:
        s.close()
    assert device_der in ours, "device certificate differs from CryptoAuthLib's rebuild"
    assert signer_der in ours, "signer certificate differs from CryptoAuthLib's rebuild"


def test_cryptoauthlibs_chain_ends_at_the_exported_factory_root(tng):
    # `coffre emu factory-root` exports the emulated factory's root; the
    # signer certificate CryptoAuthLib rebuilds must be issued by it.
    root = x509.load_pem_x509_certificate(conftest.coffre("emu", "factory-root").encode())
    root.verify_directly_issued_by(root)
    device_der, signer_der = read_certs()
    signer = x509.load_der_x509_certificate(signer_der)
    assert signer.issuer == root.subject
    signer.verify_directly_issued_by(root)
    x509.load_der_x509_certificate(device_der).verify_directly_issued_by(signer)
