"""Integration and unweighting quality at equal integrand calls: flat multi-channel,
VEGAS per channel, the ``madnis`` PyPI package and ours (madnis_py).

Every method gets the same total budget of integrand calls (training, VEGAS adaptation,
flow selection and the final evaluation all counted). For each integrand and method it
prints sigma +- error, the relative weight std, the unweighting efficiency
eps_uw = <w> / max w, its 99.9 %-quantile version and its truncation-defined version
(w_max such that a share 1e-3 of the cross section lies above it, as the unweighter's
default and MadGraph's max_overweight_truncation: ``truncation_efficiency``), the
training wall time and the estimated wall time to 1e5 unweighted events, (time per
weighted event) * 1e5 / eps_uw (truncation version), and checks the issue's targets on
every integrand:

* raw eps_uw of ours >= that of the VEGAS map,
* eps_uw (truncation 1e-3) of ours >= 1.5x the better of the VEGAS map and madnis.

    python benchmarks/bench_integrators.py [--quick] [--calls N] [--seed S]
                                           [--markdown FILE] [--buffered N]
                                           [--max-grad-norm G] [--freeze-weights-after F]
                                           [--drop-threshold T]
                                           [--subprocess-channels {shared,grouped}]

Notes on the methods:

* flat: ``Integrator(..., trainable_weights=False)`` with ``use_flow = [False] * C``:
  uniform points per channel, alpha = prior. Its ``integrate`` uses the whole budget.
* VEGAS: ``pretrain_vegas`` (the survey of all channels on the ``vegas`` package's
  ``AdaptiveMap``, ``nitn`` rounds growing 1.3x that spend the VEGAS budget; its own
  estimate from the second half of the rounds is reported as "VEGAS (survey)").
  For the unweighting efficiency the same integrator then samples through the adapted
  maps with ``use_flow = [False] * C`` ("VEGAS map"): that is VEGAS's map *without* its
  stratified sampling, and its calls come on top of the adaptation (they add up to the
  budget).
* madnis: ``madnis.integrator.Integrator`` (v1.0.0) with its defaults (KL loss for one
  channel, stratified variance for several, trainable channel weights on top of the
  prior), trained with ``train_step`` until the call budget minus the evaluation is
  spent; weights from ``Integrator.sample`` (stratified by the channels' variances).
* ours: with and without ``pretrain_vegas`` before ``train`` (``--buffered`` buffered
  steps per fresh one, the training options of the command line, the library's defaults
  for the rest); the better truncation eps_uw of the two is reported as "ours", both rows
  are printed.

flat, the VEGAS map and ours are evaluated as the event generator draws
(``--allocation``, the card's ``[unweighting] allocation``): with ``max_weight`` a
quarter of the evaluation points (``Integrator.random_batch``, allocated by the channels'
sigmas) calibrates each channel's own truncation-defined maximum weight, and the
efficiencies, the estimate and its error are those of the other three quarters, drawn
with the channels' shares in proportion to those maxima (``madnis_py.events.allocation``);
with ``auto`` (the default) that quarter first chooses between those shares and the
sigmas' on its held-out halves (``choose_allocation``), and the other three quarters are
drawn the chosen way; with ``sigma``, all of them are one ``random_batch`` (what
``integrate`` with one iteration draws). One channel: the same either way.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from madnis_py._atomic import write_text_atomic
from madnis_py.cards.run_card import TrainingSettings, UnweightingSettings
from madnis_py.events.allocation import ALLOCATIONS, channel_max_weights, choose_allocation
from madnis_py.events.unweight import DEFAULT_TRUNCATION, truncation_max_weight
from madnis_py.testfunctions import Camel, RidgeAndPeak
from madnis_py.training import Integrator, allocate
from madnis_py.training.multichannel import allocation_shares
from madnis_py.training.stopping import truncation_efficiency

# --------------------------------------------------------------------------- integrands

class OneChannel:
    """A single-channel function f(x) on [0, 1]^d as a 1-channel integrand."""

    n_channels = 1

    def __init__(self, func, dims: int) -> None:
        self.func = func
        self._dims = dims
        self.feature_dims = dims
        self.exact = getattr(func, "exact", None)

    def dims(self, channel: int = 0) -> int:
        return self._dims

    def __call__(self, x: torch.Tensor, channel: int):
        return self.func(x), x, None


def feature_dims(integ) -> int:
    """The integrand's ``feature_dims``, else the width of the features it returns."""
    fd = getattr(integ, "feature_dims", None)
    if fd is None:
        x = torch.full((2, integ.dims(0)), 0.5, dtype=torch.float64)
        fd = int(integ(x, 0)[1].shape[1])
    return fd


@dataclass
class Case:
    name: str
    make: object  # () -> multi-channel integrand
    exact: float | None
    slow: bool = False


def cases(layout: str = "shared") -> list[Case]:
    """The integrands; ``layout`` is the physics ones' ``subprocess_channels`` (the same
    channels for every method)."""
    from madnis_py.integrand import Integrand, TorchChannels

    return [
        Case("camel 2D", lambda: OneChannel(Camel(2), 2), Camel(2).exact),
        Case("camel 4D", lambda: OneChannel(Camel(4), 4), Camel(4).exact),
        Case("RidgeAndPeak", RidgeAndPeak, RidgeAndPeak().exact),
        Case("DY + Z'", lambda: TorchChannels(Integrand(
            "zprime", sqrt_s=13000.0, dynamical_scale_choice=4, cuts={"mmll": 50.0},
            subprocess_channels=layout)), None, slow=True),
        Case("ee -> qqg", lambda: TorchChannels(Integrand(
            "ee_qqg", subprocess_channels=layout)), None, slow=True),
    ]


# --------------------------------------------------------------------------- results

@dataclass
class Row:
    method: str
    value: float = math.nan
    error: float = math.nan
    rel_std: float = math.nan
    eps: float = math.nan
    eps_q: float = math.nan
    eps_t: float = math.nan  # truncation-defined w_max (1e-3 of sigma above it)
    train_s: float = math.nan
    t_event: float = math.nan  # wall seconds per weighted event at evaluation
    calls: int = 0
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def t_1e5(self) -> float:
        if not (self.eps_t > 0) or math.isnan(self.t_event):
            return math.nan
        return self.t_event * 1e5 / self.eps_t


def weight_stats(w: np.ndarray) -> tuple[float, float, float]:
    """Raw, 99.9 %-quantile and truncation-defined (1e-3) unweighting efficiencies."""
    top = float(w.max())
    q = float(np.quantile(w, 0.999))
    avg = float(w.mean())
    return (avg / top if top > 0 else math.nan,
            min(avg / q, 1.0) if q > 0 else math.nan,
            truncation_efficiency(w))


#: How flat, the VEGAS map and ours share their evaluation points among the channels
#: (``--allocation``; see the module docstring).
ALLOCATION = UnweightingSettings().allocation


def evaluate(mc: Integrator, method: str, m: int, train_s: float, note: str) -> Row:
    """``m`` weighted events of ``mc`` as the event generator draws them
    (:data:`ALLOCATION`): the estimate, its error, the relative std and the three
    efficiencies."""
    t0 = time.perf_counter()
    if ALLOCATION != "sigma" and mc.n_channels > 1:
        calibration = mc.random_batch(m // 4)
        w, channels = calibration.weights(), calibration.channels()
        shared_by = "max_weight"
        if ALLOCATION == "auto":
            by_sigma = allocation_shares(mc.sigmas, min_fraction=mc.min_fraction,
                                         active=mc.active)
            shared_by = choose_allocation(
                w, channels, by_sigma, max_weight=truncation_max_weight,
                truncation=DEFAULT_TRUNCATION, rng=np.random.default_rng(0),
                min_fraction=mc.min_fraction, active=mc.active).allocation
        counts = None
        if shared_by == "max_weight":
            maxima = channel_max_weights(w, channels, mc.n_channels, truncation_max_weight)
            counts = allocate(m - m // 4, maxima, min_fraction=mc.min_fraction,
                              active=mc.active)
        batch = mc.random_batch(m - m // 4, counts=counts)
        note += (f"; channels by their {'maxima' if counts is not None else 'sigmas'} "
                 "(chosen on a quarter of the points)")
    else:
        batch = mc.random_batch(m)
    t = time.perf_counter() - t0
    parts = [s.weight.double().numpy() for s in batch.samples]
    value = sum(float(w.mean()) for w in parts)
    error = math.sqrt(sum(float(w.var(ddof=1)) / len(w) for w in parts if len(w) > 1))
    rel_std = sum(float(w.std()) for w in parts if len(w) > 1) / value
    eps, eps_q, eps_t = weight_stats(batch.weights())
    return Row(method, value, error, rel_std, eps, eps_q, eps_t, train_s, t / max(m, 1),
               mc.n_calls, note)


# --------------------------------------------------------------------------- methods

def run_flat(make, budget: int, seed: int) -> Row:
    integ = make()
    mc = Integrator(integ, feature_dims=feature_dims(integ), trainable_weights=False,
                    seed=seed)
    mc.use_flow = [False] * mc.n_channels
    return evaluate(mc, "flat", budget, 0.0, "eps_uw on all the budget's points")


def vegas_split(budget: int, nitn: int, growth: float = 1.3) -> int:
    """First-round points per channel of ``pretrain_vegas``'s survey whose ``nitn`` rounds,
    each ``growth`` times the one before, spend ``budget`` points per channel."""
    return max(int(budget * (growth - 1) / (growth ** nitn - 1)), 20)


def run_vegas(make, budget: int, n_eval: int, seed: int, nitn: int) -> list[Row]:
    integ = make()
    c = integ.n_channels
    mc = Integrator(integ, feature_dims=feature_dims(integ), trainable_weights=False,
                    seed=seed)
    neval = vegas_split((budget - n_eval) // c, nitn)
    t0 = time.perf_counter()
    vres = mc.pretrain_vegas(nitn=nitn, neval=neval)
    t_train = time.perf_counter() - t0
    adapt_calls = mc.n_calls
    mc.use_flow = [False] * c
    # the map-only evaluation gets what the adaptation left of the budget
    m = max(budget - adapt_calls, 2 * c)
    pkg = Row("VEGAS (survey)", vres.value, vres.error, vres.rel_std, math.nan, math.nan,
              math.nan, t_train, math.nan, adapt_calls,
              f"{nitn} rounds from {neval}/channel; estimate of the second half")
    mapped = evaluate(mc, "VEGAS map", m, t_train, f"map without stratification, {m} eval pts")
    return [pkg, mapped]


def run_ours(make, budget: int, n_eval: int, seed: int, batch: int, use_vegas: bool,
             nitn: int, vegas_frac: float, buffered: int,
             options: dict[str, object] | None = None) -> Row:
    torch.manual_seed(seed)  # the flows' initialisation draws from torch's global RNG
    integ = make()
    c = integ.n_channels
    mc = Integrator(integ, feature_dims=feature_dims(integ), seed=seed, **(options or {}))
    n_sel = max(500, int(0.05 * budget / (2 * c)))
    t0 = time.perf_counter()
    note = []
    if use_vegas:
        neval = vegas_split(int(vegas_frac * (budget - n_eval)) // c, nitn)
        mc.pretrain_vegas(nitn=nitn, neval=neval)
        note.append(f"VEGAS {mc.n_calls} calls")
    train_calls = budget - n_eval - 2 * n_sel * c - mc.n_calls
    steps = max(train_calls // batch, 1)
    mc.train(steps, batch=batch, buffered_steps=buffered)
    choice = mc.select_flows(n_sel)
    t_train = time.perf_counter() - t0
    note.append(f"{steps} steps x {batch}, flows kept {sum(choice)}/{c}")
    m = max(budget - mc.n_calls, 2 * c)
    name = "ours + VEGAS" if use_vegas else "ours (no VEGAS)"
    return evaluate(mc, name, m, t_train, "; ".join(note))


def run_madnis(make, budget: int, n_eval: int, seed: int, batch: int,
               buffered: int) -> Row:
    from madnis.integrator import Integrand as MIntegrand
    from madnis.integrator import Integrator as MIntegrator

    torch.manual_seed(seed)
    integ = make()
    c = integ.n_channels
    dims = {integ.dims(i) for i in range(c)}
    if len(dims) != 1:
        return Row("madnis", note=f"n/a: channels of different dimensions {sorted(dims)}")
    d = dims.pop()
    counter = [0]

    def clean(f: torch.Tensor) -> torch.Tensor:
        return torch.where(torch.isfinite(f) & (f >= 0), f, torch.zeros_like(f))

    if c == 1:
        def single(x: torch.Tensor) -> torch.Tensor:
            counter[0] += len(x)
            f, _, _ = integ(x.double(), 0)
            return clean(f).to(x.dtype)

        mint = MIntegrand(single, input_dim=d)
    else:
        fdim = feature_dims(integ)

        def multi(x: torch.Tensor, channels: torch.Tensor):
            counter[0] += len(x)
            n = len(x)
            f = x.new_zeros(n)
            y = x.new_zeros(n, fdim)
            alpha = x.new_full((n, c), 1.0 / c)
            for ch in torch.unique(channels).tolist():
                mask = channels == ch
                fi, yi, pi = integ(x[mask].double(), int(ch))
                f[mask] = clean(fi).to(x.dtype)
                y[mask] = torch.nan_to_num(yi.to(x.dtype))
                if pi is not None:
                    # madnis normalises alpha by its row sum: a point removed by the cuts
                    # (f = 0) has an all-zero prior here, which would give 0/0 = NaN and
                    # a NaN loss ("nan batch: skipping optimization"); give it uniform
                    # weights instead (harmless, f = 0 there)
                    pi = torch.nan_to_num(pi.to(x.dtype))
                    zero = pi.sum(dim=1) <= 0
                    pi[zero] = 1.0 / c
                    alpha[mask] = pi
            return f, y, alpha

        mint = MIntegrand(multi, input_dim=d, channel_count=c, remapped_dim=fdim,
                          has_channel_weight_prior=True)
    train_calls = budget - n_eval
    steps_est = max(train_calls // batch, 1) * (buffered + 1)
    mi = MIntegrator(
        mint, batch_size=batch, learning_rate=3e-3,
        scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps_est),
        buffer_capacity=4 * batch if buffered else 0, buffered_steps=buffered,
        minimum_buffer_size=batch, dtype=torch.float64)
    t0 = time.perf_counter()
    steps = 0
    # stop before a step could run past the training budget (a step may redraw points
    # whose integrand is zero, so it can take more than one batch)
    while counter[0] + batch <= train_calls and steps < 10 * steps_est:
        mi.train_step()
        steps += 1
    t_train = time.perf_counter() - t0
    m = max(budget - counter[0], 2 * c)
    t0 = time.perf_counter()
    with torch.no_grad():
        s = mi.sample(m, batch_size=min(m, 100_000))
    t = time.perf_counter() - t0
    w = s.weights.double().numpy()
    if c == 1:
        raw = [w]
    else:
        ch = s.channels.numpy()
        counts = np.bincount(ch, minlength=c)
        raw = [w[ch == i] * counts[i] / len(w) for i in range(c) if counts[i] > 0]
    value = sum(float(r.mean()) for r in raw)
    error = math.sqrt(sum(float(r.var(ddof=1)) / len(r) for r in raw if len(r) > 1))
    rel_std = sum(float(r.std(ddof=1)) for r in raw if len(r) > 1) / value
    eps, eps_q, eps_t = weight_stats(w)
    return Row("madnis", value, error, rel_std, eps, eps_q, eps_t, t_train, t / m, counter[0],
               f"{steps} train_steps x {batch} (buffered {buffered})")


# --------------------------------------------------------------------------- report

def fmt(v: float, spec: str = ".3g") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def table(name: str, exact: float | None, rows: list[Row]) -> list[str]:
    out = [f"### {name}" + (f" (exact {exact:.6g})" if exact is not None else ""), "",
           "| method | sigma +- error | pull | rel. std | eps_uw | eps_uw (99.9%) | "
           "eps_uw (trunc. 1e-3) | train [s] | t(1e5 unw.) [s] | calls | notes |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sig = ("n/a" if math.isnan(r.value) else f"{r.value:.6g} +- {r.error:.2g}")
        pull = ("" if exact is None or math.isnan(r.value) or not r.error > 0
                else f"{(r.value - exact) / r.error:+.2f}")
        out.append(f"| {r.method} | {sig} | {pull} | {fmt(r.rel_std)} | {fmt(r.eps)} | "
                   f"{fmt(r.eps_q)} | {fmt(r.eps_t)} | {fmt(r.train_s, '.2g')} | {fmt(r.t_1e5, '.3g')} | "
                   f"{r.calls} | {r.note} |")
    return out


def targets(name: str, rows: dict[str, Row]) -> list[str]:
    ours, veg, mad = rows.get("ours"), rows.get("VEGAS map"), rows.get("madnis")
    lines = []
    if ours is None or math.isnan(ours.eps):
        return [f"| {name} | ours failed | | |"]
    if veg is not None and not math.isnan(veg.eps):
        ok = ours.eps >= veg.eps
        lines.append(f"| {name} | raw eps_uw ours >= VEGAS map | {ours.eps:.3g} vs {veg.eps:.3g} "
                     f"| {'met' if ok else 'NOT met'} |")
    refs = [(k, r.eps_t) for k, r in (("VEGAS map", veg), ("madnis", mad))
            if r is not None and not math.isnan(r.eps_t)]
    if refs:
        k, best = max(refs, key=lambda t: t[1])
        ok = ours.eps_t >= 1.5 * best
        missing = "" if len(refs) == 2 else " (madnis n/a)"
        lines.append(f"| {name} | eps_uw(trunc. 1e-3) ours >= 1.5x max(VEGAS map, madnis)"
                     f"{missing} | {ours.eps_t:.3g} vs 1.5 x {best:.3g} ({k}) = "
                     f"{1.5 * best:.3g} | {'met' if ok else 'NOT met'} |")
    return lines


def main() -> int:
    global ALLOCATION
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="small budgets, toy integrands only (a few minutes)")
    ap.add_argument("--calls", type=int, default=None,
                    help="integrand calls per method (default 100k quick, 400k otherwise)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--markdown", type=str, default=None, help="also write the tables here")
    ap.add_argument("--only", type=str, default=None,
                    help="comma-separated substrings of integrand names to run")
    ap.add_argument("--skip-madnis", action="store_true")
    ap.add_argument("--subprocess-channels", choices=["shared", "grouped"], default="shared",
                    help="the physics integrands' channel layout, for every method")
    ap.add_argument("--loss", default="variance", help="our training loss")
    ap.add_argument("--mixture", type=float, default=0.0,
                    help="our defensive mixture weight of the base (VEGAS/flat) density")
    ap.add_argument("--penalty", type=float, default=0.0,
                    help="our max_weight_penalty")
    ap.add_argument("--allocation", choices=list(ALLOCATIONS), default=ALLOCATION,
                    help="how flat, the VEGAS map and ours share their evaluation points "
                         "among the channels (default: the run card's)")
    ap.add_argument("--only-ours", action="store_true",
                    help="skip flat, VEGAS and madnis (for scanning our options)")
    defaults = TrainingSettings()
    ap.add_argument("--buffered", type=int, default=defaults.buffered_steps,
                    help="our buffered steps per fresh one (default: the run card's)")
    ap.add_argument("--max-grad-norm", type=float, default=defaults.max_grad_norm,
                    help="our gradient clipping norm (0: none; default: the run card's)")
    ap.add_argument("--freeze-weights-after", type=float,
                    default=defaults.freeze_weights_after,
                    help="share of our steps after which the channel weights freeze")
    ap.add_argument("--drop-threshold", type=float, default=defaults.drop_threshold,
                    help="our channel-dropping threshold (share of the integral)")
    args = ap.parse_args()
    ALLOCATION = args.allocation
    ours_options = {"loss": args.loss, "mixture": args.mixture,
                    "max_weight_penalty": args.penalty, "max_grad_norm": args.max_grad_norm,
                    "freeze_weights_after": args.freeze_weights_after,
                    "drop_threshold": args.drop_threshold}
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", RuntimeWarning)
    budget = args.calls or (100_000 if args.quick else 400_000)
    n_eval = budget // 4
    batch = 1024 if budget <= 200_000 else 2048
    nitn = 10
    buffered = 2  # madnis's buffered steps

    lines = [f"# Integrators at equal integrand calls ({budget} per method)", "",
             f"python {' '.join(sys.argv)}; {platform.processor() or platform.machine()}, "
             f"torch {torch.__version__}, 1 thread, seed {args.seed}. Evaluation sample "
             f"~{n_eval} points (the rest of the budget for VEGAS map / madnis / ours; "
             "flat uses the whole budget). t(1e5 unw.) = (eval wall time per weighted "
             "event) x 1e5 / eps_uw(trunc. 1e-3). Training time includes VEGAS adaptation "
             f"and flow selection. Ours: {args.buffered} buffered steps per fresh one, "
             f"{ours_options}; channels of the physics integrands: {args.subprocess_channels}; "
             f"evaluation points shared by: {args.allocation}.", ""]
    target_lines = ["| integrand | target | measured | status |", "|---|---|---|---|"]
    for case in cases(args.subprocess_channels):
        if args.quick and case.slow:
            continue
        if args.only and not any(s.strip().lower() in case.name.lower()
                                 for s in args.only.split(",")):
            continue
        print(f"== {case.name} ==", flush=True)
        t_case = time.perf_counter()
        rows: list[Row] = []
        named: dict[str, Row] = {}

        def attempt(label, fn):
            t0 = time.perf_counter()
            try:
                out = fn()
            except Exception as exc:  # report and go on
                traceback.print_exc()
                out = [Row(label, note=f"n/a: {type(exc).__name__}: {exc}"[:200])]
            out = out if isinstance(out, list) else [out]
            for r in out:
                print(f"  {r.method:18s} {fmt(r.value, '.6g')} +- {fmt(r.error, '.2g')} "
                      f"eps {fmt(r.eps)} / {fmt(r.eps_q)} / {fmt(r.eps_t)} calls {r.calls} "
                      f"({time.perf_counter() - t0:.1f}s) {r.note}", flush=True)
            return out

        if not args.only_ours:
            rows += attempt("flat", lambda make=case.make: run_flat(make, budget, args.seed))
        vr = ([] if args.only_ours else
              attempt("VEGAS", lambda make=case.make: run_vegas(make, budget, n_eval,
                                                                  args.seed, nitn)))
        rows += vr
        named.update({r.method: r for r in vr})
        if args.skip_madnis or args.only_ours:
            mad = [Row("madnis", note="skipped (--skip-madnis)")]
        else:
            mad = attempt("madnis", lambda make=case.make: run_madnis(
                make, budget, n_eval, args.seed, batch, buffered))
        rows += mad
        named["madnis"] = mad[0]
        variants = []
        for use_vegas in (False, True):
            variants += attempt("ours", lambda v=use_vegas, make=case.make: run_ours(
                make, budget, n_eval, args.seed, batch, v, nitn, 0.2, args.buffered,
                ours_options))
        rows += variants
        ok = [r for r in variants if not math.isnan(r.eps_t)]
        if ok:
            best = max(ok, key=lambda r: r.eps_t)
            named["ours"] = best
            rows.append(Row("**ours** (= " + best.method + ")", best.value, best.error,
                            best.rel_std, best.eps, best.eps_q, best.eps_t, best.train_s,
                            best.t_event, best.calls, "better eps_uw(trunc. 1e-3) of the two"))
        tab = table(case.name, case.exact, rows)
        tab.append("")
        tab.append(f"(all methods of {case.name}: {time.perf_counter() - t_case:.0f} s wall)")
        print("\n".join(tab), flush=True)
        lines += tab + [""]
        target_lines += targets(case.name, named)
    lines += ["## Targets", ""] + target_lines + [""]
    print("\n".join(["", "Targets:"] + target_lines))
    if args.markdown:
        write_text_atomic(args.markdown, "\n".join(lines), what="benchmark tables")
        print(f"written {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
