"""Images that ship offline: scikit-image samples, synthetic dead-leaves and phantoms.

Every image is returned as a float32 tensor shaped (1, C, H, W) with values in [0, 1].

Data discipline: the images named in :data:`HELD_OUT` are never used to train or tune
anything in this project. Training scripts draw from :data:`TRAINING` (and the synthetic
generators); every quality figure we report is measured on :data:`HELD_OUT`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

GRAY_IMAGES = (
    "camera",
    "coins",
    "moon",
    "page",
    "text",
    "brick",
    "grass",
    "gravel",
    "clock",
    "cell",
    "microaneurysms",
    "shepp_logan_phantom",
)
COLOR_IMAGES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "colorwheel",
)
IMAGES = GRAY_IMAGES + COLOR_IMAGES + ("lfw_subset",)

#: Never used for training or tuning; all reported quality figures are measured on these.
HELD_OUT = ("camera", "astronaut", "coins", "shepp_logan_phantom")
#: The sample images training scripts may use (everything shipped that is not held out).
TRAINING = tuple(n for n in IMAGES if n not in HELD_OUT)


def _as_device(device):
    return torch.device(device) if device is not None else torch.device("cpu")


def _raw(name: str, index: int = 0) -> np.ndarray:
    import skimage.data

    if name == "lfw_subset":
        faces = skimage.data.lfw_subset()
        if not 0 <= index < len(faces):
            raise ValueError(f"index must be in [0, {len(faces)}) for lfw_subset, got {index}")
        return faces[index]
    img = getattr(skimage.data, name)()
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    return np.asarray(img, dtype=np.float32)


def load_image(
    name: str,
    size: int | tuple[int, int] | None = None,
    color: bool | None = None,
    device=None,
    index: int = 0,
    *,
    normalize: bool = False,
    with_info: bool = False,
):
    """Load a scikit-image sample image, or an image file, as a (1, C, H, W) float32 tensor in [0, 1].

    Parameters
    ----------
    name : one of :data:`IMAGES`, or a path to an image file (see
        :func:`restorekit.io.read_image`: uint8/uint16 scaled by 255/65535, float data outside
        [0, 1], NaN/Inf refused, alpha dropped with a warning).
    size : side length (or (H, W)) of a centre crop to the largest square/rectangle of the
        same aspect, then resized with antialiasing. ``None`` keeps the native size.
    color : ``True`` gives 3 channels, ``False`` 1 channel (luminance); ``None`` keeps the
        image's own.
    device : where the tensor lives.
    index : which face for ``lfw_subset``.
    normalize : files only: map float data outside [0, 1] to [0, 1] by min-max instead of refusing.
    with_info : also return the file's :class:`restorekit.io.ImageInfo` (None for sample images).

    Examples
    --------
    >>> x = load_image("camera", size=32)
    >>> x.shape, x.dtype, bool(x.min() >= 0 and x.max() <= 1)
    (torch.Size([1, 1, 32, 32]), torch.float32, True)
    >>> load_image("astronaut", size=16).shape      # colour images keep their 3 channels
    torch.Size([1, 3, 16, 16])
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    if size is not None:
        _check_size(size)
    info = None
    if name in IMAGES:
        img = _raw(name, index)
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[..., :3]
        x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
        x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    elif "." in name:
        from .io import read_image

        x, info = read_image(name, normalize=normalize)
    else:
        raise ValueError(f"unknown image {name!r}; choose one of {', '.join(IMAGES)} or give a file path")
    if color is True and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    elif color is False and x.shape[1] == 3:
        x = 0.2125 * x[:, :1] + 0.7154 * x[:, 1:2] + 0.0721 * x[:, 2:3]
    if size is not None:
        x = _crop_resize(x, size)
    x = x.clamp(0, 1).contiguous().to(_as_device(device))
    return (x, info) if with_info else x


def _check_size(size) -> None:
    pair = (size, size) if isinstance(size, int) else size
    if (
        isinstance(size, bool)
        or not isinstance(pair, (tuple, list))
        or len(pair) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in pair)
    ):
        raise ValueError(f"size must be a positive int or a pair (H, W) of positive ints, got {size!r}")


def _crop_resize(x: torch.Tensor, size) -> torch.Tensor:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    H, W = x.shape[-2:]
    scale = min(H / h, W / w)
    ch, cw = int(round(h * scale)), int(round(w * scale))
    top, left = (H - ch) // 2, (W - cw) // 2
    x = x[..., top : top + ch, left : left + cw]
    if (ch, cw) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return x


def held_out(size: int = 128, color: bool = False, device=None) -> torch.Tensor:
    """All :data:`HELD_OUT` images as one (N, C, size, size) batch."""
    return torch.cat([load_image(n, size=size, color=color, device=device) for n in HELD_OUT])


def grid_crops(names, per_image: int, *, crop: int = 32, size: int = 96, device=None) -> torch.Tensor:
    """The first ``per_image`` non-overlapping crop×crop tiles (row by row) of each named gray
    image resized to size², stacked as (len(names)·per_image, 1, crop, crop): many small,
    fixed test or calibration images from a few photographs (e.g. for
    :mod:`restorekit.uncertainty`, whose guarantees count images)."""
    cells = [(i, j) for i in range(0, size - crop + 1, crop) for j in range(0, size - crop + 1, crop)]
    if isinstance(per_image, bool) or not isinstance(per_image, int) or not 1 <= per_image <= len(cells):
        raise ValueError(
            f"per_image must be an int in [1, {len(cells)}] for {crop}² crops of {size}², got {per_image!r}"
        )
    out = []
    for name in names:
        img = load_image(name, size=size, color=False, device=device)
        out += [img[..., i : i + crop, j : j + crop] for i, j in cells[:per_image]]
    return torch.cat(out)


def dead_leaves(
    size: int = 64,
    channels: int = 1,
    generator: torch.Generator | None = None,
    rmin: float = 0.02,
    rmax: float = 0.5,
    alpha: float = 3.0,
    n_disks: int = 800,
    device=None,
) -> torch.Tensor:
    """A dead-leaves image (occluding random disks, radius density ∝ r^-alpha), (1, C, size, size).

    ``n_disks`` disks are drawn front to back; each pixel takes the value of the first disk
    that covers it (uniform random grey level or colour, with a mild linear shading).
    Pixels no disk covers keep a random background level.
    """
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    dev = _as_device(device)  # the random numbers come from g on the CPU; the drawing runs on dev
    axis = torch.linspace(0, 1, size, device=dev)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    u = torch.rand(n_disks, 5 + channels, generator=g).to(dev)
    a = 1.0 - alpha
    # inverse-CDF sample of r with density ∝ r^-alpha on [rmin, rmax]
    r = (rmin**a + u[:, 0] * (rmax**a - rmin**a)) ** (1.0 / a)
    cx, cy = u[:, 1] * 1.2 - 0.1, u[:, 2] * 1.2 - 0.1
    inside = (xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2 <= r[
        :, None, None
    ] ** 2
    first = inside.to(torch.uint8).argmax(0)  # index of the front-most disk covering each pixel
    hit = inside.any(0)
    shade = (u[first, 3] - 0.5) * 0.3 * (xx - cx[first]) + (u[first, 4] - 0.5) * 0.3 * (yy - cy[first])
    background = torch.rand(channels, 1, 1, generator=g).to(dev)
    img = torch.where(hit, (u[first, 5:].permute(2, 0, 1) + shade).clamp(0, 1), background)
    return img[None]


def ellipse_phantom(
    size: int = 64, generator: torch.Generator | None = None, n_ellipses: int = 8, device=None
) -> torch.Tensor:
    """A random piecewise-constant phantom: a head-like outer ellipse plus random inner ellipses."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    img = torch.zeros(size, size)

    def add(cx, cy, ax, ay, theta, value):
        c, s = math.cos(theta), math.sin(theta)
        xr, yr = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
        img[(xr / ax) ** 2 + (yr / ay) ** 2 <= 1] += value

    u = torch.rand(3, generator=g)
    add(0.0, 0.0, 0.75 + 0.15 * u[0].item(), 0.85 + 0.1 * u[1].item(), 0.2 * (u[2].item() - 0.5), 0.8)
    add(0.0, 0.0, 0.68, 0.78, 0.0, -0.5)
    for _ in range(n_ellipses):
        v = torch.rand(6, generator=g).tolist()
        add(
            0.9 * v[0] - 0.45,
            0.9 * v[1] - 0.45,
            0.05 + 0.3 * v[2],
            0.05 + 0.3 * v[3],
            math.pi * v[4],
            0.4 * v[5] - 0.1,
        )
    return img.clamp(0, 1)[None, None].to(_as_device(device))


def random_patches(
    n: int,
    size: int,
    channels: int = 1,
    generator: torch.Generator | None = None,
    images: tuple[str, ...] = TRAINING,
    synthetic_fraction: float = 0.3,
    device=None,
) -> torch.Tensor:
    """n training patches (n, C, size, size): random crops of ``images`` with random flips and
    90° rotations, mixed with dead-leaves and ellipse phantoms (``synthetic_fraction``).

    Refuses any image in :data:`HELD_OUT`.
    """
    bad = sorted(set(images) & set(HELD_OUT))
    if bad:
        raise ValueError(f"images {bad} are in HELD_OUT and may not be used for training")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    dev = _as_device(device)
    pool = [_training_image(name, channels).to(dev) for name in images]
    out = torch.empty(n, channels, size, size, device=dev)
    for i in range(n):
        r = torch.rand(1, generator=g).item()
        if r < synthetic_fraction / 2:
            p = dead_leaves(size, channels, generator=g, device=dev)[0]
        elif r < synthetic_fraction:
            p = ellipse_phantom(size, generator=g, device=dev)[0].expand(channels, -1, -1)
        else:
            img = pool[int(torch.randint(len(pool), (1,), generator=g))]
            H, W = img.shape[-2:]
            # random scale in [1, 2] before cropping keeps some large-scale structure in patches
            s = 1 + torch.rand(1, generator=g).item()
            crop = min(int(size * s), H, W)
            top = int(torch.randint(H - crop + 1, (1,), generator=g))
            left = int(torch.randint(W - crop + 1, (1,), generator=g))
            p = img[:, top : top + crop, left : left + crop]
            if crop != size:
                p = F.interpolate(
                    p[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False
                )[0]
        k = int(torch.randint(4, (1,), generator=g))
        p = torch.rot90(p, k, dims=(-2, -1))
        if torch.rand(1, generator=g).item() < 0.5:
            p = p.flip(-1)
        out[i] = p
    return out


_POOL_CACHE: dict[tuple[str, int], torch.Tensor] = {}


def _training_image(name: str, channels: int) -> torch.Tensor:
    key = (name, channels)
    if key not in _POOL_CACHE:
        if name == "lfw_subset":
            faces = torch.from_numpy(_raw_all_faces())
            img = faces  # (200, 25, 25): stitched into a grid so it crops like one image
            img = img[:196].reshape(14, 14, 25, 25).permute(0, 2, 1, 3).reshape(350, 350)[None]
            img = img.expand(channels, -1, -1)
        else:
            img = load_image(name, color=channels == 3)[0]
        _POOL_CACHE[key] = img.contiguous()
    return _POOL_CACHE[key]


def _raw_all_faces() -> np.ndarray:
    import skimage.data

    return skimage.data.lfw_subset().astype(np.float32)


#: The ten ellipsoids of the modified 3D Shepp–Logan phantom (Kak & Slaney's 3D head with
#: Toft's higher-contrast intensities): value, semi-axes (a, b, c) along (x, y, z), centre
#: (x0, y0, z0), rotation about z in degrees (φ + ψ of the z-x-z Euler angles, θ = 0 for all).
SHEPP_LOGAN_3D = (
    (1.0, 0.69, 0.92, 0.81, 0.0, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.874, 0.78, 0.0, -0.0184, 0.0, 0.0),
    (-0.2, 0.11, 0.31, 0.22, 0.22, 0.0, 0.0, -8.0),
    (-0.2, 0.16, 0.41, 0.28, -0.22, 0.0, 0.0, 28.0),
    (0.1, 0.21, 0.25, 0.41, 0.0, 0.35, -0.15, 0.0),
    (0.1, 0.046, 0.046, 0.05, 0.0, 0.1, 0.25, 0.0),
    (0.1, 0.046, 0.046, 0.05, 0.0, -0.1, 0.25, 0.0),
    (0.1, 0.046, 0.023, 0.05, -0.08, -0.605, 0.0, 0.0),
    (0.1, 0.023, 0.023, 0.02, 0.0, -0.606, 0.0, 0.0),
    (0.1, 0.023, 0.046, 0.02, 0.06, -0.605, 0.0, 0.0),
)


def phantom3d(depth: int = 32, size: int = 128, *, z_extent: float = 0.5, device=None) -> torch.Tensor:
    """The 3D Shepp–Logan head phantom (:data:`SHEPP_LOGAN_3D`, made in code) as a (1, 1, D, N, N)
    volume in [0, 1]: ``depth`` axial slices at z evenly spaced over [−z_extent, z_extent] of the
    [−1, 1]³ cube, each sampled on an N × N grid over [−1, 1]² (y pointing up, as in
    ``skimage.data.shepp_logan_phantom``). Its central slice is close to the 2D Shepp–Logan
    phantom, a :data:`HELD_OUT` image: use it to measure, never to tune."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive int, got {depth!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ValueError(f"size must be an int >= 2, got {size!r}")
    if not 0 <= z_extent <= 1:
        raise ValueError(f"z_extent must be in [0, 1], got {z_extent!r}")
    z = torch.linspace(-z_extent, z_extent, depth, dtype=torch.float64)
    t = torch.linspace(-1, 1, size, dtype=torch.float64)
    zz, yy, xx = torch.meshgrid(z, -t, t, indexing="ij")
    vol = torch.zeros(depth, size, size, dtype=torch.float64)
    for value, a, b, c, x0, y0, z0, angle in SHEPP_LOGAN_3D:
        co, si = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        xr = (xx - x0) * co + (yy - y0) * si
        yr = -(xx - x0) * si + (yy - y0) * co
        vol += value * (((xr / a) ** 2 + (yr / b) ** 2 + ((zz - z0) / c) ** 2) <= 1)
    return vol.clamp(0, 1).float()[None, None].to(_as_device(device))
