"""Custom operators: GroupNorm fused with the residual add and ReLU (`group_norm`), its Triton kernels
(`group_norm_kernels`, imported on first use)."""
