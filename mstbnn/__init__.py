"""mstbnn: binary neural networks on FPGAs with MST-based channel reuse.

Stages, each reading only the artefact of the stage before it::

    nn (torch) -> compiler (IR, schedule, golden executors) -> hw (Amaranth)
                                                            -> sim (cocotb), boards (yosys/nextpnr)
"""

__version__ = "0.1.0"
