"""The Triton Adam kernel (installed as fusedadam.triton_kernels: a top-level `triton_kernels` package would
clash with Triton's own). Only `multi_tensor_adam` and `adam_math` import triton; fusedadam imports them when
the triton backend first runs."""
