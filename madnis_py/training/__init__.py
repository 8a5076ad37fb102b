"""Training of flows for importance sampling: losses and the single-channel loop."""

from madnis_py._atomic import CheckpointWriteError
from madnis_py.training.channel_weights import ChannelWeights
from madnis_py.training.losses import forward_kl_loss, variance_loss
from madnis_py.training.multichannel import (
    CheckpointError,
    CheckpointMismatchError,
    IntegrandError,
    Integrator,
    MultiChannelResult,
    allocate,
)
from madnis_py.training.single_channel import IntegrationResult, integrate_flow, train_flow

__all__ = ["variance_loss", "forward_kl_loss", "train_flow", "integrate_flow",
           "IntegrationResult", "ChannelWeights", "Integrator", "MultiChannelResult",
           "allocate", "CheckpointError", "CheckpointMismatchError", "CheckpointWriteError",
           "IntegrandError"]
