"""The folded engine: a time-multiplexed, schedule-driven datapath for networks too big to unroll.

Weights and the children's correction lists live in a packed bit stream per
layer (:mod:`mstbnn.compiler.storage`) held in block RAM. Per conv window (or
dense vector) a controller walks the layer's records: a root goes through a
SIMD XNOR-popcount S weight bits per cycle, a child through a gather unit G
correction entries per cycle, and is reconstructed from its parent's sum.

- :mod:`~mstbnn.hw.folded.plan`: per-layer plan and the exact cycle formula;
- :mod:`~mstbnn.hw.folded.reader`: stream reader over the weight ROM;
- :mod:`~mstbnn.hw.folded.controller`: the schedule walker;
- :mod:`~mstbnn.hw.folded.datapath`: SIMD XNOR-popcount and gather unit;
- :mod:`~mstbnn.hw.folded.stage`: one layer as a valid/ready stream stage;
- :mod:`~mstbnn.hw.folded.network`: :class:`FoldedNetworkEngine`, same ports as the unrolled engine;
- :mod:`~mstbnn.hw.folded.timing`: exact flow model (latency, initiation interval);
- :mod:`~mstbnn.hw.folded.estimate`: resource estimate and the choice of S and G per device;
- :mod:`~mstbnn.hw.folded.verilog`: ``generate(net, out_dir, reuse=..., config=..., device=...)``.

See ``docs/folded.md``.
"""
