"""Monotonic counters: config bytes 52-67, as CryptoAuthLib encodes them."""

import cryptoauthlib as cal
from cryptoauthlib.library import AtcaReference

import layout
from layout import ok


def counter(n):
    r = AtcaReference(0)
    ok(cal.atcab_counter_read(n, r), f"atcab_counter_read({n})")
    return r.value


def test_write_config_counter_then_read(blank):
    # CryptoAuthLib's counter_write_test (runs on silicon): the counter value
    # lives in the config zone, written before the config lock.
    for n in (0, 1):
        for value in (0, 1, 31, 32, 1000, 1048575, 2097151):
            ok(cal.atcab_write_config_counter(n, value), f"atcab_write_config_counter({n}, {value})")
            assert counter(n) == value, f"counter {n} after writing {value}"


def test_written_counter_survives_a_new_session_and_counts_on(blank):
    ok(cal.atcab_write_config_zone(layout.CONFIG), "atcab_write_config_zone")
    assert counter(1) == 0, "test_ecc608_configdata encodes counter 1 = 0"
    ok(cal.atcab_write_config_counter(1, 1048575), "atcab_write_config_counter(1, 1048575)")
    ok(cal.atcab_lock_config_zone(), "atcab_lock_config_zone")
    blank.reopen()
    assert counter(1) == 1048575
    after = AtcaReference(0)
    ok(cal.atcab_counter_increment(1, after), "atcab_counter_increment(1)")
    assert after.value == 1048576
    assert counter(1) == 1048576


def test_counter_increment(chip):
    # CryptoAuthLib's counter_test.
    before = counter(1)
    after = AtcaReference(0)
    ok(cal.atcab_counter_increment(1, after), "atcab_counter_increment(1)")
    assert after.value == before + 1
    assert counter(1) == before + 1


def test_counter_at_its_maximum_refuses_to_increment(blank):
    ok(cal.atcab_write_config_zone(layout.CONFIG), "atcab_write_config_zone")
    ok(cal.atcab_write_config_counter(0, 2097151), "atcab_write_config_counter(0, max)")
    ok(cal.atcab_lock_config_zone(), "atcab_lock_config_zone")
    status = cal.atcab_counter_increment(0, AtcaReference(0))
    assert status == cal.Status.ATCA_EXECUTION_ERROR, layout.name(status)
    assert counter(0) == 2097151
