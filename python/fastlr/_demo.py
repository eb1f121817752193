"""``python -m fastlr demo``: fastlr beside torch on a tiny training run (a few seconds on a laptop)."""

from __future__ import annotations

import time

from ._bench import make_optimizer, median, time_alternating
from ._progress import Progress


def run_demo(steps: int = 2000, groups: int = 64) -> int:
    """Train the same tiny model twice, once with torch's schedulers and once with fastlr's, and
    report whether every learning rate matched bit for bit, and the per-step scheduler cost.

    Prints as it goes; returns 0 when every lr matched, 1 otherwise."""
    try:
        import torch
    except ModuleNotFoundError:
        print("the demo needs PyTorch: pip install torch")
        return 1
    import warnings

    import torch.optim.lr_scheduler as tls

    import fastlr
    import fastlr.lr_scheduler as fls

    if steps < 10 or groups < 1:
        print("the demo needs --steps >= 10 and --groups >= 1")
        return 2
    # A model this small runs several times faster on one thread than on many (no work to share).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        print(f"fastlr {fastlr.__version__} beside torch {torch.__version__}", flush=True)
        torch.manual_seed(0)
        x = torch.randn(256, 8)
        y = x @ torch.randn(8, 1) + 0.1 * torch.randn(256, 1)

        def train(label: str, sched_mod: object) -> tuple[list[list[float]], float]:
            torch.manual_seed(1)
            model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
            # Layer-wise lr: one group per tensor, deeper layers larger.
            params = list(model.parameters())
            opt = torch.optim.AdamW(
                [{"params": [p], "lr": 1e-2 * (0.8 ** (len(params) - i))} for i, p in enumerate(params)],
                weight_decay=0.01,
            )
            warm = sched_mod.LinearLR(opt, start_factor=0.01, total_iters=steps // 10)  # type: ignore[attr-defined]
            decay = sched_mod.CosineAnnealingLR(opt, T_max=steps, eta_min=1e-5)  # type: ignore[attr-defined]
            lrs = []
            loss = torch.tensor(0.0)
            progress = Progress(steps, what=f"training with {label}'s schedulers")
            t0 = time.perf_counter()
            for _ in range(steps):
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                opt.step()
                warm.step()  # two schedulers on one optimizer: their factors compose
                decay.step()
                lrs.append([g["lr"] for g in opt.param_groups])
                progress.show()
            progress.close()
            print(f"  {label:<6} {steps} steps in {time.perf_counter() - t0:.1f} s, final loss {loss.item():.6g}", flush=True)
            return lrs, loss.detach().item()

        print(f"training a tiny MLP {steps} steps twice (AdamW, LinearLR warm-up + CosineAnnealingLR):", flush=True)
        ref_lrs, ref_loss = train("torch", tls)
        fast_lrs, fast_loss = train("fastlr", fls)
        same = ref_lrs == fast_lrs and ref_loss == fast_loss
        print(
            f"learning rates identical bit for bit at every step, {len(ref_lrs[0])} param groups: {'yes' if same else 'NO'}",
            flush=True,
        )

        # Per-step scheduler cost, torch and fastlr in alternating blocks (fastlr._bench's method).
        print(f"\nscheduler.step() cost, median of 15 alternating blocks, {groups} param groups:", flush=True)
        print(f"  {'scheduler':<20}{'torch µs':>10}{'fastlr µs':>11}{'speed-up':>10}", flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, kw in [
                ("CosineAnnealingLR", {"T_max": 10**9}),
                ("ExponentialLR", {"gamma": 0.9999}),
                ("StepLR", {"step_size": 30}),
            ]:
                pair = (("torch", tls), ("fastlr", fls))
                fns = {label: getattr(m, name)(make_optimizer(groups), **kw).step for label, m in pair}
                ts = time_alternating(fns, blocks=15, target_s=0.002)
                t_t, t_f = median(ts["torch"]) * 1e6, median(ts["fastlr"]) * 1e6
                print(f"  {name:<20}{t_t:>10.2f}{t_f:>11.3f}{t_t / t_f:>9.1f}x", flush=True)
        return 0 if same else 1
    finally:
        torch.set_num_threads(threads)
