"""Build of madnis_py and its compiled core ``madnis_py._ext``.

The extension is built with pybind11 alone (no torch headers, no libtorch). When
``nvcc`` and a CUDA toolkit are found, the CUDA kernels in ``csrc/*.cu`` are compiled
with nvcc and linked in with the static CUDA runtime, so the module still imports on
machines without a GPU driver.

Environment:
    MADNIS_PY_CUDA       "auto" (default): build CUDA when nvcc and the toolkit are
                         found; "1": require it (fail if missing); "0": never.
    MADNIS_PY_CUDA_ARCH  semicolon-separated compute capabilities (default "80;90").
    CUDA_HOME            toolkit root (default: derived from nvcc, else /usr/local/cuda).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import Extension, find_packages, setup

ROOT = Path(__file__).parent
CSRC = ROOT / "csrc"
PROCESSES = ROOT / "processes"


def _find_cuda() -> Path | None:
    """Return the CUDA toolkit root if nvcc, the runtime header and cudart_static exist."""
    candidates = []
    if os.environ.get("CUDA_HOME"):
        candidates.append(Path(os.environ["CUDA_HOME"]))
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(Path(nvcc).resolve().parent.parent)
    candidates.append(Path("/usr/local/cuda"))
    for root in candidates:
        if ((root / "bin" / "nvcc").exists() and (root / "include" / "cuda_runtime.h").exists()
                and _cudart_dir(root) is not None):
            return root
    return None


def _cudart_dir(root: Path) -> Path | None:
    for sub in ("lib64", "lib", "lib/x64", "targets/x86_64-linux/lib"):
        if (root / sub / "libcudart_static.a").exists():
            return root / sub
    return None


class BuildExtWithCuda(build_ext):
    """pybind11's build_ext, plus nvcc for the .cu sources when a toolkit is found."""

    def build_extensions(self) -> None:
        mode = os.environ.get("MADNIS_PY_CUDA", "auto").lower()
        cuda = None if mode in ("0", "off", "no") else _find_cuda()
        if mode in ("1", "on", "yes") and cuda is None:
            raise RuntimeError("MADNIS_PY_CUDA=1 but no nvcc + CUDA toolkit was found; "
                               "set CUDA_HOME to the toolkit root")
        for ext in self.extensions:
            if ext.name == "madnis_py._ext":
                if cuda is not None:
                    self._add_cuda_objects(ext, cuda, sorted(CSRC.glob("*.cu")), CSRC, "cuda")
                else:
                    print("madnis_py: no CUDA toolkit found (or MADNIS_PY_CUDA=0); "
                          "building the CPU kernels only")
            elif ext.name in _PROCESS_CUDA_NAMES and cuda is not None:
                # the process library gets its device entry points (madnis_process.h)
                name = ext.name.split(".")[-2]
                self._add_cuda_objects(ext, cuda, [PROCESSES / s for s in CUDA_PROCESSES[name]],
                                       PROCESSES / "common", f"cuda_{name}")
        super().build_extensions()

    def _add_cuda_objects(self, ext: Extension, cuda: Path, sources: list[Path],
                          include: Path, subdir: str) -> None:
        archs = os.environ.get("MADNIS_PY_CUDA_ARCH", "80;90").split(";")
        gencode = []
        for a in archs:
            a = a.strip()
            gencode += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
        # PTX of the newest architecture lets later GPUs JIT the kernels.
        gencode += ["-gencode", f"arch=compute_{archs[-1].strip()},code=compute_{archs[-1].strip()}"]
        build_dir = Path(self.build_temp) / subdir
        build_dir.mkdir(parents=True, exist_ok=True)
        for cu in sources:
            obj = build_dir / (cu.stem + ".o")
            cmd = [str(cuda / "bin" / "nvcc"), "-O3", "-std=c++17", "-Xcompiler", "-fPIC",
                   "-DMADNIS_WITH_CUDA", "-I", str(include), *gencode, "-c", str(cu), "-o",
                   str(obj)]
            print("madnis_py:", " ".join(cmd))
            subprocess.check_call(cmd)
            ext.extra_objects.append(str(obj))
            ext.depends.append(str(cu))  # a changed kernel relinks the library
        ext.define_macros.append(("MADNIS_WITH_CUDA", None))
        ext.library_dirs.append(str(_cudart_dir(cuda)))
        ext.libraries += ["cudart_static", "rt", "dl", "pthread", "stdc++"]


ext_modules = [
    Pybind11Extension(
        "madnis_py._ext",
        sorted(str(p.relative_to(ROOT)) for p in CSRC.glob("*.cpp")),
        include_dirs=[str(CSRC)],
        cxx_std=17,
        extra_compile_args=["-O3", "-fno-math-errno"],
    ),
]



def _process_libraries() -> list[Extension]:
    """One shared library per built-in process (processes/<name>/*.c + processes/common).

    They are plain C with MadGraph's standalone Fortran ABI, loaded with cffi at run time
    (not Python modules): built like extensions only so pip puts them next to their cards.
    -O2, never -Ofast: fast-math object files turn on flush-to-zero for the whole process.
    """
    common = sorted(str(p.relative_to(ROOT)) for p in (PROCESSES / "common").glob("*.c"))
    headers = sorted(str(p.relative_to(ROOT)) for p in (PROCESSES / "common").glob("*.h"))
    libs = []
    for d in sorted(p for p in PROCESSES.iterdir() if p.is_dir() and p.name != "common"):
        sources = sorted(str(p.relative_to(ROOT)) for p in d.glob("*.c"))
        if sources:
            libs.append(Extension(f"madnis_py.processes.{d.name}._me", sources + common,
                                  include_dirs=[str(PROCESSES / "common")],
                                  depends=headers,
                                  extra_compile_args=["-O2", "-std=c11"],
                                  libraries=["m"]))
    return libs


#: Built-in processes that get a CUDA matrix element when nvcc is found: their .cu
#: sources (relative to processes/), linked into the same _me library, whose C part then
#: exports the device entry points (MADNIS_WITH_CUDA; processes/common/madnis_process.h).
CUDA_PROCESSES: dict[str, list[str]] = {"ee_mumu": ["common/neutral_current_cuda.cu"],
                                         "drell_yan": ["common/neutral_current_cuda.cu"]}
_PROCESS_CUDA_NAMES = {f"madnis_py.processes.{name}._me" for name in CUDA_PROCESSES}

ext_modules += _process_libraries()
_process_packages = ["madnis_py.processes"] + [
    f"madnis_py.processes.{p.name}" for p in sorted(PROCESSES.iterdir()) if p.is_dir()]

setup(
    name="madnis_py",
    version="0.1.0",
    description="Neural multi-channel importance sampling for collider event generation",
    long_description=(ROOT / "README.md").read_text() if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["madnis_py", "madnis_py.*"]) + _process_packages,
    package_dir={"madnis_py.processes": "processes"},
    package_data={"madnis_py": ["py.typed", "*.pyi", "data/pdfsets/*/*",
                                "physics/shims/*.cc"],
                  "madnis_py.processes": ["*.md", "*/*.toml", "*/*.dat", "*/*.c", "*/*.h", "*/*.cu",
                                          "*/*.md"]},
    ext_modules=ext_modules,
    cmdclass={"build_ext": BuildExtWithCuda},
    install_requires=["torch>=2.1", "numpy>=1.22", "cffi>=1.15", "vegas>=6", "tqdm>=4",
                      "matplotlib>=3.5", "rich>=12"],
    extras_require={
        "test": ["pytest>=7", "scipy>=1.9", "mpmath>=1.2", "ufoamp", "ufo-sm", "pylhe>=0.9",
                 "dask[distributed]>=2024.1", "dask-jobqueue>=0.8",
                 "ruff==0.17.6", "mypy==2.4.1"],
        "distributed": ["dask[distributed]>=2024.1", "dask-jobqueue>=0.8"],
        "dev": ["mypy==2.4.1", "ruff==0.17.6"],
        "bench": ["zuko", "madnis", "madspace", "vegas"],
        "pdf": ["hoppet"],
    },
    entry_points={"console_scripts": ["madnis-py=madnis_py.cli:main",
                                      "madnis-py-demo=madnis_py.demo:main"]},
)
