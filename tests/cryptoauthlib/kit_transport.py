"""CryptoAuthLib's own kit client, over TCP to `coffre emu serve`.

CryptoAuthLib talks to a Microchip kit through two layers: the kit protocol
HAL (`lib/hal/kit_protocol.c`: discovery, select, wake/idle/sleep, `E:t(...)`
framing, reply parsing) and a physical layer under it that moves bytes
(`hal_uart_*` for a kit on a serial port). Only the physical layer is
replaced here: `hal_iface_register_hal()` (exported by libcryptoauth.so)
swaps the UART interface's phy for one whose send/receive callbacks are a
TCP socket. Everything above it, including the kit protocol, is the
library's own code.

Why not the serial path: the wheel's UART phy raises DTR on open, which a
pseudo-terminal refuses (ioctl TIOCMSET fails), so a pty bridge to the
TCP port needs an LD_PRELOAD shim. A registered phy needs neither a pty
nor a C compiler.
"""

import ctypes
import socket
from ctypes import POINTER, CFUNCTYPE, Structure, byref, c_int, c_size_t, c_uint8, c_uint16, c_void_p

import cryptoauthlib as cal
from cryptoauthlib.library import get_cryptoauthlib

ATCA_SUCCESS = 0x00
ATCA_COMM_FAIL = 0xF0
ATCA_RX_NO_RESPONSE = 0xE7  # library's value for "nothing came back"

# `ATCAHAL_t` from lib/atca_iface.h; ATCA_STATUS is an enum (int).
HAL_INIT = CFUNCTYPE(c_int, c_void_p, c_void_p)
HAL_POSTINIT = CFUNCTYPE(c_int, c_void_p)
HAL_SEND = CFUNCTYPE(c_int, c_void_p, c_uint8, POINTER(c_uint8), c_int)
HAL_RECEIVE = CFUNCTYPE(c_int, c_void_p, c_uint8, POINTER(c_uint8), POINTER(c_uint16))
HAL_CONTROL = CFUNCTYPE(c_int, c_void_p, c_uint8, c_void_p, c_size_t)
HAL_RELEASE = CFUNCTYPE(c_int, c_void_p)


class AtcaHal(Structure):
    _fields_ = [
        ("halinit", HAL_INIT),
        ("halpostinit", HAL_POSTINIT),
        ("halsend", HAL_SEND),
        ("halreceive", HAL_RECEIVE),
        ("halcontrol", HAL_CONTROL),
        ("halrelease", HAL_RELEASE),
    ]


class TcpPhy:
    """The byte pipe under the kit protocol: one TCP connection per atcab_init."""

    def __init__(self):
        self.address = None
        self.sock = None
        self.pending = bytearray()
        self.error = None
        # Keep the callbacks alive as long as the library may call them.
        self.hal = AtcaHal(
            HAL_INIT(self._init),
            HAL_POSTINIT(lambda iface: ATCA_SUCCESS),
            HAL_SEND(self._send),
            HAL_RECEIVE(self._receive),
            HAL_CONTROL(lambda iface, option, param, length: ATCA_SUCCESS),
            HAL_RELEASE(self._release),
        )

    def _init(self, iface, cfg):
        try:
            self._close()
            self.sock = socket.create_connection(self.address, timeout=10)
            self.pending.clear()
            return ATCA_SUCCESS
        except OSError as e:
            self.error = f"cannot connect to {self.address}: {e}"
            return ATCA_COMM_FAIL

    def _send(self, iface, word_address, data, length):
        try:
            self.sock.sendall(ctypes.string_at(data, length))
            return ATCA_SUCCESS
        except OSError as e:
            self.error = f"send failed: {e}"
            return ATCA_COMM_FAIL

    def _receive(self, iface, word_address, data, length_ptr):
        # Hand back at most the requested count and never past the end of
        # the current line: kit_phy_receive() drops what follows '\n' in
        # the same chunk.
        want = length_ptr[0]
        try:
            while not self.pending:
                chunk = self.sock.recv(4096)
                if not chunk:
                    self.error = "the kit closed the connection"
                    length_ptr[0] = 0
                    return ATCA_RX_NO_RESPONSE
                self.pending += chunk
        except OSError as e:
            self.error = f"receive failed: {e}"
            length_ptr[0] = 0
            return ATCA_RX_NO_RESPONSE
        end = self.pending.find(b"\n")
        n = min(want, len(self.pending) if end < 0 else end + 1)
        ctypes.memmove(data, bytes(self.pending[:n]), n)
        del self.pending[:n]
        length_ptr[0] = n
        return ATCA_SUCCESS

    def _release(self, hal_data):
        self._close()
        return ATCA_SUCCESS

    def _close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


_PHY = None


def _install_phy():
    """Register the TCP phy under the library's kit protocol HAL (once)."""
    global _PHY
    if _PHY is not None:
        return _PHY
    cal.load_cryptoauthlib()
    lib = get_cryptoauthlib()
    phy = TcpPhy()
    old_hal = POINTER(AtcaHal)()
    old_phy = POINTER(AtcaHal)()
    uart = int(cal.ATCAIfaceType.ATCA_UART_IFACE)
    # First call: learn which HAL the UART interface uses (the kit protocol).
    status = lib.hal_iface_register_hal(uart, byref(phy.hal), byref(old_hal), byref(phy.hal), byref(old_phy))
    if status != ATCA_SUCCESS or not old_hal:
        raise RuntimeError(f"hal_iface_register_hal failed: 0x{status & 0xFF:02X}")
    if not old_phy:
        raise RuntimeError("this libcryptoauth.so has no kit protocol over UART (ATCA_HAL_KIT_UART)")
    # Second call: keep that HAL, put our phy under it.
    status = lib.hal_iface_register_hal(uart, old_hal, None, byref(phy.hal), None)
    if status != ATCA_SUCCESS:
        raise RuntimeError(f"hal_iface_register_hal failed: 0x{status & 0xFF:02X}")
    phy.kit_hal = old_hal  # keep a reference
    _PHY = phy
    return phy


def kit_config(address8):
    """The interface configuration a user of a kit on a serial port writes."""
    cfg = cal.ATCAIfaceCfg()
    cfg.iface_type = int(cal.ATCAIfaceType.ATCA_UART_IFACE)
    cfg.devtype = int(cal.ATCADeviceType.ATECC608)
    cfg.cfg.atcauart.dev_interface = int(cal.ATCAKitType.ATCA_KIT_AUTO_IFACE)
    cfg.cfg.atcauart.dev_identity = address8
    cfg.cfg.atcauart.port = 0
    cfg.cfg.atcauart.baud = 115200
    cfg.cfg.atcauart.wordsize = 8
    cfg.cfg.atcauart.parity = 2
    cfg.cfg.atcauart.stopbits = 1
    cfg.wake_delay = 1500
    cfg.rx_retries = 20
    return cfg


class KitSession:
    """atcab_init() on a kit at host:port; atcab_release() on close."""

    def __init__(self, host, port, address8):
        self.phy = _install_phy()
        self.phy.address = (host, port)
        self.phy.error = None
        self.cfg = kit_config(address8)  # the library keeps a pointer to it
        status = cal.atcab_init(self.cfg)
        if status != ATCA_SUCCESS:
            why = f" ({self.phy.error})" if self.phy.error else ""
            raise RuntimeError(f"atcab_init over the kit protocol failed: 0x{status & 0xFF:02X}{why}")

    def close(self):
        cal.atcab_release()
