"""The three two-sample tests behind :func:`~loopwise_collector.evaluators.embedding_drift.detect_drift`.

Each takes the pooled vectors (reference rows first, then current rows), or their principal components,
and returns a :class:`MethodResult`. None of them needs texts or a model, so the online runner can call them on
stored vectors. Every choice that is fitted on the data (bandwidth, PCA basis, random features) is a
symmetric function of the pooled sample, never of one side alone: under "no drift" the pooled rows
are exchangeable, so the permutation and rank p-values stay valid at any sample size.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Independent random streams per purpose, so changing e.g. the permutation count does not change the
# bandwidth subsample or the random features (and with them every witness value).
_STREAM_BANDWIDTH = 1
_STREAM_FEATURES = 2
_STREAM_PERMUTATIONS = 3

# Rows used for the median heuristic: 1,000 rows give ~500k pairwise distances, plenty for a median,
# and keep the cost flat in the window size.
_BANDWIDTH_ROWS = 1000
# Exact kernel values are computed in blocks of about this many (16 MB of float32).
_KERNEL_BLOCK = 4_000_000
# Permutations are scored in blocks so memory stays at block x rows floats (~5 MB at 10k rows).
_PERMUTATION_BLOCK = 128


@dataclass(frozen=True, slots=True)
class MethodResult:
    """One test's outcome: its statistic, its p-value (``None`` when it did not run) and extras.

    Example:
        >>> MethodResult(0.73, 0.001, {"auc": 0.73}).to_dict()
        {'statistic': 0.73, 'p_value': 0.001, 'auc': 0.73}
    """

    statistic: float | None
    p_value: float | None
    extras: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain floats and ints, the extras inlined after ``statistic`` and ``p_value``."""
        out: dict[str, Any] = {"statistic": _plain(self.statistic), "p_value": _plain(self.p_value)}
        out.update({key: _plain(value) for key, value in self.extras.items()})
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; a non-finite figure means "not measured"
    return value


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


# ---------------------------------------------------------------------------------------------
# (a) MMD with a Gaussian kernel


def median_bandwidth(pooled: np.ndarray, seed: int) -> float:
    """The median heuristic: the median Euclidean distance between pooled rows (subsampled).

    Duplicated rows put many zero distances in the pool; when they reach the median, the median of the
    non-zero distances is used instead, so one repeated text cannot collapse the kernel to a spike.
    Returns 0.0 only when all rows are identical.

    Example:
        >>> round(median_bandwidth(np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]]), seed=0), 1)
        5.0
    """
    rows = pooled
    if len(rows) > _BANDWIDTH_ROWS:
        rows = rows[_rng(seed, _STREAM_BANDWIDTH).choice(len(rows), _BANDWIDTH_ROWS, replace=False)]
    rows = rows.astype(np.float64)
    sq = np.einsum("ij,ij->i", rows, rows)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (rows @ rows.T)
    upper = np.triu_indices(len(rows), k=1)
    dist = np.sqrt(np.clip(d2[upper], 0.0, None))
    scale = float(np.sqrt(np.max(sq))) if sq.size else 0.0
    dist[dist <= 1e-9 * max(scale, 1.0)] = 0.0  # rounding noise between equal rows
    median = float(np.median(dist)) if dist.size else 0.0
    if median == 0.0:
        positive = dist[dist > 0.0]
        median = float(np.median(positive)) if positive.size else 0.0
    return median


def random_fourier_features(pooled: np.ndarray, bandwidth: float, features: int, seed: int) -> np.ndarray:
    """Random Fourier features of the Gaussian kernel ``exp(-|x-y|^2 / (2 bandwidth^2))``.

    Paired cosines and sines of ``features // 2`` frequencies: ``z(x) . z(y)`` is an unbiased estimate
    of the kernel with lower variance than the random-phase form, and ``|z(x)| = 1`` exactly, like
    ``k(x, x) = 1``. Returns float32 rows of length ``2 * (features // 2)``.

    Example:
        >>> x = np.array([[0.0, 0.0], [0.5, 0.0]])
        >>> z = random_fourier_features(x, bandwidth=1.0, features=4096, seed=0)
        >>> round(float(z[0] @ z[1]), 1), round(float(np.exp(-0.125)), 1)
        (0.9, 0.9)
    """
    half = max(features // 2, 1)
    freq = _rng(seed, _STREAM_FEATURES).standard_normal((pooled.shape[1], half)) / bandwidth
    proj = pooled.astype(np.float32) @ freq.astype(np.float32)
    out = np.empty((len(pooled), 2 * half), dtype=np.float32)
    np.cos(proj, out=out[:, :half])
    np.sin(proj, out=out[:, half:])
    out *= np.float32(1.0 / math.sqrt(half))
    return out


def mmd_test(
    pooled: np.ndarray, n_reference: int, *, permutations: int, features: int, seed: int
) -> tuple[MethodResult, np.ndarray]:
    """MMD between the two sides with a permutation p-value; also returns each pooled row's witness.

    Why random Fourier features rather than the exact kernel: with features ``Z``, MMD^2 between two
    label sets is ``|w @ Z|^2`` for a signed weight vector ``w`` (+1/m current, -1/n reference), so a
    block of permutations is one matrix product: 5,000 vs 5,000 rows with 1,000 permutations costs
    ~0.3 s, where the exact 10k x 10k kernel would cost ~1 s per 100 permutations and 400 MB, and a
    subsample would throw away most of the window. The features are drawn independently of the labels,
    so the permutation p-value ``(1 + #{perm >= observed}) / (1 + P)`` is exact for the approximated
    kernel; the approximation only costs a little power. The statistic is the biased (V-statistic) MMD^2.

    Witness ``f(x) = mean_k(x, current) - mean_k(x, reference)``: positive where the current window has
    more mass than the reference. The values returned here come from the random features (within about
    0.005 of the exact ones, clipped to ``[-1, 1]``): good for picking candidates, which
    :func:`witness` then scores exactly.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> pooled = np.vstack([rng.normal(0, 1, (60, 5)), rng.normal(1, 1, (60, 5))])
        >>> result, per_row = mmd_test(pooled, 60, permutations=200, features=256, seed=0)
        >>> result.p_value < 0.01, bool(per_row[60:].mean() > per_row[:60].mean())
        (True, True)
    """
    n_total = len(pooled)
    z, bandwidth, centre = _centred_features(pooled, features, seed)
    if z is None:  # every row identical: no difference to find
        extras = {"bandwidth": 0.0, "features": 0, "permutations": 0}
        return MethodResult(0.0, 1.0, extras), np.zeros(n_total)
    weights = _side_weights(n_total, n_reference)
    delta = weights @ z
    observed = float(np.dot(delta.astype(np.float64), delta.astype(np.float64)))
    # Statistics equal to the observed one up to float32 rounding count as "at least as large": ties
    # then go against drift, which keeps the test conservative on duplicated or discrete data.
    threshold = observed * (1.0 - 1e-4) - 1e-12
    rng = _rng(seed, _STREAM_PERMUTATIONS)
    exceed = 0
    done = 0
    while done < permutations:
        block = min(_PERMUTATION_BLOCK, permutations - done)
        shuffled = rng.permuted(np.broadcast_to(weights, (block, n_total)), axis=1)
        differences = shuffled @ z
        permuted = np.einsum("ij,ij->i", differences, differences, dtype=np.float64)
        exceed += int(np.count_nonzero(permuted >= threshold))
        done += block
    p_value = (1 + exceed) / (1 + permutations)
    extras = {"bandwidth": bandwidth, "features": int(z.shape[1]), "permutations": int(permutations)}
    return MethodResult(observed, p_value, extras), _approximate_witness(z, centre, delta)


def witness(
    pooled: np.ndarray, n_reference: int, *, seed: int, rows: np.ndarray | None = None, bandwidth: float | None = None
) -> np.ndarray:
    """The exact witness of ``pooled[rows]`` (all rows by default): mean kernel to current minus to reference.

    The same Gaussian kernel and median-heuristic bandwidth as :func:`mmd_test` (pass its ``bandwidth``
    to skip recomputing it), but exact, in ``[-1, 1]``; it costs ``len(rows) x len(pooled)`` kernel values,
    computed in blocks, so callers ask only for the rows they show.

    Example:
        >>> points = np.array([[0.0, 0.0], [0.0, 0.1], [5.0, 5.0]])
        >>> w = witness(points, 2, seed=0)
        >>> bool(w[2] > 0 > w[0])
        True
    """
    if bandwidth is None:
        bandwidth = median_bandwidth(pooled, seed)
    chosen = np.arange(len(pooled)) if rows is None else np.asarray(rows, dtype=np.int64)
    if bandwidth == 0.0:
        return np.zeros(len(chosen))
    data = pooled.astype(np.float32)
    squared = np.einsum("ij,ij->i", data, data)
    out = np.empty(len(chosen))
    step = max(1, _KERNEL_BLOCK // len(data))
    for start in range(0, len(chosen), step):
        block = chosen[start : start + step]
        d2 = squared[block, None] + squared[None, :] - 2.0 * (data[block] @ data.T)
        kernel = np.exp(-np.clip(d2, 0.0, None) / (2.0 * bandwidth * bandwidth), dtype=np.float32)
        out[start : start + len(block)] = kernel[:, n_reference:].mean(axis=1) - kernel[:, :n_reference].mean(axis=1)
    return out


def _centred_features(pooled: np.ndarray, features: int, seed: int) -> tuple[np.ndarray | None, float, np.ndarray]:
    bandwidth = median_bandwidth(pooled, seed)
    if bandwidth == 0.0:
        return None, 0.0, np.zeros(0, dtype=np.float32)
    z = random_fourier_features(pooled, bandwidth, features, seed)
    # Centring changes no statistic (the weights sum to zero) but shrinks the terms of each float32 sum,
    # so observed and permuted statistics are computed to the same relative precision.
    centre = z.mean(axis=0, dtype=np.float64).astype(np.float32)
    z -= centre
    return z, bandwidth, centre


def _side_weights(n_total: int, n_reference: int) -> np.ndarray:
    weights = np.empty(n_total, dtype=np.float32)
    weights[:n_reference] = -1.0 / n_reference
    weights[n_reference:] = 1.0 / (n_total - n_reference)
    return weights


def _approximate_witness(z: np.ndarray, centre: np.ndarray, delta: np.ndarray) -> np.ndarray:
    # Undo the centring: a witness is a value per row, not a difference of means.
    values: np.ndarray = np.clip(z @ delta + float(centre @ delta), -1.0, 1.0).astype(np.float64)
    return values


# ---------------------------------------------------------------------------------------------
# Principal components, shared by KS and the classifier


@dataclass(frozen=True, slots=True)
class Components:
    """Pooled rows projected on their top principal components, and the share of variance of each."""

    scores: np.ndarray
    explained: np.ndarray


def principal_components(pooled: np.ndarray, count: int) -> Components:
    """The top ``count`` principal components of the pooled rows (fewer if fewer directions vary).

    Why the basis is fitted on the pooled rows and not on the reference alone: a basis fitted on one side
    overfits it (its top components carry more of that side's variance than of the other's, badly so
    when rows are few compared with the 384 dimensions), and the tests then report that as a shift; KS
    on a reference-fitted basis rejected in every trial with isotropic vectors and 100 rows a side. The
    pooled basis uses no labels, so under "no drift" both sides stay exchangeable along it.

    Example:
        >>> rows = np.array([[0.0, 0.0], [2.0, 1.0], [4.0, 0.0], [6.0, 1.0]])
        >>> pcs = principal_components(rows, 1)
        >>> pcs.scores.shape, round(float(pcs.explained[0]), 3)
        ((4, 1), 0.962)
    """
    # float32 products: half the cost of float64, and the top components' directions and scores need
    # nowhere near float64's precision (the eigen-decomposition itself runs in float64).
    centred = (pooled - pooled.mean(axis=0, dtype=np.float64)).astype(np.float32)
    gram = (centred.T @ centred).astype(np.float64)
    # One BLAS thread: a 384 x 384 eigen-decomposition takes ~15 ms on one, but multi-threaded OpenBLAS
    # spent 0.1 to 2.4 s on it on a busy 2-core machine (threads waiting on each other).
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        eigenvalues, eigenvectors = np.linalg.eigh(gram)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = np.clip(eigenvalues[order], 0.0, None), eigenvectors[:, order]
    total = float(eigenvalues.sum())
    # Directions with no variance (duplicates, a constant window) carry no information but would still
    # cost a Holm step and a classifier weight.
    varying = int(np.count_nonzero(eigenvalues > 1e-10 * total)) if total > 0.0 else 0
    k = min(count, varying)
    scores = (centred @ eigenvectors[:, :k].astype(np.float32)).astype(np.float64)
    return Components(scores, eigenvalues[:k] / total if k else np.zeros(0))


# ---------------------------------------------------------------------------------------------
# (b) Kolmogorov-Smirnov on principal components


def ks_test(components: Components, n_reference: int) -> MethodResult:
    """Two-sample KS on each principal component, Holm-corrected.

    The statistic is the largest KS distance; the p-value is the smallest Holm-adjusted one (for "any
    component shifted" that equals Bonferroni; the per-component adjustment is Holm's).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> same = principal_components(rng.normal(0, 1, (200, 8)), 4)
        >>> ks_test(same, 100).p_value > 0.01
        True
    """
    from scipy import stats

    k = components.scores.shape[1]
    if k == 0:
        return MethodResult(0.0, 1.0, {"n_components": 0, "correction": "holm"})
    with warnings.catch_warnings():
        # Small samples: scipy falls back from the exact to the asymptotic distribution and warns.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ks_2samp(components.scores[:n_reference], components.scores[n_reference:], axis=0)
    distances = np.atleast_1d(np.asarray(result.statistic, dtype=np.float64))
    adjusted = holm(np.atleast_1d(np.asarray(result.pvalue, dtype=np.float64)))
    worst = int(np.argmin(adjusted))
    extras = {
        "n_components": k,
        "correction": "holm",
        "component": worst,
        "explained_variance": float(components.explained.sum()),
    }
    return MethodResult(float(distances.max()), float(adjusted[worst]), extras)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order.

    Example:
        >>> holm(np.array([0.01, 0.04, 0.03])).round(2).tolist()
        [0.03, 0.06, 0.06]
    """
    k = len(p_values)
    order = np.argsort(p_values)
    stepped = np.maximum.accumulate((k - np.arange(k)) * p_values[order])
    adjusted = np.empty(k)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


# ---------------------------------------------------------------------------------------------
# (c) Domain classifier


def classifier_test(features: np.ndarray, n_reference: int, *, folds: int, seed: int) -> MethodResult:
    """Logistic regression telling current from reference: its out-of-fold ROC AUC and a p-value.

    ``features`` are the pooled rows, in practice their top principal components: on 5,000 vs 5,000
    clustered 384-dimensional embeddings, five folds on the raw vectors took ~5 s (lbfgs converges
    slowly on them), on 64 standardised components ~0.4 s, and shifts large enough to matter show in
    the leading components (MMD still sees every direction).

    Each fold's rows are scored by a model fitted on the other folds (stratified K-fold); the statistic
    is the mean of the per-fold AUCs. The p-value is per fold, then Bonferroni over the folds:
    ``min(1, K * min_f p_f)``, each ``p_f`` the one-sided Mann-Whitney test of that fold's current
    scores above its reference scores (normal approximation, tie-corrected). Why not one Mann-Whitney
    over all out-of-fold scores: the folds' models share training rows, so those scores are not
    independent, and on random splits of real embeddings that test fired 2% of the time at a 0.33%
    level. Within one fold a single fitted model scores rows it never saw, which under "no drift" makes
    the test exact; Bonferroni is valid however the folds depend on each other.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> pooled = np.vstack([rng.normal(0, 1, (80, 4)), rng.normal(1, 1, (80, 4))])
        >>> result = classifier_test(pooled, 80, folds=2, seed=0)
        >>> result.extras["auc"] > 0.8, result.p_value < 0.01
        (True, True)
    """
    from scipy import stats
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.zeros(len(features), dtype=np.int8)
    labels[n_reference:] = 1
    k = max(2, min(folds, n_reference, len(features) - n_reference))
    aucs, p_values = [], []
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for train, test in splitter.split(features, labels):
        # Balanced weights: unequal windows must not make "always reference" the best model.
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, class_weight="balanced"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter on separable windows; the ranking still holds
            model.fit(features[train], labels[train])
        scores = model.decision_function(features[test])
        current, reference = scores[labels[test] == 1], scores[labels[test] == 0]
        result = stats.mannwhitneyu(current, reference, alternative="greater", method="asymptotic")
        aucs.append(float(result.statistic) / (len(current) * len(reference)))
        p_values.append(float(result.pvalue))
    auc = float(np.mean(aucs))
    extras = {"auc": auc, "folds": k, "n_components": int(features.shape[1])}
    return MethodResult(auc, min(1.0, k * min(p_values)), extras)
