"""A stationary Gaussian prior whose denoiser, score, diffusion ε and posterior are exact.

x ~ N(m, Σ) on (C, H, W) images in [0, 1] units, with Σ = F⁻¹ diag(S) F diagonal in the
orthonormal 2-D Fourier basis F (a circulant covariance per channel; ``spectrum`` S is the
power per frequency). It is the test oracle of the diffusion samplers:

- Denoiser: E[x | x + σn] = m + F⁻¹[S/(S + σ²)·F(x − m)] (the Wiener filter), exact.
- Diffusion: in model space u = 2x − 1 ~ N(2m − 1, 4Σ); for u_t = a·u0 + s·ε,
  E[u0 | u_t] = μ_u + F⁻¹[4aS/(4a²S + s²)·F(u_t − a·μ_u)] and ε̂ = (u_t − a·û0)/s — the ideal
  ε-network, so solver errors can be told from network errors.
- Energy: R(x) = ½‖S^{−1/2}·F(x − m)‖² (negative log-density up to a constant).
- Posterior for y = A x + σ_y n with A diagonal in the same basis (circular blur, denoising):
  mean m + F⁻¹[S/(|H|²S + σ_y²)·F(Aᴴ(y − A m))], variance S·σ_y²/(|H|²S + σ_y²) per frequency.
"""

from __future__ import annotations

import torch

from ..operators.noise import is_gaussian, noise_level
from .base import Prediction
from .schedule import abar_at, eps_from_x0, linear_alphas_cumprod, to_image, to_model


class GaussianPrior:
    """x ~ N(mean, F⁻¹ diag(spectrum) F) in image units.

    Parameters
    ----------
    mean : a float or a tensor broadcastable to (C, H, W).
    spectrum : non-negative power per frequency, (H, W) or (C, H, W), in ``torch.fft.fft2``
        frequency order and symmetric (S(k) = S(−k)) so that Σ is real.
    alphas_cumprod : the VP schedule of the Diffusion capability; defaults to DDPM's linear β
        from 1e-4 to 0.02 over 1000 steps.
    """

    num_classes = None
    null_class = None
    to_model = staticmethod(to_model)
    to_image = staticmethod(to_image)

    def __init__(self, mean, spectrum: torch.Tensor, *, alphas_cumprod: torch.Tensor | None = None):
        spectrum = torch.as_tensor(spectrum, dtype=torch.float64)
        if spectrum.ndim not in (2, 3):
            raise ValueError(f"spectrum must be shaped (H, W) or (C, H, W), got {tuple(spectrum.shape)}")
        if (spectrum < 0).any():
            raise ValueError("spectrum must be non-negative (it is a power per frequency)")
        mirrored = torch.roll(torch.flip(spectrum, (-2, -1)), (1, 1), (-2, -1))
        if not torch.allclose(spectrum, mirrored, rtol=1e-10, atol=1e-12 * spectrum.max().item()):
            raise ValueError("spectrum must be symmetric, S(k) = S(-k), so that the covariance is real")
        mean = torch.as_tensor(mean, dtype=torch.float64)
        shape = torch.broadcast_shapes(mean.shape, spectrum.shape)
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3:
            raise ValueError(
                f"mean {tuple(mean.shape)} and spectrum {tuple(spectrum.shape)} must broadcast to (C, H, W)"
            )
        self.shape = tuple(shape)
        self.mean = mean.expand(shape).clone()
        self.spectrum = spectrum.expand(shape).clone()
        self.alphas_cumprod = (
            linear_alphas_cumprod()
            if alphas_cumprod is None
            else torch.as_tensor(alphas_cumprod).to("cpu", torch.float64)
        )

    @classmethod
    def power_law(
        cls,
        size: int | tuple[int, int],
        channels: int = 1,
        *,
        mean: float = 0.5,
        variance: float = 0.02,
        corner: float = 0.1,
        exponent: float = 3.0,
        alphas_cumprod: torch.Tensor | None = None,
    ) -> GaussianPrior:
        """A smooth natural-image-like oracle: S(k) ∝ (1 + |k|²/corner²)^(−exponent/2) (k in
        cycles per pixel), scaled so that the pixel variance is ``variance``."""
        h, w = (size, size) if isinstance(size, int) else size
        fy = torch.fft.fftfreq(h, dtype=torch.float64)
        fx = torch.fft.fftfreq(w, dtype=torch.float64)
        S = (1 + (fy[:, None] ** 2 + fx[None, :] ** 2) / corner**2) ** (-exponent / 2)
        S = S * (h * w) * variance / S.sum()
        return cls(mean, S.expand(channels, h, w), alphas_cumprod=alphas_cumprod)

    def covariance(self) -> torch.Tensor:
        """Σ as a dense (n, n) matrix, n = C·H·W (small images only)."""
        n = int(torch.tensor(self.shape).prod())
        basis = torch.eye(n, dtype=torch.float64).reshape(n, *self.shape)
        return self.filter(basis, self.spectrum).reshape(n, n).T.contiguous()

    @property
    def num_train_timesteps(self) -> int:
        return self.alphas_cumprod.numel()

    def reset(self) -> None:
        """No per-run state."""

    # ----- helpers ------------------------------------------------------------------------
    def _check(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(
                f"x must be shaped (B, {', '.join(map(str, self.shape))}) for this "
                f"GaussianPrior, got {tuple(x.shape)}"
            )

    def _like(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return v.to(device=x.device, dtype=x.dtype)

    @staticmethod
    def filter(x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        """F⁻¹[gain·F x] for a real symmetric per-frequency gain (broadcast over the batch)."""
        return torch.fft.ifft2(gain * torch.fft.fft2(x)).real

    # ----- capabilities -------------------------------------------------------------------
    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """Exact MMSE denoiser (Wiener filter) at noise level ``sigma`` (float or (B,))."""
        self._check(x)
        s2 = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1) ** 2
        S, m = self._like(self.spectrum, x), self._like(self.mean, x)
        return m + self.filter(x - m, S / (S + s2))

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """R(x) = ½ Σ_k |F(x − m)|²_k / S_k (orthonormal F), per sample (B,)."""
        self._check(x)
        r = torch.fft.fft2(x - self._like(self.mean, x), norm="ortho")
        return 0.5 * (r.abs() ** 2 / self._like(self.spectrum, x)).flatten(1).sum(1)

    def model_x0(self, u_t: torch.Tensor, t) -> torch.Tensor:
        """Exact E[u0 | u_t] at timestep ``t`` (int or (B,) tensor), model space."""
        self._check(u_t)
        abar = abar_at(self.alphas_cumprod, t, u_t)
        a, s2 = abar.sqrt(), 1 - abar
        mu = self.to_model(self._like(self.mean, u_t))
        C = 4 * self._like(self.spectrum, u_t)
        return mu + self.filter(u_t - a * mu, a * C / (abar * C + s2))

    def model_eps(self, u_t: torch.Tensor, t, class_labels=None) -> torch.Tensor:
        """The exact ε̂(u_t, t) = (u_t − a_t·E[u0|u_t])/s_t."""
        if class_labels is not None:
            raise ValueError("GaussianPrior is unconditional; class_labels must be None")
        return eps_from_x0(u_t, self.model_x0(u_t, t), abar_at(self.alphas_cumprod, t, u_t))

    def predict(self, u_t: torch.Tensor, t, cond=None) -> Prediction:
        if cond is not None:
            raise ValueError("GaussianPrior is unconditional; cond must be None")
        x0 = self.model_x0(u_t, t)
        eps = eps_from_x0(u_t, x0, abar_at(self.alphas_cumprod, t, u_t))
        return Prediction(x0=x0, eps=eps, eps_renoise=eps)

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float64,
        device=None,
    ) -> torch.Tensor:
        """n independent draws m + F⁻¹[sqrt(S)·F w], w ~ N(0, I), shaped (n, C, H, W)."""
        w = torch.randn(
            (n, *self.shape),
            generator=generator,
            dtype=torch.float64,
            device=device if device is not None else "cpu",
        )
        x = self.mean.to(w.device) + self.filter(w, self.spectrum.to(w.device).sqrt())
        return x.to(dtype)

    def posterior(self, y: torch.Tensor, operator) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact posterior mean (B, C, H, W) and per-frequency variance (C, H, W) of x given
        y = A x + σ_y n, for an operator diagonal in the Fourier basis (circular blur,
        denoising); σ_y is read by :func:`~restorekit.operators.noise.noise_level` and must be
        Gaussian. Any other operator raises a ValueError (use :meth:`posterior_dense`)."""
        like = operator.A_adjoint(y)
        self._check(like)
        transfer = self._transfer(operator, like)
        sigma = _gaussian_sigma(operator, y)
        S, m = self._like(self.spectrum, like), self._like(self.mean, like)
        denom = transfer * S + sigma**2
        gain = torch.where(denom > 0, S / denom.clamp_min(1e-300), 0.0)
        residual = operator.A_adjoint(y - operator.A(m.expand_as(like)))
        mean = m + self.filter(residual, gain)
        variance = torch.where(denom > 0, S * sigma**2 / denom.clamp_min(1e-300), S)
        return mean, variance

    def posterior_dense(self, y: torch.Tensor, operator) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact posterior mean (B, C, H, W) and per-pixel variance (C, H, W) of x given
        y = A x + σ_y n for any linear operator, by dense linear algebra in float64 (small
        images only: n = C·H·W unknowns, an (n, n) covariance).

        With Σ the prior covariance, A the operator's matrix and σ_y from
        :func:`~restorekit.operators.noise.noise_level` (Gaussian noise only), the posterior
        covariance is Σ_post = Σ − ΣAᵀ(AΣAᵀ + σ_y²I)⁺AΣ and the mean m + ΣAᵀ(AΣAᵀ + σ_y²I)⁺(y − A m)
        (the pseudo-inverse covers noiseless, rank-deficient A, e.g. inpainting).
        """
        like = operator.A_adjoint(y)
        self._check(like)
        sigma = _gaussian_sigma(operator, y)
        n = like[0].numel()
        basis = torch.eye(n, dtype=torch.float64, device=y.device).reshape(n, *self.shape)
        A = operator.A(basis.to(like.dtype)).reshape(n, -1).T.double()  # (m, n)
        Sig = self.covariance().to(y.device)
        m = self.mean.to(y.device).reshape(-1)
        noise = sigma**2 * torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
        gain = Sig @ A.T @ torch.linalg.pinv(A @ Sig @ A.T + noise, hermitian=True)
        residual = y.reshape(y.shape[0], -1).double() - (A @ m)[None]
        mean = m[None] + residual @ gain.T
        cov = Sig - gain @ A @ Sig
        return (mean.reshape(like.shape).to(like.dtype), cov.diagonal().reshape(self.shape).to(like.dtype))

    def _transfer(self, operator, like: torch.Tensor) -> torch.Tensor:
        """|H(k)|² of AᴴA per channel, from its impulse response; checks Fourier-diagonality."""
        delta = torch.zeros_like(like[:1])
        delta[..., 0, 0] = 1
        transfer = torch.fft.fft2(operator.A_adjoint(operator.A(delta)))[0]
        g = torch.Generator(device=like.device).manual_seed(0)
        z = torch.randn(like[:1].shape, generator=g, dtype=like.dtype, device=like.device)
        direct = operator.A_adjoint(operator.A(z))
        err = (direct - self.filter(z, transfer)).norm() / direct.norm().clamp_min(1e-30)
        tol = 1e4 * torch.finfo(like.dtype).eps
        if err > tol or (transfer.imag.abs() > tol * transfer.real.abs().max()).any():
            raise ValueError(
                f"operator {type(operator).__name__} is not diagonal in the Fourier "
                f"basis (relative error {err:.2g}); GaussianPrior.posterior needs a "
                "circular blur or denoising"
            )
        return transfer.real


def _gaussian_sigma(operator, y: torch.Tensor) -> float:
    """σ_y of an operator with Gaussian (or no) noise; a ValueError for any other noise."""
    if not is_gaussian(operator):
        raise ValueError(
            f"the exact posterior needs Gaussian noise, but the operator's noise model "
            f"is {type(operator.noise_model).__name__}"
        )
    return noise_level(operator, y)
