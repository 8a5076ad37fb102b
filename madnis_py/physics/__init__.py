"""Physics inputs: matrix elements (MadGraph standalone ABI through cffi, built-in
processes), PDFs and alpha_s, processes and their cards."""

from madnis_py.physics.builtin import builtin_library, builtin_process_dir, builtin_processes
from madnis_py.physics.matrix_element import MatrixElement, MatrixElementError
from madnis_py.physics.pdf import PDF, PDFError
from madnis_py.physics.process import Process, ProcessCardError, Subprocess, load_process
from madnis_py.physics.slha import SLHA, read_slha

__all__ = [
    "MatrixElement",
    "MatrixElementError",
    "PDF",
    "PDFError",
    "Process",
    "ProcessCardError",
    "SLHA",
    "Subprocess",
    "builtin_library",
    "builtin_process_dir",
    "builtin_processes",
    "load_process",
    "read_slha",
]
