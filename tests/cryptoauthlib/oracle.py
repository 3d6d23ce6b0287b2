"""Independent computations the chip's answers are checked against:
`cryptography` for P-256 and AES, hashlib/hmac for SHA-256, and the
datasheet's message layouts written out here."""

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.exceptions import InvalidSignature


def public_key(raw64):
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + bytes(raw64))


def raw_public(key):
    nums = key.public_key().public_numbers() if hasattr(key, "public_key") else key.public_numbers()
    return nums.x.to_bytes(32, "big") + nums.y.to_bytes(32, "big")


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def private_bytes(key):
    return key.private_numbers().private_value.to_bytes(32, "big")


def ecdsa_verify(raw_pub, digest, sig64):
    """True if sig64 (R||S) is a valid ECDSA P-256 signature of digest."""
    der = encode_dss_signature(int.from_bytes(sig64[:32], "big"), int.from_bytes(sig64[32:], "big"))
    try:
        public_key(raw_pub).verify(der, bytes(digest), ec.ECDSA(Prehashed(hashes.SHA256())))
        return True
    except InvalidSignature:
        return False


def ecdsa_sign(key, digest):
    r, s = decode_dss_signature(key.sign(bytes(digest), ec.ECDSA(Prehashed(hashes.SHA256()))))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def ecdh(key, raw_pub):
    return key.exchange(ec.ECDH(), public_key(raw_pub))


def aes_ecb_encrypt(key16, block16):
    e = Cipher(algorithms.AES(bytes(key16)), modes.ECB()).encryptor()
    return e.update(bytes(block16)) + e.finalize()


def aes_ecb_decrypt(key16, block16):
    d = Cipher(algorithms.AES(bytes(key16)), modes.ECB()).decryptor()
    return d.update(bytes(block16)) + d.finalize()


def gfm(h, x):
    """GHASH multiplication in GF(2^128) (NIST SP 800-38D, Algorithm 1)."""
    R = 0xE1 << 120
    X = int.from_bytes(bytes(x), "big")
    V = int.from_bytes(bytes(h), "big")
    Z = 0
    for i in range(127, -1, -1):
        if (X >> i) & 1:
            Z ^= V
        V = (V >> 1) ^ R if V & 1 else V >> 1
    return Z.to_bytes(16, "big")


def sha256(data):
    return hashlib.sha256(bytes(data)).digest()


def hmac_sha256(key, data):
    return hmac.new(bytes(key), bytes(data), hashlib.sha256).digest()


def nonce_tempkey(rand_out, num_in, mode=0x00, p2=0):
    """Nonce random mode: SHA-256(RandOut || NumIn || 0x16 || mode || p2 LSB)."""
    return sha256(bytes(rand_out) + bytes(num_in) + bytes([0x16, mode, p2 & 0xFF]))


def mac_response(mode, key_id, block1, block2, sn, otp=bytes(13)):
    """MAC command response, datasheet message layout (88 bytes):
    block1(32) | block2(32) | opcode 0x08 | mode | KeyID LE(2) |
    OTP[0:11] (mode bit 4) or OTP[0:8] + 3 zeros (bit 5) or 11 zeros |
    SN[8] | SN[4:8] or zeros | SN[0:2] | SN[2:4] or zeros (bit 6)."""
    otp = bytes(otp)
    sn = bytes(sn)
    m = bytes(block1) + bytes(block2) + bytes([0x08, mode, key_id & 0xFF, key_id >> 8])
    if mode & 0x10:
        m += otp[0:11]
    else:
        m += (otp[0:8] if mode & 0x20 else bytes(8)) + bytes(3)
    m += sn[8:9]
    m += sn[4:8] if mode & 0x40 else bytes(4)
    m += sn[0:2]
    m += sn[2:4] if mode & 0x40 else bytes(2)
    assert len(m) == 88
    return sha256(m)
