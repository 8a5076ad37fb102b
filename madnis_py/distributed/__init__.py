"""Event generation and matrix-element evaluation spread over a Dask cluster.

Two jobs scale out, both through ``dask.distributed`` (the scheduler, the retries and the
recovery from lost workers are Dask's; nothing here schedules work itself):

* **Sharded event generation** (:func:`generate_sharded`). The driver loads the trained
  checkpoint once, takes the cross section from its last integration and fixes the
  maximum weight ``w_max`` (with its overweight normalisation) on one calibration sample,
  exactly as the single-process ``madnis-py generate`` does. The events are split into
  shards whose counts add up to the request; each shard is one Dask task that rebuilds
  the integrand and the integrator on its worker, draws its events with its own seed
  (:func:`shard_seed`) and writes its own LHE part file. A shard is a pure function of
  (card, checkpoint, seed, count, ``w_max``), and its part file only appears, by an
  atomic rename, once it is complete: a worker that dies mid-shard leaves at most hidden
  temporary files, Dask reruns the task elsewhere, and the merged file is byte for byte
  the one of a run without the failure. The merge streams the parts' ``<event>`` blocks
  in shard order into one file whose ``<init>`` carries the cross section of every
  subprocess from the event counts summed over the shards.

* **Distributed matrix elements during training** (:class:`DistributedChannels`). The
  flows train on the driver; only the integrand (phase-space mapping, PDFs and matrix
  element) is evaluated on the workers, on chunks of each batch, and reassembled in
  order. The evaluation is deterministic per point, so a training gives the same losses
  and integral as in one process for the same seed.

Workers rebuild the integrand from a small picklable :class:`IntegrandSpec` (a process
name or card path and the integrand's options) and keep it in a per-process cache, so the
matrix-element library is loaded once per worker, not once per task; numpy arrays travel,
torch modules never do. Paths (checkpoint, output directory, process cards outside the
package) must be visible to every worker: a shared file system on a batch cluster.

Clusters come from the run card's ``[distributed]`` table (:func:`cluster_from_settings`):
an existing scheduler, a ``LocalCluster`` of worker processes, or a batch-system cluster
of ``dask_jobqueue`` (SLURM, HTCondor, PBS). :func:`check_distributed` checks that table
before any work (the scheduler answers, the cluster's options are keyword arguments its
class takes) and raises :class:`DistributedError`, one line, when it cannot work.

The submodules, one job each (each imports only submodules above it in this list):

* :mod:`~madnis_py.distributed.shards`: the shards' seeds and event counts;
* :mod:`~madnis_py.distributed.specs`: integrand recipes and the per-worker integrand
  cache;
* :mod:`~madnis_py.distributed.channels`: distributed matrix elements;
* :mod:`~madnis_py.distributed.generation`: sharded generation and the merges;
* :mod:`~madnis_py.distributed.clusters`: clusters from the card;
* :mod:`~madnis_py.distributed.checks`: checks before any work.
"""

from madnis_py.distributed.channels import DistributedChannels
from madnis_py.distributed.checks import DistributedError, check_distributed
from madnis_py.distributed.clusters import JOBQUEUE_CLUSTERS as JOBQUEUE_CLUSTERS
from madnis_py.distributed.clusters import cluster_client, cluster_from_settings
from madnis_py.distributed.generation import (
    ShardedGeneration,
    ShardReport,
    generate_sharded,
    merge_lhe_parts,
    merge_shard_reports,
)
from madnis_py.distributed.shards import shard_seed, split_events
from madnis_py.distributed.specs import IntegrandSpec

__all__ = [
    "DistributedChannels",
    "DistributedError",
    "IntegrandSpec",
    "ShardReport",
    "ShardedGeneration",
    "cluster_client",
    "check_distributed",
    "cluster_from_settings",
    "generate_sharded",
    "merge_lhe_parts",
    "merge_shard_reports",
    "shard_seed",
    "split_events",
]
