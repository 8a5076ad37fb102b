"""Pure-numpy statement of the phase-space mappings of ``docs/phasespace.md``.

This is the independent numpy implementation of the page, used to test the compiled
kernels (``csrc/phasespace_math.h``, which the tests compare against it to 1e-12) and as
the baseline of the phase-space benchmark. It uses the page's numerically stable
formulas with the same operation order as the compiled code, so that the two agree to
rounding: the boost split into the parts parallel and perpendicular to the boost axis,
t-nodes with the tracked virtuality ``ma2`` of the incoming space-like line, the
cancellation-free ``t_max``, invariant masses of the inverse built bottom-up from a
cancellation-free dot product, and the lab frame of hadron beams reached with the same
boost (by the partonic system ``(sqrt(shat) cosh y, 0, 0, sqrt(shat) sinh y)``).

Everything is float64 and vectorised over events; the Python loops run over the nodes of
a channel's tree or the final-state particles only. Points outside the physical region
(NaN or out-of-range input, an empty invariant-mass range, a weight that is not finite
and > 0, a reconstructed ``r`` more than 1e-12 outside [0, 1]) get weight 0 and zero
momenta / ``r`` / ``x1x2``, exactly where the compiled mapping gives them. No numpy
warning is emitted.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from madnis_py.phasespace.topology import (
    F_A,
    F_B,
    F_MASS,
    F_MIN_MASS,
    F_T_M2,
    F_T_NU,
    I_CHILD1,
    I_CHILD2,
    I_KIND,
    I_LEG,
    I_SAMPLER,
    NODE_LEAF,
    NODE_S,
    SAMPLER_BREIT_WIGNER,
    SAMPLER_BREIT_WIGNER_TAIL,
    SAMPLER_NONE,
    SAMPLER_POWER,
    TAIL_CUTOFF,
    Program,
)

__all__ = [
    "channel_forward",
    "channel_inverse",
    "invariant_forward",
    "invariant_inverse",
    "rambo_forward",
]

Array = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]
Scalar = Array | float
Vec4 = tuple[Array, Array, Array, Array]  # (E, px, py, pz), each of shape (n,)

_PI = math.pi
_R_TOLERANCE = 1e-12  # reconstructed r may leave [0, 1] by this much before "outside"
_DBL_MAX = sys.float_info.max


# ---- invariant samplers -------------------------------------------------------------------

def _power_forward(nu: float, c: Scalar, lo: Scalar, hi: Scalar, r: Array) -> tuple[Array, Array]:
    if nu == 0:
        return lo + r * (hi - lo), (hi - lo) + np.zeros_like(r)
    vlo, vhi = lo + c, hi + c
    if nu == 1:
        ln = np.log(vhi / vlo)
        v = vlo * np.exp(r * ln)
        return v - c, v * ln
    e = 1 - nu
    plo, phi = np.power(vlo, e), np.power(vhi, e)
    v = np.power(plo + r * (phi - plo), 1 / e)
    return v - c, (phi - plo) / e * np.power(v, nu)


def _power_inverse(nu: float, c: Scalar, lo: Scalar, hi: Scalar, x: Array) -> tuple[Array, Array]:
    if nu == 0:
        return (x - lo) / (hi - lo), (hi - lo) + np.zeros_like(x)
    vlo, vhi, v = lo + c, hi + c, x + c
    if nu == 1:
        ln = np.log(vhi / vlo)
        return np.log(v / vlo) / ln, v * ln
    e = 1 - nu
    plo, phi = np.power(vlo, e), np.power(vhi, e)
    return (np.power(v, e) - plo) / (phi - plo), (phi - plo) / e * np.power(v, nu)


def _bw_forward(m: float, g: float, lo: Scalar, hi: Scalar, r: Array) -> tuple[Array, Array]:
    m2, mg = m * m, m * g
    ylo, yhi = np.arctan((lo - m2) / mg), np.arctan((hi - m2) / mg)
    x = m2 + mg * np.tan(ylo + r * (yhi - ylo))
    d = x - m2
    return x, (yhi - ylo) * (d * d + mg * mg) / mg


def _bw_inverse(m: float, g: float, lo: Scalar, hi: Scalar, x: Array) -> tuple[Array, Array]:
    m2, mg = m * m, m * g
    ylo, yhi = np.arctan((lo - m2) / mg), np.arctan((hi - m2) / mg)
    d = x - m2
    return (np.arctan(d / mg) - ylo) / (yhi - ylo), (yhi - ylo) * (d * d + mg * mg) / mg


def _tail_split(m: float, g: float, lo: Scalar, hi: Scalar) -> tuple[Array, Array]:
    """Split point ``xb`` and share ``p`` of the Breit-Wigner piece (density continuous at
    ``xb = (M + TAIL_CUTOFF G)^2``; 1 when ``hi <= xb``, 0 with ``xb = lo`` when
    ``lo >= xb``)."""
    lo_a, hi_a = np.broadcast_arrays(np.asarray(lo, dtype=np.float64),
                                     np.asarray(hi, dtype=np.float64))
    xb = (m + TAIL_CUTOFF * g) ** 2
    m2, mg, d = m * m, m * g, xb - m * m
    g_bw = mg / ((d * d + mg * mg) * (np.arctan(d / mg) - np.arctan((lo_a - m2) / mg)))
    g_tail = 1 / (xb * np.log(hi_a / xb))
    p = np.where(hi_a <= xb, 1.0, np.where(lo_a >= xb, 0.0, g_tail / (g_bw + g_tail)))
    return np.where(lo_a >= xb, lo_a, xb), p


def _bw_tail_forward(m: float, g: float, lo: Scalar, hi: Scalar,
                     r: Array) -> tuple[Array, Array]:
    xb, p = _tail_split(m, g, lo, hi)
    x_all, j_all = _bw_forward(m, g, lo, hi, r)
    x_pow, j_pow = _power_forward(1.0, 0.0, lo, hi, r)
    x_bw, j_bw = _bw_forward(m, g, lo, xb, r / p)
    x_tail, j_tail = _power_forward(1.0, 0.0, xb, hi, (r - p) / (1 - p))
    x = np.where(p == 1, x_all, np.where(p == 0, x_pow, np.where(r < p, x_bw, x_tail)))
    jac = np.where(p == 1, j_all, np.where(p == 0, j_pow,
                                           np.where(r < p, j_bw / p, j_tail / (1 - p))))
    return x, jac


def _bw_tail_inverse(m: float, g: float, lo: Scalar, hi: Scalar,
                     x: Array) -> tuple[Array, Array]:
    xb, p = _tail_split(m, g, lo, hi)
    r_all, j_all = _bw_inverse(m, g, lo, hi, x)
    r_pow, j_pow = _power_inverse(1.0, 0.0, lo, hi, x)
    r_bw, j_bw = _bw_inverse(m, g, lo, xb, x)
    r_tail, j_tail = _power_inverse(1.0, 0.0, xb, hi, x)
    r = np.where(p == 1, r_all, np.where(p == 0, r_pow,
                                         np.where(x < xb, p * r_bw, p + (1 - p) * r_tail)))
    jac = np.where(p == 1, j_all, np.where(p == 0, j_pow,
                                           np.where(x < xb, j_bw / p, j_tail / (1 - p))))
    return r, jac


def _sampler(sampler: int, a: float, b: float, lo: Scalar, hi: Scalar, v: Array,
             inverse: bool) -> tuple[Array, Array]:
    if inverse:
        return _sampled(sampler, a, b, lo, hi, v, True)
    # the sampled x stays in [lo, hi] (a Breit-Wigner far below its pole loses a narrow
    # range to cancellation; as the compiled map)
    x, jac = _sampled(sampler, a, b, lo, hi, v, False)
    return np.minimum(np.maximum(x, lo), hi), jac


def _sampled(sampler: int, a: float, b: float, lo: Scalar, hi: Scalar, v: Array,
             inverse: bool) -> tuple[Array, Array]:
    if sampler == SAMPLER_BREIT_WIGNER:
        return (_bw_inverse if inverse else _bw_forward)(a, b, lo, hi, v)
    if sampler == SAMPLER_POWER:
        return (_power_inverse if inverse else _power_forward)(a, b, lo, hi, v)
    if sampler == SAMPLER_BREIT_WIGNER_TAIL:
        return (_bw_tail_inverse if inverse else _bw_tail_forward)(a, b, lo, hi, v)
    raise ValueError(f"invariant sampler {sampler!r} cannot sample (expected "
                     f"{SAMPLER_BREIT_WIGNER} = Breit-Wigner, {SAMPLER_POWER} = power law or "
                     f"{SAMPLER_BREIT_WIGNER_TAIL} = Breit-Wigner with a 1/x tail)")


def _invariant(sampler: int, a: float, b: float, lo: npt.ArrayLike, hi: npt.ArrayLike,
               v: npt.ArrayLike, inverse: bool) -> tuple[Array, Array]:
    lo_a, hi_a, v_a = np.broadcast_arrays(np.asarray(lo, dtype=np.float64),
                                          np.asarray(hi, dtype=np.float64),
                                          np.asarray(v, dtype=np.float64))
    with np.errstate(all="ignore"):
        out, jac = _sampler(int(sampler), float(a), float(b), lo_a, hi_a, v_a, inverse)
    return np.asarray(out, dtype=np.float64), np.asarray(jac, dtype=np.float64)


def invariant_forward(sampler: int, a: float, b: float, lo: npt.ArrayLike, hi: npt.ArrayLike,
                      r: npt.ArrayLike) -> tuple[Array, Array]:
    """Map ``r`` in [0, 1] to an invariant ``x`` in ``[lo, hi]``.

    Parameters
    ----------
    sampler : int
        ``SAMPLER_POWER`` (density ``~ (x + c)^(-nu)``), ``SAMPLER_BREIT_WIGNER`` or
        ``SAMPLER_BREIT_WIGNER_TAIL`` (the Breit-Wigner up to ``(M + TAIL_CUTOFF G)^2``,
        ``1/x`` above, continuous there).
    a, b : float
        Power law: ``a = nu``, ``b = c`` (the offset). Breit-Wigner: ``a = M``,
        ``b = Gamma``.
    lo, hi, r : array_like
        Range and uniform numbers, broadcast against each other.

    Returns
    -------
    x : ndarray
        The sampled invariant.
    jac : ndarray
        ``dx/dr``, the inverse of the normalised density at ``x``.

    Raises
    ------
    ValueError
        If ``sampler`` is neither of the two samplers.
    """
    return _invariant(sampler, a, b, lo, hi, r, False)


def invariant_inverse(sampler: int, a: float, b: float, lo: npt.ArrayLike, hi: npt.ArrayLike,
                      x: npt.ArrayLike) -> tuple[Array, Array]:
    """Inverse of :func:`invariant_forward`: ``x`` in ``[lo, hi]`` to ``r`` in [0, 1].

    Parameters
    ----------
    sampler : int
        ``SAMPLER_POWER``, ``SAMPLER_BREIT_WIGNER`` or ``SAMPLER_BREIT_WIGNER_TAIL``.
    a, b : float
        As in :func:`invariant_forward`.
    lo, hi, x : array_like
        Range and invariants, broadcast against each other.

    Returns
    -------
    r : ndarray
        The numbers that :func:`invariant_forward` maps to ``x``.
    jac : ndarray
        ``dx/dr`` at ``x`` (the forward map's Jacobian).

    Raises
    ------
    ValueError
        If ``sampler`` is neither of the two samplers.
    """
    return _invariant(sampler, a, b, lo, hi, x, True)


# ---- kinematics ---------------------------------------------------------------------------

def _two_body(mass: Array, m1: Scalar, m2: Scalar) -> tuple[Array, Array, Array, Array]:
    """``lambda`` (clipped at 0), ``|p|``, ``E1``, ``E2`` of ``mass -> m1 m2`` at rest."""
    mm, s1, s2 = mass * mass, m1 * m1, m2 * m2
    d = mm - s1 - s2
    lam = np.fmax(d * d - 4 * s1 * s2, 0.0)
    return lam, np.sqrt(lam) / (2 * mass), (mm + s1 - s2) / (2 * mass), (mm + s2 - s1) / (2 * mass)


def _boost(q: Vec4, mass: Array, k: Vec4, mk2: Scalar, sign: float = 1.0) -> Vec4:
    """The page's boost of ``k`` (mass squared ``mk2``) from the rest frame of ``q``
    (mass ``mass``) into the frame where ``q`` moves; ``sign = -1`` boosts into the rest
    frame of ``q``. Vectors moving against the boost take the cancellation-free branch."""
    qe, qx, qy, qz = q
    ke, kx, ky, kz = k
    qa = np.sqrt(qx * qx + qy * qy + qz * qz)
    ux, uy, uz = sign * qx / qa, sign * qy / qa, sign * qz / qa
    kpar = kx * ux + ky * uy + kz * uz
    tx, ty, tz = kx - kpar * ux, ky - kpar * uy, kz - kpar * uz
    a = (mk2 + tx * tx + ty * ty + tz * tz) / (ke - kpar)
    b = mass * mass / (qe + qa)
    fwd = kpar >= 0
    e = np.where(fwd, (qe * ke + qa * kpar) / mass, (qe * a - b * kpar) / mass)
    ppar = np.where(fwd, (qe * kpar + qa * ke) / mass, (qa * a + b * kpar) / mass)
    rest = qa == 0
    return (np.where(rest, ke, e), np.where(rest, kx, tx + ppar * ux),
            np.where(rest, ky, ty + ppar * uy), np.where(rest, kz, tz + ppar * uz))


def _dot_stable(p: Vec4, sp: Scalar, q: Vec4, sq: Scalar) -> Array:
    """``p.q`` without cancellation for nearly collinear pairs (masses squared sp, sq)."""
    ap = np.sqrt(p[1] * p[1] + p[2] * p[2] + p[3] * p[3])
    aq = np.sqrt(q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    plain = p[0] * q[0] - p[1] * q[1] - p[2] * q[2] - p[3] * q[3]
    ee = (sp * sq + sp * aq * aq + sq * ap * ap) / (p[0] * q[0] + ap * aq)
    dx, dy, dz = p[1] / ap - q[1] / aq, p[2] / ap - q[2] / aq, p[3] / ap - q[3] / aq
    stable = ee + 0.5 * ap * aq * (dx * dx + dy * dy + dz * dz)
    out: Array = np.where((ap == 0) | (aq == 0), plain, stable)
    return out


def _dot3(v: tuple[Array, Array, Array], w: tuple[Array, Array, Array]) -> Array:
    out: Array = v[0] * w[0] + v[1] * w[1] + v[2] * w[2]
    return out


def _helicity_axes(q: Vec4) -> tuple[tuple[Array, Array, Array], tuple[Array, Array, Array],
                                      tuple[Array, Array, Array]]:
    """The axes ``(e1, e2, n)`` of an s-node's decay in the helicity frame: ``n`` along the
    node's momentum ``Qv`` (the z axis where ``Qv = 0``), ``e1``, ``e2`` as for a t-node."""
    qa = np.sqrt(q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    rest = qa == 0
    nx = np.where(rest, 0.0, q[1] / qa)
    ny = np.where(rest, 0.0, q[2] / qa)
    nz = np.where(rest, 1.0, q[3] / qa)
    rho = np.sqrt(nx * nx + ny * ny)
    cf = np.where(rho == 0, 1.0, nx / rho)
    sf = np.where(rho == 0, 0.0, ny / rho)
    return (nz * cf, nz * sf, -rho), (-sf, cf, np.zeros_like(cf)), (nx, ny, nz)


class _TFrame:
    """A t-node's rest frame: ``pa``, the range ``[ulo, uhi]`` of ``u = -t``, the power
    law's offset ``c`` and the axes ``n`` (along the space-like line), ``e1``, ``e2``."""

    def __init__(self, q: Vec4, mass: Array, ma2: Array, pb: Vec4, p: Array, e1: Array,
                 e2: Array, m1: Scalar, m2: Scalar, t_m2: float) -> None:
        self.pa = (mass * mass - ma2) / (2 * mass)
        tmax = (ma2 / mass - m1 * m1 / (e1 + p)) * (m2 * m2 / (e2 + p))
        self.ulo = -tmax
        self.uhi = self.ulo + 4 * self.pa * p
        self.c = t_m2 - np.fmin(self.ulo, 0.0)
        b = _boost(q, mass, pb, 0.0, -1.0)
        babs = np.sqrt(b[1] * b[1] + b[2] * b[2] + b[3] * b[3])
        nx, ny, nz = -b[1] / babs, -b[2] / babs, -b[3] / babs
        rho = np.sqrt(nx * nx + ny * ny)
        cf = np.where(rho == 0, 1.0, nx / rho)
        sf = np.where(rho == 0, 0.0, ny / rho)
        self.n = (nx, ny, nz)
        self.e1 = (nz * cf, nz * sf, -rho)
        self.e2 = (-sf, cf, np.zeros_like(cf))


def _finite_positive(w: Array) -> Bool:
    out: Bool = (w > 0) & (w <= _DBL_MAX)
    return out


def _luminosity_forward(sampler: int, a: float, b: float, min_mass: float, s: float,
                        r0: Array, r1: Array) -> tuple[Array, Array, Array, Array, Array]:
    """Step 1: weight factor, shat, y, x1, x2."""
    shat, jac = _sampler(sampler, a, b, min_mass * min_mass, s, r0, False)
    tau = shat / s
    ylo = 0.5 * np.log(tau)
    yhi = -ylo
    y = ylo + r1 * (yhi - ylo)
    st = np.sqrt(tau)
    return jac / s * (yhi - ylo), shat, y, st * np.exp(y), st * np.exp(-y)


def _lab(shat: Array, y: Array) -> tuple[Array, Vec4]:
    """sqrt(shat) and the partonic system's momentum in the lab frame."""
    rs = np.sqrt(shat)
    zero = np.zeros_like(rs)
    return rs, (rs * np.cosh(y), zero, zero, rs * np.sinh(y))


def _beams(out: Array, sqrt_s: float, x1: Array, x2: Array) -> None:
    e1, e2 = 0.5 * sqrt_s * x1, 0.5 * sqrt_s * x2
    out[:, 0, 0], out[:, 0, 3] = e1, e1
    out[:, 1, 0], out[:, 1, 3] = e2, -e2


def _finish_forward(out: Array, w: Array, x1: Array, x2: Array,
                    ok: Bool) -> tuple[Array, Array, Array]:
    ok = ok & _finite_positive(w)
    x1x2 = np.stack([x1, x2], axis=1)
    return (np.where(ok[:, None, None], out, 0.0), np.where(ok, w, 0.0),
            np.where(ok[:, None], x1x2, 0.0))


def _checked(values: npt.ArrayLike, shape: tuple[int, ...], what: str) -> Array:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 + len(shape) or arr.shape[1:] != shape:
        raise ValueError(f"{what} must have shape (n, {', '.join(map(str, shape))}), got "
                         f"{arr.shape}")
    return arr


class _Tree:
    """The tables of a compiled channel, read into Python scalars once."""

    def __init__(self, program: Program, hadronic: bool) -> None:
        it, ft = program.int_table, program.float_table
        if hadronic and int(it[0, I_SAMPLER]) == SAMPLER_NONE:
            raise ValueError(f"channel {program.name}: hadronic=True needs a program compiled "
                             "with hadronic=True (the root has no partonic-energy sampler)")
        self.n_nodes = program.n_nodes
        self.n_final = program.n_final
        self.dims = 3 * program.n_final - 4 + (2 if hadronic else 0)
        self.kind = [int(v) for v in it[:, I_KIND]]
        self.c1 = [int(v) for v in it[:, I_CHILD1]]
        self.c2 = [int(v) for v in it[:, I_CHILD2]]
        self.leg = [int(v) for v in it[:, I_LEG]]
        self.sampler = [int(v) for v in it[:, I_SAMPLER]]
        self.mass, self.min_mass, self.a, self.b, self.t_nu, self.t_m2 = (
            [float(v) for v in ft[:, col]] for col in (F_MASS, F_MIN_MASS, F_A, F_B, F_T_NU,
                                                       F_T_M2))
        self.internal = [k for k in range(self.n_nodes) if self.kind[k] != NODE_LEAF]

    def leaf(self, k: int) -> bool:
        return self.kind[k] == NODE_LEAF


# ---- channel map --------------------------------------------------------------------------

def channel_forward(program: Program, r: npt.ArrayLike, sqrt_s: float,
                    hadronic: bool, *, helicity: bool = True) -> tuple[Array, Array, Array]:
    """Map unit-hypercube points to momenta along one channel (``docs/phasespace.md``).

    Parameters
    ----------
    program : Program
        A compiled topology (:func:`~madnis_py.phasespace.topology.compile_topology`),
        compiled with the same ``hadronic`` flag.
    r : array_like, shape (n, dims)
        Random numbers in [0, 1], ``dims = 3 n_final - 4`` (+ 2 with hadron beams).
    sqrt_s : float
        Collider energy in GeV.
    hadronic : bool
        Whether ``r[:, 0:2]`` give the partonic energy and rapidity.
    helicity : bool
        Measure the decay angles of every s-node from the node's own direction of flight
        (the helicity frame, ``docs/phasespace.md``; the compiled mapping's, the
        default) instead of the z axis (``False``; the mapping before the helicity frame).

    Returns
    -------
    momenta : ndarray, shape (n, n_final + 2, 4)
        Lab-frame (E, px, py, pz); indices 0 and 1 are the incoming partons.
    weight : ndarray, shape (n,)
        Phase-space weight (times ``dx1 dx2`` with hadron beams); 0 for outside points.
    x1x2 : ndarray, shape (n, 2)
        Momentum fractions (ones for lepton beams, zeros for outside points).

    Raises
    ------
    ValueError
        On a wrongly shaped ``r``, or ``hadronic=True`` with a program compiled without it.
    """
    t = _Tree(program, hadronic)
    r = _checked(r, (t.dims,), f"channel {program.name}: r")
    n_ev = r.shape[0]
    s = float(sqrt_s) ** 2
    zero = np.zeros(n_ev)
    with np.errstate(all="ignore"):
        ok: Bool = np.all((r >= 0) & (r <= 1), axis=1)
        w, shat, y, x1, x2 = np.ones(n_ev), np.full(n_ev, s), zero, np.ones(n_ev), np.ones(n_ev)
        ir = 0
        if hadronic:
            w, shat, y, x1, x2 = _luminosity_forward(t.sampler[0], t.a[0], t.b[0],
                                                     t.min_mass[0], s, r[:, 0], r[:, 1])
            ir = 2
        # 2. invariant masses, parents before children
        m: list[Scalar] = [t.mass[k] if t.leaf(k) else t.min_mass[k] for k in range(t.n_nodes)]
        m[0] = np.sqrt(shat)
        for k in t.internal:
            c1, c2 = t.c1[k], t.c2[k]
            for c in (c1, c2):
                if t.leaf(c):
                    continue
                up = m[k] - (t.min_mass[c2] if c == c1 else m[c1])
                ok = ok & (up >= t.min_mass[c])
                sc, jac = _sampler(t.sampler[c], t.a[c], t.b[c], t.min_mass[c] * t.min_mass[c],
                                   up * up, r[:, ir], False)
                ir += 1
                m[c] = np.sqrt(np.fmax(sc, 0.0))
                w = w * (jac / (2 * _PI))
        # 3. splittings
        rs = np.sqrt(shat)
        pb: Vec4 = (0.5 * rs, zero, zero, -(0.5 * rs))
        q: dict[int, Vec4] = {0: (rs, zero, zero, zero)}
        ma2: dict[int, Array] = {0: zero}
        for k in t.internal:
            c1, c2 = t.c1[k], t.c2[k]
            mk = np.asarray(m[k])
            ok = ok & (m[c1] + m[c2] <= mk)  # daughters above their parent: outside
            lam, p, e1, e2 = _two_body(mk, m[c1], m[c2])
            ra, phi = r[:, ir], 2 * _PI * r[:, ir + 1]
            ir += 2
            if t.kind[k] == NODE_S:
                cs, sn = 2 * ra - 1, 2 * np.sqrt(ra * (1 - ra))
                a1, a2, a3 = p * sn * np.cos(phi), p * sn * np.sin(phi), p * cs
                kv = (a1, a2, a3)
                if helicity:
                    h1, h2, hn = _helicity_axes(q[k])
                    kv = (a1 * h1[0] + a2 * h2[0] + a3 * hn[0],
                          a1 * h1[1] + a2 * h2[1] + a3 * hn[1],
                          a1 * h1[2] + a2 * h2[2] + a3 * hn[2])
                w = w * (np.sqrt(lam) / (8 * _PI * mk * mk))
            else:
                f = _TFrame(q[k], mk, ma2[k], pb, p, e1, e2, m[c1], m[c2], t.t_m2[k])
                u, jac = _power_forward(t.t_nu[k], f.c, f.ulo, f.uhi, ra)
                ma2[c2] = -u
                d = f.uhi - f.ulo
                du, dv = np.fmax(u - f.ulo, 0.0), np.fmax(f.uhi - u, 0.0)
                cs, sn = 1 - 2 * du / d, 2 * np.sqrt(du * dv) / d
                a1, a2, a3 = p * sn * np.cos(phi), p * sn * np.sin(phi), p * cs
                kv = (a1 * f.e1[0] + a2 * f.e2[0] + a3 * f.n[0],
                      a1 * f.e1[1] + a2 * f.e2[1] + a3 * f.n[1],
                      a1 * f.e1[2] + a2 * f.e2[2] + a3 * f.n[2])
                w = w * (jac / (16 * _PI * mk * f.pa))
            q[c1] = _boost(q[k], mk, (e1, *kv), m[c1] * m[c1])
            q[c2] = _boost(q[k], mk, (e2, -kv[0], -kv[1], -kv[2]), m[c2] * m[c2])
        # 4. lab frame
        out = np.zeros((n_ev, t.n_final + 2, 4))
        _beams(out, float(sqrt_s), x1, x2)
        _, lab = _lab(shat, y)
        for k in range(t.n_nodes):
            if t.leaf(k):
                mom = _boost(lab, rs, q[k], t.mass[k] * t.mass[k]) if hadronic else q[k]
                out[:, t.leg[k]] = np.stack(mom, axis=1)
        return _finish_forward(out, w, x1, x2, ok)


def channel_inverse(program: Program, momenta: npt.ArrayLike, sqrt_s: float,
                    hadronic: bool, *, helicity: bool = True) -> tuple[Array, Array]:
    """Map momenta back to the unit-hypercube point of one channel (``docs/phasespace.md``).

    Parameters
    ----------
    program : Program
        A compiled topology, compiled with the same ``hadronic`` flag.
    momenta : array_like, shape (n, n_final + 2, 4)
        Lab-frame momenta; with hadron beams the incoming energies give ``x1``, ``x2``.
    sqrt_s : float
        Collider energy in GeV.
    hadronic : bool
        Whether ``r[:, 0:2]`` encode the partonic energy and rapidity.
    helicity : bool
        As in :func:`channel_forward`.

    Returns
    -------
    r : ndarray, shape (n, dims)
        The point that :func:`channel_forward` maps to ``momenta`` (zeros outside).
    weight : ndarray, shape (n,)
        The forward map's weight at that point; 0 for events with non-finite momenta,
        ``x1``, ``x2`` outside (0, 1], a weight that is not finite and > 0, or an ``r``
        more than 1e-12 outside [0, 1] (smaller excursions are clipped).

    Raises
    ------
    ValueError
        On wrongly shaped momenta, or ``hadronic=True`` with a program compiled without it.
    """
    t = _Tree(program, hadronic)
    mom = _checked(momenta, (t.n_final + 2, 4), f"channel {program.name}: momenta")
    n_ev = mom.shape[0]
    sqrt_s = float(sqrt_s)
    s = sqrt_s * sqrt_s
    zero = np.zeros(n_ev)
    r = np.zeros((n_ev, t.dims))
    with np.errstate(all="ignore"):
        ok: Bool = np.all(np.isfinite(mom), axis=(1, 2))
        w, shat, y = np.ones(n_ev), np.full(n_ev, s), zero
        ir = 0
        if hadronic:
            x1, x2 = 2 * mom[:, 0, 0] / sqrt_s, 2 * mom[:, 1, 0] / sqrt_s
            ok = ok & (x1 > 0) & (x1 <= 1) & (x2 > 0) & (x2 <= 1)
            shat = x1 * x2 * s
            y = 0.5 * np.log(x1 / x2)
            r[:, 0], jac = _sampler(t.sampler[0], t.a[0], t.b[0],
                                    t.min_mass[0] * t.min_mass[0], s, shat, True)
            ylo = 0.5 * np.log(shat / s)
            yhi = -ylo
            r[:, 1] = (y - ylo) / (yhi - ylo)
            w = jac / s * (yhi - ylo)
            ir = 2
        rs, lab = _lab(shat, y)
        # bottom-up: momenta and invariant masses squared of the nodes
        q: dict[int, Vec4] = {}
        lab_q: dict[int, Vec4] = {}  # the given momenta: s from them, before a boost
        s2: list[Scalar] = [0.0] * t.n_nodes
        m: list[Scalar] = [0.0] * t.n_nodes
        for k in reversed(range(t.n_nodes)):
            if t.leaf(k):
                pk = mom[:, t.leg[k]]
                qk: Vec4 = (pk[:, 0], pk[:, 1], pk[:, 2], pk[:, 3])
                lab_q[k] = qk
                m[k] = t.mass[k]
                s2[k] = t.mass[k] * t.mass[k]
                q[k] = _boost(lab, rs, qk, s2[k], -1.0) if hadronic else qk
            else:
                c1, c2 = t.c1[k], t.c2[k]
                q[k] = (q[c1][0] + q[c2][0], q[c1][1] + q[c2][1], q[c1][2] + q[c2][2],
                        q[c1][3] + q[c2][3])
                a, b = lab_q[c1], lab_q[c2]
                lab_q[k] = (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3])
                s2[k] = s2[c1] + s2[c2] + 2 * _dot_stable(a, s2[c1], b, s2[c2])
                m[k] = np.sqrt(np.fmax(s2[k], 0.0))
        pb: Vec4 = (0.5 * rs, zero, zero, -(0.5 * rs))
        m[0] = rs
        q[0] = (rs, zero, zero, zero)
        ma2: dict[int, Array] = {0: zero}
        # masses: the traversal of the forward map
        for k in t.internal:
            c1, c2 = t.c1[k], t.c2[k]
            for c in (c1, c2):
                if t.leaf(c):
                    continue
                up = m[k] - (t.min_mass[c2] if c == c1 else m[c1])
                r[:, ir], jac = _sampler(t.sampler[c], t.a[c], t.b[c],
                                         t.min_mass[c] * t.min_mass[c], up * up,
                                         np.fmax(s2[c], 0.0), True)
                ir += 1
                w = w * (jac / (2 * _PI))
        # splittings
        for k in t.internal:
            c1, c2 = t.c1[k], t.c2[k]
            mk = np.asarray(m[k])
            lam, p, e1, e2 = _two_body(mk, m[c1], m[c2])
            _, kx, ky, kz = _boost(q[k], mk, q[c1], s2[c1], -1.0)
            kabs = np.sqrt(kx * kx + ky * ky + kz * kz)
            if t.kind[k] == NODE_S and helicity:
                h1, h2, hn = _helicity_axes(q[k])
                r[:, ir] = 0.5 * (1 + _dot3((kx, ky, kz), hn) / kabs)
                phi = np.arctan2(_dot3((kx, ky, kz), h2), _dot3((kx, ky, kz), h1))
                w = w * (np.sqrt(lam) / (8 * _PI * mk * mk))
            elif t.kind[k] == NODE_S:
                r[:, ir] = 0.5 * (1 + kz / kabs)
                phi = np.arctan2(ky, kx)
                w = w * (np.sqrt(lam) / (8 * _PI * mk * mk))
            else:
                f = _TFrame(q[k], mk, ma2[k], pb, p, e1, e2, m[c1], m[c2], t.t_m2[k])
                n = f.n
                # u from 1 -+ cos = kt^2 / (|k| (|k| +- kn)), accurate near both poles
                kn = kx * n[0] + ky * n[1] + kz * n[2]
                cx, cy, cz = ky * n[2] - kz * n[1], kz * n[0] - kx * n[2], kx * n[1] - ky * n[0]
                kt2, half = cx * cx + cy * cy + cz * cz, 0.5 * (f.uhi - f.ulo)
                u = np.where(kn >= 0, f.ulo + half * kt2 / (kabs * (kabs + kn)),
                             f.uhi - half * kt2 / (kabs * (kabs - kn)))
                ma2[c2] = -u
                r[:, ir], jac = _power_inverse(t.t_nu[k], f.c, f.ulo, f.uhi, u)
                phi = np.arctan2(_dot3((kx, ky, kz), f.e2), _dot3((kx, ky, kz), f.e1))
                w = w * (jac / (16 * _PI * mk * f.pa))
            phi = np.where(phi < 0, phi + 2 * _PI, phi)
            r[:, ir + 1] = phi / (2 * _PI)
            ir += 2
        ok = ok & np.all((r >= -_R_TOLERANCE) & (r <= 1 + _R_TOLERANCE), axis=1)
        ok = ok & _finite_positive(w)
        return (np.where(ok[:, None], np.clip(r, 0.0, 1.0), 0.0), np.where(ok, w, 0.0))


# ---- RAMBO --------------------------------------------------------------------------------

def _rambo_massless_weight(n: int, shat: Array) -> Array:
    """``(2 pi)^(4 - 3n) (pi/2)^(n-1) shat^(n-2) / ((n-1)! (n-2)!)``, divided as the
    compiled code does."""
    w: Array = (math.pow(2 * _PI, 4 - 3 * n) * math.pow(_PI / 2, n - 1)
                * np.power(shat, float(n - 2)))
    for i in [*range(2, n), *range(2, n - 1)]:
        w = w / i
    return w


def rambo_forward(masses: Sequence[float], r: npt.ArrayLike, sqrt_s: float, hadronic: bool,
                  min_shat: float = 0.0) -> tuple[Array, Array, Array]:
    """RAMBO (Kleiss, Stirling, Ellis 1986): n-body phase space from ``4 n`` numbers.

    Parameters
    ----------
    masses : sequence of float
        Final-state masses in GeV (at least two).
    r : array_like, shape (n_events, 4 n (+ 2 with hadron beams))
        Random numbers in [0, 1]; with hadron beams ``r[:, 0:2]`` give ``shat`` (power law
        ``nu = 1`` on ``[max(sum m, sqrt(min_shat))^2, S]``) and the rapidity.
    sqrt_s : float
        Collider energy in GeV.
    hadronic : bool
        Whether the partonic energy is sampled.
    min_shat : float
        Lower cut on ``shat`` in GeV^2 (hadron beams only; needed for massless final
        states, where every point is outside without it).

    Returns
    -------
    momenta : ndarray, shape (n_events, n + 2, 4)
        Lab-frame momenta; indices 0 and 1 are the incoming partons.
    weight : ndarray, shape (n_events,)
        Phase-space weight (times ``dx1 dx2`` with hadron beams); 0 for outside points.
    x1x2 : ndarray, shape (n_events, 2)
        Momentum fractions (ones for lepton beams, zeros for outside points).

    Raises
    ------
    ValueError
        On fewer than two or invalid masses, or a wrongly shaped ``r``.
    """
    ms = [float(v) for v in masses]
    n = len(ms)
    if n < 2 or not all(math.isfinite(v) and v >= 0 for v in ms):
        raise ValueError(f"RAMBO needs at least two finite masses >= 0, got {ms!r}")
    r = _checked(r, (4 * n + (2 if hadronic else 0),), "RAMBO: r")
    n_ev = r.shape[0]
    sqrt_s = float(sqrt_s)
    s = sqrt_s * sqrt_s
    msum = 0.0
    for v in ms:
        msum += v
    zero = np.zeros(n_ev)
    with np.errstate(all="ignore"):
        ok: Bool = np.all((r >= 0) & (r <= 1), axis=1)
        w, shat, y, x1, x2 = np.ones(n_ev), np.full(n_ev, s), zero, np.ones(n_ev), np.ones(n_ev)
        if hadronic:
            lo = max(msum, math.sqrt(max(min_shat, 0.0)))
            w, shat, y, x1, x2 = _luminosity_forward(SAMPLER_POWER, 1.0, 0.0, lo, s,
                                                     r[:, 0], r[:, 1])
            r = r[:, 2:]
        rs = np.sqrt(shat)
        # massless momenta of isotropic directions and exponential energies
        qs: list[Vec4] = []
        for i in range(n):
            c, phi = 2 * r[:, 4 * i] - 1, 2 * _PI * r[:, 4 * i + 1]
            q0 = -np.log(r[:, 4 * i + 2] * r[:, 4 * i + 3])
            st = np.sqrt(1 - c * c)
            qs.append((q0, q0 * st * np.cos(phi), q0 * st * np.sin(phi), q0 * c))
        tot = [zero, zero, zero, zero]
        for qi in qs:
            tot = [tot[j] + qi[j] for j in range(4)]
        big_m = np.sqrt(tot[0] * tot[0] - tot[1] * tot[1] - tot[2] * tot[2] - tot[3] * tot[3])
        bx, by, bz = -tot[1] / big_m, -tot[2] / big_m, -tot[3] / big_m
        x, g = rs / big_m, tot[0] / big_m
        a = 1 / (1 + g)
        ps: list[Vec4] = []
        for q0, qx, qy, qz in qs:
            bq = bx * qx + by * qy + bz * qz
            ps.append((x * (g * q0 + bq), x * (qx + bx * q0 + a * bq * bx),
                       x * (qy + by * q0 + a * bq * by), x * (qz + bz * q0 + a * bq * bz)))
        w = w * _rambo_massless_weight(n, shat)
        if msum > 0:
            # rescale the three-momenta so that the massive energies add up to sqrt(shat)
            ok = ok & (msum < rs)
            xi = np.sqrt(1 - (msum / rs) * (msum / rs))
            active = np.ones(n_ev, dtype=bool)
            for _ in range(50):
                f, df = -rs, zero
                for mi, pi in zip(ms, ps, strict=True):
                    ei = np.sqrt(mi * mi + xi * xi * pi[0] * pi[0])
                    f, df = f + ei, df + xi * pi[0] * pi[0] / ei
                step = f / df
                xi = np.where(active, xi - step, xi)
                active = active & ~(np.abs(step) <= 1e-15 * xi)
                if not active.any():
                    break
            sk, prod, sk2e = zero, np.ones(n_ev), zero
            for i, mi in enumerate(ms):
                kabs = xi * ps[i][0]
                e = np.sqrt(mi * mi + kabs * kabs)
                sk, prod, sk2e = sk + kabs, prod * (kabs / e), sk2e + kabs * kabs / e
                ps[i] = (e, xi * ps[i][1], xi * ps[i][2], xi * ps[i][3])
            w = w * (np.power(sk / rs, float(2 * n - 3)) * prod * rs / sk2e)
        out = np.zeros((n_ev, n + 2, 4))
        _beams(out, sqrt_s, x1, x2)
        _, lab = _lab(shat, y)
        for i, mi in enumerate(ms):
            out[:, i + 2] = np.stack(_boost(lab, rs, ps[i], mi * mi) if hadronic else ps[i],
                                     axis=1)
        return _finish_forward(out, w, x1, x2, ok)
