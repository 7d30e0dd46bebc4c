"""`PreciseBN`: recomputes BN running statistics on training batches before every validation and test."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from videogn.data.failures import DataStop
from videogn.distributed import sum_over_ranks
from videogn.errors import ConfigError
from videogn.models.norm import BATCH_NORMS

__all__ = ["PreciseBN"]


class PreciseBN(Callback):
    """Sets each BN layer's running statistics to the mean and variance of its input over `num_batches` training
    batches, before every validation and test (the references' "precise BN").

    As fvcore's `update_bn_stats`, the network runs in training mode and the statistics are exact pooled moments
    (population variance); the sums are added over DDP ranks, so every rank holds the same statistics. The batches
    are training clips with the training augmentation, in the order of the current epoch. Models without BN layers
    (GN, LN, IN, frozen BN) and frozen stages are left alone.

    Args:
        num_batches: training batches per rank (the references use 200).
    """

    def __init__(self, num_batches: int = 200) -> None:
        if num_batches < 1:
            raise ConfigError(f"model.precise_bn_batches must be ≥ 1 to recompute BN statistics, got {num_batches}")
        self.num_batches = num_batches

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.update(trainer, pl_module)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.update(trainer, pl_module)

    @torch.no_grad()
    def update(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        frozen = {id(m) for block in getattr(pl_module, "frozen", []) for m in block.modules()}  # `freeze_until`
        layers = [m for m in pl_module.modules() if isinstance(m, BATCH_NORMS) and m.track_running_stats]
        layers = [m for m in layers if id(m) not in frozen]  # the frozen stages keep their statistics
        if not layers:
            return
        zero = torch.zeros((), dtype=torch.float64, device=pl_module.device)
        sums = {m: [zero, zero, zero] for m in layers}  # per layer: count, Σx, Σx² (float64, per channel)

        def accumulate(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0].detach()  # (N, C, T, H, W)
            dims = (0, *range(2, x.dim()))
            var, mean = torch.var_mean(x.float(), dim=dims, correction=0)  # one pass, no float64 copy of x
            n = x.numel() // x.shape[1]
            count, total, squares = sums[module]
            mean = mean.double()
            sums[module] = [count + n, total + mean * n, squares + (var.double() + mean.square()) * n]

        hooks = [m.register_forward_pre_hook(accumulate) for m in layers]
        was_training = pl_module.training
        pl_module.train()
        batches, stopped = 0, False
        try:
            with trainer.precision_plugin.forward_context():
                record = getattr(trainer.datamodule, "bad_videos", None)
                for batch in trainer.datamodule.precise_bn_dataloader(epoch=trainer.current_epoch):
                    if record is not None:
                        record.check_batch(batch)  # bad videos count, and stop runs, as in training
                    # every rank is at this batch (training shards are even), so all leave together when one stopped:
                    # a SyncBatchNorm forward is a collective
                    if sum_over_ranks(isinstance(batch, DataStop)):
                        stopped = True
                        break
                    pl_module(trainer.datamodule.normalize(batch.clips.to(pl_module.device, non_blocking=True)))
                    batches += 1
                    if batches == self.num_batches:
                        break
        finally:
            for hook in hooks:
                hook.remove()
            pl_module.train(was_training)
        if batches == 0 and not stopped:
            raise ConfigError("model.precise_bn_batches: the training list gave no batch to recompute BN statistics")
        for module, (count, total, squares) in sums.items():
            count = trainer.strategy.reduce(count, reduce_op="sum")
            total = trainer.strategy.reduce(total, reduce_op="sum")
            squares = trainer.strategy.reduce(squares, reduce_op="sum")
            mean = total / count
            module.running_mean.copy_(mean)
            module.running_var.copy_((squares / count - mean.square()).clamp_min(0))
        rank_zero_info(f"precise BN: statistics of {len(layers)} BN layers from {batches} training batches per rank")
