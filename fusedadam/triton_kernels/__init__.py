"""The Triton Adam kernel (installed as fusedadam.triton_kernels: a top-level `triton_kernels` package would
clash with Triton's own). Only `multi_tensor_adam` and its helpers (`adam_math`, `param_update`,
`moment_quantization`) import triton; fusedadam imports them when the triton backend first runs."""
