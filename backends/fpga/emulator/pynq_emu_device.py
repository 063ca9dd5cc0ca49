"""PYNQ's own Python stack (pynq 3.0.1) against pynq-emu, the emulated PYNQ-Z1.

`EmulatedPynqZ1` is a `pynq.Device`: what PYNQ calls a device class, the
plug-in point for a kind of hardware (pynq/pl_server/device.py). Defining a
subclass with `_probe_` registers it (pynq's `DeviceMeta`); with PYNQ_EMU_ROOT
naming a running pynq-emu's root folder it is found by `pynq.Device.devices`
and becomes `Device.active_device`, so `pynq.Overlay`, `pynq.MMIO`,
`pynq.allocate` and FINN's driver need no device argument. It does what
pynq's `EmbeddedDevice` does on the board, on the emulator's files instead of
the board's:

    board (EmbeddedDevice)                    here
    /dev/mem (MMIO)                           <root>/dev/mem
    XRT buffer objects (allocate)             <root>/dev/udmabuf0 + u-dma-buf's sync_* attributes
    /sys/class/fpga_manager, /lib/firmware    the same under <root>

Where it departs from EmbeddedDevice, and why (pynq 3.0.1):
- metadata: EmbeddedDevice's `BitfileHandler.get_parser` parses the .hwh with
  `RuntimeMetadataParser(Metadata(...))`, as this does, and then builds an
  xclbin for XRT by running `xclbinutil` (`_create_xclbin`), an XRT tool not
  present off the board; the xclbin only describes memory banks for XRT, which
  this device does not use.
- download: no XRT (`_xrt_download`), no metadata cache pickled into pynq's
  own install folder (`gen_cache`), no AXI port widths (a no-op for the
  Zynq-7000's processing_system7 anyway).
- buffers come from u-dma-buf, which the emulator models (not coherent: flush
  and invalidate are real), in place of XRT's zocl.
Clocks stay PYNQ's: `pynq.ps.Clocks` refuses any CPU but armv7l/aarch64, so on
x86 neither `Overlay.download()` (it sets the PL clocks from the .hwh first)
nor FINN's `fclk_mhz > 0` can run; program with `pynq.Bitstream(...).download()`
and pass `fclk_mhz=0` (docs/fpga.md).
"""
import mmap
import os
import time
from pathlib import Path

import numpy as np
from pynq.buffer import PynqBuffer
from pynq.metadata.runtime_metadata_parser import RuntimeMetadataParser
from pynq.pl_server.device import Device
from pynq.pl_server.embedded_device import BitfileHandler
from pynqmetadata.frontends import Metadata

ROOT_VARIABLE = "PYNQ_EMU_ROOT"
# u-dma-buf's sync_direction: 0 both ways (what busi-infer's fpga backend writes too)
_BIDIRECTIONAL = 0
# Buffers never share a cache line (the Cortex-A9's is 32 bytes), so on a board
# one buffer's invalidate could not drop another's unflushed writes.
_ALIGNMENT = 64


class EmulatedPynqZ1(Device):
    """The emulated PYNQ-Z1 under `root` (a running pynq-emu's --root)."""

    # pynq's own devices probe at 50 (EmbeddedDevice) and 200 (XrtDevice); on a
    # board with PYNQ_EMU_ROOT set, the real one stays the default.
    _probe_priority_ = 300

    @classmethod
    def _probe_(cls):
        root = os.environ.get(ROOT_VARIABLE)
        return [cls(root)] if root else []

    def __init__(self, root, sync_timeout_s=10.0):
        self.root = Path(root)
        super().__init__(f"pynq-emu:{self.root}")
        self.name = "pynq-emu"
        self.capabilities = {"MEMORY_MAPPED": True, "REGISTER_RW": False, "CALLABLE": False}
        self.sync_timeout_s = sync_timeout_s
        self._udmabuf = self.root / "sys/class/u-dma-buf/udmabuf0"
        self._manager = self.root / "sys/class/fpga_manager/fpga0"
        for needed in (self.root / "dev/mem", self.root / "dev/udmabuf0", self._udmabuf, self._manager):
            if not needed.exists():
                raise RuntimeError(f"{needed}: missing; is pynq-emu running with --root {self.root}?")
        self._dma_phys = int(self._attribute("phys_addr"), 0)
        size = int(self._attribute("size"), 0)
        with open(self.root / "dev/udmabuf0", "r+b") as f:
            self._dma = mmap.mmap(f.fileno(), size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._next_free = 0
        self.bitfile_name = None
        self.timestamp = ""

    # --- metadata and programming -------------------------------------------------
    def get_bitfile_metadata(self, bitfile_name):
        hwh = Path(bitfile_name).with_suffix(".hwh")
        if not hwh.is_file():
            raise RuntimeError(f"{hwh}: no hardware hand-off beside {bitfile_name}")
        parser = RuntimeMetadataParser(Metadata(input=hwh))
        parser.bin_data = BitfileHandler(bitfile_name).get_bin_data()  # pynq's own .bit -> .bin
        parser.xclbin_data = None
        parser.dtbo_data = None
        return parser

    def download(self, bitstream, parser=None):
        """fpga_manager's protocol, as EmbeddedDevice.download writes it."""
        if parser is None:
            parser = self.get_bitfile_metadata(bitstream.bitfile_name)
        bitstream.binfile_name = Path(bitstream.bitfile_name).stem + ".bin"
        bitstream.firmware_path = self.root / "lib/firmware" / bitstream.binfile_name
        bitstream.firmware_path.write_bytes(parser.bin_data)
        _write_in_place(self._manager / "flags", "1" if bitstream.partial else "0")
        _write_in_place(self._manager / "firmware", bitstream.binfile_name)
        super().post_download(bitstream, parser, self.name)

    # --- registers ------------------------------------------------------------------
    def mmap(self, base_addr, length):
        """As EmbeddedDevice.mmap, on the emulator's dev/mem."""
        virt_base = base_addr & ~(mmap.PAGESIZE - 1)
        virt_offset = base_addr - virt_base
        fd = os.open(self.root / "dev/mem", os.O_RDWR | os.O_SYNC)
        try:
            mem = mmap.mmap(fd, length + virt_offset, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                            offset=virt_base)
        finally:
            os.close(fd)
        return np.frombuffer(mem, np.uint32, length >> 2, virt_offset)

    # --- buffers ----------------------------------------------------------------------
    def allocate(self, shape, dtype, **kwargs):
        """A PynqBuffer in the u-dma-buf region.

        Always cacheable and not coherent (flush and invalidate do work), as
        u-dma-buf maps it and as FINN's zynq-iodma driver asks (cacheable=True);
        the `cacheable` keyword is accepted and changes nothing. Buffers are
        carved from the region in order and not reused: enough for a driver
        that allocates once per batch size, as FINN's does."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        offset = self._next_free
        if offset + nbytes > len(self._dma):
            raise MemoryError(f"{self.root}/dev/udmabuf0: {nbytes} bytes asked, "
                              f"{len(self._dma) - offset} of {len(self._dma)} left")
        self._next_free = -(-(offset + max(nbytes, 1)) // _ALIGNMENT) * _ALIGNMENT
        return PynqBuffer(shape, dtype, buffer=self._dma, offset=offset, device=self,
                          device_address=self._dma_phys + offset, bo=offset, coherent=False)

    def flush(self, bo, offset, ptr, size):
        self._sync(bo + offset, size, "sync_for_device")

    def invalidate(self, bo, offset, ptr, size):
        self._sync(bo + offset, size, "sync_for_cpu")

    def _sync(self, offset, size, trigger):
        """u-dma-buf's cache maintenance; the emulator acknowledges by resetting the trigger to 0."""
        self._attribute("sync_offset", offset)
        self._attribute("sync_size", size)
        self._attribute("sync_direction", _BIDIRECTIONAL)
        self._attribute(trigger, 1)
        deadline = time.monotonic() + self.sync_timeout_s
        while int(self._attribute(trigger), 0) != 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self._udmabuf / trigger}: sync of {size} bytes at offset {offset:#x} "
                                   f"not acknowledged within {self.sync_timeout_s} s")
            time.sleep(0)

    def _attribute(self, name, value=None):
        path = self._udmabuf / name
        if value is None:
            return path.read_text().strip() or "0"
        # Fixed width, written in place: the emulator polls these files while
        # they are written, and a truncate-then-write would let it read ''.
        _write_in_place(path, f"{value:#018x}\n")
        return None


def _write_in_place(path, text):
    """One pwrite at offset 0 (then the length), as busi-infer's sysfs code writes."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, text.encode(), 0)
        os.ftruncate(fd, len(text))
    finally:
        os.close(fd)
