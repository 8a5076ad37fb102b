"""Training of flows for importance sampling: losses, options, per-channel samplers, the
single-channel loop and the multi-channel integrator."""

from madnis_py._atomic import CheckpointWriteError
from madnis_py.training.channel_sampler import ChannelSampler
from madnis_py.training.channel_weights import ChannelWeights
from madnis_py.training.checkpoint import CheckpointError, CheckpointMismatchError
from madnis_py.training.losses import (
    LOSSES,
    forward_kl_loss,
    reverse_kl_loss,
    variance_loss,
)
from madnis_py.training.multichannel import (
    ChannelSample,
    IntegrandError,
    Integrator,
    WeightedBatch,
    allocate,
)
from madnis_py.training.options import TrainingOptions
from madnis_py.training.results import IterationAverage, MultiChannelResult
from madnis_py.training.single_channel import (
    IntegrationResult,
    integrate_flow,
    train_flow,
)

__all__ = [
    "LOSSES",
    "ChannelSample",
    "ChannelSampler",
    "ChannelWeights",
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointWriteError",
    "IntegrandError",
    "IntegrationResult",
    "Integrator",
    "IterationAverage",
    "MultiChannelResult",
    "TrainingOptions",
    "WeightedBatch",
    "allocate",
    "forward_kl_loss",
    "integrate_flow",
    "reverse_kl_loss",
    "train_flow",
    "variance_loss",
]
