"""The shared linear-algebra helpers: batched CG for (shift·I + gamma·AᴴA) x = b, ‖A‖₂, the
truncated-CG pseudo-inverse and the harmonic fill of missing pixels."""

from __future__ import annotations

import numbers
import weakref

import torch
from deepinv.optim.utils import conjugate_gradient
from deepinv.physics import LinearPhysics

from ._common import positive_int, real_number

_NORMS: weakref.WeakKeyDictionary[LinearPhysics, dict] = weakref.WeakKeyDictionary()


def _check_operator(operator) -> None:
    if not isinstance(operator, LinearPhysics):
        raise TypeError(f"operator must be a deepinv LinearPhysics, got {type(operator).__name__}")


def _per_sample(value, name: str, b: torch.Tensor) -> float | torch.Tensor:
    """A non-negative float, or a (B,) tensor reshaped to broadcast over b's sample dims."""
    if isinstance(value, torch.Tensor):
        if value.ndim != 1 or value.shape[0] != b.shape[0]:
            raise ValueError(
                f"{name} must be a float or a ({b.shape[0]},) tensor (one per sample), "
                f"got shape {tuple(value.shape)}"
            )
        if (value < 0).any() or not torch.isfinite(value).all():
            raise ValueError(f"{name} must be finite and non-negative")
        return value.to(b.device, b.real.dtype).view(-1, *([1] * (b.ndim - 1)))
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float or a (B,) tensor, got {type(value).__name__}")
    return real_number(value, name, low=0.0)


def cg_solve(
    operator,
    b: torch.Tensor,
    *,
    gamma=1.0,
    shift=1.0,
    x0: torch.Tensor | None = None,
    max_iter: int = 50,
    tol: float = 1e-6,
) -> torch.Tensor:
    r"""Solve (shift·I + gamma·AᴴA) x = b for every sample of the batch by conjugate gradients.

    This is the data-consistency step of PnP-HQS/ADMM, DDS and the other solvers: with
    b = z + gamma·Aᴴy and shift = 1 it is the proximal map
    argmin_x ½‖x − z‖² + gamma/2·‖Ax − y‖²; with shift = 0 it solves the normal equations
    AᴴA x = b (which needs A injective on the span of b).

    It wraps deepinv's :func:`~deepinv.optim.utils.conjugate_gradient` (Hestenes & Stiefel,
    "Methods of conjugate gradients for solving linear systems", 1952) with one step size per
    sample, so samples with different ``gamma`` are solved together.

    Parameters
    ----------
    operator : a deepinv LinearPhysics (uses ``A_adjoint_A``).
    b : right-hand side, shaped like an image (B, C, H, W).
    gamma : weight of AᴴA, a float or a (B,) tensor, ≥ 0.
    shift : weight of the identity, a float or a (B,) tensor, ≥ 0.
    x0 : warm start (default zeros).
    max_iter : CG iterations at most.
    tol : stop when every sample has ‖residual‖ ≤ tol·‖b‖.

    Examples
    --------
    >>> import torch
    >>> from restorekit.operators import inpainting
    >>> op = inpainting("random", img_size=8, fraction=0.5, generator=torch.Generator().manual_seed(0))
    >>> b = torch.ones(1, 1, 8, 8)
    >>> x = cg_solve(op, b, gamma=1.0)        # (I + AᴴA)x = b: 1/2 where observed, 1 elsewhere
    >>> mask = op.A(torch.ones_like(b))
    >>> torch.allclose(x, 1 / (1 + mask), atol=1e-5)
    True
    """
    _check_operator(operator)
    if not isinstance(b, torch.Tensor) or not b.is_floating_point() and not b.is_complex():
        raise TypeError(f"b must be a floating-point torch.Tensor, got {type(b).__name__}")
    g = _per_sample(gamma, "gamma", b)
    s = _per_sample(shift, "shift", b)
    max_iter = positive_int(max_iter, "max_iter")
    tol = real_number(tol, "tol", low=0.0, low_open=True)
    if x0 is not None and (not isinstance(x0, torch.Tensor) or x0.shape != b.shape):
        raise ValueError(
            f"x0 must be a tensor shaped like b {tuple(b.shape)}, got "
            f"{tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__}"
        )

    def normal(x):
        return s * x + g * operator.A_adjoint_A(x)

    # deepinv adds eps (default 1e-8) to the denominators of the step sizes, which stalls CG
    # once the squared residual nears 1e-8; the smallest positive float only guards 0/0.
    eps = torch.finfo(b.real.dtype).tiny
    return conjugate_gradient(normal, b, max_iter=max_iter, tol=tol, eps=eps, parallel_dim=0, init=x0)


def operator_norm(
    operator, x_shape, *, max_iter: int = 200, tol: float = 1e-7, dtype=torch.float32, device=None
) -> float:
    r"""‖A‖₂, the largest singular value of A on images of shape ``x_shape``, by power iteration.

    Iterates v ← AᴴA v / ‖AᴴA v‖ from a fixed pseudo-random start (a local generator seeded
    with 0, so the result is reproducible) and returns √(vᵀAᴴAv) once the Rayleigh quotient
    changes by less than ``tol`` (relative). Results are cached per operator (weakly, so the
    cache never keeps an operator alive) and per (shape, dtype, device); an operator whose
    parameters are changed in place after the first call keeps its cached norm.

    Parameters
    ----------
    operator : a deepinv LinearPhysics.
    x_shape : (C, H, W) or (1, C, H, W), the shape of one image.
    """
    _check_operator(operator)
    shape = tuple(x_shape)
    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 3 or not all(isinstance(n, numbers.Integral) and int(n) > 0 for n in shape):
        raise ValueError(f"x_shape must be (C, H, W) or (1, C, H, W), got {tuple(x_shape)}")
    if device is None:
        device = next((t.device for t in operator.buffers()), torch.device("cpu"))
    key = (shape, dtype, torch.device(device))
    cache = _NORMS.setdefault(operator, {})
    if key not in cache:
        cache[key] = power_iteration(
            operator, shape, max_iter=positive_int(max_iter, "max_iter"), tol=tol, dtype=dtype, device=device
        )
    return cache[key]


def power_iteration(
    operator, shape, *, max_iter: int = 200, tol: float = 1e-7, dtype=torch.float32, device="cpu"
) -> float:
    """‖A‖₂ on one image of ``shape`` (C, H, W), uncached (see :func:`operator_norm`)."""
    v = torch.randn((1,) + tuple(shape), generator=torch.Generator().manual_seed(0), dtype=dtype)
    v = v.to(device) / v.norm()
    rayleigh = new = 0.0
    for _ in range(max_iter):
        w = operator.A_adjoint_A(v)
        new = torch.vdot(v.flatten(), w.flatten()).real.item()
        if new <= 0:
            break
        v = w / w.norm()
        if abs(new - rayleigh) <= tol * abs(new):
            break
        rayleigh = new
    return max(new, 0.0) ** 0.5


def truncated_pinv(operator, y: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """A regularised pseudo-inverse: ``steps`` CG iterations on AᴴA x = Aᴴy started at 0.

    CG from 0 stays in the range of Aᴴ, so it converges to A†y; stopping early filters the
    small singular values (early stopping regularises like Tikhonov). It equals A†y for
    inpainting and is close to it for well-posed operators, but does not blow the noise up
    where A†y does (an inverse filter for a blur). The solvers' default starting point.

    Ten steps assume an image large enough that the Krylov space has not yet reached the
    near-null singular values: on a 16² Gaussian blur it has (few distinct singular values), the
    start is then close to the inverse filter and a 1e-12 change of y moves it by 0.17. At 32² a
    change of y moves the start by at most about 100 times as much, from 64² on 5–40 times (blur,
    SR, CT, MRI; float32).
    """
    aty = operator.A_adjoint(y)
    return cg_solve(operator, aty, gamma=1.0, shift=0.0, x0=torch.zeros_like(aty), max_iter=steps)


def neumann_laplacian(u: torch.Tensor) -> torch.Tensor:
    """−Δu = ∇ᴴ∇u with the forward-difference gradient of TV and its reflecting (Neumann) borders
    (:func:`~restorekit.priors.tv.gradient`, :func:`~restorekit.priors.tv.divergence`): per
    pixel, the sum of u_i − u_j over its 2–4 in-image neighbours j. Symmetric positive
    semi-definite."""
    from ..priors.tv import divergence, gradient

    return -divergence(gradient(u))


def harmonic_fill(
    y: torch.Tensor, mask: torch.Tensor, *, max_iter: int = 300, tol: float = 1e-4
) -> torch.Tensor:
    """y where ``mask`` is 1, and where it is 0 the harmonic interpolant of the observed pixels:
    the u that solves Δu = 0 on the missing pixels with u = y on the observed ones (reflecting
    image borders), i.e. the minimiser of the Dirichlet energy Σ‖∇u‖² that keeps the data.

    Solved by CG on the missing pixels, (P L P) u = −P L (M y) with L = −Δ
    (:func:`neumann_laplacian`), M = diag(mask), P = I − M: SPD on the missing set wherever
    each hole touches an observed pixel. A hole of width w needs about w CG steps. A channel
    with nothing observed is returned as is. ``mask`` broadcasts to y (1 observed, 0 missing)."""
    if not isinstance(y, torch.Tensor) or y.ndim != 4:
        raise ValueError(f"y must be a (B, C, H, W) tensor, got {getattr(y, 'shape', type(y).__name__)}")
    known = torch.broadcast_to(mask.to(y.dtype), y.shape)
    missing = 1 - known
    if not bool(missing.any()):
        return y.clone()
    observed = known * y
    seen = known.flatten(2).sum(-1) > 0  # (B, C): channels with at least one observed pixel
    b = -missing * neumann_laplacian(observed)

    def restricted(u):
        return missing * neumann_laplacian(missing * u)

    eps = torch.finfo(y.real.dtype).tiny
    u = conjugate_gradient(
        restricted,
        b,
        max_iter=positive_int(max_iter, "max_iter"),
        tol=tol,
        eps=eps,
        parallel_dim=0,
        init=torch.zeros_like(y),
    )
    filled = observed + missing * u
    return torch.where(seen[..., None, None], filled, y)
