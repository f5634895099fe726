"""Compiler: IR, MST schedules, golden executors and the cost model.

Never imports torch or amaranth: everything downstream reads its artefact.
"""

from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.cost import layer_costs, network_cost
from mstbnn.compiler.execute import Trace, run
from mstbnn.compiler.io import load, save
from mstbnn.compiler.ir import BinaryConv2d, BinaryDense, InputQuantizer, MaxPool, Network, Threshold
from mstbnn.compiler.schedule import Schedule
from mstbnn.compiler.validate import validate

__all__ = [
    "BinaryConv2d", "BinaryDense", "InputQuantizer", "MaxPool", "Network", "Threshold", "Schedule",
    "Trace", "run", "load", "save", "schedule_network", "layer_costs", "network_cost", "validate",
]
