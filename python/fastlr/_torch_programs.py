"""Schedule programs evaluated with vectorised torch ops: capturable mode without ``fastlr._cuda``.

A capturable scheduler evaluates one :mod:`fastlr.schedules` program per param group (and per cycled
momentum) at its device step counter. With ``fastlr._cuda`` that is one kernel launch. Without it --
a CUDA machine where the package was built without a CUDA compiler, or another accelerator -- the
same closed forms run here, as a fixed sequence of torch ops on the device:

* programs with the same structure (node kinds, parameter counts and children: the groups of one
  scheduler, which differ only in their base values) form one *class*; a class's parameters are one
  ``[programs, params]`` float64 tensor on the device, uploaded once;
* a step evaluates every node of a class for all its programs at once (branches become
  ``torch.where``, a join evaluates all its pieces and gathers the active one), and writes the values
  into the packed lr/momentum buffers with one ``index_copy_`` per (class, buffer);
* the step counter is a device tensor, read and advanced by torch ops: nothing is read back to the
  host and no host value is baked in, so the step can be captured in a CUDA graph.

The number of ops per step depends on the schedule's structure, never on the number of groups.

Values: every shape is computed in the C++ evaluator's operation order (``fastlr/shapes.hpp``), and
``cos(pi x)`` by the same polynomial (``hd::cos_pi``), so shapes made of +, -, *, /, sqrt, floor and
fmod give the C++ bits; ``pow``/``log``/``exp`` may differ by the device library's last-ulp error.
Noise and plateau nodes are refused (they need the kernel's counter-based generator, and a host
state machine).
"""

from __future__ import annotations

import math
import struct
from typing import Any, Callable, Sequence

import torch

__all__ = ["TorchPrograms", "UnsupportedProgram"]

# Node kinds (cpp/include/fastlr/program.hpp, enum class op).
CONSTANT, LINEAR, COSINE, POLYNOMIAL, EXPONENTIAL, STEP, PIECEWISE_CONSTANT, PIECEWISE_LINEAR = range(1, 9)
CYCLIC, ONECYCLE, WARM_RESTARTS, INVERSE_SQRT, WSD, PLATEAU, NOISE, JOIN, PRODUCT, SCALE, OFFSET = range(9, 20)
TRANSFORMERS = 20

_TWO52 = 4503599627370496.0
_TWO53 = 9007199254740992.0

Tensor = torch.Tensor


class UnsupportedProgram(ValueError):
    """A program has a node the torch-ops evaluator does not run (noise, plateau)."""


def _min(a: Tensor, b: Tensor) -> Tensor:  # hd::min: b < a ? b : a
    return torch.where(b < a, b, a)


def _max(a: Tensor, b: Tensor) -> Tensor:  # hd::max: a < b ? b : a
    return torch.where(a < b, b, a)


def cos_pi(x: Tensor) -> Tensor:
    """cos(pi x) as ``hd::cos_pi``: exact reduction, then the same Taylor polynomials (Estrin)."""
    x = x.abs()
    huge = ~(x < _TWO53)
    r = torch.where(huge, torch.zeros_like(x), x)
    r = r - 2.0 * ((0.5 * r + _TWO52) - _TWO52)
    r = r.abs()
    n = (2.0 * r + _TWO52) - _TWO52
    f = r - 0.5 * n
    z = f * f
    z2 = z * z
    z4 = z2 * z2
    z8 = z4 * z4
    c01 = 1.0 + (-4.934802200544679) * z
    c23 = 4.0587121264167685 + (-1.3352627688545895) * z
    c45 = 0.2353306303588932 + (-0.02580689139001406) * z
    c67 = 0.0019295743094039231 + (-0.0001046381049248457) * z
    c = (c01 + c23 * z2) + (c45 + c67 * z2) * z4 + 4.303069587032947e-06 * z8
    s01 = 3.141592653589793 + (-5.16771278004997) * z
    s23 = 2.5501640398773455 + (-0.5992645293207921) * z
    s45 = 0.08214588661112823 + (-0.0073704309457143504) * z
    s67 = 0.00046630280576761255 + (-2.1915353447830217e-05) * z
    s = ((s01 + s23 * z2) + (s45 + s67 * z2) * z4 + 7.952054001475513e-07 * z8) * f
    v = torch.where(n == 1.0, s, c)
    out = torch.where(n == 0.0, v, -v)
    return torch.where(huge, (x - x) + 1.0, out)


def _count_le(b: Tensor, t: Tensor) -> Tensor:
    """bisect_right per row of the ascending ``b`` ([k, n]) at ``t`` ([k]): an int64 [k]."""
    return (b <= t.unsqueeze(1)).sum(1)


def _col(p: Tensor, j: int) -> Tensor:
    return p[:, j]


# -- shapes (cpp/include/fastlr/shapes.hpp), p: [k, n_params], t: [k] --------------------------------


def _constant(p: Tensor, t: Tensor) -> Tensor:
    return _col(p, 0).clone()


def _linear(p: Tensor, t: Tensor) -> Tensor:
    init, end, T, extrapolate = _col(p, 0), _col(p, 1), _col(p, 2), _col(p, 3)
    on_line = (t < T) | ((extrapolate != 0.0) & (T > 0.0))
    return torch.where(on_line, init + (end - init) * (t / T), end)


def _cosine(p: Tensor, t: Tensor) -> Tensor:
    init, end, T, k, cycles, mode, expo = (_col(p, j) for j in range(7))
    r = t / T
    x = torch.where(~(T > 0.0), torch.ones_like(r), torch.where(mode == 1.0, r, _min(r, torch.ones_like(r))))
    q = torch.where(k == 1.0, x, x.pow(k))
    arg = torch.where(mode == 2.0, torch.fmod(cycles * q, 1.0), (2.0 * cycles) * q)
    c = 0.5 * (1.0 + cos_pi(arg))
    v = end + (init - end) * torch.where(expo == 1.0, c, c.pow(expo))
    return torch.where((mode == 2.0) & ~(x < 1.0), end, v)


def _polynomial(p: Tensor, t: Tensor) -> Tensor:
    init, end, T, power, k = (_col(p, j) for j in range(5))
    r = torch.where(k == 1.0, 1.0 - t / T, 1.0 - t.pow(k) / T.pow(k))
    v = end + (init - end) * torch.where(power == 1.0, r, r.pow(power))
    return torch.where(~(t < T), end, v)


def _exponential(p: Tensor, t: Tensor) -> Tensor:
    init, rate, T, stair, end, has_end = (_col(p, j) for j in range(6))
    e = t / T
    e = torch.where(stair != 0.0, torch.floor(e), e)
    v = init * rate.pow(e)
    bounded = torch.where(rate < 1.0, _max(v, end), _min(v, end))
    return torch.where(has_end != 0.0, bounded, v)


def _step(p: Tensor, t: Tensor) -> Tensor:
    return _col(p, 0) * _col(p, 1).pow(torch.floor(t / _col(p, 2)))


def _piecewise_constant(p: Tensor, t: Tensor) -> Tensor:
    n = (p.shape[1] - 2) // 2
    j = _count_le(p[:, 1 : 1 + n], t)
    return p.gather(1, (1 + n + j).unsqueeze(1)).squeeze(1)


def _piecewise_linear(p: Tensor, t: Tensor) -> Tensor:
    n = (p.shape[1] - 1) // 2
    ts, vs = p[:, 1 : 1 + n], p[:, 1 + n : 1 + 2 * n]
    if n == 1:
        return vs[:, 0].clone()
    j = _count_le(ts, t)
    jc = j.clamp(1, n - 1).unsqueeze(1)
    t0, t1 = ts.gather(1, jc - 1).squeeze(1), ts.gather(1, jc).squeeze(1)
    v0, v1 = vs.gather(1, jc - 1).squeeze(1), vs.gather(1, jc).squeeze(1)
    v = v0 + (v1 - v0) * ((t - t0) / (t1 - t0))
    return torch.where(j == 0, vs[:, 0], torch.where(j == n, vs[:, n - 1], v))


def _cyclic(p: Tensor, t: Tensor) -> Tensor:
    base, top, up, down, mode, gamma = (_col(p, j) for j in range(6))
    total = up + down
    ratio = up / total
    cycle = torch.floor(1.0 + t / total)
    x = (1.0 + t / total) - cycle
    s = torch.where(x <= ratio, x / ratio, (x - 1.0) / (ratio - 1.0))
    one = torch.ones_like(t)
    scale = torch.where(mode == 1.0, 1.0 / torch.pow(2.0, cycle - 1.0), torch.where(mode == 2.0, gamma.pow(t), one))
    return base + ((top - base) * s) * scale


def _anneal(a: Tensor, b: Tensor, f: Tensor, lin: Tensor) -> Tensor:
    return torch.where(lin, (b - a) * f + a, b + ((a - b) / 2.0) * (cos_pi(f) + 1.0))


def _onecycle(p: Tensor, t: Tensor) -> Tensor:
    top, total, pct, div, final_div, three_f, lin_f = (_col(p, j) for j in range(7))
    three, lin = three_f != 0.0, lin_f != 0.0
    initial = top / div
    low = initial / final_div
    last = total - 1.0
    t = _min(t, last)
    e1 = pct * total - 1.0
    e2 = 2.0 * pct * total - 2.0
    zero = torch.zeros_like(t)
    first = t <= e1
    second = ~first & three & (t <= e2)
    s = torch.where(first, zero, torch.where(second, e1, torch.where(three, e2, e1)))
    e = torch.where(first, e1, torch.where(second, e2, last))
    a = torch.where(first, initial, torch.where(second, top, torch.where(three, initial, top)))
    b = torch.where(first, top, torch.where(second, initial, low))
    f = torch.where(e != s, (t - s) / (e - s), torch.ones_like(t))
    return _anneal(a, b, f, lin)


def _warm_restarts(p: Tensor, t: Tensor) -> Tensor:
    top, low, T0, m, decay, limit, k, shp, lb, ub = (_col(p, j) for j in range(10))
    # t_mult == 1
    i1 = torch.floor(t / T0)
    s1 = T0 * i1
    back = s1 > t
    fwd = ~back & (T0 * (i1 + 1.0) <= t)
    i1 = torch.where(back, i1 - 1.0, torch.where(fwd, i1 + 1.0, i1))
    s1 = T0 * i1
    # t_mult != 1: the cycle from the logarithm, corrected against the cycle starts
    i = torch.floor(torch.log(1.0 + t / T0 * (m - 1.0)) / torch.log(m))
    i = torch.where(~(i >= 0.0), torch.zeros_like(i), i)
    def start(j: Tensor) -> Tensor:  # shapes.hpp's warm_restarts_start
        s = T0 * ((m.pow(j) - 1.0) / (m - 1.0))
        r = torch.floor(s + 0.5)
        return torch.where((s - r).abs() <= 8.0 * 2.220446049250313e-16 * r.abs(), r, s)

    for _ in range(4):
        down = (start(i) > t) & (i > 0.0)
        up = ~down & (start(i + 1.0) <= t)
        i = torch.where(down, i - 1.0, torch.where(up, i + 1.0, i))
    sm = start(i)
    lm = T0 * m.pow(i)
    unit = m == 1.0
    i = torch.where(unit, i1, i)
    start = torch.where(unit, s1, sm)
    length = torch.where(unit, T0, lm)
    x = (t - start) / length
    q = torch.where(k == 1.0, x, x.pow(k))
    peak = torch.where(decay == 1.0, top, top * decay.pow(i))
    wave = torch.where(shp == 1.0, 1.0 - torch.tanh(lb * (1.0 - q) + ub * q), 1.0 + cos_pi(q))
    v = low + (0.5 * (peak - low)) * wave
    return torch.where(~(i < limit), low, v)


def _inverse_sqrt(p: Tensor, t: Tensor) -> Tensor:
    return _col(p, 0) / torch.sqrt((t + _col(p, 1)) / _col(p, 1))


def _wsd(p: Tensor, t: Tensor) -> Tensor:
    init, peak, end, W, S, D, wk, dk, sk, ts, sp, dp, dr = (_col(p, j) for j in range(13))
    fw = t / W
    warm = torch.where(wk == 1.0, 0.5 * (1.0 - cos_pi(fw)), torch.where(wk == 2.0, 1.0 - torch.sqrt(1.0 - fw), fw))
    ds = W + S
    fd = (t - ds) / D
    expo = torch.where(dr == 0.5, 2.0 * torch.pow(0.5, fd) - 1.0, (dr.pow(fd) - dr) / (1.0 - dr))
    dec = torch.where(
        dk == 1.0,
        0.5 * (1.0 + cos_pi(fd)),
        torch.where(
            dk == 2.0,
            1.0 - torch.sqrt(fd),
            torch.where(dk == 3.0, expo, torch.where(dk == 4.0, 1.0 - fd.pow(dp), 1.0 - fd)),
        ),
    )
    a = torch.where(sk == 1.0, torch.full_like(sp, 0.5), sp)
    sv = torch.where(sk != 0.0, _max(peak * (1.0 + (t - W) / ts).pow(-a), end), peak)
    v = torch.where(t < ds + D, end + (sv - end) * dec, end)
    v = torch.where(t < ds, sv, v)
    return torch.where(t < W, init + (peak - init) * warm, v)


def _transformers(p: Tensor, t: Tensor) -> Tensor:
    """shapes.hpp's shape::transformers as torch ops (every variant computed, the row's selected; the
    device's cos/sqrt/pow, so within an ulp or two of transformers' host values)."""
    v, W, T, a, b, c, d, e = (_col(p, j) for j in range(8))
    pi = math.pi
    one = torch.ones_like(t)

    def nonneg(x: Tensor) -> Tensor:
        return torch.where(x > 0.0, x, torch.zeros_like(x))

    warm = t / _max(one, W)
    prog = (t - W) / _max(one, T - W)
    cos_f = 0.5 * (1.0 + torch.cos(pi * a * 2.0 * prog))
    m = torch.remainder(a * prog, 1.0)
    restarts = torch.where(prog >= 1.0, torch.zeros_like(t), nonneg(0.5 * (1.0 + torch.cos(pi * m))))
    dsteps = T - W
    pct = 1.0 - (t - W) / torch.where(dsteps == 0.0, one, dsteps)
    poly = torch.where(t > T, a / c, ((c - a) * torch.pow(pct, b) + a) / c)
    inv = 1.0 / torch.sqrt((t + (a - W)) / a)
    min_lr = nonneg(cos_f * (1.0 - b) + b)
    q7 = (t - W + 1.0) / _max(one, T - W)
    warm7 = torch.where(d != 0.0, c + (1.0 - c) * t / _max(one, W - 1.0), (t + 1.0) / _max(one, W))
    after7 = nonneg(0.5 * (1.0 + torch.cos(pi * a * 2.0 * q7)) * (1.0 - b) + b)
    # warmup_stable_decay: T is the stable length S, a the decay length D, b/c the kinds, d the ratio
    S, D, r = T, a, d
    qw = t / _max(one, W)
    fw = torch.where(b == 1.0, 0.5 * (1.0 - torch.cos(pi * qw)), torch.where(b == 2.0, 1.0 - torch.sqrt(1.0 - qw), qw))
    qd = (t - W - S) / _max(one, D)
    fd = torch.where(c == 1.0, 0.5 * (1.0 + torch.cos(pi * e * 2.0 * qd)), torch.where(c == 2.0, 1.0 - torch.sqrt(qd), 1.0 - qd))
    wsd = torch.where(t < W + S + D, nonneg(fd * (1.0 - r) + r), r)
    wsd = torch.where(t < W + S, one, wsd)
    wsd = torch.where(t < W, nonneg(fw * (1.0 - r) + r), wsd)
    after = torch.where(v == 0.0, one, nonneg((T - t) / _max(one, T - W)))
    after = torch.where(v == 2.0, nonneg(cos_f), after)
    after = torch.where(v == 3.0, restarts, after)
    after = torch.where(v == 4.0, poly, after)
    after = torch.where(v == 5.0, inv, after)
    after = torch.where(v == 6.0, min_lr, after)
    out = torch.where(t < W, warm, after)
    out = torch.where(v == 7.0, torch.where(t < W, warm7, after7), out)
    return torch.where(v == 8.0, wsd, out)


_LEAVES: dict[int, Callable[[Tensor, Tensor], Tensor]] = {
    CONSTANT: _constant,
    LINEAR: _linear,
    COSINE: _cosine,
    POLYNOMIAL: _polynomial,
    EXPONENTIAL: _exponential,
    STEP: _step,
    PIECEWISE_CONSTANT: _piecewise_constant,
    PIECEWISE_LINEAR: _piecewise_linear,
    CYCLIC: _cyclic,
    ONECYCLE: _onecycle,
    WARM_RESTARTS: _warm_restarts,
    INVERSE_SQRT: _inverse_sqrt,
    WSD: _wsd,
    TRANSFORMERS: _transformers,
}


def _parse(program: Any) -> tuple[list[tuple[int, int, int, int, int]], tuple[int, ...], tuple[float, ...]]:
    """A Program's nodes (op, first_param, n_params, first_child, n_children), children and params."""
    nb, cb, pb = program.buffers()
    nodes = [struct.unpack_from("<6I", nb, 24 * i)[:5] for i in range(len(nb) // 24)]
    children = struct.unpack(f"<{len(cb) // 4}I", cb)
    params = struct.unpack(f"<{len(pb) // 8}d", pb)
    return nodes, children, params


class _Class:
    """Programs of one structure: their parameters as one [k, P] device tensor, and destinations."""

    def __init__(self, structure: tuple[tuple[int, int, tuple[int, ...]], ...], params: list[tuple[float, ...]],
                 device: torch.device) -> None:
        self.nodes: list[tuple[int, int, int, tuple[int, ...]]] = []
        off = 0
        for op, n_params, children in structure:
            self.nodes.append((op, off, n_params, children))
            off += n_params
        self.k = len(params)
        width = max(off, 1)
        host = torch.tensor([list(p) or [0.0] for p in params], dtype=torch.float64).reshape(self.k, width)
        self.params = host.to(device)  # once, at setup
        self.writes: list[tuple[Any, Tensor, Tensor]] = []  # (Buffer, rows of this class, elements)

    def eval(self, t: Tensor) -> Tensor:
        """Every program of the class at step t (a 0-d float64 tensor): a [k] float64 tensor."""
        n = len(self.nodes)
        P = self.params
        time: list[Tensor | None] = [None] * n
        time[n - 1] = _max(t, torch.zeros_like(t)).expand(self.k)
        for i in range(n - 1, -1, -1):
            op, off, np_, children = self.nodes[i]
            ti = time[i]
            assert ti is not None
            for kk, c in enumerate(children):
                if op == JOIN and kk > 0:
                    d = ti - P[:, off + kk - 1]
                    time[c] = _max(d, torch.zeros_like(d))
                elif op == OFFSET:
                    d = ti - P[:, off]
                    time[c] = _max(d, torch.zeros_like(d))
                else:
                    time[c] = ti
        val: list[Tensor | None] = [None] * n
        for i, (op, off, np_, children) in enumerate(self.nodes):
            p = P[:, off : off + np_]
            ti = time[i]
            assert ti is not None
            if op in _LEAVES:
                val[i] = _LEAVES[op](p, ti)
            elif op == JOIN:
                pieces = torch.stack([val[c] for c in children], 1)  # type: ignore[misc]
                sel = _count_le(p, ti)
                val[i] = pieces.gather(1, sel.unsqueeze(1)).squeeze(1)
            elif op == PRODUCT:
                v = val[children[0]]
                for c in children[1:]:
                    v = v * val[c]  # type: ignore[operator]
                val[i] = v
            elif op == SCALE:
                val[i] = _col(p, 0) * val[children[0]]
            elif op == OFFSET:
                val[i] = val[children[0]]
            else:  # refused when the class was built
                raise UnsupportedProgram(f"node kind {op}")
        out = val[n - 1]
        assert out is not None
        return out


class TorchPrograms:
    """Programs evaluated with torch ops at a device counter, written into packed buffers.

    `programs[i]` is written to element `dsts[i][1]` of the packed buffer `dsts[i][0]` (a
    ``fastlr._tensor_lrs.Buffer``). All buffers must be on `device`.
    """

    def __init__(self, programs: Sequence[Any], dsts: Sequence[tuple[Any, int]], device: torch.device) -> None:
        if len(programs) != len(dsts):
            raise ValueError("one destination per program")
        by: dict[Any, list[int]] = {}
        parsed = []
        for i, prog in enumerate(programs):
            nodes, children, params = _parse(prog)
            structure = []
            for op, fp, np_, fc, nc in nodes:
                if op == NOISE:
                    raise UnsupportedProgram(
                        "noise needs fastlr._cuda's counter-based generator (this build has no fastlr._cuda)"
                    )
                if op == PLATEAU:
                    raise UnsupportedProgram("plateau nodes are stepped by a host state machine")
                structure.append((op, np_, tuple(children[fc : fc + nc])))
            key = tuple(structure)
            parsed.append(params)
            by.setdefault(key, []).append(i)
        self.device = device
        self.classes: list[_Class] = []
        for structure, members in by.items():
            cls = _Class(structure, [parsed[i] for i in members], device)
            per_buf: dict[int, tuple[Any, list[int], list[int]]] = {}
            for row, i in enumerate(members):
                buf, j = dsts[i]
                entry = per_buf.setdefault(id(buf), (buf, [], []))
                entry[1].append(row)
                entry[2].append(j)
            for buf, rows, elems in per_buf.values():
                if buf.data.device != device:
                    raise ValueError("every destination buffer must be on the programs' device")
                cls.writes.append((
                    buf,
                    torch.tensor(rows, dtype=torch.int64).to(device),
                    torch.tensor(elems, dtype=torch.int64).to(device),
                ))
            self.classes.append(cls)

    def run(self, counter: Tensor, increment: int) -> None:
        """Every program at ``counter + increment`` into its element, then ``counter += increment``:
        torch ops on the counter's device only (capturable)."""
        with torch.no_grad():
            t = (counter + increment).to(torch.float64)
            for cls in self.classes:
                values = cls.eval(t)
                for buf, rows, elems in cls.writes:
                    v = values.index_select(0, rows)
                    buf.data.index_copy_(0, elems, v.to(buf.data.dtype))
                    if buf.shadow is not None:
                        buf.shadow.index_copy_(0, elems, v)
            counter.add_(increment)
