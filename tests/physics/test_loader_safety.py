"""The loader's defences against real MadGraph libraries, on tiny C libraries that mimic
their ABIs (no MadGraph, no gfortran needed):

* a standalone output built without ``--prefix=int`` (3-argument ``smatrixhel_``, no
  ``get_pdg_order_``) is refused before any of its functions runs;
* MadGraph's card reader (``lha_read.f``) ends the interpreter with exit code 0 when it
  cannot find ``ident_card.dat`` (beside the card only for a directory of at most 76
  characters without a space): the loader stages the cards or raises, never calls it blind;
* dlopen shares one handle per file: every object loads a private copy;
* the subprocess table ``get_pdg_order_`` is read and unknown PDG lists refused up front.

Everything that could end the interpreter runs in a child process.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from madnis_py.physics import MatrixElement, MatrixElementError

CC = shutil.which("gcc") or shutil.which("cc")
pytestmark = pytest.mark.skipif(CC is None, reason="needs a C compiler")

PDGS = [-11, 11, -13, 13]
OTHER = [2, -2, -13, 13]

# A standalone output without --prefix=int: per-process SMATRIXHEL(P, HEL, ANS); every
# entry point leaves a marker and ends the process, as a wrong call might.
THREE_ARG_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
static void called(const char* what) {
    const char* marker = getenv("MIMIC_MARKER");
    if (marker) { FILE* f = fopen(marker, "a"); if (f) { fputs(what, f); fclose(f); } }
    exit(0);
}
void setparamlog_(const int* flag) { (void)flag; called("setparamlog_\n"); }
void initialise_(const char* path, size_t len) { (void)path; (void)len; called("init\n"); }
void setpara_(const char* path, size_t len) { (void)path; (void)len; called("setpara_\n"); }
void smatrixhel_(const double* p, const int* hel, double* ans) {
    (void)p; (void)hel; (void)ans; called("smatrixhel_\n");
}
#ifdef WITH_LHA
void lha_loadcard_(void) { called("lha_loadcard_\n"); }
#endif
"""

# A MadGraph --prefix=int dispatcher: get_pdg_order_ table, and an initialise_ that finds
# ident_card.dat as lha_read.f does (./ident_card.dat, then beside the card if that
# directory with its '/' has at most 76 characters and no space, then ./Cards/) and
# exit(0)s otherwise. smatrixhel_ answers the card's MZ times the subprocess number and,
# like a dispatcher with one multiplicity, does not look at npdg.
MADGRAPH_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#ifdef MIXED
#define NPROC 3
#define NLEGS 5
/* PDG(NPROC, NLEGS), column-major, the 4-leg rows padded with 0 */
static const int PDG[NPROC * NLEGS] = {-11, 2, -11, 11, -2, 11, -13, -13, -13,
                                       13, 13, 13, 0, 0, 22};
static const int PIDS[NPROC] = {1, 2, 3};
#else
#define NPROC 2
#define NLEGS 4
static const int PDG[NPROC * NLEGS] = {-11, 2, 11, -2, -13, -13, 13, 13};
static const int PIDS[NPROC] = {1, 2};
#endif
static double mz = -1.0;
static void trace(const char* what) {
    const char* log = getenv("MIMIC_CALLS");
    if (log) { FILE* f = fopen(log, "a"); if (f) { fputs(what, f); fclose(f); } }
}
void get_pdg_order_(int* pdg, int* allproc) {
    memcpy(pdg, PDG, sizeof PDG);
    memcpy(allproc, PIDS, sizeof PIDS);
}
void lha_loadcard_(void) { exit(0); }
void setparamlog_(const int* flag) { (void)flag; }
static int readable(const char* path) {
    FILE* f = fopen(path, "r");
    if (!f) return 0;
    fclose(f);
    return 1;
}
void initialise_(const char* path, size_t len) {
    char card[513], dir[600];
    size_t n = len < 512 ? len : 512;
    memcpy(card, path, n);
    while (n > 0 && card[n - 1] == ' ') --n;
    card[n] = '\0';
    trace("initialise_\n");
    FILE* f = fopen(card, "r");
    if (!f) { puts("Error: Could not open file"); exit(0); }
    const char* slash = strrchr(card, '/');
    size_t dlen = slash ? (size_t)(slash - card) + 1 : 0;
    memcpy(dir, card, dlen);
    dir[dlen] = '\0';
    strcat(dir, "ident_card.dat");
    int found = readable("ident_card.dat")
        || (dlen <= 76 && memchr(card, ' ', dlen) == NULL && readable(dir))
        || readable("./Cards/ident_card.dat");
    if (!found) { fclose(f); puts(" Warning: file ident_card.dat not found"); exit(0); }
    char line[256];
    while (fgets(line, sizeof line, f)) {
        int id; double v;
        if (sscanf(line, " %d %lf", &id, &v) == 2 && id == 23) mz = v;
    }
    fclose(f);
}
void smatrixhel_(const int* pdgs, const int* procid, const int* npdg, const double* p,
                 const double* alphas, const double* scale2, const int* nhel, double* ans) {
    (void)npdg; (void)p; (void)alphas; (void)scale2; (void)nhel;
    trace("smatrixhel_\n");
    for (int i = 0; i < NPROC; ++i) {
        int match = 1;
        for (int leg = 0; leg < 4; ++leg) match &= pdgs[leg] == PDG[i + leg * NPROC];
        if (match && (*procid <= 0 || *procid == PIDS[i])) { *ans = mz * (i + 1); return; }
    }
}
"""

# madnis_py's own 8-argument ABI without any marker, as the Sherpa shim exports it.
PLAIN_C = r"""
#include <stddef.h>
static double value = -1.0;
void setparamlog_(const int* flag) { (void)flag; }
void initialise_(const char* path, size_t len) { (void)path; (void)len; value = 7.0; }
void smatrixhel_(const int* pdgs, const int* procid, const int* npdg, const double* p,
                 const double* alphas, const double* scale2, const int* nhel, double* ans) {
    (void)pdgs; (void)procid; (void)npdg; (void)p; (void)alphas; (void)scale2; (void)nhel;
    *ans = value;
}
"""

# Per-diagram |M_i|^2 of NDIAG diagrams (g g > t t~ g g has 123), with the row length
# the library declares (madnis_max_amp2_, MAXD): row k of an event is p[0][0] + k.
WIDE_C = PLAIN_C + r"""
int madnis_max_amp2_(void) { return MAXD; }
void madnis_amp2_(const int* pdgs, const int* procid, const int* npdg, const double* p,
                  const double* alphas, const double* scale2, double* amp2, int* namp2) {
    (void)pdgs; (void)procid; (void)npdg; (void)alphas; (void)scale2;
    for (int k = 0; k < NDIAG; ++k) amp2[k] = p[0] + k;
    *namp2 = NDIAG;
}
void madnis_smatrix_amp2_(const int* pdgs, const int* procid, const int* npdg,
                          const double* p, const double* alphas, const double* scale2,
                          double* ans, double* amp2, int* namp2) {
    madnis_amp2_(pdgs, procid, npdg, p, alphas, scale2, amp2, namp2);
    *ans = value;
}
"""

CARD = """\
BLOCK SMINPUTS
    1 1.325070e+02 # aEWM1
BLOCK MASS
   23 {mz:e} # MZ
DECAY  23 2.441404e+00
"""
IDENT = "block sminputs\n1 aEWM1\nmass 23 mdl_MZ\ndecay 23 mdl_WZ\n"


def _compile(source: str, path: Path, *defines: str) -> Path:
    src = path.with_suffix(".c")
    src.write_text(source)
    assert CC is not None
    subprocess.run([CC, "-shared", "-fPIC", "-O1", *[f"-D{d}" for d in defines], str(src),
                    "-o", str(path)], check=True, capture_output=True, text=True)
    return path


@pytest.fixture(scope="module")
def libs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("mimic")
    out = d / "out"  # a MadGraph output: <out>/lib/*.so and <out>/Cards/ident_card.dat
    (out / "lib").mkdir(parents=True)
    (out / "Cards").mkdir()
    (out / "Cards" / "ident_card.dat").write_text(IDENT)
    (d / "bare").mkdir()  # the same library, nowhere near an ident_card.dat
    return {
        "three_arg": _compile(THREE_ARG_C, d / "three_arg.so"),
        "three_arg_lha": _compile(THREE_ARG_C, d / "three_arg_lha.so", "WITH_LHA"),
        "madgraph": _compile(MADGRAPH_C, out / "lib" / "libmg.so"),
        "bare": _compile(MADGRAPH_C, d / "bare" / "libmg.so"),
        "mixed": _compile(MADGRAPH_C, out / "lib" / "libmixed.so", "MIXED"),
        "plain": _compile(PLAIN_C, d / "plain.so"),
        "wide": _compile(WIDE_C, d / "wide.so", "NDIAG=150", "MAXD=150"),
        "wide_wrong": _compile(WIDE_C, d / "wide_wrong.so", "NDIAG=3", "MAXD=0"),
    }


def _card(directory: Path, mz: float = 91.188, ident: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    card = directory / "param_card.dat"
    card.write_text(CARD.format(mz=mz))
    if ident:
        (directory / "ident_card.dat").write_text(IDENT)
    return card


def _child(code: str, cwd: Path, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    import os

    full_env = dict(os.environ, **(env or {}))
    prog = "from madnis_py.physics import MatrixElement, MatrixElementError\n" + \
        textwrap.dedent(code) + "print('alive')\n"
    return subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=full_env)


def _momenta(n: int = 3, legs: int = 4) -> np.ndarray:
    return np.ones((n, legs, 4))


@pytest.mark.parametrize("name, what", [
    ("three_arg", "looks like a MadGraph standalone output built without --prefix=int"),
    ("three_arg_lha", "is a MadGraph standalone output built without --prefix=int"),
])
def test_three_argument_library_is_refused_without_a_call(libs: dict[str, Path],
                                                          tmp_path: Path, name: str,
                                                          what: str) -> None:
    marker = tmp_path / "called"
    card = _card(tmp_path / "cards", ident=True)
    out = _child(f"""
        try:
            MatrixElement.from_madgraph({str(libs[name])!r}, {str(card)!r})
        except MatrixElementError as err:
            print(err)
        """, tmp_path, {"MIMIC_MARKER": str(marker)})
    assert out.returncode == 0 and out.stdout.rstrip().endswith("alive"), out
    assert what in out.stdout
    assert "output standalone DIR --prefix=int" in out.stdout
    assert not marker.exists(), marker.read_text()


def test_the_mimic_stops_like_lha_read(libs: dict[str, Path], tmp_path: Path) -> None:
    # The naive call (the card's own path) in a long directory with a space: exit code 0,
    # no Python error, nothing after it runs; which is what the loader guards against.
    deep = tmp_path / ("dir with space " + "x" * 80)
    card = _card(deep, ident=True)
    out = _child(f"""
        import cffi
        ffi = cffi.FFI()
        ffi.cdef("void initialise_(const char*, size_t);")
        lib = ffi.dlopen({str(libs["madgraph"])!r})
        lib.initialise_(ffi.new("char[512]", {str(card)!r}.ljust(512).encode()), 512)
        """, tmp_path)
    assert out.returncode == 0 and "alive" not in out.stdout
    assert "ident_card.dat not found" in out.stdout


def test_card_in_a_long_directory_with_a_space_is_staged(libs: dict[str, Path],
                                                         tmp_path: Path) -> None:
    deep = tmp_path / ("dir with space " + "x" * 80) / "deeper"
    assert len(str(deep)) > 76
    card = _card(deep, mz=95.0)  # ident_card.dat only in <out>/Cards of the library
    out = _child(f"""
        import numpy as np
        me = MatrixElement.from_madgraph({str(libs["madgraph"])!r}, {str(card)!r})
        print(me(np.ones((2, 4, 4)), {PDGS!r}).tolist())
        """, tmp_path)
    assert out.returncode == 0 and out.stdout.rstrip().endswith("alive"), out
    assert "[95.0, 95.0]" in out.stdout
    with_ident = _card(tmp_path / ("other dir " + "y" * 80), mz=80.0, ident=True)
    me = MatrixElement.from_madgraph(libs["bare"], with_ident)  # ident beside the card
    np.testing.assert_array_equal(me(_momenta(), PDGS), [80.0] * 3)


def test_no_ident_card_anywhere_raises(libs: dict[str, Path], tmp_path: Path) -> None:
    card = _card(tmp_path / "cards")
    out = _child(f"""
        try:
            MatrixElement.from_madgraph({str(libs["bare"])!r}, {str(card)!r})
        except MatrixElementError as err:
            print(err)
        """, tmp_path)
    assert out.returncode == 0 and out.stdout.rstrip().endswith("alive"), out
    assert f"param_card {card}" in out.stdout and "needs ident_card.dat" in out.stdout


def test_differing_ident_card_in_working_directory_is_refused(
        libs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    card = _card(tmp_path / "cards", ident=True)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ident_card.dat").write_text(IDENT)  # the same: harmless
    MatrixElement.from_madgraph(libs["madgraph"], card)
    (tmp_path / "ident_card.dat").write_text(IDENT.replace("mdl_MZ", "mdl_MZZ"))
    with pytest.raises(MatrixElementError, match="working directory holds an ident_card"):
        MatrixElement.from_madgraph(libs["madgraph"], card)


def test_two_cards_on_one_library_are_independent(libs: dict[str, Path],
                                                  tmp_path: Path) -> None:
    first = MatrixElement.from_madgraph(libs["madgraph"], _card(tmp_path / "a", mz=91.0))
    before = first(_momenta(), PDGS)
    second = MatrixElement.from_madgraph(libs["madgraph"], _card(tmp_path / "b", mz=95.0))
    np.testing.assert_array_equal(before, [91.0] * 3)
    np.testing.assert_array_equal(second(_momenta(), PDGS), [95.0] * 3)
    np.testing.assert_array_equal(first(_momenta(), PDGS), before)
    np.testing.assert_array_equal(second(_momenta(), OTHER), [190.0] * 3)


def test_subprocess_table(libs: dict[str, Path], tmp_path: Path) -> None:
    card = _card(tmp_path / "c")
    me = MatrixElement.from_madgraph(libs["madgraph"], card)
    assert me.subprocesses == (tuple(PDGS), tuple(OTHER))
    mixed = MatrixElement.from_madgraph(libs["mixed"], card)
    assert mixed.subprocesses == (tuple(PDGS), tuple(OTHER), (-11, 11, -13, 13, 22))


@pytest.mark.parametrize("pdgs, procid, legs", [
    ([-11, 11, -15, 15], -1, 4),        # not in the table
    ([-11, 11, -13, 13, 22], -1, 5),    # wrong length: the dispatcher would accept it
    ([-11, 11, -13], -1, 3),
    ([-11, 11, -13, 13], 2, 4),         # in the table, under another process id
])
def test_pdg_list_outside_the_table_is_refused_before_the_call(
        libs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        pdgs: list[int], procid: int, legs: int) -> None:
    calls = tmp_path / "calls"
    monkeypatch.setenv("MIMIC_CALLS", str(calls))
    me = MatrixElement.from_madgraph(libs["madgraph"], _card(tmp_path / "c"))
    assert calls.read_text() == "initialise_\n"
    pattern = (r"no subprocess has the PDG list " + str(pdgs).replace("[", r"\[")
               .replace("]", r"\]") + r".*the library has \[-11, 11, -13, 13\] \(procid 1\), "
               r"\[2, -2, -13, 13\] \(procid 2\)")
    with pytest.raises(MatrixElementError, match=pattern):
        me(_momenta(legs=legs), pdgs, procid=procid)
    assert calls.read_text() == "initialise_\n"
    assert me.has_amp2 is False


def test_builtin_has_no_table_and_sherpa_style_shim_still_opens(libs: dict[str, Path],
                                                                tmp_path: Path) -> None:
    from madnis_py.physics import builtin_library, builtin_process_dir

    card = builtin_process_dir("ee_mumu").parent / "common" / "param_card_sm.dat"
    assert MatrixElement.from_madgraph(builtin_library("ee_mumu"), card).subprocesses is None
    run = tmp_path / "run"
    run.mkdir()
    (run / "Sherpa.yaml").write_text("PROCESSES: []\n")
    me = MatrixElement.from_sherpa(libs["plain"], run)
    np.testing.assert_array_equal(me(_momenta(), PDGS), [7.0] * 3)
    with pytest.raises(MatrixElementError, match="without --prefix=int"):
        MatrixElement.from_madgraph(libs["plain"], _card(tmp_path / "c", ident=True))


def test_more_than_64_diagrams_fill_the_row_the_library_declares(libs: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "Sherpa.yaml").write_text("PROCESSES: []\n")
    me = MatrixElement.from_sherpa(libs["wide"], run)
    assert me.amp2_width == 150
    p = _momenta(n=4)
    p[:, 0, 0] = [1.0, 2.0, 3.0, 4.0]
    expected = p[:, 0, 0][:, None] + np.arange(150)[None, :]
    np.testing.assert_array_equal(me.amp2(p, PDGS), expected)
    m2, amp2 = me.smatrix_amp2(p, PDGS)
    np.testing.assert_array_equal(m2, [7.0] * 4)
    np.testing.assert_array_equal(amp2, expected)
    with pytest.raises(MatrixElementError, match=r"madnis_max_amp2_\(\) returned 0"):
        MatrixElement.from_sherpa(libs["wide_wrong"], run)
