"""Hardware generation (Amaranth): the unrolled streaming engine.

- :mod:`mstbnn.hw.stage_plan`: what each stage will be (no Amaranth): trees,
  exact ranges, pipeline stages, widths, cycle rule; estimates read these.
- :mod:`mstbnn.hw.components`: bit-exact building blocks (delta-update unit,
  fused leaf, threshold unit, window generator, collector, OR-pool).
- :mod:`mstbnn.hw.layers`: one stream stage per binary layer / max-pool, and the argmax.
- :mod:`mstbnn.hw.network`: :class:`~mstbnn.hw.network.UnrolledEnginePlan` and
  :class:`~mstbnn.hw.network.NetworkEngine`, the whole network as one
  valid/ready stream component.
- :mod:`mstbnn.hw.timing`: the exact cycle model (latency, initiation interval).
- :mod:`mstbnn.hw.estimate`: resource estimates and the hardware edge cost
  for the tree builder.
- :mod:`mstbnn.hw.verilog`: Verilog output (``mstbnn verilog DIR``).

This package imports amaranth lazily where it can; it never imports torch.
"""
