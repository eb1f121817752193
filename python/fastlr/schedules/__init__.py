"""Schedule-first API: learning-rate schedules as values, evaluated in C++, no torch needed.

A schedule is a pure function of the step (as in optax): ``s(t)`` is its value at step ``t``, and
``s.table(n)`` / ``s.at(steps)`` compute many values at once in C++ (the GIL released), returned as
numpy arrays. Composites (:func:`join`, :func:`warmup`, products, scaling, offsets) are trees of
nodes that compile to one flat program, which the same closed-form code evaluates on the host and,
later, in a CUDA kernel.

>>> from fastlr import schedules as S
>>> s = S.warmup(S.cosine(1.0, steps=900), steps=100)
>>> s(0), s(50), s(100), s(1000)
(0.0, 0.5, 1.0, 0.0)
>>> len(s)
1000
>>> S.from_dict(s.to_dict()) == s
True

Steps are floats or ints in ``[0, 2**53]``; fractional steps are allowed (fractional epochs).
Every schedule supports ``to_dict()`` / :func:`from_dict` (JSON-safe, exact), ``horizon`` /
``len()`` (the step from which the value no longer changes, where there is one) and a ``repr``
that reads as the call that builds it.

Two nodes are stateful, driven by metrics on the host: :func:`plateau` (ReduceLROnPlateau's state
machine) and :func:`switch` (a phase change when a metric crosses a threshold). Everything else is
a pure function of the step.
"""

from __future__ import annotations

from ._base import MAX_NODES, Schedule  # noqa: F401 - MAX_NODES is public, outside __all__ as before
from ._combinators import join, noise, offset, product, scale, warmup
from ._recipes import cosine_onecycle, linear_onecycle
from ._serialisation import from_dict, from_name, names
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
from ._stateful import Plateau, Switch, plateau, switch

__all__ = [
    "Schedule",
    "constant",
    "linear",
    "cosine",
    "polynomial",
    "exponential",
    "step",
    "multistep",
    "piecewise_constant",
    "piecewise_linear",
    "cyclic",
    "onecycle",
    "linear_onecycle",
    "cosine_onecycle",
    "warm_restarts",
    "tanh",
    "inverse_sqrt",
    "wsd",
    "noise",
    "plateau",
    "Plateau",
    "switch",
    "Switch",
    "join",
    "warmup",
    "product",
    "scale",
    "offset",
    "transformers",
    "from_dict",
    "from_name",
    "names",
]

# The public names belong to this package (docs, doctests, reprs of functions), wherever they live.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith(__name__ + "."):
        _obj.__module__ = __name__
del _name, _obj
