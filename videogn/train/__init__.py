"""The Lightning side: `VideoClassifier` (`module`), its optimisation (`optim`) and metrics (`metrics`), the callbacks
(`callbacks`), checkpoints (`checkpointing`), CPU memory during inference (`runtime`) and the LightningCLI (`cli`).

Nothing is imported here: importing one of them loads only what it needs.
"""
