"""Guidance for class-conditional diffusion priors: CFG, CFG++ and APG as prior wrappers.

Each wrapper takes a class-conditional :class:`~restorekit.priors.diffusion.DiffusionPrior`
and a class label, and is itself a diffusion prior (it has the ``Diffusion`` and
``Denoiser`` capabilities of :mod:`restorekit.priors.base`): every diffusion solver (``dps``,
``mcg``, ``dds``, ``red-diff``) and :func:`restorekit.sample` take it unchanged and never know
that guidance is on.

Notation (model space u ∈ [−1, 1], ā_t = ``alphas_cumprod[t]``, a_t = √ā_t, s_t = √(1 − ā_t)):

    ε_c = ε_θ(u_t, t, c),   ε_u = ε_θ(u_t, t, ∅),   D_c, D_u their Tweedie estimates
    D = (u_t − s_t·ε)/a_t.

Both noise estimates come from ONE network call on the batch [u_t; u_t] with the labels
[c; ∅] (∅ is the prior's ``null_class``), so guidance costs one batched forward per step.
Each wrapper's ``predict`` returns a :class:`~restorekit.priors.base.Prediction`
(û0, ε̂, ε_renoise) with ε̂ consistent with û0:

- :class:`CFG` (Ho & Salimans 2022, classifier-free guidance): ε̂ = ε_u + w·(ε_c − ε_u), used
  both for û0 and for renoising.
- :class:`CFGpp` (Chung et al. 2024, "CFG++: manifold-constrained classifier-free guidance",
  Alg. 1): û0 from ε_λ = ε_u + λ·(ε_c − ε_u), λ ∈ [0, 1], but renoise with ε_u.
- :class:`APG` (Sadat et al. 2024, "Eliminating oversaturation and artifacts of high guidance
  scales in diffusion models", Alg. 1): guidance in x0 space with the update split into the
  parts parallel and orthogonal to D_c, norm clipping and a (negative) momentum.
"""

from __future__ import annotations

import torch

from ..checks import real_number
from .base import ClassConditional, Prediction
from .diffusion import tweedie_denoise
from .schedule import abar_at, eps_from_x0, to_image, to_model, tweedie_x0


class _Guided:
    """What the three wrappers share: label checks, the batched (ε_c, ε_u) call, forwarding.

    Subclasses implement ``_combine(u_t, abar_t, eps_c, eps_u) -> Prediction``.
    """

    def __init__(self, prior, cond):
        if not isinstance(prior, ClassConditional):
            raise TypeError(
                f"{type(self).__name__} wraps a class-conditional DiffusionPrior (with "
                f"model_eps and null_class), got {type(prior).__name__}"
            )
        if getattr(prior, "num_classes", None) is None:
            raise ValueError(
                f"{type(self).__name__} needs a class-conditional prior, but "
                f"{type(prior).__name__} is unconditional (num_classes is None)"
            )
        self.prior = prior
        self.cond = self._check_cond(cond)

    # -- Diffusion capability, forwarded to the wrapped prior -------------------------------
    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self.prior.alphas_cumprod

    @property
    def num_train_timesteps(self) -> int:
        return self.prior.num_train_timesteps

    to_model = staticmethod(to_model)
    to_image = staticmethod(to_image)

    def reset(self) -> None:
        """Clear per-run state (the wrapped prior's, and APG's momentum)."""
        self.prior.reset()

    # -- labels -------------------------------------------------------------------------------
    def _check_cond(self, cond) -> torch.Tensor:
        """``cond``: an int class label, or a 1-D LongTensor of labels (one per batch item)."""
        k, null = self.prior.num_classes, self.prior.null_class
        if isinstance(cond, bool) or not isinstance(cond, (int, torch.Tensor)):
            raise TypeError(
                f"cond must be an int class label or a LongTensor of labels, got {type(cond).__name__}"
            )
        labels = torch.as_tensor(cond)
        if labels.dtype != torch.long or labels.ndim > 1:
            raise TypeError(
                f"cond must be an int or a 1-D LongTensor, got dtype {labels.dtype} "
                f"with shape {tuple(labels.shape)}"
            )
        bad = [int(c) for c in labels.flatten() if not 0 <= int(c) < k or int(c) == null]
        if bad:
            raise ValueError(
                f"cond must be class labels in [0, {k}) other than the null class {null}, got {bad}"
            )
        return labels

    def _labels(self, cond, batch: int, device) -> torch.Tensor:
        labels = self.cond if cond is None else self._check_cond(cond)
        if labels.ndim == 0:
            labels = labels.expand(batch)
        if labels.shape[0] != batch:
            raise ValueError(f"cond has {labels.shape[0]} labels but the batch has {batch} items")
        return labels.to(device)

    # -- prediction -----------------------------------------------------------------------------
    def eps_pair(self, u_t: torch.Tensor, t, cond=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε_c, ε_u) from one network call on [u_t; u_t] with labels [c; ∅].

        ``t`` is an int or a (B,) LongTensor of timesteps; ``cond`` overrides the class.
        """
        labels = self._labels(cond, u_t.shape[0], u_t.device)
        null = torch.full_like(labels, self.prior.null_class)
        if isinstance(t, torch.Tensor):
            t = t.reshape(-1).expand(u_t.shape[0]).repeat(2)
        eps = self.prior.model_eps(torch.cat([u_t, u_t]), t, torch.cat([labels, null]))
        return eps.chunk(2)

    def predict(self, u_t: torch.Tensor, t, cond=None) -> Prediction:
        """Guided (û0, ε̂, ε_renoise) at timestep ``t`` (int or (B,)); ``cond`` overrides the class."""
        eps_c, eps_u = self.eps_pair(u_t, t, cond)
        if isinstance(t, torch.Tensor):
            t = t.reshape(-1).expand(u_t.shape[0])
        return self._combine(u_t, abar_at(self.alphas_cumprod, t, u_t), eps_c, eps_u)

    def denoise(self, x: torch.Tensor, sigma, cond=None) -> torch.Tensor:
        """DiffusionPrior's one-step Tweedie denoiser at level ``sigma``, through the guided
        ``predict`` (t with s_t/a_t closest to 2σ, u_t = a_t·(2x − 1), û0 mapped back)."""
        return tweedie_denoise(self, x, sigma, cond)

    def _combine(self, u_t, abar_t, eps_c, eps_u) -> Prediction:
        raise NotImplementedError

    def __repr__(self):
        params = ", ".join(
            f"{k}={v!r}" for k, v in vars(self).items() if k != "prior" and not k.startswith("_")
        )
        return f"{type(self).__name__}({type(self.prior).__name__}, {params})"


class CFG(_Guided):
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6 in ε form).

        ε̂ = ε_u + w·(ε_c − ε_u),   û0 = (u_t − s_t·ε̂)/a_t,   ε_renoise = ε̂.

    w = 1 is the conditional model, w = 0 the unconditional one, w > 1 extrapolates (sharper
    class features, and oversaturation at large w).

    Parameters
    ----------
    prior : a class-conditional DiffusionPrior.
    cond : class label (int) or a LongTensor of labels, one per batch item.
    scale : w ≥ 0.
    """

    def __init__(self, prior, cond, scale: float):
        super().__init__(prior, cond)
        self.scale = real_number(scale, "scale", low=0.0)

    def _combine(self, u_t, abar_t, eps_c, eps_u) -> Prediction:
        eps = eps_u + self.scale * (eps_c - eps_u)
        return Prediction(tweedie_x0(u_t, eps, abar_t), eps, eps)


class CFGpp(_Guided):
    """CFG++ (Chung et al. 2024, Alg. 1): guide the clean estimate, renoise unconditionally.

        ε_λ = ε_u + λ·(ε_c − ε_u),   û0 = (u_t − s_t·ε_λ)/a_t,   ε̂ = ε_λ,   ε_renoise = ε_u,

    so a DDIM step is u_{t−1} = a_{t−1}·û0 + s_{t−1}·ε_u. λ ∈ [0, 1]; the authors liken λ to CFG
    ω ∈ [1, 12.5] (λ = 0.6 ~ ω = 7.5). λ = 0 is unconditional sampling.

    Parameters
    ----------
    prior : a class-conditional DiffusionPrior.
    cond : class label (int) or a LongTensor of labels, one per batch item.
    lam : λ ∈ [0, 1].
    """

    def __init__(self, prior, cond, lam: float):
        super().__init__(prior, cond)
        self.lam = real_number(lam, "lam", low=0.0, high=1.0)

    def _combine(self, u_t, abar_t, eps_c, eps_u) -> Prediction:
        eps = eps_u + self.lam * (eps_c - eps_u)
        return Prediction(tweedie_x0(u_t, eps, abar_t), eps, eps_u)


class APG(_Guided):
    """Adaptive projected guidance (Sadat et al. 2024, Alg. 1), in x0 space.

    Each ``predict`` (numbered as in the code):

    1. Δ = D_c − D_u; with momentum β ≠ 0 a running average avg ← Δ + β·avg, Δ ← avg (the
       unclipped average is what is kept for the next step);
    2. clip: Δ ← Δ·min(1, r/‖Δ‖), norms over all non-batch dimensions (``norm_threshold=None``
       disables it);
    3. split Δ = Δ∥ + Δ⊥ with Δ∥ = (⟨Δ, D_c⟩/‖D_c‖²)·D_c (float64);
    4. D̂ = D_c + (w − 1)·(Δ⊥ + η·Δ∥), and ε̂ = (u_t − a_t·D̂)/s_t re-derived from D̂, used
       for renoising too.

    η = 1 with r = ∞ and β = 0 is CFG with scale w; the paper recommends η = 0 and β < 0.

    Mapping to diffusers (``diffusers.guiders.adaptive_projected_guidance``): this is
    ``normalized_guidance(D_c, D_u, guidance_scale=w − 1, momentum_buffer=MomentumBuffer(β),
    eta=η, norm_threshold=r, use_original_formulation=True)`` applied to the x0 predictions.
    diffusers' default formulation adds the update to the *unconditional* prediction, its
    pipelines apply it to whatever the model outputs (ε or v), and its defaults are η = 1,
    r = 15, no momentum.

    The momentum is state of one sampling run: ``reset()`` clears it (every diffusion solver
    and :func:`restorekit.sample` call it on entry). It is stored detached: the earlier steps
    do not depend on the current u_t, so gradients (DPS, MCG) are unaffected.

    Parameters
    ----------
    prior : a class-conditional DiffusionPrior.
    cond : class label (int) or a LongTensor of labels, one per batch item.
    scale : w ≥ 0 (same meaning as CFG's scale).
    eta : η ∈ [0, 1], weight of the component of Δ parallel to D_c.
    norm_threshold : r > 0, or None for no clipping. The default 15 is diffusers'; Δ is
        measured in model units (u ∈ [−1, 1]) over all pixels.
    momentum : β ∈ (−1, 1); 0 disables the running average.
    """

    def __init__(
        self,
        prior,
        cond,
        scale: float,
        *,
        eta: float = 0.0,
        norm_threshold: float | None = 15.0,
        momentum: float = -0.5,
    ):
        super().__init__(prior, cond)
        self.scale = real_number(scale, "scale", low=0.0)
        self.eta = real_number(eta, "eta", low=0.0, high=1.0)
        if norm_threshold is not None:  # None: no clipping
            norm_threshold = real_number(norm_threshold, "norm_threshold", low=0.0, low_open=True)
        self.norm_threshold = norm_threshold
        self.momentum = real_number(momentum, "momentum", low=-1.0, high=1.0, low_open=True, high_open=True)
        self._average: torch.Tensor | None = None

    def reset(self) -> None:
        super().reset()
        self._average = None

    def _combine(self, u_t, abar_t, eps_c, eps_u) -> Prediction:
        d_c, d_u = tweedie_x0(u_t, eps_c, abar_t), tweedie_x0(u_t, eps_u, abar_t)
        dims = tuple(range(1, d_c.ndim))
        # 1. difference, and its running average (stored unclipped, detached)
        delta = d_c - d_u
        if self.momentum != 0:
            if self._average is not None:
                if self._average.shape != delta.shape:
                    raise ValueError(
                        f"APG momentum holds a {tuple(self._average.shape)} average but this step "
                        f"is {tuple(delta.shape)}: call reset() before a new sampling run"
                    )
                delta = delta + self.momentum * self._average
            self._average = delta.detach()
        # 2. clip the norm to r
        if self.norm_threshold is not None:
            norm = torch.linalg.vector_norm(delta, dim=dims, keepdim=True)
            delta = delta * torch.clamp(self.norm_threshold / norm, max=1.0)
        # 3. parallel / orthogonal split against D_c, in float64
        d64 = delta.double()
        unit = torch.nn.functional.normalize(d_c.double().flatten(1), dim=1).view_as(d64)
        parallel = (d64 * unit).sum(dim=dims, keepdim=True) * unit
        update = (d64 - parallel + self.eta * parallel).to(delta.dtype)
        # 4. guided clean estimate, and the noise consistent with it
        x0 = d_c + (self.scale - 1.0) * update
        eps = eps_from_x0(u_t, x0, abar_t)
        return Prediction(x0, eps, eps)


__all__ = ["APG", "CFG", "CFGpp"]
