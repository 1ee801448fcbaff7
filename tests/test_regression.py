"""Pinned end-to-end results, one per solver family, so that an unintended change in any update
rule is caught even where the oracle and quality tests still pass.

Each case restores one fixed 32×32 problem on the CPU in float64 with a deterministic prior —
TV for Chambolle–Pock, the exact Gaussian oracle (``GaussianPrior``: a Wiener denoiser and a
closed-form diffusion model) for every other solver — from a seeded generator, and compares
numbers of the result (PSNR, sum, norm, every fourth pixel of every fourth row, the last data
fit, the iteration and network-call counts) with the values stored in
``tests/data/regression.json``, within the tolerance stored there.

An intended change (a new default, a corrected update rule) changes these numbers: regenerate
them, from the checkout whose ``restorekit`` the interpreter imports, with

    python tests/test_regression.py --update

(it prints which ``restorekit`` it ran), check the diff of ``tests/data/regression.json`` and
say why the numbers moved in the commit message.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from restorekit.operators import make
from restorekit.priors import TV, GaussianPrior
from restorekit.solvers import solve

STORE = Path(__file__).resolve().parent / "data" / "regression.json"
#: 32², not 16²: on a 16² Gaussian blur the 10-step truncated-CG start of the classical solvers
#: already fits the near-null frequencies (it is close to the inverse filter A†y), so a 1e-12
#: change of y moved it by 0.17 and machines that differ only in rounding (CI's CPU and ours)
#: gave results 0.12–1.35 dB apart; at 32² every case moves by < 1e-10 (test_pinned_problem_is_stable)
SIZE = 32
#: tolerance of every stored float (float64 on the CPU: only the summation order may differ)
TOLERANCE = {"rtol": 1e-7, "atol": 1e-10}

#: case → (solver, prior, operator, solver options); one case per solver family
CASES = {
    "chambolle-pock": ("chambolle-pock", "tv", "gaussian-blur", {"max_iter": 30}),
    "pnp-hqs": ("pnp-hqs", "gaussian", "gaussian-blur", {"max_iter": 8}),
    "pnp-admm": ("pnp-admm", "gaussian", "gaussian-blur", {"max_iter": 10}),
    "pnp-pgd": ("pnp-pgd", "gaussian", "gaussian-blur", {"max_iter": 10}),
    "red": ("red", "gaussian", "gaussian-blur", {"max_iter": 10}),
    "dps": ("dps", "gaussian", "gaussian-blur", {"steps": 10}),
    "mcg": ("mcg", "gaussian", "inpainting-random", {"steps": 10}),
    "dds": ("dds", "gaussian", "gaussian-blur", {"steps": 10}),
    "red-diff": ("red-diff", "gaussian", "gaussian-blur", {"steps": 10}),
}


def problem(op_name: str):
    """A draw x of the Gaussian oracle (seed 0) and y = A x + 0.01·n (operator seed 1)."""
    oracle = GaussianPrior.power_law(SIZE)
    x = oracle.sample(1, torch.Generator().manual_seed(0)).clamp(0, 1)
    op = make(op_name, SIZE, 1, noise_sigma=0.01, generator=torch.Generator().manual_seed(1))
    return oracle, x, op, op(x)


def solve_case(case: str, jitter: float = 0.0):
    """The solve of ``case``, on y moved by ``jitter``·n (a fixed draw n) when jitter ≠ 0."""
    solver, prior_name, op_name, options = CASES[case]
    oracle, x, op, y = problem(op_name)
    prior = TV(weight=0.02) if prior_name == "tv" else oracle
    if jitter:
        y = y + jitter * torch.randn(y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(9))
    return solve(y, op, prior, solver, x_true=x, generator=torch.Generator().manual_seed(2), **options)


def run(case: str) -> dict:
    """The numbers pinned for ``case``."""
    r = solve_case(case)
    assert r.x.dtype == torch.float64
    return {
        "psnr": r.metrics.psnr.item(),
        "sum": r.x.sum().item(),
        "norm": r.x.norm().item(),
        "pixels": r.x[0, 0, ::4, ::4].flatten().tolist(),
        "data_fit": r.history.data_fit[-1],
        "iterations": len(r.history.data_fit),
        "nfe": r.nfe,
    }


def test_pinned_problem_is_stable():
    """Pins are only worth comparing across machines if the results do not amplify rounding:
    perturbing y by 1e-13 (float64 rounding is ~1e-16) must move every pinned result by less
    than 1e-9 (measured at most 4e-11 at 32²; at 16² up to 6e-2)."""
    for case in CASES:
        moved = (solve_case(case).x - solve_case(case, jitter=1e-13).x).abs().max()
        assert moved < 1e-9, f"{case}: a 1e-13 change of y moves the result by {moved:.1e}"


def stored() -> dict:
    if not STORE.is_file():
        pytest.fail(f"{STORE} is missing: run python tests/test_regression.py --update")
    return json.loads(STORE.read_text())


def test_store_covers_every_case():
    assert set(stored()["cases"]) == set(CASES), "cases changed: regenerate with --update"


@pytest.mark.parametrize("case", sorted(CASES))
def test_pinned_result(case):
    want = stored()["cases"][case]
    got = run(case)
    tol = stored()["tolerance"]
    assert (got["iterations"], got["nfe"]) == (want["iterations"], want["nfe"]), (got, want)
    for key in ("psnr", "sum", "norm", "data_fit", "pixels"):
        torch.testing.assert_close(
            torch.tensor(got[key], dtype=torch.float64),
            torch.tensor(want[key], dtype=torch.float64),
            msg=f"{case}: {key} moved from the pinned value",
            **tol,
        )


def update() -> None:
    import restorekit

    torch.set_num_threads(1)
    cases = {case: run(case) for case in sorted(CASES)}
    STORE.parent.mkdir(parents=True, exist_ok=True)
    STORE.write_text(
        json.dumps({"tolerance": TOLERANCE, "torch": torch.__version__, "cases": cases}, indent=1) + "\n"
    )
    print(f"wrote {STORE} from {Path(restorekit.__file__).parent}")
    for case, v in cases.items():
        print(f"  {case:<15} PSNR {v['psnr']:.4f} dB, {v['iterations']} iterations, nfe {v['nfe']}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/test_regression.py --update")
    update()
