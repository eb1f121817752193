"""``python -m fastlr demo``: fastlr beside torch on a tiny training run."""

from __future__ import annotations

from ._bench import make_optimizer, median, time_alternating


def run_demo(steps: int = 2000, groups: int = 64) -> int:
    """Train the same tiny model twice, once with torch's schedulers and once with fastlr's, and
    report whether every learning rate matched bit for bit, and the per-step scheduler cost."""
    try:
        import torch
    except ModuleNotFoundError:
        print("the demo needs PyTorch: pip install torch")
        return 1
    import warnings

    import torch.optim.lr_scheduler as tls

    import fastlr
    import fastlr.lr_scheduler as fls

    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(256, 1)

    def train(sched_mod: object) -> tuple[list[list[float]], float]:
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        # Layer-wise lr: one group per tensor, deeper layers larger.
        params = list(model.parameters())
        opt = torch.optim.AdamW(
            [{"params": [p], "lr": 1e-2 * (0.8 ** (len(params) - i))} for i, p in enumerate(params)],
            weight_decay=0.01,
        )
        warm = sched_mod.LinearLR(opt, start_factor=0.01, total_iters=steps // 10)
        decay = sched_mod.CosineAnnealingLR(opt, T_max=steps, eta_min=1e-5)
        lrs = []
        loss = torch.tensor(0.0)
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            warm.step()  # two schedulers on one optimizer: their factors compose
            decay.step()
            lrs.append([g["lr"] for g in opt.param_groups])
        return lrs, loss.detach().item()

    ref_lrs, ref_loss = train(tls)
    fast_lrs, fast_loss = train(fls)
    same = ref_lrs == fast_lrs and ref_loss == fast_loss
    print(f"fastlr {fastlr.__version__} beside torch {torch.__version__}")
    print(f"trained {steps} steps, LinearLR warm-up + CosineAnnealingLR on AdamW, {len(ref_lrs[0])} param groups")
    print(f"final loss: torch {ref_loss:.6g}, fastlr {fast_loss:.6g}")
    print(f"learning rates identical bit for bit at every step: {'yes' if same else 'NO'}")

    # Per-step scheduler cost, torch and fastlr in alternating blocks (fastlr._bench's method).
    print(f"\nscheduler.step() cost, median of 15 alternating blocks, {groups} param groups:")
    print(f"  {'scheduler':<20}{'torch us':>10}{'fastlr us':>11}{'speed-up':>10}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, kw in [
            ("CosineAnnealingLR", {"T_max": 10**9}),
            ("ExponentialLR", {"gamma": 0.9999}),
            ("StepLR", {"step_size": 30}),
        ]:
            pair = (("torch", tls), ("fastlr", fls))
            steps = {label: getattr(m, name)(make_optimizer(groups), **kw).step for label, m in pair}
            ts = time_alternating(steps, blocks=15, target_s=0.002)
            t_t, t_f = median(ts["torch"]) * 1e6, median(ts["fastlr"]) * 1e6
            print(f"  {name:<20}{t_t:>10.2f}{t_f:>11.3f}{t_t / t_f:>9.1f}x")
    return 0 if same else 1
