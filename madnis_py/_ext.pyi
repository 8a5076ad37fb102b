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
def coupling_forward(x: np.ndarray, condition: np.ndarray | None, weight: list[np.ndarray],
                     bias: list[np.ndarray], cond_index: list[int], trans_index: list[int],
                     y: np.ndarray, logdet: np.ndarray, *, bins: int, inverse: bool,
                     min_width: float, min_height: float, min_derivative: float,
                     threads: int = 1) -> None: ...
def coupling_backward(x: np.ndarray, condition: np.ndarray | None, weight: list[np.ndarray],
                      bias: list[np.ndarray], cond_index: list[int], trans_index: list[int],
                      grad_y: np.ndarray, grad_logdet: np.ndarray, grad_x: np.ndarray,
                      grad_condition: np.ndarray | None, grad_weight: list[np.ndarray],
                      grad_bias: list[np.ndarray], *, bins: int, inverse: bool,
                      min_width: float, min_height: float, min_derivative: float,
                      threads: int = 1) -> None: ...
def cuda_device_count() -> int: ...
def rqs_forward_cuda(x: int, params: int, y: int, logdet: int, n: int, dtype: str, *,
                     bins: int, inverse: bool, min_width: float, min_height: float,
                     min_derivative: float, stream: int) -> None: ...
def rqs_backward_cuda(x: int, params: int, grad_y: int, grad_logdet: int, grad_x: int,
                      grad_params: int, n: int, dtype: str, *, bins: int, inverse: bool,
                      min_width: float, min_height: float, min_derivative: float,
                      stream: int) -> None: ...

PS_MAX_FINAL: int

def ps_channel_forward(int_table: np.ndarray, float_table: np.ndarray, n_final: int,
                       r: np.ndarray, momenta: np.ndarray, weight: np.ndarray, x12: np.ndarray,
                       *, sqrt_s: float, hadronic: bool, threads: int = 1) -> int: ...
def ps_channel_inverse(int_table: np.ndarray, float_table: np.ndarray, n_final: int,
                       momenta: np.ndarray, r: np.ndarray, weight: np.ndarray, *,
                       sqrt_s: float, hadronic: bool, threads: int = 1) -> int: ...
def ps_rambo_forward(masses: np.ndarray, r: np.ndarray, momenta: np.ndarray,
                     weight: np.ndarray, x12: np.ndarray, *, sqrt_s: float, hadronic: bool,
                     min_shat: float = 0.0, threads: int = 1) -> int: ...
def ps_invariant(sampler: int, a: float, b: float, lo: np.ndarray, hi: np.ndarray,
                 input: np.ndarray, output: np.ndarray, jac: np.ndarray, *,
                 inverse: bool) -> None: ...
def ps_channel_forward_cuda(int_table: int, float_table: int, n_nodes: int, n_final: int,
                            r: int, momenta: int, weight: int, x12: int, n: int, *,
                            sqrt_s: float, hadronic: bool, stream: int) -> None: ...
def ps_channel_inverse_cuda(int_table: int, float_table: int, n_nodes: int, n_final: int,
                            momenta: int, r: int, weight: int, n: int, *, sqrt_s: float,
                            hadronic: bool, stream: int) -> None: ...
def ps_rambo_forward_cuda(masses: int, n_final: int, r: int, momenta: int, weight: int,
                          x12: int, n: int, *, sqrt_s: float, hadronic: bool, min_shat: float,
                          stream: int) -> None: ...
