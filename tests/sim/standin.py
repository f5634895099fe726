"""A hand-written stand-in engine for testing the simulation flow without mstbnn.hw.

It implements a one-layer network (threshold input quantiser, one binary
dense layer whose sums are the scores) behind the same top-level port
contract as the generated engines, with a configurable pipeline depth
(latency) and a cool-down after each accepted vector (initiation interval),
so the testbench's checks of values, latency and II can each be made to fail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mstbnn.compiler.ir import BinaryDense, InputQuantizer, Network
from mstbnn.sim.design import Design


def standin_network(rng: np.random.Generator, features: int = 12, classes: int = 5, bits: int = 4, signed: bool = False) -> Network:
    lo, hi = InputQuantizer((features,), bits=bits, signed=signed).value_range
    thresholds = rng.integers(lo, hi, size=features, endpoint=True).astype(np.int64)
    weights = rng.integers(0, 2, size=(classes, features)).astype(bool)
    return Network(
        layers=[
            InputQuantizer(shape=(features,), mode="threshold", thresholds=thresholds, bits=bits, signed=signed),
            BinaryDense(weights=weights),
        ]
    )


def write_standin(
    net: Network,
    out_dir: Path,
    *,
    latency: int = 2,
    interval: int = 1,
    flip: tuple[int, int] | None = None,
    top: str = "standin_top",
) -> Design:
    """Write the stand-in Verilog for ``net`` into ``out_dir`` and describe it.

    ``flip=(channel, position)`` inverts one weight in the Verilog only: a
    hardware bug the testbench must catch.
    """
    assert latency >= 1 and interval >= 1
    inp = net.layers[0]
    w = np.array(net.layers[1].weights, dtype=bool)
    if flip is not None:
        w[flip] = ~w[flip]
    classes, features = w.shape
    iw = inp.bits
    sw = int(features).bit_length() + 2  # |score| <= features, two's complement
    cw = max(1, int(classes - 1).bit_length())
    lines = [
        f"module {top}(",
        "  input wire clk, input wire rst,",
        f"  input wire in_valid, output wire in_ready, input wire [{features * iw - 1}:0] in_data,",
        f"  output wire out_valid, input wire out_ready, output wire [{cw - 1}:0] out_class,",
        f"  output wire [{classes * sw - 1}:0] out_scores",
        ");",
        f"  reg [{latency - 1}:0] v;",
        f"  reg [{classes * sw - 1}:0] s [0:{latency - 1}];",
        f"  reg [{cw - 1}:0] k [0:{latency - 1}];",
        "  reg [15:0] cool;",
        f"  wire advance = !v[{latency - 1}] || out_ready;",
        "  assign in_ready = advance && cool == 0;",
        f"  assign out_valid = v[{latency - 1}];",
        f"  assign out_scores = s[{latency - 1}];",
        f"  assign out_class = k[{latency - 1}];",
    ]
    cmp_sign = "$signed" if inp.signed else ""
    for f in range(features):
        t = int(inp.thresholds[f])
        lit = f"{iw}'sd{t}" if t >= 0 else f"-{iw}'sd{-t}"
        if not inp.signed:
            lit = f"{iw}'d{t}"
        lines.append(f"  wire b{f} = {cmp_sign}(in_data[{f * iw + iw - 1}:{f * iw}]) >= {lit};")
    for c in range(classes):
        terms = " + ".join(f"{{{sw - 1}'d0, {'' if w[c, f] else '~'}b{f}}}" for f in range(features))
        lines.append(f"  wire signed [{sw - 1}:0] y{c} = ((({terms}) << 1) - {sw}'sd{features});")
    lines.append(f"  wire [{classes * sw - 1}:0] y_all = {{{', '.join(f'y{c}' for c in reversed(range(classes)))}}};")
    # argmax, lowest index on ties: only a strictly larger score takes over
    lines += [
        f"  reg signed [{sw - 1}:0] best; reg [{cw - 1}:0] best_k;",
        "  always @* begin",
        "    best = y0; best_k = 0;",
    ]
    for c in range(1, classes):
        lines.append(f"    if (y{c} > best) begin best = y{c}; best_k = {c}; end")
    lines += ["  end", "  integer i;", "  always @(posedge clk) begin", "    if (rst) begin", "      v <= 0; cool <= 0;", "    end else begin"]
    lines += [
        f"      if (in_valid && in_ready) cool <= {interval - 1}; else if (cool != 0) cool <= cool - 1;",
        "      if (advance) begin",
        "        v[0] <= in_valid && in_ready; s[0] <= y_all; k[0] <= best_k;",
        f"        for (i = 1; i < {latency}; i = i + 1) begin v[i] <= v[i-1]; s[i] <= s[i-1]; k[i] <= k[i-1]; end",
        "      end",
        "    end",
        "  end",
        "endmodule",
    ]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{top}.v"
    path.write_text("\n".join(lines) + "\n")
    return Design(
        top=top,
        sources=[path],
        input_width=iw,
        score_width=sw,
        n_classes=classes,
        values_per_beat=features,
        beats_per_image=1,
        latency=latency,
        initiation_interval=interval,
        reuse=False,
    )
