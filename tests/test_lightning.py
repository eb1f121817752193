"""fastlr's schedulers inside a real Lightning ``Trainer``, beside torch's in the same loop.

Lightning recognises a plateau scheduler by ``isinstance(scheduler, torch's ReduceLROnPlateau)`` and
then steps it with the ``monitor`` metric at the end of each epoch; other schedulers it steps on its
own, every epoch or every step (``interval``). Each test trains the same tiny CPU model twice, once
with fastlr's scheduler and once with torch's, and compares the lr seen by every training step (==)
and the trained weights (==): the same lrs give the same weights bit for bit on CPU.

Skipped where Lightning is not installed; ``FASTLR_REQUIRE_LIGHTNING=1`` (CI installs it) makes a
missing Lightning a failure.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import pytest

torch = pytest.importorskip("torch")
if os.environ.get("FASTLR_REQUIRE_LIGHTNING") == "1":  # CI installs it: a missing module is a failure there
    import lightning.pytorch as L
else:
    L = pytest.importorskip("lightning.pytorch")

import fastlr  # noqa: E402
from fastlr import lr_scheduler as F  # noqa: E402

T = torch.optim.lr_scheduler
# Lightning's advice for real runs (more loader workers, a log interval above 4 batches) and its own
# deprecation notices say nothing about the schedulers.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*number of training batches:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated"),
]
BATCHES = 4  # training batches per epoch

# The monitored value, one per epoch: scripted (a real validation loss is logged too) so that the
# plateau logic has improvements, stalls within the threshold, a cooldown and the min_lr floor to
# get through in a few epochs.
SCORES = [1.0, 0.9, 0.8999, 0.95, 0.7, 0.71, 0.72, 0.73, 0.74, 0.5, 0.5, 0.5, 0.5, 0.5]
PLATEAU_KW: dict[str, Any] = dict(mode="min", factor=0.5, patience=1, threshold=1e-3, cooldown=1, min_lr=[0.02, 0.001])


class Tiny(L.LightningModule):
    """A linear model with two param groups; ``configure`` builds what configure_optimizers returns."""

    def __init__(self, configure: Callable[[torch.optim.Optimizer], dict[str, Any]]) -> None:
        super().__init__()
        with torch.random.fork_rng():  # the same initial weights in both runs, the global RNG untouched
            torch.manual_seed(0)
            self.net = torch.nn.Linear(3, 1)
        self.configure = configure
        self.lrs: list[tuple[float, ...]] = []  # per training step, every group's lr

    def configure_optimizers(self) -> dict[str, Any]:
        opt = torch.optim.SGD(
            [{"params": [self.net.weight], "lr": 0.1}, {"params": [self.net.bias], "lr": 0.05}], lr=0.1, momentum=0.9
        )
        return {"optimizer": opt, "lr_scheduler": self.configure(opt)}

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.lrs.append(tuple(g["lr"] for g in self.optimizers().param_groups))
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))
        self.log("score", SCORES[self.current_epoch])


def _data() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4 * BATCHES, 3, generator=g)
    y = x @ torch.tensor([[0.5], [-1.0], [2.0]]) + 0.1 * torch.randn(4 * BATCHES, 1, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)


def _fit(configure: Callable[[torch.optim.Optimizer], dict[str, Any]], epochs: int) -> tuple[Tiny, Any]:
    model = Tiny(configure)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, _data(), _data())
    return model, trainer


def _same_run(a: Tiny, b: Tiny) -> None:
    assert a.lrs == b.lrs
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name


def test_reduce_lr_on_plateau_from_get_scheduler():
    """``fastlr.get_scheduler("reduce_lr_on_plateau", ...)`` with a monitor: Lightning passes it the
    metric as it does torch's class, and it reduces the lrs exactly as torch's."""

    def ours(opt: torch.optim.Optimizer) -> dict[str, Any]:
        return {"scheduler": fastlr.get_scheduler("reduce_lr_on_plateau", opt, scheduler_specific_kwargs=PLATEAU_KW),
                "monitor": "score"}

    def theirs(opt: torch.optim.Optimizer) -> dict[str, Any]:
        return {"scheduler": T.ReduceLROnPlateau(opt, **PLATEAU_KW), "monitor": "score"}

    epochs = len(SCORES)
    a, ta = _fit(ours, epochs)
    b, tb = _fit(theirs, epochs)
    sched = ta.lr_scheduler_configs[0].scheduler
    assert type(sched) is F.ReduceLROnPlateau and ta.lr_scheduler_configs[0].reduce_on_plateau
    assert len(a.lrs) == epochs * BATCHES
    _same_run(a, b)
    per_epoch = [a.lrs[e * BATCHES] for e in range(epochs)]
    assert len(set(per_epoch)) >= 4 and per_epoch[-1] == (0.02, 0.00625)  # reduced 3 times; the first group at min_lr
    assert sched.state_dict() == tb.lr_scheduler_configs[0].scheduler.state_dict()


def test_cosine_annealing_every_step():
    """fastlr.lr_scheduler.CosineAnnealingLR with ``interval="step"``: stepped by Lightning after every
    optimizer step, past T_max and back up, with torch's lrs."""
    steps = 3 * BATCHES

    def ours(opt: torch.optim.Optimizer) -> dict[str, Any]:
        return {"scheduler": F.CosineAnnealingLR(opt, T_max=steps - 5, eta_min=0.001), "interval": "step"}

    def theirs(opt: torch.optim.Optimizer) -> dict[str, Any]:
        return {"scheduler": T.CosineAnnealingLR(opt, T_max=steps - 5, eta_min=0.001), "interval": "step"}

    a, ta = _fit(ours, 3)
    b, tb = _fit(theirs, 3)
    assert type(ta.lr_scheduler_configs[0].scheduler) is F.CosineAnnealingLR
    assert len(a.lrs) == steps and len(set(a.lrs)) >= steps - 1  # a new lr at (nearly) every step
    _same_run(a, b)
    sa, sb = ta.lr_scheduler_configs[0].scheduler, tb.lr_scheduler_configs[0].scheduler
    assert sa.last_epoch == sb.last_epoch == steps
    assert sa.get_last_lr() == sb.get_last_lr()
