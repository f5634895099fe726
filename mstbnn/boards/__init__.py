"""Boards: open-toolchain synthesis reports and board bitstreams.

- :mod:`.devices`: the FPGA parts (capacities, package, nextpnr arguments).
- :mod:`.synth`: fit check, yosys + nextpnr run, the synth.json report.
- :mod:`.wrapper`: the pin-fitting harness for standalone synthesis.
- :mod:`.uart`, :mod:`.uart_top`, :mod:`.protocol`: the UART top and its framing.
- :mod:`.bitstream`: iCEBreaker / ULX3S builds through amaranth-boards.
- :mod:`.host`: the host side over a serial port (stdlib termios).
- :mod:`.cli`: ``mstbnn synth``, ``mstbnn bitstream``, ``mstbnn run``.

Nothing here imports amaranth at package import time.
"""
