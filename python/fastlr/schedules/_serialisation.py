"""Schedules from dicts (:func:`from_dict`) and from names (:func:`from_name`, :func:`names`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

from ._base import Schedule
from ._names import NAMES
from ._names import from_name as _from_name
from ._combinators import _Join, _Product, _warmup_from_dict, noise, offset, scale
from ._shapes import (
    constant,
    cosine,
    cyclic,
    exponential,
    inverse_sqrt,
    linear,
    multistep,
    onecycle,
    piecewise_constant,
    piecewise_linear,
    polynomial,
    step,
    tanh,
    transformers,
    warm_restarts,
    wsd,
)
from ._stateful import Plateau, Switch

# ------------------------------------------------------------------------------------------------
# Serialisation and names

_FROM_DICT: dict[str, Callable[..., Schedule]] = {
    "constant": constant,
    "linear": linear,
    "cosine": cosine,
    "polynomial": polynomial,
    "exponential": exponential,
    "step": step,
    "multistep": multistep,
    "piecewise_constant": piecewise_constant,
    "piecewise_linear": piecewise_linear,
    "cyclic": cyclic,
    "onecycle": onecycle,
    "warm_restarts": warm_restarts,
    "tanh": tanh,
    "inverse_sqrt": inverse_sqrt,
    "wsd": wsd,
    "noise": noise,
    "join": lambda schedules, boundaries: _Join(schedules, boundaries),
    "warmup": _warmup_from_dict,
    "product": lambda schedules: _Product(schedules),
    "scale": scale,
    "offset": offset,
    "transformers": transformers,
}


def from_dict(d: Mapping[str, Any]) -> Schedule:
    """Rebuild a schedule from :meth:`Schedule.to_dict` output (after a JSON round trip too).

    Plateau nodes come back with their state; a plateau object that appeared several times in the
    tree comes back as several independent copies with equal state.

    >>> from_dict({"kind": "linear", "init_value": 0.0, "end_value": 1.0, "steps": 10})(5)
    0.5
    """
    if not isinstance(d, Mapping):
        raise TypeError(f"a schedule dict must be a mapping, got {type(d).__name__}")
    if "kind" not in d:
        raise ValueError(f"a schedule dict needs a 'kind' key, got keys {sorted(d)}")
    kind = d["kind"]
    params = {k: v for k, v in d.items() if k != "kind"}
    for k in ("schedule",):
        if k in params and isinstance(params[k], Mapping):
            params[k] = from_dict(params[k])
    if "schedules" in params and isinstance(params["schedules"], (list, tuple)):
        params["schedules"] = [from_dict(x) if isinstance(x, Mapping) else x for x in params["schedules"]]
    if kind == "plateau":
        state = params.pop("state", None)
        try:
            return Plateau(**params, state=state)
        except TypeError as e:
            raise ValueError(f"bad schedule dict for kind 'plateau': {e}") from None
    if kind == "switch":
        state = params.pop("state", None)
        for k in ("first", "then"):
            if isinstance(params.get(k), Mapping):
                params[k] = from_dict(params[k])
        try:
            return Switch(**params, state=state)
        except TypeError as e:
            raise ValueError(f"bad schedule dict for kind 'switch': {e}") from None
    factory = _FROM_DICT.get(kind) if isinstance(kind, str) else None
    if factory is None:
        raise ValueError(f"unknown schedule kind {kind!r}; known kinds: {sorted([*_FROM_DICT, 'plateau', 'switch'])}")
    try:
        return factory(**params)
    except TypeError as e:
        if "unexpected keyword" in str(e) or "missing" in str(e) or "positional" in str(e):
            raise ValueError(f"bad schedule dict for kind {kind!r}: {e}") from None
        raise


def from_name(
    name: str,
    num_warmup_steps: int | None = None,
    num_training_steps: int | None = None,
    **kwargs: Any,
) -> Schedule:
    """A schedule by name, as a multiplier of the base learning rate (torch-free).

    Hugging Face's names (``transformers.get_scheduler``), bitwise: the value at every step is the
    float transformers' lambda returns (:func:`transformers` nodes): ``linear``, ``cosine``,
    ``cosine_with_restarts``, ``polynomial``, ``constant``, ``constant_with_warmup``,
    ``inverse_sqrt``, ``reduce_lr_on_plateau`` (a :func:`plateau`), ``cosine_with_min_lr``,
    ``cosine_warmup_with_min_lr``, ``warmup_stable_decay``; and fastlr's own: see :func:`names`.
    Keyword arguments are the Hugging Face ``scheduler_specific_kwargs`` (or, for fastlr's names,
    the shape's own arguments). ``polynomial`` and the ``min_lr`` of the cosine names need
    ``lr_init``, the optimizer's default lr (:func:`fastlr.get_scheduler` passes it).

    >>> s = from_name("linear", num_warmup_steps=10, num_training_steps=110)
    >>> s(5), s(10), s(60), s(110)
    (0.5, 1.0, 0.5, 0.0)
    """
    return _from_name(name, num_warmup_steps, num_training_steps, **kwargs)


def names() -> list[str]:
    """The names :func:`from_name` (and :func:`fastlr.get_scheduler`) accept."""
    return sorted(NAMES)
