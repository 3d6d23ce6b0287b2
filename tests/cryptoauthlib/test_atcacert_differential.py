"""Differential: coffre's atcacert decoder (`coffre chip certs --json`)
against CryptoAuthLib's (`tng_atcacert_read_device_cert`) on random
compressed device certificates.

Each case takes a fresh `tngtls` image (its own keys and serial number) and
overwrites slot 10, the compressed device certificate, with random values
in the fields a chip may hold: the signature (r, s), the signer id, and
sometimes the compressed dates, the template/chain id and serial-number source
byte, or random bytes in slot 5 (copied into the certificate). Both decoders
must agree: the same DER certificate, or both refuse. The cases come from a
fixed seed, so a disagreement replays.
"""

import hashlib
import json
import random
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import conftest

CASES = 20
SEED = 608

# Image format 2 (crates/coffre-emu/src/image.rs): 24-byte header, then
# config (128), OTP (64), data zone; a SHA-256 of everything before it ends
# the file. Data-zone slot offsets: slots 0-7 are 36 bytes, 8 is 416,
# 9-15 are 72.
HEADER, CONFIG, OTP = 24, 128, 64
DATA = HEADER + CONFIG + OTP


def slot_offset(slot):
    if slot <= 8:
        return DATA + 36 * slot
    return DATA + 36 * 8 + 416 + 72 * (slot - 9)


def rewrite(image, changes):
    b = bytearray(image.read_bytes())
    for offset, value in changes:
        b[offset : offset + len(value)] = value
    b[-32:] = hashlib.sha256(bytes(b[:-32])).digest()
    image.write_bytes(bytes(b))


def mutated_comp_cert(rng, original):
    c = bytearray(original)
    c[0:64] = bytes(rng.getrandbits(8) for _ in range(64))  # signature r, s
    if rng.random() < 0.5:
        c[64:67] = bytes(rng.getrandbits(8) for _ in range(3))  # compressed dates
    c[67:69] = bytes(rng.getrandbits(8) for _ in range(2))  # signer id
    if rng.random() < 0.25:
        c[69] = rng.getrandbits(8)  # template id, chain id
    if rng.random() < 0.25:
        c[70] = rng.getrandbits(8)  # serial-number source, format version
    return bytes(c)


def coffre_device_cert(image):
    r = subprocess.run(
        [conftest.coffre_bin(), "chip", "certs", "--bus", f"emu:{image}", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        out = json.loads(r.stdout)
    except ValueError:
        # Nothing rebuilt: coffre refused before printing (exit status != 0).
        assert r.returncode != 0, "no JSON but success"
        return None, r.stderr.strip()
    pem = out["device_pem"].encode()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return der, out.get("error")


def cases():
    rng = random.Random(SEED)
    return [(i, random.Random(rng.getrandbits(64))) for i in range(CASES)]


@pytest.mark.parametrize("case,rng", cases(), ids=lambda v: str(v) if isinstance(v, int) else "")
def test_coffre_and_cryptoauthlib_rebuild_the_same_random_certificate(tmp_path, case, rng):
    image = conftest.new_image(tmp_path, "tngtls")
    b = image.read_bytes()
    slot10 = slot_offset(10)
    changes = [(slot10, mutated_comp_cert(rng, b[slot10 : slot10 + 72]))]
    if rng.random() < 0.25:
        changes.append((slot_offset(5), bytes(rng.getrandbits(8) for _ in range(12))))
    rewrite(image, changes)

    ours, why = coffre_device_cert(image)
    s = conftest.serve(image, 0x6A)
    try:
        theirs, status, _ = conftest.tng_certs()
    finally:
        s.close()
    print(f"case {case}: cryptoauthlib {'refuses' if theirs is None else 'rebuilds'}; coffre: {why}")
    if theirs is None:
        assert ours is None, f"CryptoAuthLib refuses (status {status:#x}), coffre rebuilds: {why}"
        return
    assert ours is not None, f"CryptoAuthLib rebuilds, coffre refuses: {why}"
    assert ours == theirs, "the rebuilt certificates differ"


def test_the_cases_are_not_all_alike():
    # The generator varies what it should: every case has its own slot 10.
    blobs = {mutated_comp_cert(rng, bytes(72)) for _, rng in cases()}
    assert len(blobs) == CASES
