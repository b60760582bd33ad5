"""GPU kernels (Triton) for the graph blocks, with plain-PyTorch references.

Each public function here takes the same tensors on every device: on a CUDA device with Triton
installed it runs the fused kernel, elsewhere (the CPU path, tests) the PyTorch reference.
`SQUALL_FUSED_KERNELS=0` forces the reference everywhere (for A/B timing and debugging).
"""

from squall.models.kernels.dispatch import fused_kernels_enabled
from squall.models.kernels.edge_hidden import edge_hidden, edge_hidden_reference
from squall.models.kernels.gather import gather_rows
from squall.models.kernels.graph_attention import graph_attention, graph_attention_reference
from squall.models.kernels.layer_norm import fused_layer_norm, norm_for_matmul
from squall.models.kernels.projected_attention import graph_attention_over_edge_features
from squall.models.kernels.segment_sum import segment_sum, segment_sum_reference

__all__ = [
    "edge_hidden",
    "edge_hidden_reference",
    "fused_kernels_enabled",
    "fused_layer_norm",
    "gather_rows",
    "graph_attention",
    "graph_attention_over_edge_features",
    "graph_attention_reference",
    "norm_for_matmul",
    "segment_sum",
    "segment_sum_reference",
]
