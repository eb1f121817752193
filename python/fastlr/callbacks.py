"""Framework callbacks that feed a :class:`fastlr.LossMonitor` with the training loss.

* :class:`LossMonitorCallback` - a Hugging Face ``transformers.TrainerCallback``: it reads the
  ``loss`` (and ``learning_rate``) of each of the Trainer's logs.
* :class:`LightningLossMonitor` - a Lightning ``Callback`` (``lightning.pytorch``, else
  ``pytorch_lightning``): it reads the loss that ``training_step`` returned, every
  ``every_n_steps`` training batches.

Each class is defined when first asked for, so importing this module imports neither framework;
asking for one whose framework is missing raises ImportError. The monitor warns once per new
verdict (:class:`fastlr.LossMonitorWarning`; the whole-run verdicts when training ends, through
``monitor.finish()``); ``callback.monitor.diagnosis`` has the details.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._diagnose import LossMonitor

__all__ = ["LightningLossMonitor", "LossMonitorCallback"]

_made: dict[str, type] = {}


def _import(*names: str) -> Any:
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise ImportError(f"this callback needs {' or '.join(names)}: pip install {names[0].split('.')[0]}")


def _first_lr(optimizers: Any) -> float | None:
    try:
        lr = optimizers[0].param_groups[0]["lr"]
        return float(lr)
    except (IndexError, KeyError, TypeError, AttributeError):
        return None


def _transformers_callback() -> type:
    transformers = _import("transformers")

    class LossMonitorCallback(transformers.TrainerCallback):  # type: ignore[misc, name-defined]
        """Feeds the Trainer's logged training loss to a :class:`fastlr.LossMonitor`.

        Parameters
        ----------
        monitor : LossMonitor, optional
            The monitor to feed (a new one by default); ``**kwargs`` build it otherwise.
        """

        def __init__(self, monitor: LossMonitor | None = None, **kwargs: Any) -> None:
            self.monitor = monitor if monitor is not None else LossMonitor(**kwargs)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            if logs and "loss" in logs:
                self.monitor.update(logs["loss"], step=state.global_step, lr=logs.get("learning_rate"))

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.monitor.finish()

    return LossMonitorCallback


def _lightning_callback() -> type:
    pl = _import("lightning.pytorch", "pytorch_lightning")

    class LightningLossMonitor(pl.Callback):  # type: ignore[misc, name-defined]
        """Feeds the loss that ``training_step`` returns to a :class:`fastlr.LossMonitor`.

        Parameters
        ----------
        monitor : LossMonitor, optional
            The monitor to feed (a new one by default); ``**kwargs`` build it otherwise.
        every_n_steps : int
            Read the loss every n training batches (reading it waits for the device).
        """

        def __init__(self, monitor: LossMonitor | None = None, every_n_steps: int = 1, **kwargs: Any) -> None:
            if every_n_steps < 1:
                raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
            self.monitor = monitor if monitor is not None else LossMonitor(**kwargs)
            self.every_n_steps = int(every_n_steps)

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            step = trainer.global_step
            if step % self.every_n_steps:
                return
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            if loss is None:
                return
            self.monitor.update(float(loss.detach()) if hasattr(loss, "detach") else float(loss), step=step,
                                lr=_first_lr(trainer.optimizers))

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            self.monitor.finish()

    return LightningLossMonitor


_FACTORIES = {"LossMonitorCallback": _transformers_callback, "LightningLossMonitor": _lightning_callback}


def __getattr__(name: str) -> Any:
    factory = _FACTORIES.get(name)
    if factory is None:
        raise AttributeError(f"module 'fastlr.callbacks' has no attribute {name!r}")
    if name not in _made:
        cls = factory()
        cls.__module__, cls.__qualname__ = __name__, name
        _made[name] = cls
    return _made[name]
