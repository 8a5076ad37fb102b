"""GPU against CPU on one machine: flows, phase-space maps, PDFs, the integrand and runs.

Measures, on the CPU (torch's default threads, named in the output) and on the first
CUDA device of the same machine, in one run:

* flow sampling and density (``Flow.sample``, ``Flow.log_prob``) at 1e5 .. 1e6 points,
  float64, the spline kernels of ``madnis_py._ext`` (CPU lanes vs CUDA);
* the phase-space map of the first channel of ``drell_yan`` and ``ee_qqg`` at 1e6 points;
* the PDF: the numpy grid reader against ``DevicePDF`` on the GPU (x f of one flavour);
* the accept/reject of 1e6 event weights held by the GPU: drawn on the host (a copy of
  the weights) against ``accept_on_device`` (a copy of the accepted rows);
* the host synchronisations and wall time of one training step and one batch of the
  device path (``DeviceChannels``: drell_yan, ee_qqg and zprime, grouped channels),
  counted with ``madnis_py.host_syncs`` and, on the GPU, by torch; on the GPU also the
  step with the flows channel by channel instead of stacked (``stack_flows=False``);
* the whole integrand f(x) of one channel: ``TorchChannels`` (numpy, CPU) against
  ``DeviceChannels`` on the GPU, with the matrix element's host round trip counted;
* the wall time of ``madnis-py run`` for ``drell_yan`` and ``ee_qqg`` (a small card:
  VEGAS, 60 training steps, 2e5 integration points, 2000 events) with ``--device cpu``
  and ``--device cuda`` (``MADNIS_PY_CUDA_RUN=1``), with both cross sections.

Writes ``bench_gpu.json`` and ``bench_gpu.md`` (a markdown table with the card's name and
the GPU/CPU ratios) into ``--out``. ``--quick`` trims the sizes to fit one device call
(scripts/gpu_checks.sh).

    python benchmarks/bench_gpu.py [--out DIR] [--quick] [--skip-runs]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CARD = """
[run]
process = "{process}"
seed = 7
nevents = 2000

[training]
steps = 60
batch = 4096
vegas = true
vegas_iterations = 4
vegas_points = 10000
warmup = 5

[integration]
points = 200000
iterations = 4

[output]
plots = false
"""


def timed(fn: Callable[[], Any], device: torch.device, repeat: int = 3) -> float:
    """Best wall time of ``repeat`` calls after one warm-up, synchronised on a GPU."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def bench_flows(devices: list[torch.device], sizes: list[int]) -> list[dict[str, Any]]:
    from madnis_py import Flow

    rows = []
    for dims in (4, 8):
        for dev in devices:
            flow = Flow(dims, bins=10).to(dev)
            gen = torch.Generator(device=dev).manual_seed(1)
            for n in sizes:
                with torch.no_grad():
                    t_sample = timed(lambda n=n, f=flow, g=gen: f.sample(n, generator=g), dev)
                    z = torch.rand(n, dims, dtype=torch.float64, device=dev)
                    t_density = timed(lambda z=z, f=flow: f.log_prob(z), dev)
                rows.append({"what": f"flow d={dims}", "device": dev.type, "n": n,
                             "sample_per_s": n / t_sample, "density_per_s": n / t_density})
    return rows


def bench_maps(devices: list[torch.device], n: int) -> list[dict[str, Any]]:
    from madnis_py.integrand import Integrand

    rows = []
    for name in ("drell_yan", "ee_qqg"):
        mapping = Integrand(name).mappings[0]
        for dev in devices:
            r = torch.rand(n, mapping.dims, dtype=torch.float64, device=dev)
            t = timed(lambda r=r, m=mapping: m.map(r), dev)
            rows.append({"what": f"map {name} ch0", "device": dev.type, "n": n,
                         "per_s": n / t})
    return rows


def bench_pdf(devices: list[torch.device], n: int) -> list[dict[str, Any]]:
    from madnis_py.physics.pdf import PDF
    from madnis_py.physics.pdf.device import DevicePDF

    pdf = PDF("LHToyPDF")
    rng = np.random.default_rng(1)
    x = np.exp(rng.uniform(np.log(1e-5), 0, n))
    q2 = np.exp(rng.uniform(np.log(10.0), np.log(1e6), n))
    rows = []
    t = timed(lambda: pdf.xfxQ2(2, x, q2), torch.device("cpu"))
    rows.append({"what": "pdf u (numpy reader)", "device": "cpu", "n": n, "per_s": n / t})
    for dev in devices:
        if dev.type == "cpu":
            continue
        d = DevicePDF(pdf, dev)
        xt, qt = torch.as_tensor(x, device=dev), torch.as_tensor(q2, device=dev)
        t = timed(lambda d=d, xt=xt, qt=qt: d.xfxQ2(2, xt, qt), dev)
        rows.append({"what": "pdf u (DevicePDF)", "device": dev.type, "n": n, "per_s": n / t,
                     "host_points": d.host_points})
    return rows


def bench_integrand(devices: list[torch.device], n: int) -> list[dict[str, Any]]:
    from madnis_py.device_integrand import DeviceChannels
    from madnis_py.integrand import Integrand, TorchChannels

    rows = []
    for name in ("ee_mumu", "drell_yan", "ee_qqg"):
        ig = Integrand(name)
        for dev in devices:
            channels: Any = TorchChannels(ig) if dev.type == "cpu" else DeviceChannels(ig, dev)
            x = torch.rand(n, ig.dims(0), dtype=torch.float64, device=dev)
            t = timed(lambda c=channels, x=x: c(x, 0), dev, repeat=1)
            row = {"what": f"integrand {name} ch0", "device": dev.type, "n": n,
                   "per_s": n / t}
            if dev.type != "cpu":
                row["me_on_device"] = bool(ig.matrix_element.has_device_entry)
                row["host_copies"] = channels.staging.copies
            rows.append(row)
    return rows


def bench_accept(devices: list[torch.device], n: int) -> list[dict[str, Any]]:
    """The accept/reject of ``n`` event weights held by the last device: drawn on the host
    (one copy of the weights, numpy's uniforms; the "cpu" row) and where the weights are
    (``accept_on_device``, one copy of the accepted rows; the "cuda" row)."""
    from madnis_py.events.device_unweight import accept_on_device
    from madnis_py.events.unweight import accept

    dev = devices[-1]
    gen = torch.Generator(device=dev).manual_seed(1)
    w = torch.rand(n, dtype=torch.float64, device=dev, generator=gen) ** 4
    rng = np.random.default_rng(1)
    what = f"accept/reject of weights on {dev.type}"
    t = timed(lambda: accept(w.cpu().numpy(), 0.5, rng), dev)
    rows = [{"what": what, "device": "cpu", "n": n, "per_s": n / t}]
    if dev.type != "cpu":
        t = timed(lambda: accept_on_device(w, 0.5, gen), dev)
        rows.append({"what": what, "device": dev.type, "n": n, "per_s": n / t})
    return rows


def bench_syncs(devices: list[torch.device]) -> list[dict[str, Any]]:
    """Host synchronisations and wall time of one training step (4096 points) and one
    batch of the device path (``DeviceChannels`` and the Integrator on each device):
    counted by :func:`~madnis_py.host_syncs.count_host_syncs` (the operations that
    synchronise on CUDA; on the GPU also torch's own count, host-to-device copies
    included)."""
    from madnis_py.device_integrand import DeviceChannels
    from madnis_py.host_syncs import count_host_syncs
    from madnis_py.integrand import Integrand
    from madnis_py.training import Integrator

    rows = []
    for name in ("drell_yan", "ee_qqg", "zprime"):
        for dev in devices:
            ig = Integrand(name, subprocess_channels="grouped")
            mc = Integrator(DeviceChannels(ig, dev), seed=3, device=dev, warmup=1)
            mc.pretrain_vegas(nitn=2, neval=4000)
            mc.train(2, batch=4096)
            for what, fn in (("training step", lambda mc=mc: mc.train(1, batch=4096)),
                             ("batch of 4096", lambda mc=mc: mc.random_batch(4096))):
                with count_host_syncs() as syncs:
                    fn()
                rows.append({"what": f"device path: {name} {what} ({ig.n_channels} channels)",
                             "device": dev.type, "syncs": syncs.total,
                             "cuda_syncs": syncs.cuda, "wall_s": timed(fn, dev, repeat=3),
                             "sites": syncs.by_site.most_common(8)})
            if dev.type != "cpu":  # the flows channel by channel instead of stacked
                mc.stack_flows = False
                rows.append({"what": f"device path: {name} training step, flows channel "
                                     "by channel", "device": dev.type,
                             "wall_s": timed(lambda mc=mc: mc.train(1, batch=4096), dev,
                                             repeat=3)})
    return rows


def bench_runs(devices: list[torch.device], workdir: Path) -> list[dict[str, Any]]:
    rows = []
    env = dict(os.environ, MADNIS_PY_CUDA_RUN="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    for name in ("drell_yan", "ee_qqg"):
        card = workdir / f"{name}.toml"
        card.write_text(CARD.format(process=name))
        for dev in devices:
            out = workdir / f"{name}_{dev.type}"
            cmd = [sys.executable, "-c",
                   "import sys; from madnis_py.cli import main; sys.exit(main(sys.argv[1:]))",
                   "run", str(card), "--device", dev.type, "--json", "--quiet", "--force",
                   "--output", str(out)]
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)
            wall = time.perf_counter() - t
            row: dict[str, Any] = {"what": f"madnis-py run {name}", "device": dev.type,
                                   "wall_s": wall, "returncode": proc.returncode}
            if proc.returncode == 0:
                summary = json.loads(proc.stdout)
                row.update(sigma_pb=summary["sigma_pb"], error_pb=summary["error_pb"],
                           timings=summary.get("timings", {}))
            else:
                row["stderr"] = proc.stderr.strip().splitlines()[-3:]
            rows.append(row)
    return rows


def markdown(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [f"### bench_gpu ({meta['gpu']}; CPU: {meta['cpu_threads']} torch threads)", "",
             f"`{meta['command']}`", "", "| what | n | CPU | GPU | GPU/CPU |",
             "|---|---|---|---|---|"]
    keyed: dict[tuple[str, Any], dict[str, dict[str, Any]]] = {}
    for r in rows:
        keyed.setdefault((r["what"], r.get("n")), {})[r["device"]] = r
    for (what, n), by in keyed.items():
        for metric in ("sample_per_s", "density_per_s", "per_s", "wall_s", "syncs",
                       "cuda_syncs"):
            vals = {d: r[metric] for d, r in by.items() if r.get(metric) is not None}
            if not vals:
                continue
            cpu, gpu = vals.get("cpu"), vals.get("cuda")
            if metric in ("syncs", "cuda_syncs"):
                label = f"{what}: host syncs{'' if metric == 'syncs' else ' (torch)'}"
                lines.append(f"| {label} | | {'' if cpu is None else cpu} | "
                             f"{'' if gpu is None else gpu} | |")
                continue
            unit = "s" if metric == "wall_s" else "/s"
            ratio = "" if cpu is None or gpu is None else (
                f"{cpu / gpu:.1f}x faster" if metric == "wall_s" else f"{gpu / cpu:.1f}x")
            label = what if metric in ("per_s", "wall_s") else f"{what} {metric[:-6]}"
            lines.append(f"| {label} | {n if n is not None else ''} | "
                         f"{'' if cpu is None else f'{cpu:.3g} {unit}'} | "
                         f"{'' if gpu is None else f'{gpu:.3g} {unit}'} | {ratio} |")
    for r in rows:
        if "sigma_pb" in r:
            lines.append(f"\n{r['what']} on {r['device']}: sigma = {r['sigma_pb']:.6g} +- "
                         f"{r['error_pb']:.2g} pb")
        elif r.get("returncode"):
            lines.append(f"\n{r['what']} on {r['device']} FAILED: {r.get('stderr')}")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=".", help="directory for bench_gpu.json/.md")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (one device call)")
    ap.add_argument("--skip-runs", action="store_true", help="no madnis-py run timings")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    devices = [torch.device("cpu")]
    gpu = "no GPU"
    if torch.cuda.is_available():
        devices.append(torch.device("cuda", 0))
        gpu = torch.cuda.get_device_name(0)
    else:
        print("bench_gpu: no CUDA device visible: CPU numbers only", file=sys.stderr)
    meta = {"gpu": gpu, "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
            "command": "python " + " ".join(sys.argv)}
    sizes = [100_000, 1_000_000] if args.quick else [100_000, 300_000, 1_000_000]
    rows: list[dict[str, Any]] = []
    for name, fn in (("flows", lambda: bench_flows(devices, sizes)),
                     ("maps", lambda: bench_maps(devices, 1_000_000)),
                     ("pdf", lambda: bench_pdf(devices, 1_000_000)),
                     ("accept", lambda: bench_accept(devices, 1_000_000)),
                     ("syncs", lambda: bench_syncs(devices)),
                     ("integrand", lambda: bench_integrand(
                         devices, 50_000 if args.quick else 500_000))):
        t = time.perf_counter()
        rows += fn()
        print(f"bench_gpu: {name} done in {time.perf_counter() - t:.1f} s", flush=True)
    if not args.skip_runs:
        with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
            rows += bench_runs(devices, Path(tmp))
    (out / "bench_gpu.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    text = markdown(meta, rows)
    (out / "bench_gpu.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
