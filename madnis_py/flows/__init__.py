"""Normalizing flows on the unit hypercube from rational-quadratic spline couplings."""

from madnis_py.flows.coupling import MLP, RQSCoupling, binary_masks
from madnis_py.flows.flow import Flow
from madnis_py.flows.reference import rqs_reference
from madnis_py.flows.spline import SplineOptions, cuda_kernels_available, rqs

__all__ = ["Flow", "RQSCoupling", "MLP", "binary_masks", "SplineOptions", "rqs",
           "rqs_reference", "cuda_kernels_available"]
