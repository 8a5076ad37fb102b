"""Imports point downward: no module of the package imports the command line."""

from __future__ import annotations

import ast
from pathlib import Path

import madnis_py

PACKAGE = Path(madnis_py.__file__).resolve().parent
FORBIDDEN = "madnis_py.cli"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module an import statement of ``source`` (the text of ``module``) names,
    relative imports resolved; ``from a import b`` names both ``a`` and ``a.b``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _imports_cli(names: set[str]) -> bool:
    return any(n == FORBIDDEN or n.startswith(FORBIDDEN + ".") for n in names)


def test_the_checker_sees_every_form_of_import() -> None:
    for source in ("import madnis_py.cli", "from madnis_py.cli import main",
                   "from madnis_py import cli", "def f():\n    from madnis_py.cli import _x",
                   "from . import cli", "from .cli import main"):
        assert _imports_cli(imported_modules(source, "madnis_py.run")), source
    assert _imports_cli(imported_modules("from ..cli import main", "madnis_py.events.output"))
    assert _imports_cli(imported_modules("from .cli import main", "madnis_py",
                                         is_package=True))
    for source in ("import madnis_py.client", "from madnis_py.run import run_card",
                   "from madnis_py import clinic", "from .run import RunError"):
        assert not _imports_cli(imported_modules(source, "madnis_py.distributed")), source


def test_no_module_imports_the_command_line() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30 and PACKAGE / "run.py" in files
    offenders = []
    for path in files:
        module = _module_name(path)
        if module == FORBIDDEN:
            continue
        names = imported_modules(path.read_text(encoding="utf-8"), module,
                                 is_package=path.name == "__init__.py")
        if _imports_cli(names):
            offenders.append(str(path.relative_to(PACKAGE.parent)))
    assert offenders == [], f"modules importing {FORBIDDEN}: {offenders}"
