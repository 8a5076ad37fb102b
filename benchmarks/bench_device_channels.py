"""The device integrand's batch evaluation, on whatever device runs it (CPU here).

``DeviceChannels.evaluate_channels`` of 5000 points in every channel of four built-in
processes, best of 5, one thread; run it from two checkouts (``PYTHONPATH=...``) back to
back to compare them. ``python benchmarks/bench_device_channels.py LABEL``
"""
import sys
import time

import torch

torch.set_num_threads(1)
from madnis_py.device_integrand import DeviceChannels
from madnis_py.integrand import Integrand

res = {}
for name in ("drell_yan", "ttbar", "ee_qqg", "zprime"):
    ig = Integrand(name)
    dev = DeviceChannels(ig, "cpu")
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.rand(5000, ig.dims(c), dtype=torch.float64, generator=gen), c) for c in range(ig.n_channels)]
    dev.evaluate_channels(batches)
    best = 1e9
    for _ in range(5):
        t = time.perf_counter(); dev.evaluate_channels(batches); best = min(best, time.perf_counter() - t)
    res[name] = best
print(sys.argv[1], " ".join(f"{k}={v*1e3:.1f}ms" for k, v in res.items()), flush=True)
