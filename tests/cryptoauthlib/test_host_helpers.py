"""The oracles checked against each other before they judge the chip:
CryptoAuthLib's atcah_* (through ctypes) against the datasheet layouts
written with hashlib, and the GF(2^128) multiply against a GCM vector."""

import os

from host import Host
import oracle


def test_atcah_nonce_matches_the_datasheet_layout():
    num_in, rand_out = os.urandom(20), os.urandom(32)
    h = Host()
    assert h.nonce(0x00, num_in, rand_out) == oracle.nonce_tempkey(rand_out, num_in, 0x00)
    assert h.temp_key.valid == 1 and h.temp_key.source_flag == 0


def test_atcah_mac_matches_the_datasheet_layout():
    key, challenge, sn, otp = os.urandom(32), os.urandom(32), os.urandom(9), os.urandom(11)
    for mode in (0x00, 0x40, 0x10, 0x20, 0x50, 0x60):
        h = Host()
        assert h.mac(mode, 4, key, sn, challenge=challenge, otp=otp) == \
            oracle.mac_response(mode, 4, key, challenge, sn, otp), f"mode 0x{mode:02X}"


def test_gfm_oracle_reproduces_gcm_test_case_2():
    # GCM spec test case 2: K = 0^128, P = 0^128. GHASH(H, {}, C) = (C*H ^ L)*H.
    h = bytes.fromhex("66e94bd4ef8a2c3b884cfa59ca342b2e")
    c = bytes.fromhex("0388dace60b6a392f328c2b971b2fe78")
    lengths = (0).to_bytes(8, "big") + (128).to_bytes(8, "big")
    x1 = oracle.gfm(h, c)
    x2 = oracle.gfm(h, bytes(a ^ b for a, b in zip(x1, lengths)))
    assert x2.hex() == "f38cbb1ad69223dcc3457ae5b6b0f885"
