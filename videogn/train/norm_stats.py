"""`NormStatistics`: norm-layer input percentiles, mean |γ| and gradient norms, every N training steps."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from videogn.errors import ConfigError
from videogn.models.norm import NORM_LAYERS
from videogn.names import NORM_GAMMA, NORM_GRAD, NORM_GRAD_RATIO, NORM_INPUT

__all__ = ["NormStatistics"]

PERCENTILES = (1, 20, 80, 99)


class NormStatistics(Callback):
    """Logs norm statistics to TensorBoard every `every_n_steps` training steps (rank 0).

    - `norm/res5_last_input/p01` … `p99`: percentiles 1, 20, 80, 99 of the features entering res5's last norm
      layer (the paper's Figure 6), from at most 2²⁰ values;
    - `norm/mean_abs_gamma/<layer>`: the mean |γ| of every norm layer with an affine γ;
    - `norm/grad/<stage>` and `norm/grad_ratio/<stage>`: the L2 norm of each stage's weight gradients (stem,
      res2 … res5, head) before the optimizer step, and that norm divided by the weights' norm.

    With `model.compile` the logged steps run the network uncompiled.

    Args:
        every_n_steps: training steps between two logs.
    """

    def __init__(self, every_n_steps: int = 50) -> None:
        if every_n_steps < 1:
            raise ConfigError(f"norm statistics: every_n_steps must be ≥ 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self._values: dict[str, float] = {}
        self._handle: Any = None

    @staticmethod
    def res5_last_norm(pl_module: pl.LightningModule) -> nn.Module:
        """The last norm layer of res5; a `ConfigError` when there is none."""
        res5 = pl_module.model.blocks[-2]  # the blocks: stem, res2..res5, head
        norms = [m for m in res5.modules() if isinstance(m, NORM_LAYERS)]
        if not norms:
            raise ConfigError("norm statistics: res5 has no norm layer")
        return norms[-1]

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.res5_last_norm(pl_module)  # a network without one: said before the first step

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._release()

    def _capture(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self._release()
        with torch.no_grad():
            x = inputs[0].detach().flatten()
            x = x[:: max(1, x.numel() >> 20)].float()  # ≤ ~2²⁰ values: torch.quantile's size limit, and cheap
            q = torch.quantile(x, torch.tensor([p / 100 for p in PERCENTILES], device=x.device))
        self._values = {f"{NORM_INPUT}/p{p:02d}": float(v) for p, v in zip(PERCENTILES, q, strict=True)}

    def _release(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        if not self._values:  # only on the logged steps (the pre-hook filled them in this step's forward)
            return
        blocks = [b for b in pl_module.model.blocks if any(True for _ in b.parameters())]  # not the pools
        names = ["stem", *(f"res{i}" for i in range(2, len(blocks))), "head"]  # stem, res2 … res5, head
        for name, block in zip(names, blocks, strict=True):
            params = [p for p in block.parameters() if p.grad is not None]
            if not params:
                continue
            grad = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
            weight = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.detach()) for p in params]))
            self._values[f"{NORM_GRAD}/{name}"] = float(grad)
            self._values[f"{NORM_GRAD_RATIO}/{name}"] = float(grad / weight.clamp(min=1e-12))

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.is_global_zero and trainer.global_step % self.every_n_steps == 0:
            # the hook is on for this step's forward only, which runs uncompiled: a compiled graph has no hook
            self._handle = self.res5_last_norm(pl_module).register_forward_pre_hook(self._capture)
            pl_module.uncompiled_step = True

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._release()
        pl_module.uncompiled_step = False
        if not self._values or trainer.logger is None:
            return
        gammas = {
            f"{NORM_GAMMA}/{name}": float(m.weight.detach().abs().mean())
            for name, m in pl_module.model.named_modules()
            if isinstance(m, NORM_LAYERS) and isinstance(getattr(m, "weight", None), torch.Tensor)
        }
        trainer.logger.log_metrics({**self._values, **gammas}, step=trainer.global_step - 1)
        self._values = {}
