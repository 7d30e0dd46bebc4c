"""Training with Lightning: `VideoClassifier` (`module`), its settings, optimisation and metrics, and the callbacks.

Submodules: `module`, `settings`, `optim`, `metrics`, the callbacks (`resume`, `precise_bn`, `norm_stats`,
`dashboards`, `monitors`; `callbacks` re-exports them), `checkpointing` (atomic checkpoint writes), `preemption`,
`loading` (a trained network for the tools), `runtime` (CPU memory during inference), `preflight` and `cli`.

Nothing is imported here: importing a submodule loads only what it needs.
"""
