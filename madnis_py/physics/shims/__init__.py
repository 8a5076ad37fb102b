"""Build the C++ shims that give MadGraph standalone_cpp and Sherpa processes the
MadGraph standalone-Fortran ABI, so :class:`madnis_py.physics.MatrixElement` loads them.

Neither MadGraph nor Sherpa is a dependency: the shims are compiled and tested only where
they are found (``tests/physics/test_shims.py`` skips otherwise; set
``MADNIS_PY_MG5_STANDALONE_CPP`` to a ``P*`` directory of an ``output standalone_cpp`` of
``e+ e- > mu+ mu-`` to run its check, and ``MADNIS_PY_SHERPA_PREFIX`` to a Sherpa 3
installation, or put its ``Sherpa-config`` on PATH, for the Sherpa tests). Sherpa:
:func:`build_sherpa`, :func:`write_sherpa_run_card` (MadGraph's SM parameters from a
param_card), :func:`build_amegic_libraries`; see ``docs/sherpa.md``.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from madnis_py.physics.slha import read_slha

__all__ = ["ShimBuildError", "build_amegic_libraries", "build_sherpa", "build_standalone_cpp",
           "sherpa_sm_settings", "write_sherpa_run_card", "SHIM_DIR"]

SHIM_DIR = Path(__file__).resolve().parent


class ShimBuildError(RuntimeError):
    """Compiling a shim failed; the message carries the command and the compiler output."""


def _compile(cmd: list[str]) -> None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError as err:
        raise ShimBuildError(f"compiler not found: {cmd[0]}") from err
    if out.returncode != 0:
        raise ShimBuildError(f"{' '.join(cmd)}\nfailed with:\n{out.stderr[-4000:]}")


def build_standalone_cpp(process_dir: str | Path, pdgs: Sequence[int], *,
                         output: str | Path | None = None, model: str = "sm",
                         cxx: str = "g++") -> Path:
    """Compile the standalone_cpp shim against a MadGraph ``SubProcesses/P*`` directory.

    Parameters
    ----------
    process_dir : path
        The ``P*`` directory holding ``CPPProcess.cc`` (its output's ``src/`` two levels up).
    pdgs : sequence of int
        The subprocess's PDG list, incoming first, as MadGraph orders it.
    output : path, optional
        The shared library to write (default ``<process_dir>/libmadnis_me.so``).
    model : str
        The model name in ``Parameters_<model>`` (default ``sm``).

    Returns
    -------
    Path of the library, to pass to ``MatrixElement.from_madgraph`` with the output's
    ``Cards/param_card.dat``.
    """
    pdir = Path(process_dir).resolve()
    src = pdir.parent.parent / "src"
    if not (pdir / "CPPProcess.cc").is_file():
        raise FileNotFoundError(f"{pdir}: no CPPProcess.cc (expected a SubProcesses/P* "
                                "directory of a MadGraph `output standalone_cpp`)")
    if not (src / f"Parameters_{model}.h").is_file():
        raise FileNotFoundError(f"{src}: no Parameters_{model}.h (is the model {model!r}?)")
    out = Path(output) if output is not None else pdir / "libmadnis_me.so"
    cmd = [cxx, "-O2", "-fPIC", "-shared", "-std=c++11", f"-I{pdir}", f"-I{src}",
           f"-DMADNIS_MODEL_PARAMETERS=Parameters_{model}",
           f"-DMADNIS_PDGS={','.join(str(int(p)) for p in pdgs)}",
           str(SHIM_DIR / "standalone_cpp.cc"), str(pdir / "CPPProcess.cc"),
           *sorted(str(p) for p in src.glob("*.cc")), "-o", str(out)]
    _compile(cmd)
    return out


def _sherpa_all_libraries(datadir: Path) -> list[str]:
    """The libraries of the CMake target ``SHERPA::All`` (``SHERPATargets.cmake``), in order.

    Sherpa 3's libraries record no dependencies on each other (no ``DT_NEEDED``: their
    undefined symbols are resolved where an executable links them all), and
    ``Sherpa-config --ldflags`` names only ``-lSherpaMain``: a shared library linked like
    that fails to load (``libMEProcess.so: undefined symbol ...SHERPA_YAML...``). The shim
    links what ``SHERPA::All`` lists, as Sherpa's own executable and Python module do.
    """
    targets = datadir / "SHERPATargets.cmake"
    try:
        text = targets.read_text()
    except OSError as err:
        raise FileNotFoundError(f"{targets}: Sherpa's CMake targets cannot be read ({err}); "
                                "is this a Sherpa 3 (CMake) installation?") from err
    match = re.search(r"set_target_properties\(SHERPA::All PROPERTIES\s+"
                      r"INTERFACE_LINK_LIBRARIES\s+\"([^\"]*)\"", text)
    if match is None:
        raise FileNotFoundError(f"{targets}: no INTERFACE_LINK_LIBRARIES of SHERPA::All")
    names = [item.removeprefix("SHERPA::") for item in match.group(1).split(";")
             if item.startswith("SHERPA::")]
    if "SherpaMain" not in names:
        raise FileNotFoundError(f"{targets}: SHERPA::All does not list SherpaMain")
    return names


def build_sherpa(*, output: str | Path, cxx: str = "g++",
                 sherpa_config: str = "Sherpa-config") -> Path:
    """Compile the Sherpa 3 MEProcess shim (``sherpa.cc``) against an installed Sherpa.

    The library's ``initialise_`` takes the directory of a Sherpa run card
    (``Sherpa.yaml``) in place of a param_card: open it with
    :meth:`madnis_py.physics.MatrixElement.from_sherpa`. See ``docs/sherpa.md``.

    Parameters
    ----------
    output : path
        The shared library to write.
    cxx : str
        The C++ compiler (C++17).
    sherpa_config : str
        ``Sherpa-config`` of the installation: a name looked up on PATH or a path (e.g.
        ``<prefix>/bin/Sherpa-config``).

    Raises
    ------
    FileNotFoundError
        No ``Sherpa-config``, or an installation without ``libMEProcess`` (Sherpa builds it
        only with ``-DSHERPA_ENABLE_PYTHON=ON``).
    ShimBuildError
        The compiler failed (the message has its command and output).
    """
    config = shutil.which(sherpa_config)
    if config is None:
        raise FileNotFoundError(f"{sherpa_config} not found on PATH: Sherpa is not installed "
                                "(or its bin directory is not on PATH)")

    def query(option: str) -> list[str]:
        res = subprocess.run([config, option], capture_output=True, text=True, check=True)
        return res.stdout.split()

    # Sherpa 3's Sherpa-config: --cppflags (-I<incdir>, -O3 (!) and LHAPDF's -I), --ldflags
    # (-L<libdir> -lSherpaMain and LHAPDF's -L -l), --libdir, --incdir, --datadir. The
    # libraries of SHERPA::All and MEProcess are added (see _sherpa_all_libraries); the
    # run-time paths go into the shim, which the loader opens from a copy elsewhere.
    libdir = Path(query("--libdir")[0])
    incdir = Path(query("--incdir")[0])
    if not (incdir / "AddOns" / "Python" / "MEProcess.H").is_file() or not any(
            libdir.glob("libMEProcess.*")):
        raise FileNotFoundError(
            f"the Sherpa of {config} has no MEProcess ({incdir}/AddOns/Python/MEProcess.H, "
            f"{libdir}/libMEProcess.so): configure Sherpa with -DSHERPA_ENABLE_PYTHON=ON "
            "(see docs/sherpa.md)")
    ldflags = query("--ldflags")
    sherpa_libs = _sherpa_all_libraries(Path(query("--datadir")[0]))
    rpaths = [libdir, *(Path(flag[2:]) for flag in ldflags if flag.startswith("-L"))]
    out = Path(output)
    cmd = [cxx, "-O2", "-fPIC", "-shared", "-std=c++17", *query("--cppflags"), "-O2",
           str(SHIM_DIR / "sherpa.cc"), *ldflags, "-Wl,--no-as-needed", "-lMEProcess",
           *(f"-l{name}" for name in sherpa_libs), "-Wl,--no-undefined",
           *(f"-Wl,-rpath,{path}" for path in dict.fromkeys(rpaths)), "-o", str(out)]
    _compile(cmd)
    return out


def sherpa_sm_settings(param_card: str | Path, *, zero_widths: Sequence[int] = ()) -> str:
    """Sherpa 3 settings (YAML) that reproduce MadGraph's ``sm`` model with ``param_card``.

    MadGraph's inputs are alpha(MZ) = 1/aEWM1, G_F and MZ; MW follows from the G_mu
    relation, sin^2 theta_W = 1 - MW^2/MZ^2, and the couplings are real with fixed widths in
    the propagators. Sherpa's default (``EW_SCHEME: Gmu``, ``WIDTH_SCHEME: CMS``, its own
    masses and widths) differs (+0.4 to +0.8 % on e+ e- -> mu+ mu-); these settings select
    ``EW_SCHEME: alphamZ`` with MadGraph's alpha and MW, ``WIDTH_SCHEME: Fixed`` and the
    card's masses and widths of t, Z, W, H. alpha_s is ``SMINPUTS 3`` at the fixed scale MZ
    (``SCALES: VAR{MZ^2}``, ``ALPHAS: {USE_PDF: 0}``): Sherpa ignores the alpha_s of calls.

    ``zero_widths``: PDG ids whose width is set to 0. Use ``(6,)`` for top pairs: Sherpa
    keeps the top width in t-channel propagators in its own way (1.3 % on g g -> t t~ with
    the card's WT, and it warns about the width of an external particle); the built-in
    ttbar has none there (MadGraph's standalone output keeps WT: 7e-5).
    """
    card = read_slha(param_card)
    mz, aewm1, gf = card.mass(23), card.get("SMINPUTS", 1), card.get("SMINPUTS", 2)
    disc = mz**4 / 4 - math.pi * mz**2 / (aewm1 * gf * math.sqrt(2))
    if not disc >= 0:
        raise ValueError(f"{param_card}: no real W mass from aEWM1 = {aewm1}, Gf = {gf}, "
                         f"MZ = {mz}")
    mw = math.sqrt(mz**2 / 2 + math.sqrt(disc))
    zero = {abs(int(pdg)) for pdg in zero_widths}
    masses = {6: card.mass(6), 23: mz, 24: mw, 25: card.mass(25)}
    lines = [
        "EW_SCHEME: alphamZ",
        "WIDTH_SCHEME: Fixed",
        f"1/ALPHAQED(MZ): {aewm1!r}",
        f"ALPHAS(MZ): {card.get('SMINPUTS', 3)!r}",
        "ALPHAS: {USE_PDF: 0}",
        f"SCALES: VAR{{{mz**2!r}}}",
        "PARTICLE_DATA:",
        *(f"  {pdg}: {{Mass: {mass!r}, Width: {0.0 if pdg in zero else card.width(pdg)!r}}}"
          for pdg, mass in masses.items()),
    ]
    return "\n".join(lines) + "\n"


def write_sherpa_run_card(run_dir: str | Path, processes: Sequence[str], *,
                          param_card: str | Path, hadronic: bool, sqrt_s: float = 13000.0,
                          generator: str = "Comix", pdf_set: str = "LHToyPDF",
                          orders: Mapping[str, int] | None = None,
                          zero_widths: Sequence[int] = ()) -> Path:
    """Write ``run_dir/Sherpa.yaml`` for the shim: tree-level ``processes`` (Sherpa's
    syntax, e.g. ``"93 93 -> -11 11"``) with :func:`sherpa_sm_settings` of ``param_card``.

    Hadron beams are protons with the LHAPDF set ``pdf_set`` (Sherpa initialises it, the
    |M|^2 do not depend on it); lepton beams are e- e+ (in this order) without PDFs.
    Sherpa wants each process's initial state in its own order (e.g. ``11 -11``, not
    ``-11 11``) and otherwise *exits the process* (docs/sherpa.md); the shim answers either
    order of the incoming particles. ``generator`` is
    ``Comix`` or ``Amegic`` (Amegic writes C++ on its first run, which must be compiled:
    ``docs/sherpa.md``). ``orders`` fixes the coupling orders of the amplitudes (Sherpa's
    ``Order``, e.g. ``{"QCD": 2, "EW": 0}``: MadGraph's ``generate`` keeps only the lowest
    EW order, Sherpa all of them unless told); default ``Any``. Returns the directory.
    """
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    beams = [f"BEAM_ENERGIES: {sqrt_s / 2!r}"]
    if hadronic:
        # Sherpa sets up the PDFs of multiple interactions even with MI_HANDLER: None, with
        # its default set unless MPI_PDF_SET names one.
        beams += ["BEAMS: 2212", "PDF_LIBRARY: LHAPDFSherpa", f"PDF_SET: {pdf_set}",
                  f"MPI_PDF_SET: {pdf_set}"]
    else:
        beams += ["BEAMS: [11, -11]", "PDF_LIBRARY: None"]
    order = ("QCD: Any, EW: Any" if orders is None else
             ", ".join(f"{name}: {int(value)}" for name, value in orders.items()))
    procs = [f"- {proc}:\n    Order: {{{order}}}" for proc in processes]
    # Only the hard process is needed: no shower, multiple interactions, hadronisation or
    # QED corrections.
    generation = ["EVENTS: 0", "SHOWER_GENERATOR: None", "MI_HANDLER: None",
                  "FRAGMENTATION: None", "BEAM_REMNANTS: false", "ME_QED: {ENABLED: false}"]
    text = "\n".join([*beams, f"ME_GENERATORS: [{generator}]", *generation]) + "\n"
    text += sherpa_sm_settings(param_card, zero_widths=zero_widths)
    text += "PROCESSES:\n" + "\n".join(procs) + "\n"
    (run / "Sherpa.yaml").write_text(text)
    return run


def build_amegic_libraries(run_dir: str | Path, *, sherpa_config: str = "Sherpa-config",
                           jobs: int = 2) -> None:
    """Prepare a run card with ``ME_GENERATORS: [Amegic]`` for the shim.

    Amegic writes C++ code for its processes on the first initialisation and stops
    (through the shim: ``MatrixElementError ... Run './makelibs' there``); this runs
    Sherpa's executable once in ``run_dir`` (``INIT_ONLY: 1``) and then the ``makelibs``
    script it writes there (CMake; seconds for 2 -> 2 processes), as Sherpa's manual says.

    Raises
    ------
    FileNotFoundError
        No ``Sherpa-config``/``Sherpa``, or Sherpa wrote no ``makelibs`` (its output is in
        the message).
    ShimBuildError
        ``makelibs`` failed (its output is in the message).
    """
    config = shutil.which(sherpa_config)
    if config is None:
        raise FileNotFoundError(f"{sherpa_config} not found on PATH: Sherpa is not installed")
    sherpa = Path(config).resolve().parent / "Sherpa"
    if not sherpa.is_file():
        raise FileNotFoundError(f"{sherpa}: no Sherpa executable beside {config}")
    run = Path(run_dir)
    first = subprocess.run([str(sherpa), "INIT_ONLY: 1"], cwd=run, capture_output=True,
                           text=True, check=False)
    if not (run / "makelibs").is_file():
        raise FileNotFoundError(f"{run}: Sherpa wrote no makelibs (exit code "
                                f"{first.returncode}):\n{first.stdout[-3000:]}"
                                f"{first.stderr[-2000:]}")
    res = subprocess.run(["bash", "makelibs", "-j", str(int(jobs))], cwd=run,
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise ShimBuildError(f"makelibs in {run} failed:\n{res.stdout[-3000:]}"
                             f"{res.stderr[-3000:]}")
