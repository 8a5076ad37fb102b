# Type stubs of the compiled core (csrc/). Private: use madnis_py.flows.
import numpy as np

MAX_BINS: int
WITH_CUDA: bool

def rqs_forward(x: np.ndarray, params: np.ndarray, y: np.ndarray, logdet: np.ndarray, *,
                bins: int, inverse: bool, min_width: float, min_height: float,
                min_derivative: float, threads: int = 1) -> None: ...
def rqs_backward(x: np.ndarray, params: np.ndarray, grad_y: np.ndarray,
                 grad_logdet: np.ndarray, grad_x: np.ndarray, grad_params: np.ndarray, *,
                 bins: int, inverse: bool, min_width: float, min_height: float,
                 min_derivative: float, threads: int = 1) -> None: ...
def cuda_device_count() -> int: ...
def rqs_forward_cuda(x: int, params: int, y: int, logdet: int, n: int, dtype: str, *,
                     bins: int, inverse: bool, min_width: float, min_height: float,
                     min_derivative: float, stream: int) -> None: ...
def rqs_backward_cuda(x: int, params: int, grad_y: int, grad_logdet: int, grad_x: int,
                      grad_params: int, n: int, dtype: str, *, bins: int, inverse: bool,
                      min_width: float, min_height: float, min_derivative: float,
                      stream: int) -> None: ...
