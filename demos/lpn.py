"""
Learned proximal network versus TV
==================================

Denoising and deblurring of the held-out images with the learned proximal network
versus total variation, and the learned prior R(x) on clean, noisy and blurred images.

Run it from a checkout::

    python -m demos.lpn [--quick] [--out demos/out/lpn.png]

1. Denoising at σ = 0.1 (the LPN's training noise level): LPN prox vs TV with the weight that
   is best on these very images (``restorekit.evaluation.tv_oracle_weight``: an oracle
   choice, generous to TV).
2. Deblurring (Gaussian blur σ_b = 1.5 px, noise 0.01): PnP-ADMM with the LPN as its proximal
   step (ρ = 1, so the prior step is the LPN's prox at γ = 1/ρ = 1) vs TV by Chambolle–Pock
   (oracle weight), and PnP-ADMM with the shipped learned denoiser ``denoiser-gray``.
3. R(x) per pixel for clean crops and their noisy (several σ) and blurred (several σ_b)
   versions, computed through the convex conjugate of the LPN's potential.

Prints a table and writes one PNG figure.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import restorekit as rk
from restorekit import data
from restorekit.evaluation import tv_oracle_weight
from restorekit.metrics import psnr
from restorekit.priors.lpn import LPN
from restorekit.priors.tv import TV

WEIGHTS = Path(rk.__file__).parent / "weights" / "lpn-gray"
TV_WEIGHTS_DENOISE = (4.0, 6.0, 8.0, 10.0, 12.0, 15.0)  # TV(weight).denoise(y, 0.1): λ = w·σ²
TV_WEIGHTS_DEBLUR = (0.002, 0.005, 0.01, 0.02)


def blurred(x: torch.Tensor, sigma_b: float) -> torch.Tensor:
    """Noise-free Gaussian blur with reflect boundary (σ_b = 0 returns x)."""
    return x if sigma_b == 0 else rk.operators.blur("gaussian", sigma=sigma_b, circular=False).A(x)


def main(argv=None):
    p = argparse.ArgumentParser(description="LPN vs TV on held-out images, and R(x) curves")
    p.add_argument("--quick", action="store_true", help="two 64² images, fewer R(x) points")
    p.add_argument("--out", default=str(Path("demos") / "out" / "lpn.png"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    lpn = LPN.from_pretrained(WEIGHTS)
    size = 64 if args.quick else 128
    x = data.held_out(size)[:2] if args.quick else data.held_out(size)
    names = data.HELD_OUT[: len(x)]
    rows = {}

    # 1. denoising at the LPN's training noise level
    sigma = lpn.sigma
    y = x + sigma * torch.randn(x.shape, generator=g)
    with torch.no_grad():
        den_lpn = lpn.denoise(y, sigma)
    tv = tv_oracle_weight(x, lambda w: TV(weight=w).denoise(y, sigma), TV_WEIGHTS_DENOISE)
    w_tv, den_tv = tv.value, tv.estimate
    rows["denoise σ=0.1"] = {
        "input": psnr(y, x),
        f"TV (w={w_tv:g})": psnr(den_tv.clamp(0, 1), x),
        "LPN": psnr(den_lpn.clamp(0, 1), x),
    }

    # 2. deblurring with PnP-ADMM (LPN as the proximal step) and Chambolle–Pock TV
    op = rk.operators.blur("gaussian", sigma=1.5, noise_sigma=0.01, generator=g)
    yb = op(x)
    # the LPN keeps its prox weight γ = 1 (ρ = 1) and the data term gets the MAP weight σ₀²/σ_y²
    deb_lpn = rk.solve(yb, op, lpn, solver="pnp-admm", max_iter=50).x
    tv = tv_oracle_weight(
        x, lambda w: rk.solve(yb, op, TV(weight=w), solver="chambolle-pock").x, TV_WEIGHTS_DEBLUR
    )
    w_cp, deb_tv = tv.value, tv.estimate
    rows["deblur σ_b=1.5"] = {
        "input": psnr(yb.clamp(0, 1), x),
        f"TV (w={w_cp:g})": psnr(deb_tv.clamp(0, 1), x),
        "PnP-ADMM LPN": psnr(deb_lpn.clamp(0, 1), x),
    }
    deb_den = rk.solve(yb, op, rk.priors.load("denoiser-gray"), solver="pnp-admm").x
    rows["deblur σ_b=1.5"]["PnP-ADMM denoiser"] = psnr(deb_den.clamp(0, 1), x)

    # 3. R(x) per pixel on 32×32 crops: clean, noisy, blurred
    crops = x[..., size // 4 : size // 4 + 32, size // 4 : size // 4 + 32]
    noise_levels = (0.0, 0.05, 0.1) if args.quick else (0.0, 0.025, 0.05, 0.1, 0.2)
    blur_levels = (0.0, 1.0, 2.0) if args.quick else (0.0, 0.5, 1.0, 1.5, 2.0)
    n_pix = crops[0].numel()
    r_noise, r_blur, worst = [], [], 0.0
    for s in noise_levels:
        info = lpn.value_with_info(crops + s * torch.randn(crops.shape, generator=g))
        r_noise.append(info.value / n_pix)
        worst = max(worst, info.residual.max().item())
    for s in blur_levels:
        info = lpn.value_with_info(blurred(crops, s))
        r_blur.append(info.value / n_pix)
        worst = max(worst, info.residual.max().item())

    # 4. table
    print(f"{'task':<16}{'method':<22}" + "".join(f"{n[:10]:>12}" for n in names) + f"{'mean':>10}")
    for task, methods in rows.items():
        for method, vals in methods.items():
            print(
                f"{task:<16}{method:<22}"
                + "".join(f"{v:12.2f}" for v in vals.tolist())
                + f"{vals.mean().item():10.2f}"
            )
    print(f"\nR(x)/pixel (mean over crops; largest relative residual of the conjugate solve {worst:.1e})")
    for s, r in zip(noise_levels, r_noise):
        print(f"  noise σ={s:<5} R = {r.mean().item():+.4f}")
    for s, r in zip(blur_levels, r_blur):
        print(f"  blur σ_b={s:<4} R = {r.mean().item():+.4f}")

    # 5. figure
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("clean", x),
        ("noisy", y),
        (f"TV w={w_tv:g}", den_tv),
        ("LPN", den_lpn),
        ("blurred", yb),
        (f"TV w={w_cp:g}", deb_tv),
        ("PnP-ADMM LPN", deb_lpn),
        ("PnP-ADMM denoiser", deb_den),
    ]
    fig = plt.figure(figsize=(2.6 * 4, 2.6 * 3), layout="constrained")
    grid = fig.add_gridspec(3, 4)
    for k, (label, img) in enumerate(panels):
        ax = fig.add_subplot(grid[k // 4, k % 4])
        ax.imshow(img[0, 0].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
        title = label if img is x else f"{label}\n{psnr(img[:1].clamp(0, 1), x[:1]).item():.2f} dB"
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    for col, (levels, rs, xlabel) in enumerate(
        ((noise_levels, r_noise, "noise σ"), (blur_levels, r_blur, "blur σ_b (px)"))
    ):
        ax = fig.add_subplot(grid[2, 2 * col : 2 * col + 2])
        vals = torch.stack(rs, 1)  # (crops, levels)
        for i in range(len(vals)):
            ax.plot(levels, vals[i].numpy(), marker="o", label=names[i % len(names)])
        ax.set_xlabel(xlabel)
        ax.set_ylabel("R(x) per pixel")
        ax.legend(fontsize=7)
    fig.suptitle("LPN (prox of a learned prior) vs TV on held-out images", fontsize=10)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    print(f"figure written to {out}")


if __name__ == "__main__":
    main()
