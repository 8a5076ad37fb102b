"""Helicity recycling of a standalone ``matrix.f`` with MadGraph's own ``HelicityRecycler``.

The standalone ``<prefix>SMATRIX`` calls ``<prefix>MATRIX`` once per helicity
combination, and each call recomputes every wavefunction, although an external
wavefunction depends on one helicity and an internal one on the helicities of the
externals it is built from. madevent's matrix elements avoid that with MadGraph's
``madgraph.madevent.hel_recycle.HelicityRecycler``: it reads the HELAS calls of one
matrix element, unrolls them over the helicities (each wavefunction computed once per
combination of the helicities it depends on) and fills ``${helas_calls}``,
``${jamp_lines}`` (with ``AMP(K, i)`` for helicity ``K``), ``${amp2_lines}``,
``${nwavefuncs}`` and ``${ncomb}`` of a template.

Here the recycler reads a scratch file laid out as madevent's ``matrix_orig.f`` (the
helicity table, then the calls and colour amplitudes of ``<prefix>MATRIX``, then the
per-diagram |M_i|^2 lines that :mod:`.exporter` added) and fills a template made from
``<prefix>MATRIX`` itself: ``<prefix>MATRIX_HELSUM(P, IC, SEL, TS)`` returns in ``TS`` the
|M|^2 of the helicity combinations selected by ``SEL`` and accumulates their per-diagram
|M_i|^2; each recycled call is guarded so that only what a selected helicity needs is
computed (:func:`_guard_helicities`). ``<prefix>SMATRIX`` selects the helicities its loop
evaluates (those not yet found to vanish, and the polarisation choice) and takes
``TS(IHEL)`` in place of ``<prefix>MATRIX(P, NHEL(1,IHEL), JC)`` where it sums over
helicities, in the same order: the same HELAS calls on the same inputs give |M|^2 and the
per-diagram |M_i|^2 of the helicity loop bit for bit. A single helicity
(``<prefix>SMATRIXHEL`` with ``HEL > 0``) still calls ``<prefix>MATRIX``.

With ``split_amplitudes`` the recycler also factorises each amplitude into an
off-shell current (the ``P1N`` ALOHA routines, without propagator) contracted with the
remaining wavefunction by ``CombineAmp``, as madevent does; the exporter then asks ALOHA
for the ``P1N`` routines.

This module imports only MadGraph and the standard library (it runs in MadGraph's Python).
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
from pathlib import Path

__all__ = ["RecyclingError", "fixed_form", "recycle_helicities"]


class RecyclingError(ValueError):
    """A ``matrix.f`` without the layout of MadGraph 3.5's standalone output."""


def fixed_form(lines: list[str]) -> str:
    """Fixed-form Fortran: statements from column 7, continuation lines past column 72."""
    out = []
    for line in lines:
        text = line.strip()
        first = True
        while text:
            width = 66 if first else 60
            chunk, text = text[:width], text[width:]
            out.append(("      " if first else "     $      ") + chunk)
            first = False
    return "\n".join(out) + "\n"


def _one(pattern: str, text: str, what: str, path: Path) -> re.Match[str]:
    found = list(re.finditer(pattern, text, re.M))
    if len(found) != 1:
        raise RecyclingError(f"{path}: expected one {what} (MadGraph 3.5's standalone "
                             f"layout), found {len(found)}")
    return found[0]


def _split_matrix(text: str, prefix: str, path: Path) -> tuple[int, int, str]:
    """Start and end offsets of ``<prefix>MATRIX`` in ``text``, and its text."""
    head = _one(rf"^[ \t]+REAL\*8 FUNCTION {re.escape(prefix)}MATRIX\(P,NHEL,IC\)[ \t]*\n",
                text, f"REAL*8 FUNCTION {prefix}MATRIX(P,NHEL,IC)", path)
    end = re.compile(r"^[ \t]+END[ \t]*\n", re.M).search(text, head.end())
    if end is None:
        raise RecyclingError(f"{path}: {prefix}MATRIX has no END")
    return head.start(), end.end(), text[head.start():end.end()]


def _scratch_input(text: str, matrix: str, prefix: str, path: Path) -> str:
    """The helicity table and the body of ``<prefix>MATRIX`` in the order and with the
    markers the recycler reads (the layout of madevent's ``matrix_orig.f``)."""
    nhel = re.findall(r"^[ \t]+DATA \(NHEL\(I,\s*\d+\),I=1,\d+\) /.*/[ \t]*\n", text, re.M)
    if not nhel:
        raise RecyclingError(f"{path}: no helicity table (DATA (NHEL(I, n),I=1,m))")
    lines = matrix.splitlines(keepends=True)
    first_call = next((i for i, line in enumerate(lines)
                       if line.startswith("      CALL ")), None)
    colour_sum = next((i for i, line in enumerate(lines)
                       if re.match(rf"^[ \t]+{re.escape(prefix)}MATRIX = 0\.D0[ \t]*$", line)),
                      None)
    if first_call is None or colour_sum is None:
        raise RecyclingError(f"{path}: {prefix}MATRIX has no HELAS calls or no colour sum "
                             f"({prefix}MATRIX = 0.D0)")
    body = lines[first_call:colour_sum]
    amp2 = [i for i, line in enumerate(body) if line.lstrip().startswith("MADNIS_AMP2(")]
    start_amp2 = amp2[0] if amp2 else len(body)
    return "".join([
        "C     madnis_py: input of MadGraph's HelicityRecycler\n",
        *nhel,
        "C     end of the helicity table\n",
        *body[:start_amp2],
        # The recycler ends the colour amplitudes at a line naming init_mode and starts
        # the per-diagram lines after the next ENDDO, as in madevent's matrix_orig.f.
        "C     init_mode\n",
        "      ENDDO\n",
        *[line for line in body[start_amp2:] if line.strip()],
        "      DO I = 1, NCOLOR\n",
        "C     end\n",
    ])


def _template(matrix: str, prefix: str, path: Path, split_amplitudes: bool) -> str:
    """``<prefix>MATRIX_HELSUM`` with the recycler's placeholders, from ``<prefix>MATRIX``."""
    lines = matrix.splitlines(keepends=True)
    first_call = next(i for i, line in enumerate(lines) if line.startswith("      CALL "))
    colour_sum = next(i for i, line in enumerate(lines)
                      if re.match(rf"^[ \t]+{re.escape(prefix)}MATRIX = 0\.D0[ \t]*$", line))
    head = "".join(lines[:first_call])
    # The colour sum of one helicity, written into TS(K).
    tail = "".join(lines[colour_sum:-1]).replace(f"{prefix}MATRIX", "TS(K)")
    edits = [
        (rf"^[ \t]+REAL\*8 FUNCTION {re.escape(prefix)}MATRIX\(P,NHEL,IC\)[ \t]*\n",
         fixed_form([f"SUBROUTINE {prefix}MATRIX_HELSUM(P,IC,SEL,TS)"]), "the header"),
        (r"^([ \t]+PARAMETER \(NWAVEFUNCS=)\d+(, NCOLOR=\d+\)[ \t]*\n)",
         r"\g<1>${nwavefuncs}\g<2>" + fixed_form(["INTEGER NCOMB",
                                                 "PARAMETER (NCOMB=${ncomb})"]),
         "PARAMETER (NWAVEFUNCS=n, NCOLOR=m)"),
        (r"^[ \t]+INTEGER NHEL\(NEXTERNAL\), IC\(NEXTERNAL\)[ \t]*\n",
         fixed_form(["INTEGER IC(NEXTERNAL)", "LOGICAL SEL(NCOMB)", "REAL*8 TS(NCOMB)"]),
         "INTEGER NHEL(NEXTERNAL), IC(NEXTERNAL)"),
        (r"^[ \t]+INTEGER I,J[ \t]*\n",
         fixed_form(["INTEGER I,J,K"] + (["COMPLEX*16 TMP(6)"] if split_amplitudes else [])),
         "INTEGER I,J"),
        (r"^([ \t]+COMPLEX\*16 AMP\()NGRAPHS(\))", r"\g<1>NCOMB,NGRAPHS\g<2>",
         "COMPLEX*16 AMP(NGRAPHS)"),
    ]
    if split_amplitudes:
        # CombineAmp (aloha_functions.f) takes wavefunctions of 6 components.
        edits.append((r"^([ \t]+COMPLEX\*16 W\()\d+(,NWAVEFUNCS\))", r"\g<1>6\g<2>",
                      "COMPLEX*16 W(n,NWAVEFUNCS)"))
    for pattern, replacement, what in edits:
        head, n = re.subn(pattern, replacement, head, count=1, flags=re.M)
        if n != 1:
            raise RecyclingError(f"{path}: {prefix}MATRIX has no {what} (MadGraph 3.5's "
                                 "standalone layout)")
    return "".join([
        "C     Every helicity combination at once, wavefunctions recycled\n",
        "C     (MadGraph's HelicityRecycler, run by madnis_py).\n",
        head,
        "      AMP(:,:) = (0D0,0D0)\n",
        "${helas_calls}\n",
        "      DO K = 1, NCOMB\n",
        "      IF (.NOT.SEL(K)) THEN\n",
        "        TS(K) = 0D0\n",
        "        CYCLE\n",
        "      ENDIF\n",
        "${jamp_lines}\n",
        tail,
        "${amp2_lines}\n",
        "      ENDDO\n",
        "      END\n",
    ])


def _use_helsum(text: str, prefix: str, path: Path) -> str:
    """Let ``<prefix>SMATRIX`` take the helicity sum from ``<prefix>MATRIX_HELSUM``."""
    p = re.escape(prefix)
    edits = [
        (rf"^([ \t]+REAL\*8 {p}MATRIX[ \t]*\n)",
         lambda m: m.group(1) + fixed_form(["REAL*8 MADNIS_TS(NCOMB)",
                                            "LOGICAL MADNIS_SEL(NCOMB)"]),
         f"REAL*8 {prefix}MATRIX"),
        # Which helicities the loop below evaluates: those get their |M_i|^2 accumulated.
        (r"^([ \t]+ANS = 0D0[ \t]*\n)(?=[ \t]+DO IHEL=1,NCOMB[ \t]*\n)",
         lambda m: fixed_form([
             "IF (USERHEL.EQ.-1) THEN",
             "DO IHEL=1,NCOMB",
             "MADNIS_SEL(IHEL) = GOODHEL(IHEL) .OR. NTRY .LT. 20",
             "IF (NTRY.GE.2.AND.POLARIZATIONS(0,0).NE.-1) THEN",
             f"IF (.NOT.{prefix}IS_BORN_HEL_SELECTED(IHEL)) MADNIS_SEL(IHEL) = .FALSE.",
             "ENDIF",
             "ENDDO",
             f"CALL {prefix}MATRIX_HELSUM(P, JC, MADNIS_SEL, MADNIS_TS)",
             "ENDIF"]) + m.group(1),
         "ANS = 0D0 before DO IHEL=1,NCOMB"),
        (rf"^[ \t]+T={p}MATRIX\(P ,NHEL\(1,IHEL\),JC\(1\)\)[ \t]*\n",
         lambda m: fixed_form(["IF (USERHEL.EQ.-1) THEN", "T=MADNIS_TS(IHEL)", "ELSE",
                               f"T={prefix}MATRIX(P ,NHEL(1,IHEL),JC(1))", "ENDIF"]),
         f"T={prefix}MATRIX(P ,NHEL(1,IHEL),JC(1))"),
    ]
    smatrix = _one(rf"^[ \t]+SUBROUTINE {p}SMATRIX\(P,ANS\)[ \t]*\n", text,
                   f"SUBROUTINE {prefix}SMATRIX(P,ANS)", path)
    end = re.compile(r"^[ \t]+END[ \t]*\n", re.M).search(text, smatrix.end())
    if end is None:
        raise RecyclingError(f"{path}: {prefix}SMATRIX has no END")
    body = text[smatrix.start():end.end()]
    for pattern, replacement, what in edits:
        body, n = re.subn(pattern, replacement, body, count=1, flags=re.M)
        if n != 1:
            raise RecyclingError(f"{path}: {prefix}SMATRIX has no {what} (MadGraph 3.5's "
                                 "standalone layout)")
    return text[:smatrix.start()] + body + text[end.end():]


_WAVE = re.compile(r"W\(1,(\d+)\)")


def _statements(lines: list[str]) -> list[list[str]]:
    """Fixed-form statements: a line and its continuation lines (column 6 not blank)."""
    out: list[list[str]] = []
    for line in lines:
        if not line.strip():
            continue
        if len(line) > 5 and line[0] == " " and line[5] not in " 0" and out:
            out[-1].append(line)
        else:
            out.append([line])
    return out


def _guard_helicities(calls: str, ncomb: int) -> str:
    """Compute a wavefunction or amplitude only for the helicities ``SEL`` asks for.

    The recycled calls are in single assignment form (each ``W(1,n)`` is written once),
    so the helicities an amplitude line serves (``AMP(K, i)``; ``CombineAmp``'s list) can
    be propagated back to the wavefunctions it reads; a call whose helicities are not
    all needed is wrapped in ``IF (SEL(k1).OR. ...)``. The standalone helicity filter
    (``GOODHEL``) then skips the vanishing helicities, as ``<prefix>MATRIX`` is not called
    for them.
    """
    statements = _statements(calls.splitlines(keepends=True))
    needs: list[set[int]] = [set() for _ in statements]
    wave_need: dict[int, set[int]] = {}
    tmp_need: set[int] = set()
    for i in range(len(statements) - 1, -1, -1):
        if statements[i][0][0] in "Cc*!":  # a comment line
            continue
        text = "".join(line.split("!")[0] for line in statements[i])
        text = re.sub(r"\n\s{5}\S", "", text)
        combine = re.search(r"CombineAmp\w*\(\s*\d+\s*,\s*\(/([\d,\s]*)/\)\s*,"
                            r"\s*\(/([\d,\s]*)/\)", text, re.I)
        if combine:
            hels = [int(h) for h in combine.group(1).split(",")]
            waves = [int(w) for w in combine.group(2).split(",")]
            needs[i] = set(hels)
            tmp_need = set(hels)
            for h, w in zip(hels, waves, strict=True):
                wave_need.setdefault(w, set()).add(h)
            continue
        call = re.search(r"CALL\s+\w+\((.*)\)\s*$", text.strip(), re.I)
        if call is None:
            raise RecyclingError(f"unexpected line in the recycled calls: {text.strip()}")
        args = [a.replace(" ", "") for a in re.split(r",(?![^()]*\))", call.group(1))]
        last = args[-1]
        amp = re.fullmatch(r"AMP\((\d+),\d+\)", last)
        if amp:
            needs[i] = {int(amp.group(1))}
        elif last == "TMP(1)":
            needs[i] = set(tmp_need)
        else:
            out = _WAVE.fullmatch(last)
            if out is None:
                raise RecyclingError(f"unexpected output in the recycled calls: {last}")
            needs[i] = wave_need.get(int(out.group(1)), set())
        for arg in args[:-1]:
            found = _WAVE.fullmatch(arg)
            if found:
                wave_need.setdefault(int(found.group(1)), set()).update(needs[i])
    every = set(range(1, ncomb + 1))
    out_lines: list[str] = []
    for statement, need in zip(statements, needs, strict=True):
        if need and need != every:
            condition = ".OR.".join(f"SEL({k})" for k in sorted(need))
            out_lines += [fixed_form([f"IF ({condition}) THEN"]), *statement,
                          "      ENDIF\n"]
        else:
            out_lines += statement
    return "".join(out_lines)


def recycle_helicities(path: Path, prefix: str, *,
                       split_amplitudes: bool = False) -> tuple[int, int]:
    """Rewrite the standalone ``matrix.f`` at ``path`` so that ``<prefix>SMATRIX`` sums
    the helicities with recycled wavefunctions; returns the number of HELAS calls for
    every helicity with recycling and without.

    ``path`` must already have the per-diagram |M_i|^2 accumulation of :mod:`.exporter`
    (``MADNIS_AMP2``). Raises :class:`RecyclingError` if ``path`` does not have the
    layout of MadGraph 3.5's standalone output.
    """
    from madgraph.madevent import hel_recycle

    text = path.read_text()
    start, end, matrix = _split_matrix(text, prefix, path)
    ncomb = len(re.findall(r"^[ \t]+DATA \(NHEL\(I,", text, re.M))
    with tempfile.TemporaryDirectory(prefix="madnis_hel.") as tmp:
        scratch = Path(tmp) / "matrix_orig.f"
        template = Path(tmp) / "template_matrix.f"
        output = Path(tmp) / "matrix_optim.f"
        scratch.write_text(_scratch_input(text, matrix, prefix, path))
        template.write_text(_template(matrix, prefix, path, split_amplitudes))
        # Every helicity combination is kept (no helicity filtering from a survey):
        # the standalone loop skips the vanishing ones itself.
        recycler = hel_recycle.HelicityRecycler([str(i) for i in range(1, ncomb + 1)])
        recycler.hel_filt = False
        recycler.amp_splt = split_amplitudes
        recycler.set_input(str(scratch))
        recycler.set_output(str(output))
        recycler.set_template(str(template))
        with contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):  # its progress bar
            recycler.generate_output_file()
        helsum = output.read_text()
    begin, loop = "      AMP(:,:) = (0D0,0D0)\n", "      DO K = 1, NCOMB\n"
    head, rest = helsum.split(begin, 1)
    calls, rest = rest.split(loop, 1)
    ncalls = len(re.findall(r"^[ \t]+CALL ", calls, re.M | re.I))
    helsum = head + begin + _guard_helicities(calls, ncomb) + loop + rest
    plain = ncomb * len(re.findall(r"^[ \t]+CALL ", matrix, re.M))
    text = text[:end] + "\n" + helsum + text[end:]
    path.write_text(_use_helsum(text, prefix, path))
    return ncalls, plain
