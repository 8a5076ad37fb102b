"""Put the plugin into a MadGraph tree, and bring existing MadGraph outputs over.

:func:`install_plugin` makes ``MG5_DIR/PLUGIN/madnis_py``: links to the plugin's files in
this package (so that it follows the installed madnis_py) and ``python.txt``, the Python
interpreter that has madnis_py, which the plugin runs to write the process card.

:func:`import_output` takes a directory MadGraph wrote before:

- an ``output madnis_py`` directory: its cards are (re)written from ``madgraph.json``;
- an ``output standalone`` or ``output madevent`` directory: its own process definition
  (``Cards/proc_card_mg5.dat``) is run again through MadGraph with ``output madnis_py`` into
  a new directory (MadGraph is found from ``--mg5``, ``MADNIS_PY_MG5_HOME``, or the output's
  ``Cards/me5_configuration.txt``); the diagrams, colour flows and library then come from
  MadGraph itself rather than from parsing its Fortran. The output's
  ``Cards/run_card.dat`` and ``param_card.dat`` are copied over, so the result is the
  same process directory ``output madnis_py`` writes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from madnis_py.madgraph.assemble import Assembled, assemble, plain_process

__all__ = ["MadGraphError", "find_madgraph", "import_output", "install_plugin"]

PLUGIN_NAME = "madnis_py"
_PLUGIN_FILES = ("__init__.py", "exporter.py", "recycling.py")
_MARKER = "python.txt"


class MadGraphError(RuntimeError):
    """A MadGraph tree or output that cannot be used; the message says which and why."""


def _plugin_source() -> Path:
    return Path(__file__).resolve().parent / "plugin"


def _check_mg5(mg5_dir: Path) -> Path:
    mg5 = mg5_dir.expanduser().resolve()
    if not (mg5 / "bin" / "mg5_aMC").is_file() or not (mg5 / "madgraph").is_dir():
        raise MadGraphError(f"{mg5_dir}: not a MadGraph5_aMC@NLO tree (no bin/mg5_aMC)")
    return mg5


def install_plugin(mg5_dir: str | os.PathLike[str], *, python: str | None = None) -> Path:
    """Install the ``output madnis_py`` plugin into a MadGraph tree; returns its directory.

    An earlier install of this plugin is replaced; anything else at
    ``PLUGIN/madnis_py`` is an error (never overwritten).
    """
    mg5 = _check_mg5(Path(mg5_dir))
    plugins = mg5 / "PLUGIN"
    if not plugins.is_dir():
        raise MadGraphError(f"{mg5}: no PLUGIN directory (MadGraph 3 has one)")
    target = plugins / PLUGIN_NAME
    if target.is_symlink() or (target.exists() and not (target / _MARKER).is_file()):
        raise MadGraphError(f"{target} exists and was not made by `madnis-py madgraph "
                            "install`; remove it first")
    staging = Path(tempfile.mkdtemp(prefix=".madnis_py.", dir=plugins))
    try:
        for name in _PLUGIN_FILES:
            (staging / name).symlink_to(_plugin_source() / name)
        (staging / _MARKER).write_text((python or sys.executable) + "\n")
        staging.chmod(0o755)
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _swap_in(staging: Path, target: Path) -> None:
    """Put ``staging`` at ``target`` by renames, so that MadGraph never finds a part of
    the plugin there; the earlier install is moved aside first and removed after. A
    concurrent install of this plugin that lands first is kept (same files)."""
    old = Path(tempfile.mkdtemp(prefix=".madnis_py.old.", dir=target.parent))
    try:
        with contextlib.suppress(FileNotFoundError):
            target.rename(old / PLUGIN_NAME)
        try:
            staging.rename(target)
        except OSError:
            if not (target / _MARKER).is_file():
                raise
            shutil.rmtree(staging)
    finally:
        shutil.rmtree(old, ignore_errors=True)


def find_madgraph(output: Path | None = None, mg5: str | os.PathLike[str] | None = None
                  ) -> Path:
    """The MadGraph tree: ``mg5``, else ``$MADNIS_PY_MG5_HOME``, else the one an output
    names in ``Cards/me5_configuration.txt`` (``mg5_path``)."""
    if mg5 is not None:
        return _check_mg5(Path(mg5))
    env = os.environ.get("MADNIS_PY_MG5_HOME")
    if env:
        return _check_mg5(Path(env))
    if output is not None:
        conf = output / "Cards" / "me5_configuration.txt"
        if conf.is_file():
            for line in conf.read_text(errors="replace").splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "mg5_path" and value.split("#")[0].strip():
                    return _check_mg5(Path(value.split("#")[0].strip()))
    raise MadGraphError("MadGraph not found: pass --mg5 MG5_DIR or set MADNIS_PY_MG5_HOME")


def run_madgraph(mg5: Path, commands: list[str], *, log: Path) -> None:
    """Run MadGraph on a command script; its output goes to ``log``."""
    with tempfile.NamedTemporaryFile("w", suffix=".mg5", delete=False) as fh:
        fh.write("\n".join(commands) + "\n")
        script = fh.name
    try:
        with log.open("w") as out:
            done = subprocess.run([_mg5_python(), str(mg5 / "bin" / "mg5_aMC"), script],
                                  cwd=mg5,
                                  stdout=out, stderr=subprocess.STDOUT)
    finally:
        Path(script).unlink(missing_ok=True)
    text = log.read_text(errors="replace")
    if done.returncode != 0 or "Command \"" in text and "interrupted" in text:
        raise MadGraphError(f"MadGraph failed (exit {done.returncode}); see {log}")
    if any(m in text for m in ("InvalidCmd", "MadGraph5Error", "Error detected",
                                "No amplitudes generated", "command not executed")):
        raise MadGraphError(f"MadGraph: {_mg5_error(text)} (see {log})")


def _mg5_error(text: str) -> str:
    """The line of a MadGraph log that says what went wrong."""
    clean = [re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in text.splitlines()]
    clean = [ln for ln in clean if ln and ln not in ("quit", "exit")]
    # MadGraph's own report of the error ("str : <message>"), else the plugin's error
    # line; the plugin's INFO lines (helicities recycled, ...) are progress, not errors
    for ln in reversed(clean):
        if ln.startswith("str :"):
            return ln[5:].strip()
    for ln in clean:
        if "madnis_py: error:" in ln:
            return ln[ln.index("madnis_py: error:"):]
    for i, ln in enumerate(clean):
        if ln.startswith(("Error detected", "No amplitudes generated", "InvalidCmd")):
            return " ".join(clean[i:i + 2])
    return clean[-1] if clean else "no output"


def _mg5_python() -> str:
    """MadGraph's Python: ``$MADNIS_PY_MG5_PYTHON``, else the first of this interpreter,
    ``python3`` on PATH and ``/usr/bin/python3`` that has ``six`` (all MadGraph needs)."""
    chosen = os.environ.get("MADNIS_PY_MG5_PYTHON")
    if chosen:
        return chosen
    for candidate in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if candidate and subprocess.run([candidate, "-c", "import six"],
                                        capture_output=True).returncode == 0:
            return candidate
    raise MadGraphError("no Python with the `six` module to run MadGraph: pip install six, "
                        "or set MADNIS_PY_MG5_PYTHON")


def _process_lines(proc_card: Path) -> list[str]:
    """The model and process definition lines of a proc_card_mg5.dat."""
    keep = ("import", "define", "generate", "add process", "set ")
    lines = []
    for raw in proc_card.read_text(errors="replace").splitlines():
        line = raw.split("#")[0].strip()
        if not line or line.startswith(("output", "launch", "exit", "quit", "display",
                                         "install", "history")):
            continue
        if line.startswith(keep):
            lines.append(line)
    if not any(ln.startswith(("generate", "add process")) for ln in lines):
        raise MadGraphError(f"{proc_card}: no generate/add process line")
    return lines


def _with_decays(core: str, decays: Sequence[tuple[int, str]]) -> str:
    """A process with its decay chain in MadGraph's ``generate`` syntax, from the
    ``Decay:`` lines MadGraph writes under its ``Process:`` line (indented deeper for a
    decay of a decay product): ``p p > t t~, (t > b w+, w+ > e+ ve), t~ > b~ e- ve~``."""
    def nested(items: Sequence[tuple[int, str]]) -> list[str]:
        out: list[str] = []
        i = 0
        while i < len(items):
            depth, text = items[i]
            j = i + 1
            while j < len(items) and items[j][0] > depth:
                j += 1
            inner = nested(items[i + 1:j])
            out.append(f"({', '.join([text, *inner])})" if inner else text)
            i = j
        return out
    return ", ".join([core, *nested(list(decays))])


def _process_lines_from_code(output: Path) -> list[str]:
    """The process definition of an output without a proc card (``standalone_cpp``): the
    ``Process:`` lines MadGraph writes at the top of every subprocess's code, as ``generate``
    / ``add process`` lines, and the model its ``src/Parameters_<model>.h`` names.

    Such an output does not record MadGraph's mirror processes (``u~ u`` for a generated
    ``u u~`` of ``p p``): the processes are taken as written, and a note says so.
    """
    found: list[str] = []
    for code in sorted(output.glob("SubProcesses/P*/*")):
        if code.suffix not in (".f", ".h", ".cc"):
            continue
        core: str | None = None
        decays: list[tuple[int, str]] = []
        for line in [*code.read_text(errors="replace").splitlines(), ""]:
            decay = re.match(r"^\s*(?://|[cC])\s+\*?(\s*)Decay:\s*(.+?)\s*$", line)
            if core is not None and decay:
                decays.append((len(decay.group(1)), plain_process(decay.group(2))))
                continue
            if core is not None:  # the process and its decays (a decay chain) are read
                text = _with_decays(core, decays)
                if text not in found:
                    found.append(text)
                core, decays = None, []
            m = re.match(r"^\s*(?://|[cC])\s+Process:\s*(.+?)\s*$", line)
            if m:
                core = plain_process(m.group(1))
    if not found:
        raise MadGraphError(f"{output}: not a MadGraph output directory (no Cards/proc_card_"
                            "mg5.dat and no 'Process:' lines in SubProcesses/P*)")
    models = sorted(output.glob("src/Parameters_*.h"))
    model = models[0].stem.removeprefix("Parameters_") if models else "sm"
    print(f"note: {output} has no proc card; the processes are read from its code "
          f"({'; '.join(found)}), without MadGraph's mirror processes (add the swapped "
          "initial states by hand if the output came from p p)", file=sys.stderr)
    return [f"import model {model}", f"generate {found[0]}",
            *(f"add process {p}" for p in found[1:])]


def import_output(output: str | os.PathLike[str], *, destination: str | os.PathLike[str] | None
                  = None, mg5: str | os.PathLike[str] | None = None,
                  quiet: bool = False, allow_unsupported: bool = False) -> Assembled:
    """A madnis_py process directory from an existing MadGraph output (module docstring).

    Raises
    ------
    MadGraphError
        Not a MadGraph output, MadGraph not found, or MadGraph failing on it.
    AssembleError
        The process cannot be integrated (named in the message).
    """
    src = Path(output).expanduser().resolve()
    if not src.is_dir():
        raise MadGraphError(f"{output}: no such directory")
    if (src / "madgraph.json").is_file():
        return assemble(src, quiet=quiet, allow_unsupported=allow_unsupported)
    proc_card = src / "Cards" / "proc_card_mg5.dat"
    if not (src / "SubProcesses").is_dir():
        raise MadGraphError(f"{src}: not a MadGraph output directory (no SubProcesses/)")
    definition = (_process_lines(proc_card) if proc_card.is_file()
                  else _process_lines_from_code(src))
    dest = Path(destination) if destination is not None else src.with_name(
        src.name + "_madnis")
    dest = dest.expanduser().resolve()
    if dest.exists():
        raise MadGraphError(f"{dest} exists; choose another destination")
    mg5_dir = find_madgraph(src, mg5)
    install_plugin(mg5_dir)
    commands = definition + [f"output madnis_py {dest}"]
    log = dest.with_name(dest.name + ".mg5.log")
    # The plugin runs the assembly itself; the cards of the original output replace the
    # defaults afterwards, so the assembly is repeated with them.
    try:
        run_madgraph(mg5_dir, commands, log=log)
    except MadGraphError:
        if dest.exists() and not (dest / "process.toml").is_file():
            shutil.rmtree(dest, ignore_errors=True)
        raise
    for card in ("param_card.dat", "run_card.dat"):
        if (src / "Cards" / card).is_file():
            shutil.copyfile(src / "Cards" / card, dest / "Cards" / card)
    return assemble(dest, quiet=quiet, allow_unsupported=allow_unsupported)


__all__ += ["run_madgraph"]
