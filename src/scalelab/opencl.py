"""An OpenCL context without questions asked.

``pyopencl.create_some_context()`` prompts on stdin when several devices exist, which hangs a
notebook under nbgrader. ``get_context()`` never prompts: it honours ``PYOPENCL_CTX`` (e.g. ``0`` or
``0:1``) when set, otherwise prefers a GPU and falls back to a CPU device (PoCL's, installed from PyPI
with ``pyopencl[pocl]``), and says what it picked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyopencl as cl

INSTALL_HINT = (
    "no OpenCL platform was found (PLATFORM_NOT_FOUND_KHR). Install one: `pip install 'pyopencl[pocl]'` "
    "gives PoCL's CPU device (or run `make setup`); for a GPU install the vendor's OpenCL driver "
    "(NVIDIA driver, ROCm, or Intel's compute runtime) and check with `make doctor`"
)


class OpenCLNotFound(RuntimeError):
    """No OpenCL platform or device."""


@dataclass(frozen=True)
class DeviceInfo:
    platform: str
    name: str
    kind: str  # "GPU", "CPU" or "accelerator"
    compute_units: int
    global_mem_mb: int
    opencl_version: str

    def describe(self) -> str:
        return (
            f"{self.kind} {self.name.strip()} on {self.platform.strip()} "
            f"({self.compute_units} compute units, {self.global_mem_mb} MB, {self.opencl_version.strip()})"
        )


def _device_info(device: cl.Device) -> DeviceInfo:
    import pyopencl as cl

    kinds = {cl.device_type.GPU: "GPU", cl.device_type.CPU: "CPU", cl.device_type.ACCELERATOR: "accelerator"}
    kind = next((label for bit, label in kinds.items() if device.type & bit), "other")
    return DeviceInfo(
        platform=device.platform.name,
        name=device.name,
        kind=kind,
        compute_units=device.max_compute_units,
        global_mem_mb=device.global_mem_size // 2**20,
        opencl_version=device.version,
    )


def describe_device(device: cl.Device) -> str:
    """One line naming a device, its platform, compute units, memory and OpenCL version."""
    return _device_info(device).describe()


def list_devices() -> list[DeviceInfo]:
    """Every device of every platform; raises OpenCLNotFound when there is none."""
    import pyopencl as cl

    try:
        platforms = cl.get_platforms()
    except cl.Error as error:
        raise OpenCLNotFound(f"{INSTALL_HINT} ({error})") from None
    devices = [_device_info(d) for p in platforms for d in p.get_devices()]
    if not devices:
        raise OpenCLNotFound(INSTALL_HINT)
    return devices


def pick_device() -> cl.Device:
    """A GPU if there is one, else a CPU device, else any device."""
    import pyopencl as cl

    try:
        platforms = cl.get_platforms()
    except cl.Error as error:
        raise OpenCLNotFound(f"{INSTALL_HINT} ({error})") from None
    devices = [d for p in platforms for d in p.get_devices()]
    if not devices:
        raise OpenCLNotFound(INSTALL_HINT)
    for wanted in (cl.device_type.GPU, cl.device_type.CPU):
        for device in devices:
            if device.type & wanted:
                return device
    return devices[0]


def get_context(verbose: bool = True) -> cl.Context:
    """A context on one device, chosen without prompting (see the module docstring)."""
    import pyopencl as cl

    if os.environ.get("PYOPENCL_CTX"):
        try:
            context = cl.create_some_context(interactive=False)
        except cl.Error as error:
            raise OpenCLNotFound(
                f"PYOPENCL_CTX={os.environ['PYOPENCL_CTX']!r} does not name a usable device ({error}). "
                "List them with `make doctor` and use 'platform:device' numbers, e.g. PYOPENCL_CTX=0:0"
            ) from None
        chosen_by = "PYOPENCL_CTX"
    else:
        context = cl.Context([pick_device()])
        chosen_by = "GPU preferred, CPU fallback"
    if verbose:
        print(f"OpenCL: {describe_device(context.devices[0])} [{chosen_by}]")
    return context
