"""Fixtures: emulated chips served by `coffre emu serve`, driven by CryptoAuthLib.

Each test gets its own image file and its own `coffre emu serve` process on a
free loopback port (port 0), and an open CryptoAuthLib session on it.

* `tng`: a fresh `tngtls` image (Trust&GO as shipped).
* `blank`: a fresh `blank` image (nothing locked).
* `chip`: a blank image that the suite configured the way a CryptoAuthLib
  user does (atcab_write_config_zone, atcab_lock_config_zone, slot writes,
  atcab_genkey, atcab_lock_data_zone), with the configuration CryptoAuthLib's
  own test suite runs on silicon (`test_ecc608_configdata`). It is configured
  once per run; each test gets a copy.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import cryptoauthlib as cal

from kit_transport import KitSession
import layout

ROOT = Path(__file__).resolve().parents[2]


def coffre_bin():
    path = os.environ.get("COFFRE_BIN") or str(ROOT / "target" / "debug" / "coffre")
    if not Path(path).is_file():
        pytest.fail(f"coffre binary not found at {path}: build it (cargo build -p coffre) or set COFFRE_BIN")
    return path


def coffre(*args):
    """Run the coffre CLI; return stdout, fail the test with stderr on error."""
    r = subprocess.run([coffre_bin(), *args], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        pytest.fail(f"coffre {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def new_image(directory, preset):
    path = Path(directory) / f"{preset}.img"
    coffre("emu", "new", "--preset", preset, "--out", str(path), "--force")
    return path


class Served:
    """`coffre emu serve` on a free port, with a CryptoAuthLib session open."""

    def __init__(self, image, address8):
        self.image = Path(image)
        self.address8 = address8
        self.proc = subprocess.Popen(
            [coffre_bin(), "emu", "serve", "--image", str(image), "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening "):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise RuntimeError(f"coffre emu serve did not start: {line!r} {err.strip()}")
        host, port = line.split()[1].rsplit(":", 1)
        self.host, self.port = host, int(port)
        try:
            self.session = KitSession(self.host, self.port, address8)
        except Exception:
            self._stop()
            raise

    def reopen(self):
        """atcab_release + atcab_init again (a new kit connection)."""
        self.session.close()
        self.session = KitSession(self.host, self.port, self.address8)

    def close(self):
        try:
            self.session.close()
        finally:
            self._stop()

    def _stop(self):
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


def serve(image, address8):
    return Served(image, address8)


@pytest.fixture
def tng(tmp_path):
    s = serve(new_image(tmp_path, "tngtls"), 0x6A)
    yield s
    s.close()


@pytest.fixture
def blank(tmp_path):
    s = serve(new_image(tmp_path, "blank"), 0xC0)
    yield s
    s.close()


@pytest.fixture(scope="session")
def configured_image(tmp_path_factory):
    d = tmp_path_factory.mktemp("configured")
    image = new_image(d, "blank")
    s = serve(image, 0xC0)
    try:
        layout.configure(s)
    finally:
        s.close()
    return image


@pytest.fixture
def chip(configured_image, tmp_path):
    image = tmp_path / "chip.img"
    shutil.copyfile(configured_image, image)
    s = serve(image, layout.ADDRESS8)
    yield s
    s.close()


def tng_certs():
    """The device and signer certificates CryptoAuthLib's TNG code rebuilds
    from the open session's chip: (device DER or None, its status, signer DER)."""
    from cryptoauthlib.library import AtcaReference

    size = AtcaReference(0)
    layout.ok(cal.tng_atcacert_max_signer_cert_size(size), "tng_atcacert_max_signer_cert_size")
    signer = bytearray(size.value)
    layout.ok(cal.tng_atcacert_read_signer_cert(signer, size), "tng_atcacert_read_signer_cert")
    signer = bytes(signer[: size.value])
    layout.ok(cal.tng_atcacert_max_device_cert_size(size), "tng_atcacert_max_device_cert_size")
    device = bytearray(size.value)
    status = cal.tng_atcacert_read_device_cert(device, size, signer)
    if status != 0:
        return None, status, signer
    return bytes(device[: size.value]), 0, signer
