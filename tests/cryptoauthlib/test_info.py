"""Info: revision, KeyValid, State, GPIO (docs/chip-facts.md §11)."""

import cryptoauthlib as cal
import pytest

from layout import ok
import layout

INFO_REVISION, INFO_KEY_VALID, INFO_STATE, INFO_GPIO = 0, 1, 2, 3


def info(mode, param2=0):
    out = bytearray(4)
    status = cal.atcab_info_base(mode, param2, out)
    return status, bytes(out)


@pytest.mark.parametrize("fixture", ["tng", "blank", "chip"])
def test_revision_is_a_608b(fixture, request):
    request.getfixturevalue(fixture)
    rev = bytearray(4)
    ok(cal.atcab_info(rev), "atcab_info")
    assert cal.get_device_name(rev) == "ATECC608"
    assert rev[3] >= 0x03, f"revision {rev.hex()} is not a 608B"


def test_key_valid_on_the_factory_key(tng):
    status, out = info(INFO_KEY_VALID, 0)
    ok(status, "Info KeyValid slot 0")
    assert out[0] == 1


def state(served_label):
    status, out = info(INFO_STATE)
    ok(status, f"Info State {served_label}")
    return {
        "key_id": out[0] & 0x0F,
        "source_flag": out[0] >> 4 & 1,
        "gen_dig_data": out[0] >> 5 & 1,
        "gen_key_data": out[0] >> 6 & 1,
        "no_mac_flag": out[0] >> 7 & 1,
        "valid": out[1] >> 7 & 1,
    }


def test_state_follows_tempkey(chip):
    num_in = bytes(20)
    rand_out = bytearray(32)
    ok(cal.atcab_nonce_rand(num_in, rand_out), "atcab_nonce_rand")
    s = state("after Nonce random")
    assert (s["valid"], s["source_flag"], s["gen_dig_data"]) == (1, 0, 0), s

    ok(cal.atcab_gendig(2, 4, b"", 0), "atcab_gendig data slot 4")
    s = state("after GenDig slot 4")
    assert (s["valid"], s["gen_dig_data"], s["key_id"]) == (1, 1, 4), s

    ok(cal.atcab_nonce(bytes(32)), "atcab_nonce pass-through")
    s = state("after Nonce pass-through")
    assert (s["valid"], s["source_flag"], s["gen_dig_data"]) == (1, 1, 0), s

    sig = bytearray(64)
    ok(cal.atcab_sign_base(0x80, 0, sig), "Sign external of TempKey")
    s = state("after Sign")
    assert s["valid"] == 0, s


def test_gpio_mode_is_refused_in_i2c_mode(tng):
    # docs/chip-facts.md §11: GPIO mode (0x03) on an I2C part -> 0x0F.
    status, _ = info(INFO_GPIO)
    assert status == cal.Status.ATCA_EXECUTION_ERROR, layout.name(status)
