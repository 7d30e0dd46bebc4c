"""The Lightning side: `VideoClassifier` (`module`), its optimisation (`optim`) and metrics (`metrics`), the
callbacks by concern (`resume`: ResumeGuard; `precise_bn`; `norm_stats`; `dashboards`: TensorBoard's layout,
HPARAMS and pictures; `monitors`: data wait, bad videos, the validation line, memory, throughput; `callbacks`
re-exports them all), atomic checkpoint writes (`checkpointing`), preemption (`preemption`), loading a trained
network for the tools (`loading`), CPU memory during inference (`runtime`) and the LightningCLI (`cli`).

Nothing is imported here: importing one of them loads only what it needs.
"""
