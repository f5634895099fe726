"""What the testbench needs to know about a generated top: files, port widths, cycle model."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from mstbnn.errors import UserError

__all__ = ["Design"]


@dataclass
class Design:
    """A generated network top, as the simulator sees it.

    Attributes
    ----------
    top : str
        Verilog module name of the top.
    sources : list of Path
        Verilog files to compile.
    input_width : int
        Bits per raw input value on ``in_data`` (W).
    score_width : int
        Bits per class score on ``out_scores`` (S).
    n_classes : int
    values_per_beat : int
        Input values carried by one ``in_data`` beat.
    beats_per_image : int
        Beats that make one input (1 for a dense-first network, H*W for conv).
    latency : int
        Analytic model: cycles from the handshake of an image's last input
        beat to its ``out_valid``, without stalls.
    initiation_interval : int
        Analytic model: cycles between consecutive images' first beats
        (equivalently outputs) when the stream never stalls.
    reuse : bool
        True for the MST-reuse engine, False for the plain baseline.
    extra : dict
        Everything else the generator recorded, kept for reports.
    """

    top: str
    sources: list
    input_width: int
    score_width: int
    n_classes: int
    values_per_beat: int
    beats_per_image: int
    latency: int
    initiation_interval: int
    reuse: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def in_data_width(self) -> int:
        return self.input_width * self.values_per_beat

    def check_sources(self) -> None:
        missing = [str(s) for s in self.sources if not Path(s).is_file()]
        if missing:
            raise UserError(f"{missing[0]}: generated Verilog missing; run `mstbnn verilog` on the artefact first")

    @classmethod
    def from_hw_json(cls, path) -> "Design":
        """The design described by the generator's ``<top>.json`` (see :mod:`mstbnn.hw.verilog`).

        The Verilog is the ``<top>.v`` beside it.
        """
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no generated design description here; run `mstbnn verilog` on the artefact first")
        try:
            data = json.loads(path.read_text())
            return cls(
                top=str(data["top"]),
                sources=[path.with_name(f"{data['top']}.v")],
                input_width=int(data["input_width"]),
                score_width=int(data["score_width"]),
                n_classes=int(data["classes"]),
                values_per_beat=int(data["input_values"]),
                beats_per_image=int(data["beats_per_image"]),
                latency=int(data["latency"]),
                initiation_interval=int(data["initiation_interval"]),
                reuse=bool(data["reuse"]),
                extra={k: data[k] for k in ("options", "stage_depths", "input_signed", "flow_model") if k in data},
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{path}: not a valid design description ({type(exc).__name__}: {exc}); regenerate it with `mstbnn verilog`") from None
