"""nnU-Net's loss plus named, weighted extra terms; each term logged per epoch and drawn in progress.png.

Wrapping the loss (built by nnU-Net's `_build_loss`) instead of rewriting `train_step` keeps nnU-Net's
autocast, gradient scaling and clipping untouched. The extra terms are added only while the network
is in training mode, so nnU-Net's validation loss stays comparable with a stock run.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import matplotlib.pyplot as plt
import numpy as np
import torch
from nnunetv2.training.logging.nnunet_logger import LocalLogger
from torch import nn

from nnunetv2_mtg.atomic import atomic_path

Term = Callable[[Any, Any], torch.Tensor]


class LossWithTerms(nn.Module):
    """total = seg_loss(output, target) + sum_k weight_k * term_k(output, target); `last_terms` holds the
    unweighted values of the last training call, for logging."""

    def __init__(self, seg_loss: nn.Module, is_training: Callable[[], bool], terms: dict[str, tuple[float, Term]]):
        super().__init__()
        self.seg_loss = seg_loss
        self.is_training = is_training
        self.terms = terms
        self.last_terms: dict[str, torch.Tensor] = {}

    def forward(self, output, target) -> torch.Tensor:
        total = self.seg_loss(output, target)
        if not self.is_training():
            return total
        values = {}
        for name, (weight, term) in self.terms.items():
            value = term(output, target)
            values[name] = value.detach()
            if weight != 0:
                total = total + weight * value
        self.last_terms = values
        return total

    def pop_last_terms(self) -> dict[str, np.ndarray]:
        if not self.last_terms:
            return {}
        values = torch.stack([v.float() for v in self.last_terms.values()]).cpu().numpy()  # one device sync
        out = dict(zip(self.last_terms, values))
        self.last_terms = {}
        return out


def log_key(term: str) -> str:
    return f"train_{term}"


class LossTermLogger(LocalLogger):
    """nnU-Net's local logger with one list per extra loss term; progress.png gets a fourth panel."""

    def __init__(self, terms: list[str], verbose: bool = False):
        super().__init__(verbose)
        self.terms = list(terms)
        for term in self.terms:
            self.my_fantastic_logging[log_key(term)] = []

    def load_checkpoint(self, checkpoint: dict):
        # a checkpoint of the same trainer has the term lists already; keep them aligned otherwise
        for term in self.terms:
            checkpoint.setdefault(log_key(term), [np.nan] * len(checkpoint.get("train_losses", [])))
        super().load_checkpoint(checkpoint)

    def plot_progress_png(self, output_folder):
        super().plot_progress_png(output_folder)
        path = os.path.join(output_folder, "progress.png")
        stock = plt.imread(path)
        epoch = min(len(v) for v in self.my_fantastic_logging.values()) - 1
        height, width = stock.shape[:2]
        panel = height / 3
        dpi = 100
        fig = plt.figure(figsize=(width / dpi, (height + panel) / dpi), dpi=dpi)
        share = panel / (height + panel)
        ax_img = fig.add_axes((0, share, 1, 1 - share))
        ax_img.imshow(stock)
        ax_img.axis("off")
        ax = fig.add_axes((0.1, 0.25 * share, 0.8, 0.65 * share))
        x = list(range(epoch + 1))
        for term in self.terms:
            ax.plot(x, self.my_fantastic_logging[log_key(term)][:epoch + 1], ls="-", label=term, linewidth=4)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss term (unweighted)")
        ax.legend(loc=(0, 1))
        with atomic_path(path) as tmp:
            fig.savefig(tmp)
        plt.close(fig)


def log_epoch_terms(trainer, train_outputs: list[dict]) -> None:
    """Log the epoch mean of every extra term (averaged over DDP ranks) and print it to the training log."""
    import torch.distributed as dist

    logger = trainer.logger.local_logger
    for term in logger.terms:
        values = [o[term] for o in train_outputs if term in o]
        mean = float(np.mean(values)) if values else float("nan")
        if trainer.is_ddp:
            gathered = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, mean)
            mean = float(np.nanmean(gathered))
        trainer.logger.log(log_key(term), mean, trainer.current_epoch)
        trainer.print_to_log_file(log_key(term), np.round(mean, decimals=4))


class LossTermsMixin:
    """Trainer wiring for extra loss terms: wraps nnU-Net's loss, reports the terms from train_step,
    logs them per epoch. A trainer returns {name: (weight, fn(output, target))} from `loss_term_functions()`;
    the functions are only called in training steps, so they may use what `initialize` builds."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.logger.local_logger = LossTermLogger(list(self.loss_term_functions()))

    def loss_term_functions(self) -> dict[str, tuple[float, Term]]:
        return {}

    def _build_loss(self):
        from nnunetv2_mtg.alignment import unwrap

        return LossWithTerms(super()._build_loss(), lambda: unwrap(self.network).training,
                             self.loss_term_functions())

    def train_step(self, batch: dict) -> dict:
        out = super().train_step(batch)
        out.update(self.loss.pop_last_terms())
        return out

    def on_train_epoch_end(self, train_outputs: list[dict]):
        super().on_train_epoch_end(train_outputs)
        log_epoch_terms(self, train_outputs)
