"""The Lightning side: `VideoClassifier` (`module`), its optimisation (`optim`) and metrics (`metrics`), the callbacks
(`callbacks`), checkpoints (`checkpointing`), CPU memory during inference (`runtime`) and the LightningCLI (`cli`).

Nothing is imported here, so that `videogn.train.dashboards` and the like load without Lightning.
"""
