"""Hardware generation (Amaranth): the unrolled streaming engine.

- :mod:`mstbnn.hw.components`: bit-exact building blocks (XNOR-popcount tree,
  delta-update unit, threshold unit, window generator, OR-pool, argmax).
- :mod:`mstbnn.hw.layers`: one stream stage per binary layer / max-pool.
- :mod:`mstbnn.hw.network`: :class:`~mstbnn.hw.network.NetworkEngine`, the
  whole network as one valid/ready stream component.
- :mod:`mstbnn.hw.timing`: the exact cycle model (latency, initiation interval).
- :mod:`mstbnn.hw.estimate`: resource estimates and the hardware edge cost
  for the tree builder.
- :mod:`mstbnn.hw.verilog`: Verilog output (``mstbnn verilog DIR``).

This package imports amaranth lazily where it can; it never imports torch.
"""
