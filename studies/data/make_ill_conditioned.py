"""Writes ill_conditioned.npz, the least-squares problem of studies/momentum_ill_conditioned.yaml.

x = z diag(sqrt(lam)) Q^T with z ~ N(0, I), Q a random rotation and the covariance's
eigenvalues lam log-spaced from 1 down to 1/KAPPA; w* = Q diag(1/sqrt(lam)) u, so every
eigen-direction carries the same share of the loss (u ~ N(0, I/D)) and none can be skipped;
y = x w* + noise. Rotated, the columns have about equal variance, so optlab's per-column
standardization keeps the conditioning. Prints the largest eigenvalue of the loss's Hessian
(2 x the standardized covariance): lr = 1 / that is the study's step size.
Run: python studies/data/make_ill_conditioned.py
"""
from pathlib import Path

import numpy as np

N, D, KAPPA, NOISE, SEED = 500, 10, 100.0, 0.1, 0


def make() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    lam = np.logspace(0, -np.log10(KAPPA), D)
    q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    z = rng.standard_normal((N, D))
    x = z @ np.diag(np.sqrt(lam)) @ q.T
    w = q @ np.diag(1 / np.sqrt(lam)) @ (rng.standard_normal(D) / np.sqrt(D))
    y = x @ w + NOISE * rng.standard_normal(N)
    return x.astype(np.float32), y.astype(np.float32)


if __name__ == "__main__":
    x, y = make()
    np.savez(Path(__file__).with_name("ill_conditioned.npz"), x=x, y=y)
    xs = (x - x.mean(0)) / x.std(0)
    eig = np.linalg.eigvalsh(2 * xs.T @ xs / len(xs))
    print(f"Hessian eigenvalues {eig.min():.4g} .. {eig.max():.4g}, condition {eig.max() / eig.min():.1f}, "
          f"lr = 1/L = {1 / eig.max():.4g}")
