"""CryptoAuthLib's host-side helpers (lib/host/atca_host.c), through ctypes.

libcryptoauth.so exports the `atcah_*` functions that compute, on the host,
what the chip computes (TempKey after Nonce/GenDig, MAC and CheckMac
responses, DeriveKey results, IO decryption, the GenKey and Sign-internal
messages); the Python package does not wrap them. The structures below
mirror lib/host/atca_host.h. `test_host_helpers.py` checks them against the
datasheet layouts computed here with hashlib, so a layout mismatch shows up
as a failure of its own.
"""

import ctypes
from ctypes import POINTER, Structure, byref, c_bool, c_size_t, c_uint, c_uint8, c_uint16, c_uint32, c_void_p

import cryptoauthlib as cal
from cryptoauthlib.library import get_cryptoauthlib

u8p = POINTER(c_uint8)


def _buf(data, size=None):
    if data is None:
        return None
    b = (c_uint8 * (size or len(data)))(*data)
    return b


def _ptr(b):
    return ctypes.cast(b, u8p) if b is not None else None


class TempKey(Structure):
    _fields_ = [
        ("value", c_uint8 * 64),
        ("key_id", c_uint, 4),
        ("source_flag", c_uint, 1),
        ("gen_dig_data", c_uint, 1),
        ("gen_key_data", c_uint, 1),
        ("no_mac_flag", c_uint, 1),
        ("valid", c_uint, 1),
        ("is_64", c_uint8),
    ]

    def bytes32(self):
        return bytes(self.value[:32])


class NonceParams(Structure):
    _fields_ = [
        ("mode", c_uint8),
        ("zero", c_uint16),
        ("num_in", u8p),
        ("rand_out", u8p),
        ("temp_key", POINTER(TempKey)),
    ]


class MacParams(Structure):
    _fields_ = [
        ("mode", c_uint8),
        ("key_id", c_uint16),
        ("challenge", u8p),
        ("key", u8p),
        ("otp", u8p),
        ("sn", u8p),
        ("response", u8p),
        ("temp_key", POINTER(TempKey)),
    ]


class GenDigParams(Structure):
    _fields_ = [
        ("zone", c_uint8),
        ("key_id", c_uint16),
        ("slot_conf", c_uint16),
        ("key_conf", c_uint16),
        ("slot_locked", c_uint8),
        ("counter", c_uint32),
        ("is_key_nomac", c_bool),
        ("sn", u8p),
        ("stored_value", u8p),
        ("other_data", u8p),
        ("temp_key", POINTER(TempKey)),
    ]


class DeriveKeyParams(Structure):
    _fields_ = [
        ("mode", c_uint8),
        ("target_key_id", c_uint16),
        ("sn", u8p),
        ("parent_key", u8p),
        ("target_key", u8p),
        ("temp_key", POINTER(TempKey)),
    ]


class DeriveKeyMacParams(Structure):
    _fields_ = [
        ("mode", c_uint8),
        ("target_key_id", c_uint16),
        ("sn", u8p),
        ("parent_key", u8p),
        ("mac", u8p),
    ]


class CheckMacParams(Structure):
    _fields_ = [
        ("mode", c_uint8),
        ("key_id", c_uint16),
        ("sn", u8p),
        ("client_chal", u8p),
        ("client_resp", u8p),
        ("other_data", u8p),
        ("otp", u8p),
        ("slot_key", u8p),
        ("target_key", u8p),
        ("temp_key", POINTER(TempKey)),
    ]


class IoDecryptParams(Structure):
    _fields_ = [
        ("io_key", u8p),
        ("out_nonce", u8p),
        ("data", u8p),
        ("data_size", c_size_t),
    ]


class GenKeyParams(Structure):
    _fields_ = [
        ("mode", c_uint8),
        ("key_id", c_uint16),
        ("public_key", u8p),
        ("public_key_size", c_size_t),
        ("other_data", u8p),
        ("sn", u8p),
        ("temp_key", POINTER(TempKey)),
    ]


class SignInternalParams(Structure):
    _fields_ = [
        ("mode", c_uint8),
        ("key_id", c_uint16),
        ("slot_config", c_uint16),
        ("key_config", c_uint16),
        ("use_flag", c_uint8),
        ("update_count", c_uint8),
        ("is_slot_locked", c_bool),
        ("for_invalidate", c_bool),
        ("sn", u8p),
        ("temp_key", POINTER(TempKey)),
        ("message", u8p),
        ("verify_other_data", u8p),
        ("digest", u8p),
    ]


def _lib():
    cal.load_cryptoauthlib()
    return get_cryptoauthlib()


def _check(status, what):
    if status != 0:
        raise AssertionError(f"{what} failed: 0x{status & 0xFF:02X}")


class Host:
    """The host's model of TempKey, updated with atcah_* as the chip's changes."""

    def __init__(self):
        self.lib = _lib()
        self.temp_key = TempKey()
        self._keep = []

    def _k(self, *objs):
        self._keep.extend(objs)

    def nonce(self, mode, num_in, rand_out=None, zero=0):
        """atcah_nonce: TempKey after Nonce(mode, num_in) that returned rand_out."""
        n = _buf(num_in)
        r = _buf(rand_out) if rand_out is not None else None
        self._k(n, r)
        p = NonceParams(mode, zero, _ptr(n), _ptr(r), ctypes.pointer(self.temp_key))
        _check(self.lib.atcah_nonce(byref(p)), "atcah_nonce")
        return self.temp_key.bytes32()

    def mac(self, mode, key_id, key, sn, challenge=None, otp=None):
        resp = (c_uint8 * 32)()
        ch, k, o, s = _buf(challenge), _buf(key), _buf(otp), _buf(sn)
        self._k(ch, k, o, s)
        p = MacParams(mode, key_id, _ptr(ch), _ptr(k), _ptr(o), _ptr(s), _ptr(resp), ctypes.pointer(self.temp_key))
        _check(self.lib.atcah_mac(byref(p)), "atcah_mac")
        return bytes(resp)

    def gen_dig(self, zone, key_id, sn, stored_value=None, other_data=None, slot_conf=0, key_conf=0,
                slot_locked=0, counter=0, is_key_nomac=False):
        sv, od, s = _buf(stored_value), _buf(other_data), _buf(sn)
        self._k(sv, od, s)
        p = GenDigParams(zone, key_id, slot_conf, key_conf, slot_locked, counter, is_key_nomac,
                         _ptr(s), _ptr(sv), _ptr(od), ctypes.pointer(self.temp_key))
        _check(self.lib.atcah_gen_dig(byref(p)), "atcah_gen_dig")
        return self.temp_key.bytes32()

    def derive_key(self, mode, target_key_id, parent_key, sn):
        out = (c_uint8 * 32)()
        pk, s = _buf(parent_key), _buf(sn)
        self._k(pk, s)
        p = DeriveKeyParams(mode, target_key_id, _ptr(s), _ptr(pk), _ptr(out), ctypes.pointer(self.temp_key))
        _check(self.lib.atcah_derive_key(byref(p)), "atcah_derive_key")
        return bytes(out)

    def derive_key_mac(self, mode, target_key_id, parent_key, sn):
        out = (c_uint8 * 32)()
        pk, s = _buf(parent_key), _buf(sn)
        self._k(pk, s)
        p = DeriveKeyMacParams(mode, target_key_id, _ptr(s), _ptr(pk), _ptr(out))
        _check(self.lib.atcah_derive_key_mac(byref(p)), "atcah_derive_key_mac")
        return bytes(out)

    def check_mac(self, mode, key_id, sn, slot_key, client_chal, other_data, otp=None):
        resp = (c_uint8 * 32)()
        s, k, ch, od, o = _buf(sn), _buf(slot_key), _buf(client_chal), _buf(other_data), _buf(otp)
        self._k(s, k, ch, od, o)
        p = CheckMacParams(mode, key_id, _ptr(s), _ptr(ch), _ptr(resp), _ptr(od), _ptr(o), _ptr(k), None,
                           ctypes.pointer(self.temp_key))
        _check(self.lib.atcah_check_mac(byref(p)), "atcah_check_mac")
        return bytes(resp)

    def gen_key_msg(self, mode, key_id, public_key, other_data, sn):
        pk, od, s = _buf(public_key), _buf(other_data), _buf(sn)
        self._k(pk, od, s)
        p = GenKeyParams(mode, key_id, _ptr(pk), len(public_key), _ptr(od), _ptr(s), ctypes.pointer(self.temp_key))
        _check(self.lib.atcah_gen_key_msg(byref(p)), "atcah_gen_key_msg")
        return self.temp_key.bytes32()

    def sign_internal_digest(self, mode, key_id, config, sn, for_invalidate=False):
        """atcah_config_to_sign_internal + atcah_sign_internal_msg: the digest
        Sign(internal) signs, and the 19 OtherData bytes for Verify. Without
        a config, the slot fields stay zero (CryptoAuthLib's verify_validate
        test builds its validation message that way)."""
        message = (c_uint8 * 55)()
        other = (c_uint8 * 19)()
        digest = (c_uint8 * 32)()
        s, c = _buf(sn), _buf(config)
        self._k(s, c)
        p = SignInternalParams()
        p.mode = mode
        p.key_id = key_id
        p.for_invalidate = for_invalidate
        p.sn = _ptr(s)
        p.temp_key = ctypes.pointer(self.temp_key)
        p.message = _ptr(message)
        p.verify_other_data = _ptr(other)
        p.digest = _ptr(digest)
        dev = int(cal.ATCADeviceType.ATECC608)
        if config is not None:
            _check(self.lib.atcah_config_to_sign_internal(dev, byref(p), _ptr(c)), "atcah_config_to_sign_internal")
        _check(self.lib.atcah_sign_internal_msg(dev, byref(p)), "atcah_sign_internal_msg")
        return bytes(digest), bytes(other), bytes(message)


def io_decrypt(io_key, out_nonce, data):
    """atcah_io_decrypt: undo the chip's IO encryption of 32 or 64 bytes."""
    lib = _lib()
    k, n, d = _buf(io_key), _buf(out_nonce), _buf(data)
    p = IoDecryptParams(_ptr(k), _ptr(n), _ptr(d), len(data))
    _check(lib.atcah_io_decrypt(byref(p)), "atcah_io_decrypt")
    return bytes(d)
