"""FPGA devices the open toolchain targets: capacities, package, nextpnr arguments.

Capacities are what nextpnr 0.11 reports as available for the device and
package (``--report`` utilisation), so the fit check and the synthesis report
count the same things; the exception is the LFE5U-12F, a 25F die that
nextpnr reports as such, listed with its data-sheet capacity. ``luts`` is LUT4s (iCE40: logic cells, each one LUT4 +
one FF + carry; ECP5: LUT4s, two per slice, with the same number of FFs).
"""

from __future__ import annotations

from dataclasses import dataclass

from mstbnn.errors import UserError

__all__ = ["Device", "DEVICES", "get_device"]


@dataclass(frozen=True)
class Device:
    """One FPGA part in one package.

    Attributes
    ----------
    name : str
        The name users type (``--device``).
    family : {"ice40", "ecp5"}
    part, package : str
        Vendor part and package, as in the data sheet.
    luts, ffs, bram, dsp, io_pins : int
        Capacities: LUT4s, flip-flops, block RAMs (iCE40 EBR 4 kbit, ECP5
        DP16KD 18 kbit), multipliers (iCE40 SB_MAC16, ECP5 MULT18X18D), user I/O pins.
    nextpnr_args : tuple of str
        Device and package selection for nextpnr-<family>.
    target_mhz : float
        Clock target given to the timing-driven placer (``--freq``); the
        reported Fmax is what routing achieved, met or not.
    """

    name: str
    family: str
    part: str
    package: str
    luts: int
    ffs: int
    bram: int
    dsp: int
    io_pins: int
    nextpnr_args: tuple
    target_mhz: float

    @property
    def nextpnr_tool(self) -> str:
        return f"yowasp-nextpnr-{self.family}"

    @property
    def synth_command(self) -> str:
        return f"synth_{self.family}"


DEVICES: dict[str, Device] = {
    d.name: d
    for d in (
        Device("ice40-up5k", "ice40", "iCE40UP5K", "SG48", 5280, 5280, 30, 8, 39,
               ("--up5k", "--package", "sg48"), 60.0),
        Device("ice40-hx8k", "ice40", "iCE40HX8K", "CT256", 7680, 7680, 32, 0, 206,
               ("--hx8k", "--package", "ct256"), 60.0),
        Device("ecp5-12k", "ecp5", "LFE5U-12F", "CABGA381", 12288, 12288, 32, 28, 197,
               ("--12k", "--package", "CABGA381", "--speed", "6"), 120.0),
        Device("ecp5-25k", "ecp5", "LFE5U-25F", "CABGA381", 24288, 24288, 56, 28, 197,
               ("--25k", "--package", "CABGA381", "--speed", "6"), 120.0),
        Device("ecp5-45k", "ecp5", "LFE5U-45F", "CABGA381", 43848, 43848, 108, 72, 245,
               ("--45k", "--package", "CABGA381", "--speed", "6"), 120.0),
        Device("ecp5-85k", "ecp5", "LFE5U-85F", "CABGA381", 83640, 83640, 208, 156, 365,
               ("--85k", "--package", "CABGA381", "--speed", "6"), 120.0),
    )
}


def get_device(name: str) -> Device:
    """The device called ``name``; a :class:`UserError` naming the choices otherwise."""
    try:
        return DEVICES[name]
    except KeyError:
        raise UserError(f"unknown device {name!r}; choose one of: {', '.join(DEVICES)}") from None
