"""Tensor learning rates: packed buffers and their device executor (host-driven fused path).

Fused and capturable optimizers and ``torch.compile`` take ``group["lr"]`` as a 0-d tensor. torch's
schedulers then ``fill_`` every group's tensor, one dispatch per group per step. fastlr instead makes
each such tensor a 0-d view of one packed buffer per (dtype, device) -- with ``Tensor.set_``, so the
tensor *object* stays the same one and compiled code or captured graphs holding it see every update --
and then updates a whole buffer at once:

* CPU buffers: the engine writes the buffer's memory directly (no torch op at all);
* other devices: one kernel launch (``fastlr._cuda``) or, without it, a short fixed sequence of
  in-place torch ops on the buffer (`DeviceExecutor`), the same number whatever the group count,
  never reading a value back to the host.

Values follow fastlr's parity contract: the engine computes each step in float64 exactly as torch
does for Python floats (bitwise for float64 tensors). float32 buffers carry a float64 shadow, so a
float32 lr is always the float32 rounding of the exact float64 value, more accurate than torch's own
float32 recurrence. A value written into a packed tensor by anything else (``group["lr"].fill_(x)``)
is noticed at the next step and used as the new current lr, as torch would.

Momentum and beta1 (CyclicLR, OneCycleLR) are packed the same way when the group holds them as 0-d
tensors, so they too keep their identity and ``torch.compile`` does not recompile on every step.
"""

from __future__ import annotations

import contextlib
import struct
import weakref
from typing import Any

import torch


__all__ = ["Packed", "pack_groups", "device_apply"]

_PACKABLE = (torch.float32, torch.float64)

#: Route CPU buffers through the device executor too (tests use it to check that the executor and the
#: engine's direct writes agree bit for bit). Read when groups are packed.
FORCE_DEVICE_EXECUTOR = False


def _packable(value: Any) -> bool:
    return (
        isinstance(value, torch.Tensor)
        and type(value) is torch.Tensor
        and value.dim() == 0
        and value.dtype in _PACKABLE
        and not value.requires_grad
        and value.layout == torch.strided
    )


# The buffer each packed tensor belongs to, over all optimizers: id(tensor) -> (weakref to the tensor,
# weakref to its Buffer). A tensor can be an element of one buffer only (``Tensor.set_`` re-points it),
# so a tensor already packed for one optimizer is left to torch's code by any other optimizer whose
# groups share it (an lr shared by two optimizers): both then write the same memory, in the order their
# schedulers step, exactly as torch's ``fill_`` calls do.
_OWNERS: dict[int, tuple[weakref.ref[torch.Tensor], weakref.ref[Buffer]]] = {}


def _forget(key: int, ref: weakref.ref[torch.Tensor]) -> None:
    entry = _OWNERS.get(key)
    if entry is not None and entry[0] is ref:
        del _OWNERS[key]


class Buffer:
    """One packed buffer: `data` (distinct tensors are its elements) and a float64 `shadow` for float32
    data. Shared by every scheduler of the optimizer that packed it (`owner`, a weak reference)."""

    __slots__ = ("data", "shadow", "members", "owner", "uploads", "__weakref__")

    def __init__(self, members: list[tuple[int, torch.Tensor]], owner: Any = None) -> None:
        self.members = members  # (first group holding the tensor, the tensor), one per element
        # Device operands last uploaded for this buffer, per role ("x", "y"): (their bytes, the tensor),
        # reused while the bytes are unchanged (base lrs rarely change; lambda values every step).
        self.uploads: dict[str, tuple[bytes, torch.Tensor]] = {}
        self.owner = weakref.ref(owner) if owner is not None else None
        with torch.no_grad():
            self.data = torch.stack([t.detach().clone() for _, t in members]).contiguous()
            self.shadow = self.data.to(torch.float64) if self.data.dtype == torch.float32 else None
            storage = self.data.untyped_storage()
            for j, (_, t) in enumerate(members):
                # Re-point the group's own tensor object at element j: identity is kept.
                t.set_(storage, j, (), ())
        for j, (_, t) in enumerate(members):
            if t.data_ptr() != self.data[j].data_ptr():
                raise RuntimeError(f"fastlr: could not pack a learning-rate tensor (element {j} of its buffer)")
            ref = weakref.ref(t, lambda r, k=id(t): _forget(k, r))
            _OWNERS[id(t)] = (ref, weakref.ref(self))

    @property
    def is_cpu(self) -> bool:
        return self.data.device.type == "cpu"

    def holds(self, t: torch.Tensor, j: int) -> bool:
        """Whether tensor `t` is still this buffer's element j."""
        return t.data_ptr() == self.data.data_ptr() + j * self.data.element_size()


def _packed_elsewhere(t: torch.Tensor, optimizer: Any) -> bool:
    """Whether `t` is an element of a live buffer that another live optimizer packed."""
    entry = _OWNERS.get(id(t))
    if entry is None or entry[0]() is not t:
        return False
    buf = entry[1]()
    if buf is None or buf.owner is None:
        return False
    other = buf.owner()
    if other is None or other is optimizer:
        return False
    return any(m is t and buf.holds(t, j) for j, (_, m) in enumerate(buf.members))


class Packed:
    """The packed tensors of one key ("lr", "momentum" or beta1 in "betas") over an optimizer's groups.

    `slots[i]` is ``(buffer index, element)`` for a packed group and ``None`` for a group whose value is
    a Python float (or anything not packable). `tensors[i]` is the packed tensor object of group i (the
    engine checks identity on every step and re-packs when a group's tensor was replaced).

    Groups that hold the same tensor object (an optimizer's default ``lr=torch.tensor(...)`` is shared
    by every group that does not set its own) share its element, as they share the tensor in torch:
    each step writes the groups' values in group order, so the last group's value stays, as torch's
    ``fill_`` calls leave it. A tensor that another optimizer has packed already is `foreign` here:
    such a packing is left to torch's code (`has_foreign`).
    """

    def __init__(self, groups: list[dict[str, Any]], key: str, optimizer: Any = None) -> None:
        self.key = key
        if key != "lr":
            _unalias_momentum(groups, key)
        n = len(groups)
        by: dict[tuple[torch.dtype, torch.device], list[tuple[int, torch.Tensor]]] = {}
        first: dict[int, int] = {}  # id(tensor) -> the first group holding it
        values = [_value_of(g, key) for g in groups]
        self.foreign: list[torch.Tensor | None] = [None] * n
        for i, v in enumerate(values):
            if not _packable(v):
                continue
            if id(v) in first:
                continue  # an alias of an earlier group's tensor: shares its element
            if _packed_elsewhere(v, optimizer):
                self.foreign[i] = v
                continue
            first[id(v)] = i
            by.setdefault((v.dtype, v.device), []).append((i, v))
        self.buffers = [Buffer(m, optimizer) for m in by.values()]
        self.slots: list[tuple[int, int] | None] = [None] * n
        self.tensors: list[torch.Tensor | None] = [None] * n
        where: dict[int, tuple[int, int]] = {}
        for b, buf in enumerate(self.buffers):
            for j, (_, t) in enumerate(buf.members):
                where[id(t)] = (b, j)
        self.aliased = False
        for i, v in enumerate(values):
            if self.foreign[i] is None and _packable(v) and id(v) in where:
                self.slots[i] = where[id(v)]
                self.tensors[i] = v
                self.aliased = self.aliased or first[id(v)] != i
        self.has_foreign = any(t is not None for t in self.foreign)

    def __bool__(self) -> bool:
        return bool(self.buffers) or self.has_foreign

    def covers(self, groups: list[dict[str, Any]]) -> bool:
        """Whether this packing is still exactly the groups' packable tensors, in place."""
        if len(groups) != len(self.slots):
            return False
        for i, g in enumerate(groups):
            v = _value_of(g, self.key)
            t = self.tensors[i]
            if self.foreign[i] is not None:
                if v is not self.foreign[i]:
                    return False
            elif t is None:
                if _packable(v):
                    return False
            elif v is not t:
                return False
        for b in self.buffers:
            for j, (_, t) in enumerate(b.members):
                if not b.holds(t, j):
                    return False
        return True

    def engine_layout(self) -> tuple[list[Any], list[Any], list[torch.Tensor]]:
        """What an engine reads once: per group (buffer, element), (-1, -1) for a value it does not
        pack, or (-2, -2) for a tensor another optimizer packed (torch's code steps such a packing);
        per buffer (data pointer, dtype code, is_cpu, shadow pointer or 0, snapshot pointer, size);
        and the engine's own snapshot buffers (the values of its last step, for ``get_last_lr()``: two
        schedulers of one optimizer share the buffers but not their snapshots)."""
        groups = [
            (-2, -2) if self.foreign[i] is not None else (-1, -1) if s is None else s for i, s in enumerate(self.slots)
        ]
        snaps = [b.data.clone() for b in self.buffers]
        bufs = [
            (
                b.data.data_ptr(),
                0 if b.data.dtype == torch.float32 else 1,
                b.is_cpu and not FORCE_DEVICE_EXECUTOR,
                0 if b.shadow is None else b.shadow.data_ptr(),
                snap.data_ptr(),
                b.data.numel(),
            )
            for b, snap in zip(self.buffers, snaps)
        ]
        return groups, bufs, snaps

    def last_values(self, snaps: list[torch.Tensor]) -> list[torch.Tensor | None]:
        """Per group, a fresh tensor holding its value in `snaps` (None for float groups)."""
        out: list[torch.Tensor | None] = [None] * len(self.slots)
        for i, s in enumerate(self.slots):
            if s is not None:
                out[i] = snaps[s[0]][s[1]].clone()
        return out


def _unalias_momentum(groups: list[dict[str, Any]], key: str) -> None:
    """Give each group a momentum (or beta1) tensor of its own before it is packed.

    CyclicLR and OneCycleLR store one tensor object as both ``group["momentum"]`` (or beta1) and
    ``group["max_momentum"]`` at construction. torch then *assigns* a new momentum object at every
    step, so the bound never moves; packing writes the momentum in place, which would move the bound
    (and any other key or group holding the same object) with it. torch's first step replaces that
    object anyway, so a clone here changes nothing torch keeps, and identity holds from then on.
    """
    seen: set[int] = set()
    for g in groups:
        v = _value_of(g, key)
        if not _packable(v):
            continue
        shared = id(v) in seen or any(o is v for k, o in g.items() if k not in ("params", "betas", key))
        seen.add(id(v))
        if not shared:
            continue
        fresh = v.detach().clone()
        if key == "beta1":
            g["betas"] = (fresh, *g["betas"][1:])
        else:
            g[key] = fresh
        seen.add(id(fresh))


def _value_of(group: dict[str, Any], key: str) -> Any:
    if key == "beta1":
        betas = group.get("betas")
        return betas[0] if isinstance(betas, tuple) and betas else None
    return group.get(key)


def describe(value: Any) -> tuple[int, int, float] | None:
    """How the engine reads a 0-d float tensor in a list such as ``base_lrs``: ``(data pointer, 0 or 1,
    0.0)`` for a float32/float64 CPU tensor (read from memory on every step), ``(0, 2 or 3, value)`` for
    a float64/float32 one on another device (its value, read once now). None for anything else."""
    if not isinstance(value, torch.Tensor) or value.dim() != 0 or value.dtype not in _PACKABLE:
        return None
    if value.device.type == "cpu" and not value.requires_grad:
        return (value.data_ptr(), 0 if value.dtype == torch.float32 else 1, 0.0)
    return (0, 3 if value.dtype == torch.float32 else 2, float(value.detach()))


def pack_groups(optimizer: torch.optim.Optimizer, key: str) -> Packed | None:
    """The packed tensors under `key` of the optimizer's groups (None if there are none).

    One packing per optimizer and key, shared by every scheduler of that optimizer (two schedulers on
    one optimizer write the same buffers), kept in ``optimizer._fastlr_packed``. A packing is reused
    while it still covers exactly the groups' tensors; otherwise the groups are packed again, and the
    engines of other schedulers adopt the new packing on their next step.
    """
    registry = optimizer.__dict__.setdefault("_fastlr_packed", {})
    groups = list(optimizer.param_groups)
    current = registry.get(key)
    if current is not None and current.covers(groups):
        return current
    packed = Packed(groups, key, optimizer)
    registry[key] = packed if packed else None
    return registry[key]


class DeviceExecutor:
    """Applies one engine update to a packed buffer on a device with in-place torch ops.

    Used for buffers off the CPU when ``fastlr._cuda`` is not available (and by the tests on CPU
    buffers, where it must agree with the engine's direct writes bit for bit). Every op is one
    IEEE operation per element in torch's evaluation order, so float64 results equal the engine's.
    """

    # update ops, as in cpp/include/fastlr/update.hpp (enum update::op)
    KEEP, SCALE, SCALE_EACH, COS_ADD, COS_RATIO, COS_CLOSED, CYCLIC_RISE, CYCLIC_FALL, ANNEAL_COS, ANNEAL_LINEAR, SWA = range(11)

    @staticmethod
    def apply(buf: Buffer, op: int, a: float, b: float, x: torch.Tensor | None, y: torch.Tensor | None) -> None:
        """``buf.data[i] = eval(op, x_i, y_i)`` for every element; x None means the current lr."""
        with torch.no_grad():
            data, shadow = buf.data, buf.shadow
            if shadow is not None:
                # Continue from the exact value unless the float32 value was edited since.
                edited = data != shadow.to(torch.float32)
                cur = torch.where(edited, data.to(torch.float64), shadow)
            else:
                cur = data
            xv = cur if x is None else x
            out = DeviceExecutor._eval(op, a, b, xv, y)
            if shadow is not None:
                shadow.copy_(out)
            data.copy_(out)

    @staticmethod
    def _eval(op: int, a: float, b: float, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        E = DeviceExecutor
        if op == E.KEEP:
            return x.clone()
        if op == E.SCALE:
            return x * a
        if op == E.SCALE_EACH:
            return x * y
        if op == E.COS_ADD:
            return x + (((y - b) * a) / 2.0)
        if op == E.COS_RATIO:
            return ((x - b) * a) + b
        if op == E.COS_CLOSED:
            return (((x - b) * a) / 2.0) + b
        if op == E.CYCLIC_RISE:
            return x + (((y - x) * a) * b)
        if op == E.CYCLIC_FALL:
            return y - (((y - x) * a) * b)
        if op == E.ANNEAL_COS:
            return y + (((x - y) / 2.0) * a)
        if op == E.ANNEAL_LINEAR:
            return ((y - x) * a) + x
        if op == E.SWA:
            # A tensor divisor, not a Python float: torch's CUDA kernel divides by a host scalar as a
            # product with its reciprocal (not IEEE division; seen as a last-bit difference on an H200).
            prev = y if b == 1 else (x - (y * b)) / torch.full_like(x, 1.0 - b)
            return (y * a) + (prev * (1.0 - a))
        raise ValueError(f"unknown update op {op}")


try:
    from . import _cuda
except ImportError:  # built without a CUDA compiler
    _cuda = None

# Whether `_cuda` can launch on this machine: None until first asked (on the first CUDA tensor).
_cuda_usable: bool | None = None


def cuda_kernels() -> Any:
    """``fastlr._cuda`` when it can launch on this machine's GPUs, else None. Asked only for CUDA
    tensors (torch sees a device). The module links CUDA's runtime statically (13.0 in the wheels),
    which needs a driver at least as new (r580); under an older driver it sees no device, and fastlr
    warns once and falls back to vectorised torch ops (correct, slower)."""
    global _cuda_usable
    if _cuda is None:
        return None
    if _cuda_usable is None:
        _cuda_usable = _cuda.device_count() > 0
        if not _cuda_usable:
            import warnings

            warnings.warn(
                "fastlr._cuda sees no CUDA device although torch does (the NVIDIA driver is older than the "
                "CUDA runtime fastlr._cuda was built with): tensor lrs on CUDA are updated with torch ops "
                "instead, which is correct but slower. Update the driver, or build fastlr from source "
                "with FASTLR_CUDA=ON against your CUDA toolkit.",
                RuntimeWarning,
                stacklevel=2,
            )
    return _cuda if _cuda_usable else None

def _device_operand(buf: Buffer, role: str, raw: bytes | None) -> torch.Tensor | None:
    """`raw` (float64 bytes) on the buffer's device: the last upload for this role while unchanged."""
    if raw is None:
        return None
    hit = buf.uploads.get(role)
    if hit is not None and hit[0] == raw and hit[1].device == buf.data.device:
        return hit[1]
    host = torch.frombuffer(bytearray(raw), dtype=torch.float64)
    if buf.data.device.type == "cuda":
        # Pinned staging from torch's caching host allocator, which keeps the block until the copy
        # has run: a new upload can never overwrite values a pending copy still reads.
        dev = host.pin_memory().to(buf.data.device, non_blocking=True)
    else:
        dev = host.to(buf.data.device)
    buf.uploads[role] = (raw, dev)
    return dev


def device_apply(
    buf: Buffer, snap: torch.Tensor, op: int, a: float, b: float, x: bytes | None, y: bytes | None
) -> None:
    """Apply one engine update to a packed buffer off the CPU (called by the engine, once per buffer
    per step), then snapshot it for ``get_last_lr()``. One `_cuda` kernel launch when available,
    otherwise a fixed sequence of in-place torch ops. Never reads a value back to the host."""
    if op == DeviceExecutor.KEEP:  # nothing to compute: refresh the snapshot only
        with torch.no_grad():
            snap.copy_(buf.data)
        return
    xd = _device_operand(buf, "x", x)
    yd = _device_operand(buf, "y", y)
    data = buf.data
    kernels = cuda_kernels() if data.device.type == "cuda" else None
    if kernels is not None:
        # The kernel also writes the snapshot: one launch a buffer.
        with device_of(data):
            kernels.apply(
                op, a, b, data.data_ptr(), 0 if data.dtype == torch.float32 else 1,
                0 if buf.shadow is None else buf.shadow.data_ptr(),
                0 if xd is None else xd.data_ptr(), 0 if yd is None else yd.data_ptr(),
                data.numel(), current_stream(data), snap.data_ptr() if _FUSE_SNAPSHOT else 0,
            )
        if _FUSE_SNAPSHOT:
            return
    else:
        DeviceExecutor.apply(buf, op, a, b, xd, yd)
    with torch.no_grad():
        snap.copy_(data)


# Whether the kernel writes get_last_lr()'s snapshot itself (True), or a copy follows it (False: the
# earlier path, kept so that benchmarks/gpu_check.py can time both in one run).
_FUSE_SNAPSHOT = True

# torch's private fast paths for the current stream and device (the public calls where they are missing).
_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)
_current_device = getattr(torch._C, "_cuda_getDevice", None)
_SAME_DEVICE = contextlib.nullcontext()


def device_of(t: torch.Tensor) -> Any:
    """A context in which `t`'s CUDA device is the current one: `fastlr._cuda` launches on the current
    device (the context torch made current), so a tensor on another GPU than torch's current one (an
    optimizer on ``cuda:1`` in a process that never called ``torch.cuda.set_device``) needs it made
    current for the launch. A no-op context when it already is (the usual case, one GPU a process)."""
    idx = t.get_device()
    cur = _current_device() if _current_device is not None else torch.cuda.current_device()
    return _SAME_DEVICE if idx == cur else torch.cuda.device(idx)


def current_stream(t: torch.Tensor) -> int:
    """The handle of torch's current CUDA stream on `t`'s device, as an int. torch's private
    ``_cuda_getCurrentRawStream`` (what its compiled code calls) where it exists, which builds no
    Stream object; else the public ``torch.cuda.current_stream(device).cuda_stream``."""
    if _raw_stream is not None:
        return _raw_stream(t.get_device())
    return torch.cuda.current_stream(t.device).cuda_stream


# ------------------------------------------------------------------------------------------------
# Exact resume of float32 lrs: the float64 value behind each packed float32 lr travels in the
# scheduler's state_dict (key `_fastlr_lr64`), and is put back behind the same float32 value on load.

STATE_KEY = "_fastlr_lr64"


def exact_values(optimizer: torch.optim.Optimizer) -> list[float | None] | None:
    """Per group, the float64 value the engine continues from behind a packed float32 lr (None where
    the lr is not such a tensor, or was written since by something else); None when no group holds a
    packed float32 lr."""
    packed = optimizer.__dict__.get("_fastlr_packed", {}).get("lr")
    if packed is None or not any(b.shadow is not None for b in packed.buffers):
        return None
    groups = optimizer.param_groups
    if not packed.covers(groups):
        return None
    out: list[float | None] = [None] * len(groups)
    for i, slot in enumerate(packed.slots):
        if slot is None:
            continue
        buf = packed.buffers[slot[0]]
        if buf.shadow is None:
            continue
        v64 = float(buf.shadow[slot[1]])
        if _f32(v64) == float(buf.data[slot[1]]):
            out[i] = v64
    return out


def restore_exact_values(optimizer: torch.optim.Optimizer, values: Any) -> None:
    """Put `values` (from `exact_values`) back behind the groups' float32 lrs, where each float32 lr is
    still the rounding of its saved value. Also once more right after the optimizer's next
    ``load_state_dict`` (which puts new lr tensors in the groups), whichever of the two is loaded first."""
    if not isinstance(values, list):
        return
    _apply_exact_values(optimizer, values)
    optimizer.__dict__["_fastlr_lr64_pending"] = values
    if not optimizer.__dict__.get("_fastlr_lr64_hooked"):
        optimizer.register_load_state_dict_post_hook(_after_optimizer_load)
        optimizer.__dict__["_fastlr_lr64_hooked"] = True


def _after_optimizer_load(optimizer: torch.optim.Optimizer) -> None:
    values = optimizer.__dict__.pop("_fastlr_lr64_pending", None)
    if values is not None:
        _apply_exact_values(optimizer, values)


def _apply_exact_values(optimizer: torch.optim.Optimizer, values: list[Any]) -> None:
    groups = optimizer.param_groups
    if len(values) != len(groups):
        return
    packed = pack_groups(optimizer, "lr")
    if packed is None:
        return
    with torch.no_grad():
        for i, slot in enumerate(packed.slots):
            v = values[i]
            if slot is None or not isinstance(v, float):
                continue
            buf = packed.buffers[slot[0]]
            if buf.shadow is not None and _f32(v) == float(buf.data[slot[1]]):
                buf.shadow[slot[1]] = v


def _f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]
