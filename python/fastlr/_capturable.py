"""Capturable mode: schedules stepped on the device, inside CUDA graphs.

With ``capturable=True`` a scheduler keeps its step counter in a device tensor. Each ``step()``
enqueues one launch that evaluates every group's lr (and momentum/beta1) from the class's closed form
at ``counter + 1``, writes them in place into the groups' (packed) tensors and advances the counter.
Nothing is read back to the host and no host value is baked into the work, so ``scheduler.step()`` can
be captured in ``torch.cuda.graph`` beside ``optimizer.step()`` and every replay advances the schedule.

The closed forms are :mod:`fastlr.schedules` programs (one per group), evaluated by the same C++
function on the host and in the CUDA kernel (``fastlr/program.hpp``):

* CUDA tensors: one ``fastlr._cuda`` kernel launch per step, on torch's current stream;
* CPU tensors: the same evaluator in C++, writing the tensors' memory (no torch op);
* CUDA without ``fastlr._cuda`` (built without a CUDA compiler) and other devices: the same closed
  forms as a fixed sequence of vectorised torch ops (:mod:`fastlr._torch_programs`), as many ops
  whatever the group count, also capturable. ``FORCE_TORCH_OPS`` routes CPU and CUDA there too.

Values are the closed forms of torch's schedules; for classes whose torch ``step()`` runs a chainable
recurrence they differ from it by rounding only (about 1e-13 relative), as ``step(epoch)`` does in
torch. The host-side ``last_epoch``/``_step_count`` follow ``step()`` calls; graph replays advance only
the device counter, so :meth:`state_dict` and ``get_last_lr()`` read the device (a synchronisation).
"""

from __future__ import annotations

import struct
import weakref
from typing import Any

import torch

from . import _core, _tensor_lrs, _torch_programs
from . import schedules as S

__all__ = ["Capture", "closed_form_schedules"]

#: Evaluate capturable steps with torch ops (`fastlr._torch_programs`) on every device, instead of the
#: C++ evaluator on CPU tensors and the `_cuda` kernel on CUDA (tests and benchmarks compare them).
#: Read when a scheduler enters capturable mode.
FORCE_TORCH_OPS = False


class CapturableError(ValueError):
    """A scheduler (or its optimizer) cannot run in capturable mode; the message says why."""


def _f(x: Any, what: str) -> float:
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise CapturableError(f"{what} must be a number or a one-element tensor")
        x = x.detach().cpu().item()
    return float(x)


def _anneal(start: float, end: float, steps: float, cosine: bool) -> S.Schedule:
    return S.cosine(start, steps, end_value=end) if cosine else S.linear(start, end, steps)


def _anneal_past_end(start: float, end: float, steps: float, cosine: bool) -> S.Schedule:
    """`_anneal` continued past `steps`, as torch's OneCycleLR does at its last step (pct > 1)."""
    if cosine:
        return S.cosine(start, steps, end_value=end, extrapolate=True)
    return S.linear(start, end, steps, extrapolate=True)


def closed_form_schedules(sched: Any) -> tuple[list[S.Schedule], list[S.Schedule] | None]:
    """The closed form of `sched` (a fastlr drop-in scheduler) as one absolute schedule per group,
    and per-group momentum/beta1 schedules where the class cycles them (else None)."""
    declaring = next((c for c in type(sched).__mro__ if c.__dict__.get("_fastlr_kind")), type(sched))
    name = declaring.__name__
    if any(c.__name__ == "ScheduledLR" and c.__module__ == "fastlr._scheduled" for c in type(sched).__mro__):
        bases = [_f(b, "base lr") for b in sched.base_lrs]
        lrs = [S.scale(s, b) if sched.mode == "multiplier" else s for s, b in zip(sched.schedules, bases)]
        mom = sched._fastlr_momentum
        return lrs, None if mom is None else [mom.unique[k] for k in mom.index]
    groups = sched.optimizer.param_groups
    bases = [_f(b, "base lr") for b in sched.base_lrs] if hasattr(sched, "base_lrs") else []
    momentum: list[S.Schedule] | None = None
    if name == "StepLR":
        lrs = [S.step(b, sched.step_size, float(sched.gamma)) for b in bases]
    elif name == "MultiStepLR":
        ms = sorted(sched.milestones.elements())
        lrs = [S.multistep(b, ms, float(sched.gamma)) if ms else S.constant(b) for b in bases]
    elif name == "ConstantLR":
        f, T = float(sched.factor), sched.total_iters
        lrs = [S.piecewise_constant([T], [b * f, b]) if T > 0 else S.constant(b) for b in bases]
    elif name == "LinearLR":
        s, e, T = float(sched.start_factor), float(sched.end_factor), sched.total_iters
        if T <= 0:
            raise CapturableError("LinearLR with total_iters <= 0 has no closed form (torch divides by zero)")
        lrs = [S.linear(b * s, b * e, T) for b in bases]
    elif name == "ExponentialLR":
        lrs = [S.exponential(b, float(sched.gamma)) for b in bases]
    elif name == "PolynomialLR":
        if sched.total_iters <= 0:
            raise CapturableError("PolynomialLR with total_iters <= 0 has no closed form")
        lrs = [S.polynomial(b, 0.0, sched.total_iters, float(sched.power)) for b in bases]
    elif name == "CosineAnnealingLR":
        lrs = [S.cosine(b, sched.T_max, end_value=float(sched.eta_min), extrapolate=True) for b in bases]
    elif name == "CosineAnnealingWarmRestarts":
        lrs = [S.warm_restarts(b, sched.T_0, min_value=float(sched.eta_min), t_mult=float(sched.T_mult)) for b in bases]
    elif name == "SWALR":
        A = sched.anneal_epochs
        cosine = sched._anneal_strategy == "cos"
        lrs = []
        for g in groups:
            start, swa = _f(g["lr"], "lr"), _f(g["swa_lr"], "swa_lr")
            lrs.append(S.constant(swa) if A == 0 else _anneal(start, swa, A, cosine))
    elif name == "CyclicLR":
        if sched._scale_fn_custom is not None:
            raise CapturableError("CyclicLR with a custom scale_fn cannot run capturable (a Python function)")
        up = sched.total_size * sched.step_ratio
        down = sched.total_size - up
        lrs = [
            S.cyclic(_f(b, "base_lr"), _f(m, "max_lr"), up, down, mode=sched.mode, gamma=float(sched.gamma))
            for b, m in zip(bases, sched.max_lrs)
        ]
        if sched.cycle_momentum:
            momentum = [
                S.cyclic(_f(mx, "max_momentum"), _f(bm, "base_momentum"), up, down, mode=sched.mode, gamma=float(sched.gamma))
                for bm, mx in zip(sched.base_momentums, sched.max_momentums)
            ]
    elif name == "OneCycleLR":
        cosine = sched._anneal_func_type == "cos"
        phases = sched._schedule_phases
        lrs, momentum = [], [] if sched.cycle_momentum else None
        for g in groups:
            for keys, out in ((("start_lr", "end_lr"), lrs), (("start_momentum", "end_momentum"), momentum)):
                if out is None:
                    continue
                pieces, bounds, start = [], [], 0.0
                for i, ph in enumerate(phases):
                    end = float(ph["end_step"])
                    a, b = _f(g[ph[keys[0]]], keys[0]), _f(g[ph[keys[1]]], keys[1])
                    if end - start <= 0:
                        raise CapturableError("OneCycleLR with an empty phase has no closed form")
                    if i == len(phases) - 1:
                        # torch steps once past the last phase's end (last_epoch == total_steps, whose
                        # end_step is total_steps - 1) and continues its anneal there: pct > 1.
                        pieces.append(_anneal_past_end(a, b, end - start, cosine))
                    else:
                        pieces.append(_anneal(a, b, end - start, cosine))
                    if i:
                        bounds.append(start)
                    start = end
                out.append(S.join(pieces, bounds) if len(pieces) > 1 else pieces[0])
    else:
        raise CapturableError(
            f"{name} cannot run capturable: "
            + (
                "its lr comes from a Python lambda; use fastlr.lr_scheduler.ScheduledLR with a fastlr.schedules schedule"
                if name in ("LambdaLR", "MultiplicativeLR")
                else "it has no closed form"
            )
        )
    return lrs, momentum


def _element_addresses(packed: _tensor_lrs.Packed, n: int, what: str) -> tuple[list[tuple[int, int]], torch.device]:
    out, devices = [], set()
    for i in range(n):
        slot = packed.slots[i]
        if packed.foreign[i] is not None:
            raise CapturableError(
                f"capturable=True: group {i}'s {what} tensor is also held by another optimizer's group, and that "
                "optimizer packed it; give each optimizer lr tensors of its own"
            )
        if slot is None:
            raise CapturableError(f"capturable=True needs every group's {what} to be a 0-d float tensor")
        b, j = slot
        buf = packed.buffers[b]
        out.append((buf.data.data_ptr() + j * buf.data.element_size(), 1 if buf.data.dtype == torch.float64 else 0))
        devices.add(buf.data.device)
    if len(devices) != 1:
        raise CapturableError(f"capturable=True needs every group's {what} on one device, got {sorted(map(str, devices))}")
    return out, devices.pop()


def _refuse_inside_capture(device: torch.device) -> None:
    if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
        raise CapturableError(
            "the optimizer's param groups changed (optimizer.load_state_dict, add_param_group, or a group's "
            "lr/momentum replaced) since this capturable scheduler packed them, and a CUDA graph is being "
            "captured: step the scheduler once outside of capture after such a change, then capture again "
            "(a graph captured before the change writes the tensors the optimizer no longer reads)"
        )


class Capture:
    """The device side of one capturable scheduler: its counter, programs and destinations.

    The destinations are the addresses of the groups' packed tensors. Whatever replaces those tensors
    (``optimizer.load_state_dict``, which every trainer's resume calls; ``add_param_group``; assigning
    ``group["lr"]``; a new ``param_groups`` list) is noticed on the next ``step()`` by a
    :class:`fastlr._core.GroupWatch` (one load per group while no group dict was assigned to), and the
    groups are packed again before anything is written. A graph captured before such a change still
    writes the old tensors when replayed: capture it again (see `_refuse_inside_capture`).
    """

    def __init__(
        self,
        sched: Any,
        counter: torch.Tensor | None = None,
        forms: tuple[list[S.Schedule], list[S.Schedule] | None] | None = None,
    ) -> None:
        opt = sched.optimizer
        n = len(opt.param_groups)
        # The closed forms are taken once, when the scheduler enters capturable mode (SWALR anneals from
        # the lrs of that moment, as torch's recurrence does); packing again after the groups' tensors
        # were replaced keeps them (`forms`), unless groups were added.
        if forms is not None and len(forms[0]) == n:
            lrs, momentum = forms
        else:
            lrs, momentum = closed_form_schedules(sched)
            if forms is not None and len(forms[0]) < n:  # groups added: theirs are new, the others kept
                k = len(forms[0])
                lrs = forms[0] + lrs[k:]
                if momentum is not None and forms[1] is not None:
                    momentum = forms[1] + momentum[k:]
        self.forms = (lrs, momentum)
        packed = _tensor_lrs.pack_groups(opt, "lr")
        if packed is None:
            raise CapturableError(
                "capturable=True needs tensor learning rates: build the optimizer with lr=torch.tensor(...) "
                "(as fused/capturable optimizers and torch.compile take them)"
            )
        dsts, device = _element_addresses(packed, n, "lr")
        programs = [s._sync() for s in lrs]
        self.momentum_key: str | None = None
        if momentum is not None:
            key = "beta1" if getattr(sched, "use_beta1", False) or getattr(sched, "momentum_key", None) == "betas" else "momentum"
            mp = _tensor_lrs.pack_groups(opt, key)
            if mp is None:
                raise CapturableError(
                    f"capturable=True with cycle_momentum needs tensor {'betas' if key == 'beta1' else 'momentum'}: "
                    "pass max_momentum/base_momentum as tensors, or cycle_momentum=False"
                )
            mdst, mdev = _element_addresses(mp, n, key)
            if mdev != device:
                raise CapturableError("lrs and momentum must be on the same device")
            dsts += mdst
            programs += [s._sync() for s in momentum]
            self.momentum_key = key
        self.packed = packed
        self.schedules = lrs + (momentum or [])
        # Groups that share one tensor (one element): only the last one's program writes it, as torch's
        # fill_ calls in group order leave the last group's value (and a kernel must not race on it).
        last = {dst: k for k, dst in enumerate(dsts)}
        keep = sorted(last.values())
        self.programs = [programs[k] for k in keep]
        self.dsts = [dsts[k] for k in keep]
        self.kept = keep  # indices into groups (then momentum groups, offset by n) of the programs run
        self.device = device
        if counter is not None and counter.device == device:
            self.counter = counter  # the same tensor: graphs and the host keep reading it
        else:
            self.counter = torch.tensor(int(sched.last_epoch), dtype=torch.int64, device=device)
        self._sched = weakref.ref(sched)
        self.watch = _core.GroupWatch(opt.param_groups, ["lr"] + ([self.momentum_key] if self.momentum_key else []))
        self._cuda_arrays: tuple[torch.Tensor, ...] | None = None
        self._torch_ops: _torch_programs.TorchPrograms | None = None
        # fastlr._cuda where it is built and can launch here (`_tensor_lrs.cuda_kernels`), else None.
        self._kernels = _tensor_lrs.cuda_kernels() if device.type == "cuda" else None
        if FORCE_TORCH_OPS or (device.type == "cuda" and self._kernels is None) or device.type not in ("cpu", "cuda"):
            # The packed element of each program: (Buffer, index).
            slots = [packed.slots[i] for i in range(n)]
            if self.momentum_key is not None:
                slots += [mp.slots[i] for i in range(n)]
            owners = [packed] * n + ([mp] * n if self.momentum_key is not None else [])
            elements = [(o.buffers[s[0]], s[1]) for o, s in zip(owners, slots)]  # type: ignore[index]
            elements = [elements[k] for k in keep]
            try:
                self._torch_ops = _torch_programs.TorchPrograms(programs, elements, device)
            except _torch_programs.UnsupportedProgram as e:
                raise CapturableError(f"capturable=True on {device.type} without fastlr._cuda: {e}") from None
        elif device.type == "cuda":
            self._cuda_arrays = self._device_arrays()
        self.dirty = True  # `_last_lr` is read from the tensors when asked

    def _device_arrays(self) -> tuple[torch.Tensor, ...]:
        """The programs' arrays and the entries (kernels.hpp: program_entry) on the device, once."""
        nodes, children, params, entries = [], [], [], bytearray()
        n_off = c_off = p_off = 0
        for prog, (addr, f64) in zip(self.programs, self.dsts):
            nb, cb, pb = prog.buffers()
            nodes.append(nb)
            children.append(cb)
            params.append(pb)
            entries += struct.pack("<IIIIQII", n_off, c_off, p_off, len(prog), addr, f64, 0)
            n_off += len(prog)
            c_off += len(cb) // 4
            p_off += len(pb) // 8
        assert self._kernels is not None and len(entries) == self._kernels.PROGRAM_ENTRY_SIZE * len(self.programs)

        def dev(raw: bytes) -> torch.Tensor:
            host = torch.frombuffer(bytearray(raw) or bytearray(8), dtype=torch.uint8)
            return host.to(self.device)  # once, at setup (never inside a captured step)

        return dev(b"".join(nodes)), dev(b"".join(children)), dev(b"".join(params)), dev(bytes(entries))

    def ensure_current(self) -> None:
        """Pack the groups again if what they hold was replaced since (see the class docstring)."""
        sched = self._sched()
        if sched is None or self.watch.unchanged(sched.optimizer.param_groups):
            return
        _refuse_inside_capture(self.device)
        self.__init__(sched, counter=self.counter, forms=self.forms)  # type: ignore[misc]

    def run(self, increment: int) -> None:
        """Enqueue one step: every program at counter + increment, then counter += increment."""
        self.ensure_current()
        if self._torch_ops is not None:
            self._torch_ops.run(self.counter, increment)
        elif self._cuda_arrays is not None:
            nodes, children, params, entries = self._cuda_arrays
            with _tensor_lrs.device_of(self.counter):
                self._kernels.run_programs(
                    nodes.data_ptr(), children.data_ptr(), params.data_ptr(), entries.data_ptr(),
                    len(self.programs), self.counter.data_ptr(), increment, _tensor_lrs.current_stream(self.counter),
                )
        else:
            _core.capturable_step(self.programs, self.dsts, self.counter.data_ptr(), increment)
        self.dirty = True

    def update(self, epoch: int | None) -> None:
        """torch's _update_lr: the next step (epoch None), or the closed form at `epoch`."""
        if epoch is None:
            self.run(1)
            return
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"capturable schedulers step to integer epochs >= 0, got {epoch!r}")
        self.counter.fill_(epoch)
        self.run(0)

    def value(self) -> int:
        """The device counter (a synchronisation on CUDA)."""
        return int(self.counter.item())

    def last_lr(self, groups: list[dict[str, Any]]) -> list[torch.Tensor]:
        return [g["lr"].detach().clone() for g in groups]


def warm_restarts_counters(T_0: int, T_mult: int, epoch: int) -> tuple[int, int]:
    """CosineAnnealingWarmRestarts' (T_cur, T_i) after `epoch` plain steps from the start."""
    if epoch <= 0:
        return epoch, T_0
    if T_mult == 1:
        return epoch % T_0, T_0
    T_cur, T_i = epoch, T_0  # whole cycles first (a plain step wraps at most once per call)
    while T_cur >= T_i:
        T_cur -= T_i
        T_i *= T_mult
    return T_cur, T_i


class PlateauCapture:
    """ReduceLROnPlateau on the device: the metric is a device tensor, and ``best``,
    ``num_bad_epochs`` and ``cooldown_counter`` live in device tensors; one fixed sequence of torch ops
    per step (``torch.where`` instead of branches), nothing read back to the host."""

    def __init__(self, sched: Any) -> None:
        opt = sched.optimizer
        packed = _tensor_lrs.pack_groups(opt, "lr")
        if packed is None:
            raise CapturableError("capturable=True needs tensor learning rates (lr=torch.tensor(...))")
        _, device = _element_addresses(packed, len(opt.param_groups), "lr")
        self.packed = packed
        self.device = device
        self.best = torch.tensor(float(sched.best), dtype=torch.float64, device=device)
        self.num_bad = torch.tensor(int(sched.num_bad_epochs), dtype=torch.int64, device=device)
        self.cooldown_counter = torch.tensor(int(sched.cooldown_counter), dtype=torch.int64, device=device)
        self.epoch = torch.tensor(int(sched.last_epoch), dtype=torch.int64, device=device)
        self.watch = _core.GroupWatch(opt.param_groups, ["lr"])
        self.min_lrs = [
            torch.tensor([float(sched.min_lrs[i]) for i, _ in b.members], dtype=torch.float64, device=device)
            for b in packed.buffers
        ]
        if packed.aliased:
            # torch reduces a shared tensor once per group holding it, each time from the value the
            # group before left: a sequence of reductions the fixed device program does not express.
            raise CapturableError(
                "capturable ReduceLROnPlateau needs each group's lr tensor to be its own (two groups share one)"
            )
        self.dirty = True

    def ensure_current(self, sched: Any) -> None:
        """Pack the groups again if their lr tensors were replaced (the device state is kept)."""
        opt = sched.optimizer
        if self.watch.unchanged(opt.param_groups):
            return
        _refuse_inside_capture(self.device)
        packed = _tensor_lrs.pack_groups(opt, "lr")
        if packed is None:
            raise CapturableError("capturable=True needs tensor learning rates (lr=torch.tensor(...))")
        _, device = _element_addresses(packed, len(opt.param_groups), "lr")
        if device != self.device or packed.aliased:
            raise CapturableError("capturable ReduceLROnPlateau: the groups' new lr tensors are on another device or shared")
        self.packed = packed
        self.min_lrs = [
            torch.tensor([float(sched.min_lrs[i]) for i, _ in b.members], dtype=torch.float64, device=device)
            for b in packed.buffers
        ]
        self.watch.take(opt.param_groups)

    def step(self, sched: Any, metrics: Any) -> None:
        self.ensure_current(sched)
        with torch.no_grad():
            m = metrics.detach().to(self.device, torch.float64) if isinstance(metrics, torch.Tensor) else torch.tensor(
                float(metrics), dtype=torch.float64, device=self.device
            )
            thr = float(sched.threshold)
            if sched.mode == "min" and sched.threshold_mode == "rel":
                better = m < self.best * (1.0 - thr)
            elif sched.mode == "min" and sched.threshold_mode == "abs":
                better = m < self.best - thr
            elif sched.mode == "max" and sched.threshold_mode == "rel":
                better = m > self.best * (thr + 1.0)
            else:
                better = m > self.best + thr
            self.best.copy_(torch.where(better, m, self.best))
            num_bad = torch.where(better, torch.zeros_like(self.num_bad), self.num_bad + 1)
            in_cooldown = self.cooldown_counter > 0
            self.cooldown_counter.copy_(torch.where(in_cooldown, self.cooldown_counter - 1, self.cooldown_counter))
            num_bad = torch.where(in_cooldown, torch.zeros_like(num_bad), num_bad)
            reduce = num_bad > sched.patience
            factor, eps = float(sched.factor), float(sched.eps)
            for buf, min_lr in zip(self.packed.buffers, self.min_lrs):
                old = buf.data.to(torch.float64)
                new = torch.maximum(old * factor, min_lr)
                write = reduce & ((old - new) > eps)
                buf.data.copy_(torch.where(write, new, old))
                if buf.shadow is not None:
                    buf.shadow.copy_(buf.data)
            self.cooldown_counter.copy_(torch.where(reduce, torch.full_like(self.cooldown_counter, int(sched.cooldown)), self.cooldown_counter))
            self.num_bad.copy_(torch.where(reduce, torch.zeros_like(num_bad), num_bad))
            self.epoch.add_(1)
        self.dirty = True

    def sync(self, sched: Any) -> None:
        """Copy the device state into the scheduler's attributes (a synchronisation)."""
        d = sched.__dict__
        d["best"] = float(self.best.item())
        d["num_bad_epochs"] = int(self.num_bad.item())
        d["cooldown_counter"] = int(self.cooldown_counter.item())
        d["last_epoch"] = int(self.epoch.item())

    def load(self, sched: Any) -> None:
        with torch.no_grad():
            self.best.fill_(float(sched.best))
            self.num_bad.fill_(int(sched.num_bad_epochs))
            self.cooldown_counter.fill_(int(sched.cooldown_counter))
            self.epoch.fill_(int(sched.last_epoch))
