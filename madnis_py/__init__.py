"""madnis_py: neural multi-channel importance sampling for collider event generation."""

from madnis_py.flows import Flow
from madnis_py.physics.process import load_process
from madnis_py.training.multichannel import Integrator

__all__ = ["Flow", "Integrator", "load_process"]
__version__ = "0.1.0"
