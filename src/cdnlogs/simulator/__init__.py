"""The built-in simulator: a local Aliyun CDN API plus its signed OSS log host.

``cdnlogs simulate`` serves it until interrupted; ``cdnlogs demo`` and the tests run it
in-process::

    with Simulator(SimulatorConfig(domains=("a.example.com",), days=2)) as sim:
        sim.endpoint          # http://127.0.0.1:PORT
        sim.faults.throttle_next = 2
"""

from __future__ import annotations

from cdnlogs.simulator.catalog import SimFile
from cdnlogs.simulator.faults import Faults, FileFaults
from cdnlogs.simulator.server import Simulator, SimulatorConfig

__all__ = ["Faults", "FileFaults", "SimFile", "Simulator", "SimulatorConfig"]
