"""The RQS spline in 60-digit mpmath: ground truth for ill-conditioned points."""

import mpmath as mp

mp.mp.dps = 60

MIN_SIZE = mp.mpf("1e-3")


def spline(v, raw, bins, inverse, min_size=MIN_SIZE):
    """(output, logdet) of one event, same conventions as madnis_py.flows.rqs."""
    def knots(r):
        e = [mp.e ** ri for ri in r]
        total = sum(e)
        out = [mp.mpf(0)]
        for ei in e[:-1]:
            out.append(out[-1] + min_size + (1 - min_size * bins) * ei / total)
        return out + [mp.mpf(1)]

    xk, yk = knots(raw[:bins]), knots(raw[bins:2 * bins])
    shift = mp.log(mp.expm1(1 - min_size))
    d = [min_size + mp.log(1 + mp.e ** (r + shift)) for r in raw[2 * bins:]]
    grid = yk if inverse else xk
    b = min(sum(1 for j in range(1, bins) if grid[j] <= v), bins - 1)
    w, h = xk[b + 1] - xk[b], yk[b + 1] - yk[b]
    s, d0, d1 = h / w, d[b], d[b + 1]
    c = d1 + d0 - 2 * s
    if inverse:
        dy = v - yk[b]
        qa, qb, qc = h * (s - d0) + dy * c, h * d0 - dy * c, -s * dy
        xi = 2 * qc / (-qb - mp.sqrt(qb * qb - 4 * qa * qc))
    else:
        xi = (v - xk[b]) / w
    th = xi * (1 - xi)
    ld = 2 * mp.log(s) + mp.log(d1 * xi**2 + 2 * s * th + d0 * (1 - xi) ** 2) - 2 * mp.log(s + c * th)
    if inverse:
        return xk[b] + w * xi, -ld
    return yk[b] + h * (s * xi**2 + d0 * th) / (s + c * th), ld


def gradients(v, raw, bins, inverse, g_out, g_ld):
    """d(g_out * out + g_ld * logdet) / d(v, raw...), one-sided inside [0, 1] at the edges."""
    v = mp.mpf(v)
    raw = [mp.mpf(r) for r in raw]

    def loss(vv, rr):
        out, ld = spline(vv, rr, bins, inverse)
        return g_out * out + g_ld * ld

    direction = -1 if v == 1 else (1 if v == 0 else 0)
    gv = mp.diff(lambda t: loss(t, raw), v, direction=direction)
    graw = []
    for j in range(len(raw)):
        graw.append(mp.diff(lambda t, j=j: loss(v, raw[:j] + [t] + raw[j + 1:]), raw[j]))
    return gv, graw
