"""The device integrand's batch evaluation, on whatever device runs it (the CPU here).

``DeviceChannels.evaluate_channels`` of ``--points`` points in every channel of four
built-in processes, best of ``--repeat``, one thread. Run it from two checkouts back to
back (``PYTHONPATH=<checkout>``) to compare them:

    PYTHONPATH=. python benchmarks/bench_device_channels.py --label new
"""

from __future__ import annotations

import argparse
import time

import torch

PROCESSES = ("drell_yan", "ttbar", "ee_qqg", "zprime")


def best_time(name: str, points: int, repeat: int, device: str) -> float:
    """Best seconds of one ``evaluate_channels`` call over every channel of ``name``."""
    from madnis_py.device_integrand import DeviceChannels
    from madnis_py.integrand import Integrand

    integrand = Integrand(name)
    channels = DeviceChannels(integrand, device)
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.rand(points, integrand.dims(c), dtype=torch.float64,
                           generator=gen).to(device), c)
               for c in range(integrand.n_channels)]
    channels.evaluate_channels(batches)
    best = float("inf")
    for _ in range(repeat):
        if device != "cpu":
            torch.cuda.synchronize()
        t = time.perf_counter()
        channels.evaluate_channels(batches)
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="this checkout")
    ap.add_argument("--points", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(1)
    times = {name: best_time(name, args.points, args.repeat, args.device)
             for name in PROCESSES}
    print(args.label, " ".join(f"{k}={v * 1e3:.1f}ms" for k, v in times.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
