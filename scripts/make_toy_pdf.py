#!/usr/bin/env python
"""Generate the embedded ``LHToyPDF`` set and its hoppet reference table.

The Les Houches benchmark toy PDF (W. Giele et al., hep-ph/0204316, section 1.3):
at Q0 = sqrt(2) GeV

    x u_v  = 5.107200  x^0.8  (1-x)^3        x d_v  = 3.064320 x^0.8 (1-x)^4
    x g    = 1.7       x^-0.1 (1-x)^5        x dbar = 0.1939875 x^-0.1 (1-x)^6
    x ubar = (1-x) x dbar                    x s = x sbar = 0.2 x (ubar + dbar)

with alpha_s(Q0) = 0.35, evolved at LO in the variable-flavour-number scheme with pole
masses mc = sqrt(2), mb = 4.5, mt = 175 GeV by hoppet (Salam & Rojo, arXiv:0804.3755),
and written as an LHAPDF6 ``lhagrid1`` set: one member, flavours -6..6 and 21, Q
subgrids split at the b and t thresholds (the charm threshold is Q0 itself), alpha_s as
``ipol`` from hoppet's running coupling on the same Q knots.

Knots. x: 147 knots uniform in u = 0.6 ln x - 5 ln(1-x) (step 0.25) from 1e-7 to
0.995, plus x = 1 (where every x f is 0); log-spaced at small x, uniform in ln(1-x) at
large x where the PDFs fall like powers of (1-x). Q: per subgrid, uniform in
ln ln(Q^2/Lambda^2)/0.12 + ln(1 + L_low/0.05)/ln 2.5 - ln(1 + L_up/0.1)/ln 3, with L_low
and L_up the distances in ln Q^2 to the subgrid's ends: spacing set by the running of
alpha_s, refined geometrically at both ends, where LHAPDF's one-sided slopes and the
heavy-quark onset need short steps. Values carry 6 significant digits (5 would
cost the valence sum rules 1e-3 at small x, where u and ubar nearly cancel). The alpha_s
table has its own knots, uniform in ln Q (step <= 0.05) within each subgrid.

The reference table (``tests/physics/data/lhtoy_hoppet_reference.npz``) holds hoppet's
own x f and alpha_s at random points (x log-uniform in [1e-6, 0.9], Q log-uniform in
[2, 5000] GeV; off the knots), so the tests check the grid reader without hoppet.

Usage
-----
    python scripts/make_toy_pdf.py                # writes both outputs in the repository
    python scripts/make_toy_pdf.py --outdir DIR --reference FILE.npz --nref 3000

Output is deterministic (fixed seed; the npz is written with fixed zip timestamps).
Needs ``hoppet`` (``pip install hoppet``), a development-only dependency.
"""

from __future__ import annotations

import argparse
import io
import math
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
NAME = "LHToyPDF"
Q0 = math.sqrt(2.0)
MC, MB, MT = math.sqrt(2.0), 4.5, 175.0
ALPHAS_Q0 = 0.35
MZ = 91.1876
#: Flavour columns of the grid (LHAPDF order) and their index in hoppet's 13-vector
#: [tbar, bbar, cbar, sbar, ubar, dbar, g, d, u, s, c, b, t].
PIDS = [-6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 21]
HOPPET_INDEX = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 6]
THRESHOLDS = {4: MC, 5: MB, 6: MT}
LAMBDA_KNOTS = 0.15  # GeV; only shapes the Q-knot spacing


def toy_pdf(x: float, Q: float) -> list[float]:
    """The Les Houches toy input at Q0 in hoppet's flavour order (x f values)."""
    uv = 5.1072 * x ** 0.8 * (1 - x) ** 3
    dv = 3.06432 * x ** 0.8 * (1 - x) ** 4
    g = 1.7 * x ** -0.1 * (1 - x) ** 5
    dbar = 0.1939875 * x ** -0.1 * (1 - x) ** 6
    ubar = (1 - x) * dbar
    s = 0.2 * (dbar + ubar)
    return [0.0, 0.0, 0.0, s, ubar, dbar, g, dv + dbar, uv + ubar, s, 0.0, 0.0, 0.0]


def _invert(f: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """Solve f(v) = target for increasing f by bisection."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _round(v: float) -> float:
    """Knots are written with 9 significant digits; evaluate at exactly those values."""
    return float(f"{v:.8e}")


def x_knots(xmin: float = 1e-7, xtop: float = 0.995, k: float = 0.6, c: float = 5.0,
            du: float = 0.25) -> list[float]:
    """x knots uniform in k ln x - c ln(1-x), then x = 1."""
    def u(t: float) -> float:
        return k * t - c * math.log1p(-math.exp(t))

    ua, ub = u(math.log(xmin)), u(math.log(xtop))
    n = int(math.ceil((ub - ua) / du))
    xs = [math.exp(_invert(u, v, math.log(xmin), math.log(xtop)))
          for v in np.linspace(ua, ub, n + 1)]
    xs[0], xs[-1] = xmin, xtop
    return [_round(x) for x in xs] + [1.0]


def q_subgrids(qmax: float, step: float = 0.12, l_low: float = 0.05, r_low: float = 2.5,
               l_up: float = 0.1, r_up: float = 3.0) -> list[list[float]]:
    """Q knots of the subgrids [Q0, mb], [mb, mt], [mt, qmax] (see the module docstring)."""
    edges = [Q0, MB, MT, qmax]
    out = []
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        last = i == len(edges) - 2

        def w(lnq: float, a: float = a, b: float = b, last: bool = last) -> float:
            lo = 2 * (lnq - math.log(a))
            up = 2 * (math.log(b) - lnq)
            v = (math.log(math.log(math.exp(2 * lnq) / LAMBDA_KNOTS ** 2)) / step
                 + math.log1p(lo / l_low) / math.log(r_low))
            if not last:
                v -= math.log1p(up / l_up) / math.log(r_up)
            return v

        wa, wb = w(math.log(a)), w(math.log(b))
        n = max(3, int(math.ceil(wb - wa)))
        qs = [math.exp(_invert(w, t, math.log(a), math.log(b))) for t in np.linspace(wa, wb, n + 1)]
        qs = [_round(q) for q in qs]
        qs[0], qs[-1] = a, b
        out.append(qs)
    return out


def alphas_knots(subs: list[list[float]], step: float = 0.05) -> list[float]:
    """alpha_s knots: per subgrid, uniform in ln Q with at most ``step``; the thresholds
    stay repeated, so LHAPDF's ipol alpha_s also splits there. Uniform, because the
    unweighted mean of chord slopes LHAPDF uses is only first-order accurate on unequal
    neighbouring steps."""
    out: list[float] = []
    for qs in subs:
        a, b = qs[0], qs[-1]
        n = int(math.ceil(math.log(b / a) / step))
        inner = [_round(q) for q in np.exp(np.linspace(math.log(a), math.log(b), n + 1))[1:-1]]
        out += [a] + inner + [b]
    return out


def _fmt(v: float) -> str:
    """6 significant digits, shortest exponent form (strtod reads it)."""
    if v == 0.0:
        return "0"
    mant, exp = f"{v:.5e}".split("e")
    mant = mant.rstrip("0").rstrip(".")
    e = int(exp)
    return mant if e == 0 else f"{mant}e{e}"


def _knot(v: float) -> str:
    return repr(float(v))


def evolve(qmax: float, dy: float) -> object:
    """Run hoppet's LO evolution of the toy input; returns the hoppet module."""
    import hoppet

    hoppet.SetPoleMassVFN(MC, MB, MT)
    ymax = math.ceil(math.log(1e7)) + 1.0
    hoppet.StartExtended(ymax, dy, Q0, qmax, dy / 4.0, 1, -6, hoppet.factscheme_MSbar)
    hoppet.Evolve(ALPHAS_Q0, Q0, 1, 1.0, toy_pdf, Q0)
    return hoppet


def xf_row(hoppet: object, x: float, Q: float) -> list[float]:
    """x f for the grid's flavour columns; heavy quarks exactly 0 up to their threshold."""
    if x >= 1.0:
        return [0.0] * len(PIDS)
    e = hoppet.Eval(x, Q)  # type: ignore[attr-defined]
    row = [float(e[i]) for i in HOPPET_INDEX]
    for k, pid in enumerate(PIDS):
        thr = THRESHOLDS.get(abs(pid))
        if thr is not None and thr >= Q:
            row[k] = 0.0
    return row


def write_set(hoppet: object, outdir: Path, qmax: float) -> tuple[Path, Path]:
    xs = x_knots()
    subs = q_subgrids(qmax)
    setdir = outdir / NAME
    setdir.mkdir(parents=True, exist_ok=True)

    lines = ["PdfType: central", "Format: lhagrid1", "---"]
    for qs in subs:
        lines.append(" ".join(_knot(x) for x in xs))
        lines.append(" ".join(_knot(q) for q in qs))
        lines.append(" ".join(str(p) for p in PIDS))
        for x in xs:
            for q in qs:
                lines.append(" ".join(_fmt(v) for v in xf_row(hoppet, x, q)))
        lines.append("---")
    dat = setdir / f"{NAME}_0000.dat"
    dat.write_text("\n".join(lines) + "\n", encoding="utf-8")

    qall = [q for qs in subs for q in qs]
    aqs = alphas_knots(subs)
    alphas = [hoppet.AlphaS(q) for q in aqs]  # type: ignore[attr-defined]
    info_lines = [
        "SetDesc: 'Les Houches benchmark toy PDF (hep-ph/0204316) at Q0 = sqrt(2) GeV, "
        "alpha_s(Q0) = 0.35, LO VFNS evolution (mc = sqrt(2), mb = 4.5, mt = 175 GeV) "
        "by hoppet; generated by madnis_py scripts/make_toy_pdf.py'",
        "Authors: W. Giele et al. (toy input); G. P. Salam, J. Rojo (hoppet evolution)",
        "Reference: hep-ph/0204316, arXiv:0804.3755",
        "Format: lhagrid1",
        "DataVersion: 1",
        "NumMembers: 1",
        "Particle: 2212",
        f"Flavors: [{', '.join(str(p) for p in sorted(PIDS))}]",
        "OrderQCD: 0",
        "FlavorScheme: variable",
        "NumFlavors: 6",
        "ErrorType: replicas",
        f"XMin: {_knot(xs[0])}",
        f"XMax: {_knot(xs[-1])}",
        f"QMin: {_knot(qall[0])}",
        f"QMax: {_knot(qall[-1])}",
        f"MZ: {MZ}",
        "MUp: 0.0",
        "MDown: 0.0",
        "MStrange: 0.0",
        f"MCharm: {_knot(MC)}",
        f"MBottom: {MB}",
        f"MTop: {MT}",
        f"AlphaS_MZ: {hoppet.AlphaS(MZ):.10f}",  # type: ignore[attr-defined]
        "AlphaS_OrderQCD: 0",
        "AlphaS_Type: ipol",
        f"AlphaS_Qs: [{', '.join(_knot(q) for q in aqs)}]",
        f"AlphaS_Vals: [{', '.join(f'{a:.10e}' for a in alphas)}]",
        "Interpolator: logcubic",
        "Extrapolator: continuation",
        "ForcePositive: 0",
    ]
    info = setdir / f"{NAME}.info"
    info.write_text("\n".join(info_lines) + "\n", encoding="utf-8")
    return info, dat


def write_reference(hoppet: object, path: Path, n: int, seed: int) -> None:
    """hoppet's x f and alpha_s at random off-knot points, as a deterministic npz."""
    rng = np.random.default_rng(seed)
    x = np.exp(rng.uniform(math.log(1e-6), math.log(0.9), n))
    Q = np.exp(rng.uniform(math.log(2.0), math.log(5000.0), n))
    xf = np.array([xf_row(hoppet, float(a), float(b)) for a, b in zip(x, Q, strict=True)])
    alphas = np.array([hoppet.AlphaS(float(q)) for q in Q])  # type: ignore[attr-defined]
    arrays = {"x": x, "Q": Q, "pids": np.array(PIDS, dtype=np.int64),
              "xf": xf.astype(np.float32), "alphas": alphas}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outdir", type=Path, default=ROOT / "madnis_py" / "data" / "pdfsets",
                    help="directory receiving LHToyPDF/ (default: the package's pdfsets)")
    ap.add_argument("--reference", type=Path,
                    default=ROOT / "tests" / "physics" / "data" / "lhtoy_hoppet_reference.npz",
                    help="reference-table output (npz)")
    ap.add_argument("--qmax", type=float, default=1e4, help="highest Q knot in GeV (1e4)")
    ap.add_argument("--dy", type=float, default=0.025,
                    help="hoppet's internal ln(1/x) spacing (0.025)")
    ap.add_argument("--nref", type=int, default=3000, help="reference points (3000)")
    ap.add_argument("--seed", type=int, default=20020416, help="reference-point seed")
    args = ap.parse_args(argv)

    hoppet = evolve(args.qmax, args.dy)
    info, dat = write_set(hoppet, args.outdir, args.qmax)
    write_reference(hoppet, args.reference, args.nref, args.seed)
    for p in (info, dat, args.reference):
        print(f"wrote {p} ({p.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
