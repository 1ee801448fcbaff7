"""Diffusion solvers side by side: our DPS vs deepinv's, DDS vs DPS, RED-Diff memory, overhead.

    python benchmarks/diffusion.py            # full: DPS with 1000 steps (slow on CPU)
    python benchmarks/diffusion.py --quick    # DPS with 100 steps, smaller image
    python benchmarks/diffusion.py --vs-deepinv   # native DDRM/DiffPIR vs deepinv's only

Everything uses the same network, operator (Gaussian blur, std 1.5 px, σ_y = 0.01), image
(the held-out ``camera``) and generator seeds. The network is a shipped diffusion prior from
``restorekit/weights`` when one exists (or ``--weights DIR``), otherwise a randomly
initialised attention-free UNet: then timings and memory are meaningful but PSNRs are not,
and the report says so. A second table measures accuracy where it is known exactly: the
Gaussian oracle (``GaussianPrior``), whose posterior mean is closed form.

Memory on CPU: the bytes autograd saves for backward, tracked with
``torch.autograd.graph.saved_tensors_hooks`` (peak over the run); on GPU also
``torch.cuda.max_memory_allocated``. Overhead = wall time / (nfe × one network call), the call
being a forward (DDS, RED-Diff) or a forward + backward (DPS, MCG) at the same batch and size.
Results go to stdout and ``benchmarks/diffusion_results.md``.
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import statistics
import time

import torch

import restorekit as rk
from restorekit.priors import DiffusionPrior, GaussianPrior
from restorekit.priors.diffusion import conv_unet
from restorekit.priors.schedule import linear_alphas_cumprod
from restorekit.solvers.deepinv_adapter import run_deepinv

HERE = os.path.dirname(os.path.abspath(__file__))


def find_weights(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    root = os.path.join(os.path.dirname(HERE), "restorekit", "weights")
    found = sorted(
        d
        for d in glob.glob(os.path.join(root, "*"))
        if os.path.isdir(os.path.join(d, "unet")) and os.path.isdir(os.path.join(d, "scheduler"))
    )
    return found[0] if found else None


def load_prior(weights: str | None, device) -> tuple[DiffusionPrior, str]:
    if weights:
        prior = DiffusionPrior.from_pretrained(weights, device=device)
        label = f"shipped `{os.path.relpath(weights, os.path.dirname(HERE))}`"
    else:
        torch.manual_seed(0)  # benchmark script: a reproducible random network
        prior = DiffusionPrior(conv_unet(1, (32, 64, 64)).to(device), linear_alphas_cumprod())
        label = "random-init UNet (no shipped weights found): PSNRs are meaningless"
    params = sum(p.numel() for p in prior.unet.parameters())
    return prior, f"{label}, {params / 1e6:.2f} M parameters"


def blur_operator(shape, sigma_y: float, device, dtype=torch.float32):
    import deepinv as dinv
    from deepinv.physics.functional.blur import gaussian_blur

    return dinv.physics.BlurFFT(
        img_size=shape,
        filter=gaussian_blur(sigma=(1.5, 1.5)).to(dtype),
        noise_model=dinv.physics.GaussianNoise(sigma_y),
        device=device,
    )


class SavedBytes:
    """Peak bytes held by autograd for backward, via saved_tensors_hooks."""

    def __init__(self):
        self.live = self.peak = 0
        tracker = self

        class Handle:
            def __init__(self, t):
                self.t, self.n = t, t.numel() * t.element_size()
                tracker.live += self.n
                tracker.peak = max(tracker.peak, tracker.live)

            def __del__(self):
                tracker.live -= self.n

        self.hooks = torch.autograd.graph.saved_tensors_hooks(Handle, lambda h: h.t)

    def __enter__(self):
        self.hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self.hooks.__exit__(*exc)


def time_network(prior, shape, device, backward: bool, repeats: int = 5) -> float:
    u = torch.randn(shape, device=device, generator=torch.Generator(device=device).manual_seed(0))
    times = []
    for k in range(repeats + 1):
        start = time.perf_counter()
        if backward:
            v = u.clone().requires_grad_(True)
            torch.autograd.grad(prior.model_eps(v, 500).square().sum(), v)
        else:
            with torch.no_grad():
                prior.model_eps(u, 500)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if k:  # the first call warms up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(name, y, op, prior, x, device, steps, **params):
    """One solver run with peak memory; ours by name, deepinv's as 'deepinv-<method>'."""
    gen = torch.Generator(device=device).manual_seed(0)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with SavedBytes() as mem:
        if name.startswith("deepinv-"):
            res = run_deepinv(name[len("deepinv-") :], y, op, prior, steps, generator=gen, **params)
        else:
            res = rk.solve(y, op, prior, name, steps=steps, generator=gen, **params)
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    psnr = rk.metrics.psnr(res.x.clamp(0, 1), x).mean().item()
    return dict(seconds=res.seconds, nfe=res.nfe, psnr=psnr, saved_mb=mem.peak / 2**20, gpu_mb=gpu)


def native_vs_deepinv(
    device,
    size: int,
    out: str,
    repeats: int = 4,
    solvers: tuple[str, ...] = ("ddrm", "diffpir"),
    timing_runs: int = 3,
) -> None:
    """Our DDRM and DiffPIR against deepinv's on the same prior (the shipped ``diffusion-gray``),
    operator, measurement, step count and settings: every HELD_OUT image in gray at ``size``²,
    periodic Gaussian blur (std 2 px) and random 50% inpainting, σ_y = 0.01. Each image is
    repeated ``repeats`` times in one batch (independent samples: one sample's PSNR varies by
    more than the 0.1 dB compared), PSNR is the mean over the batch (clipped to [0, 1]).

    Time: the two sides run alternately ``timing_runs`` times (same seed, so the same result
    each time) and each side's fastest run is reported, so a burst of load from another process
    does not decide the ratio (both are dominated by the same network calls).

    Settings: DDRM at η = 0.85, η_b = 1 on both sides; DiffPIR at our per-operator defaults (λ = 7,
    ζ from :attr:`~restorekit.solvers.diffpir.DiffPIR.TASKS`: 1 for deblurring, 0.3 for
    inpainting), given to deepinv as the same numbers. deepinv's data step is prox_{γf} with
    f = ½‖Ax − y‖² and γ = 1/(2ρ_t), i.e. argmin ‖Ax − y‖² + 2ρ_t‖x − x̂0‖², twice the paper's
    (and our) ρ_t; so deepinv's ``lambda_`` is half of ours for the same algorithm.

    Only the ``solvers`` named are run; the rows of the others are carried over from ``out``
    (an earlier run) and the report says so."""
    from restorekit.operators import make
    from restorekit.solvers.diffpir import DiffPIR

    prior = rk.priors.load("diffusion-gray", device=device)
    x = rk.data.held_out(size, device=device).repeat(repeats, 1, 1, 1)
    # (solver, steps): DDRM at its default 20 steps, DiffPIR at its default 100 and the 20 its
    # authors use for noiseless inpainting
    pairs = [p for p in [("ddrm", 20), ("diffpir", 100), ("diffpir", 20)] if p[0] in solvers]
    earlier = []
    if os.path.exists(out):
        with open(out) as f:
            earlier = [
                line.rstrip("\n")
                for line in f
                if line.startswith("| ")
                and line.split(" | ")[1:2]
                and line.split(" | ")[1] not in solvers
                and line.split(" | ")[1] in ("ddrm", "diffpir")
            ]
    lines = [
        "| operator | solver | steps | settings | ours PSNR (dB) | deepinv PSNR (dB) | Δ (dB) | ours (s) | "
        "deepinv (s) | time ratio | nfe (ours / deepinv) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for op_name in ("gaussian-blur", "inpainting-random"):
        op = make(
            op_name,
            size,
            1,
            noise_sigma=0.01,
            generator=torch.Generator(device).manual_seed(0),
            device=device,
        )
        y = op(x)
        for name, steps in pairs:
            if name == "ddrm":
                ours_params, their_params = {}, {"eta": 0.85, "etab": 1.0}
                label = "η 0.85, η_b 1"
            else:
                zeta = DiffPIR().zeta_for(op)
                ours_params, their_params = {"zeta": zeta}, {"zeta": zeta, "lambda_": 3.5}
                label = f"λ 7, ζ {zeta:g}"
            runs = [
                (
                    run(name, y, op, prior, x, device, steps, **ours_params),
                    run(f"deepinv-{name}", y, op, prior, x, device, steps, **their_params),
                )
                for _ in range(timing_runs)
            ]
            ours, theirs = runs[0]
            t_ours = min(r[0]["seconds"] for r in runs)
            t_theirs = min(r[1]["seconds"] for r in runs)
            lines.append(
                f"| {op_name} | {name} | {steps} | {label} | {ours['psnr']:.2f} | {theirs['psnr']:.2f} | "
                f"{ours['psnr'] - theirs['psnr']:+.2f} | {t_ours:.1f} | "
                f"{t_theirs:.1f} | {t_ours / t_theirs:.2f} | "
                f"{ours['nfe']} / {theirs['nfe']} |"
            )
            print(lines[-1], flush=True)
    carried = sorted({line.split(" | ")[1] for line in earlier})
    lines += earlier
    text = "\n".join(
        [
            "# Native DDRM and DiffPIR vs deepinv's",
            "",
            f"Generated by `python benchmarks/diffusion.py --vs-deepinv` on "
            f"{platform.processor() or platform.machine()}, device {device}, {torch.get_num_threads()} "
            f"thread(s), torch {torch.__version__}, load average {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} cores at the end.",
            "",
            f"Prior: shipped `diffusion-gray`. Images: HELD_OUT {', '.join(rk.data.HELD_OUT)} (gray, "
            f"{size}²), each {repeats} times in one batch (independent samples). σ_y = 0.01. deepinv runs through "
            "`restorekit.solvers.deepinv_adapter` (our prior as its denoiser), with the same η/η_b "
            "(DDRM) and λ/ζ (DiffPIR at our per-operator defaults; deepinv's λ is half ours for the "
            f"same data step, see `native_vs_deepinv`) and step count. Times: the fastest of "
            f"{timing_runs} alternating runs per side.",
            *(
                [f"Rows for {', '.join(carried)} are carried over from an earlier run (`--solvers`)."]
                if carried
                else []
            ),
            "",
            *lines,
            "",
        ]
    )
    with open(out, "w") as f:
        f.write(text)
    print(f"wrote {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="DPS with 100 steps at 32x32")
    ap.add_argument("--size", type=int, default=None, help="image side (default 64, quick 32)")
    ap.add_argument("--dps-steps", type=int, default=None, help="DPS/MCG steps (default 1000, quick 100)")
    ap.add_argument("--weights", default=None, help="a saved diffusion pipeline directory")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU")
    ap.add_argument(
        "--out",
        default=None,
        help="report path (default benchmarks/diffusion_results.md, with --vs-deepinv "
        "benchmarks/diffusion_native_results.md)",
    )
    ap.add_argument(
        "--vs-deepinv",
        action="store_true",
        help="only compare native DDRM/DiffPIR with deepinv's (HELD_OUT, diffusion-gray)",
    )
    ap.add_argument(
        "--solvers",
        default="ddrm,diffpir",
        help="with --vs-deepinv: comma-separated subset of ddrm,diffpir to run (others' rows kept)",
    )
    ap.add_argument("--repeats", type=int, default=4, help="with --vs-deepinv: copies of each image")
    ap.add_argument(
        "--timing-runs",
        type=int,
        default=3,
        help="with --vs-deepinv: alternating runs per side (fastest kept)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.vs_deepinv:
        native_vs_deepinv(
            device,
            args.size or 64,
            args.out or os.path.join(HERE, "diffusion_native_results.md"),
            repeats=args.repeats,
            solvers=tuple(args.solvers.split(",")),
            timing_runs=args.timing_runs,
        )
        return
    size = args.size or (32 if args.quick else 64)
    dps_steps = args.dps_steps or (100 if args.quick else 1000)

    prior, prior_label = load_prior(find_weights(args.weights), device)
    x = rk.data.load_image("camera", size=size, color=False, device=device)
    op = blur_operator((1, size, size), 0.01, device)
    y = op.A(x) + 0.01 * torch.randn(
        x.shape, generator=torch.Generator(device=device).manual_seed(1), device=device
    )

    fwd = time_network(prior, x.shape, device, backward=False)
    fwdbwd = time_network(prior, x.shape, device, backward=True)
    # (solver, steps, params, network call, in the timed table too)
    configs = [
        ("dps", dps_steps, {}, fwdbwd, True),
        ("deepinv-dps", dps_steps, {}, fwdbwd, True),
        ("deepinv-dps", dps_steps, {"weight": 100.0}, fwdbwd, False),
        ("mcg", dps_steps, {}, fwdbwd, False),  # noisy y: relaxed projections (relax = 30)
        ("dds", 50, {}, fwd, True),
        ("red-diff", 50, {"init": "adjoint"}, fwd, True),
        ("red-diff", 50, {}, fwd, True),
        ("deepinv-diffpir", 50, {}, fwd, True),
        ("deepinv-ddrm", 50, {}, fwd, True),
    ]
    rows = {}
    lines = [
        "| solver | params | steps | nfe | wall (s) | PSNR (dB) | autograd saved (MiB) | "
        + ("GPU peak (MiB) | " if device.type == "cuda" else "")
        + "overhead |",
        "|---|---|---|---|---|---|---|" + ("---|" if device.type == "cuda" else "") + "---|",
    ]
    for name, steps, params, call, timed in configs:
        if not timed:
            continue
        r = run(name, y, op, prior, x, device, steps, **params)
        rows[(name, str(params))] = r
        overhead = r["seconds"] / (r["nfe"] * call)
        gpu = f"{r['gpu_mb']:.0f} | " if r["gpu_mb"] is not None else ""
        lines.append(
            f"| {name} | {params or ''} | {steps} | {r['nfe']} | {r['seconds']:.2f} | "
            f"{r['psnr']:.2f} | {r['saved_mb']:.2f} | {gpu}{overhead:.2f} |"
        )
        print(lines[-1], flush=True)
    ours, theirs = rows[("dps", "{}")], rows[("deepinv-dps", "{}")]
    dds = rows[("dds", "{}")]
    red = rows[("red-diff", str({"init": "adjoint"}))]
    summary = [
        f"- our DPS / deepinv DPS wall time: {ours['seconds'] / theirs['seconds']:.2f} "
        f"(same steps; deepinv's DPS runs in the input dtype here, float32)",
        f"- DPS {dps_steps} / DDS 50 wall time: {ours['seconds'] / dds['seconds']:.1f}x "
        f"(PSNR {ours['psnr']:.2f} vs {dds['psnr']:.2f} dB)",
        f"- autograd memory, RED-Diff vs DPS: {red['saved_mb']:.2f} vs {ours['saved_mb']:.2f} MiB",
        f"- one network call: forward {fwd * 1e3:.1f} ms, forward+backward {fwdbwd * 1e3:.1f} ms",
    ]

    # accuracy on the Gaussian oracle (exact posterior mean known), 16 samples at 16x16
    oracle = GaussianPrior.power_law(16)
    og = torch.Generator().manual_seed(1)
    ox = oracle.sample(1, og)
    oop = blur_operator((1, 16, 16), 0.01, "cpu", torch.float64)
    oy = oop.A(ox) + 0.01 * torch.randn(ox.shape, generator=og, dtype=ox.dtype)
    post_mean, post_var = oracle.posterior(oy, oop)
    oyb = oy.expand(16, -1, -1, -1).contiguous()
    olines = [
        "| solver | params | steps | ‖mean − E[x|y]‖ / ‖E[x|y] − m‖ | one sample | sample std / posterior std |",
        "|---|---|---|---|---|---|",
    ]
    for name, steps, params, _, _ in configs:
        steps = min(steps, 200)
        gen = torch.Generator().manual_seed(0)
        if name.startswith("deepinv-"):
            res = run_deepinv(name[len("deepinv-") :], oyb, oop, oracle, steps, generator=gen, **params)
        else:
            res = rk.solve(oyb, oop, oracle, name, steps=steps, generator=gen, **params)
        scale = (post_mean - oracle.mean).norm()
        err = ((res.x.mean(0, keepdim=True) - post_mean).norm() / scale).item()
        one = ((res.x[:1] - post_mean).norm() / scale).item()
        ratio = res.x.std(0).mean().item() / post_var.mean().sqrt().item()
        olines.append(f"| {name} | {params or ''} | {steps} | {err:.3f} | {one:.3f} | {ratio:.2f} |")
        print(olines[-1], flush=True)
    baseline = ((oop.A_dagger(oy) - post_mean).norm() / (post_mean - oracle.mean).norm()).item()
    olines.append(f"| A†y | | | {baseline:.3f} | | |")

    text = "\n".join(
        [
            "# Diffusion solvers: benchmark",
            "",
            f"Generated by `python benchmarks/diffusion.py{' --quick' if args.quick else ''}` on "
            f"{platform.processor() or platform.machine()}, device {device}, "
            f"{torch.get_num_threads()} thread(s), torch {torch.__version__}, load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end of the run.",
            "",
            f"Network: {prior_label}. Problem: held-out `camera` {size}×{size} gray, Gaussian blur "
            "(std 1.5 px, FFT), σ_y = 0.01. Overhead = wall / (nfe × one network call).",
            "",
            *lines,
            "",
            *summary,
            "",
            "RED-Diff's default start A†y amplifies the measurement noise by 1/|H| for a blur, "
            "hence the `init='adjoint'` row; MCG's hard projection uses A† too (its published use "
            "is inpainting and CT), so it is only in the oracle table below. deepinv's DPS default "
            "weight (1.0) is much weaker than the published ζ (oracle table: weight 100 is closer).",
            "",
            "## Accuracy on the Gaussian oracle (16×16, the same blur and σ_y, 16 samples, at most 200 steps)",
            "",
            "Error of the mean of 16 samples to the exact posterior mean, relative to the prior "
            "mean's distance (0 = exact, 1 = no better than the prior mean).",
            "",
            *olines,
            "",
        ]
    )
    out = args.out or os.path.join(HERE, "diffusion_results.md")
    with open(out, "w") as f:
        f.write(text)
    print("\n".join(summary))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
