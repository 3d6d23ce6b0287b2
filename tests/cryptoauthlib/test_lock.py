"""Lock: config and data zones (with and without the summary CRC), and
slot locks (atcab_lock_data_slot) before and after the data lock."""

import cryptoauthlib as cal
from cryptoauthlib.library import AtcaReference

import layout
from layout import ok

CONFIG, OTP, DATA = 0, 1, 2
# atcab_is_locked() takes the Lock command's zone numbers.
LOCK_CONFIG, LOCK_DATA = 0, 1


def crc16(data):
    """The chip's CRC-16 (polynomial 0x8005, bits fed LSB first, no reflection
    of the result): CryptoAuthLib's atCRC(), written out."""
    crc = 0
    for byte in data:
        for bit in range(8):
            data_bit = (byte >> bit) & 1
            crc_bit = crc >> 15
            crc = (crc << 1) & 0xFFFF
            if data_bit != crc_bit:
                crc ^= 0x8005
    return crc


def is_locked(zone):
    r = AtcaReference(False)
    ok(cal.atcab_is_locked(zone, r), "atcab_is_locked")
    return bool(r.value)


def slot_locked(slot):
    r = AtcaReference(False)
    ok(cal.atcab_is_slot_locked(slot, r), f"atcab_is_slot_locked {slot}")
    return bool(r.value)


def test_tngtls_slot_locks_of_2_and_8(tng):
    # Issue 13: the library sends Lock mode 0x02 | slot << 2 with summary 0.
    for slot in (2, 8):
        assert not slot_locked(slot)
        ok(cal.atcab_lock_data_slot(slot), f"atcab_lock_data_slot({slot})")
        assert slot_locked(slot)
    # A locked slot keeps its key: GenKey on slot 2 is refused now.
    pub = bytearray(64)
    status = cal.atcab_genkey(2, pub)
    assert status == cal.Status.ATCA_EXECUTION_ERROR, layout.name(status)
    # And slot 8 no longer takes writes.
    status = cal.atcab_write_zone(DATA, 8, 0, 0, bytes(32), 32)
    assert status == cal.Status.ATCA_EXECUTION_ERROR, layout.name(status)
    # Locking again fails.
    status = cal.atcab_lock_data_slot(8)
    assert status == cal.Status.ATCA_EXECUTION_ERROR, layout.name(status)


def test_slot_that_is_not_lockable_is_refused(tng):
    # TNGTLS slot 0: KeyConfig Lockable = 0 (a real 608B answers 0xF4,
    # cryptoauthlib issue #370).
    status = cal.atcab_lock_data_slot(0)
    assert status == cal.Status.ATCA_EXECUTION_ERROR, layout.name(status)


def test_blank_chip_locks_with_the_summary_crc(blank):
    ok(cal.atcab_write_config_zone(layout.CONFIG), "atcab_write_config_zone")
    cfg = layout.read_config()
    good = crc16(cfg)
    status = cal.atcab_lock_config_zone_crc(good ^ 0x0101)
    assert status == cal.Status.ATCA_EXECUTION_ERROR, layout.name(status)
    assert not is_locked(LOCK_CONFIG)
    ok(cal.atcab_lock_config_zone_crc(good), "atcab_lock_config_zone_crc")
    assert is_locked(LOCK_CONFIG)
    status = cal.atcab_lock_config_zone()
    assert status == cal.Status.ATCA_EXECUTION_ERROR, "locking config twice: " + layout.name(status)

    # Slot lock before the data lock (docs/chip-facts.md §3e): slot 13 is Lockable.
    ok(cal.atcab_lock_data_slot(13), "atcab_lock_data_slot(13) before the data lock")
    assert slot_locked(13)
    assert not is_locked(LOCK_DATA)

    ok(cal.atcab_lock_data_zone(), "atcab_lock_data_zone")
    assert is_locked(LOCK_DATA)
    status = cal.atcab_lock_data_zone()
    assert status == cal.Status.ATCA_EXECUTION_ERROR, "locking data twice: " + layout.name(status)


def test_data_lock_needs_the_config_lock(blank):
    status = cal.atcab_lock_data_zone()
    assert status == cal.Status.ATCA_EXECUTION_ERROR, layout.name(status)
    assert not is_locked(LOCK_DATA)
