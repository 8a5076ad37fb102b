"""madnis_py: neural multi-channel importance sampling for collider event generation."""

from madnis_py.flows import Flow

__all__ = ["Flow"]
__version__ = "0.1.0"
