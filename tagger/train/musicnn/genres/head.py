"""The ``genres`` head: one logistic regression per genre over the backbone's window outputs.

Inputs are the shipped graph's own per-window outputs, the 200-d embedding and the 50-tag MSD
taggram, standardised; each genre is a class-balanced binary logistic regression (all genres
fit at once by L-BFGS: one weighted sigmoid cross-entropy). A track's score is the mean of its
windows' probabilities, as :func:`tagger.aggregate.aggregate` computes it.

Partial labels (``Pop/Rock`` = one of Pop, Rock, Metal, Punk) are fit by EM: the members'
shares of each such clip start from the MSD taggram (:data:`~tagger.train.musicnn.genres.labels.GENRE_MSD_TAGS`)
and are then re-estimated from the head's own probabilities; a member with share ``r`` counts
as a positive of weight ``r`` and a negative of weight ``1 - r``.

Thresholds are folded into the bias: the shipped scores are ``sigmoid(logit p - logit t_g)``, so
every genre passes at 0.5 and scores are comparable across genres (the abstain rule compares
the top one with one number).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from tagger.train.musicnn.genres.labels import GENRE_MSD_TAGS
from tagger.train.musicnn.pretrained import MSD_LABELS


@dataclass
class LinearGenres:
    """``sigmoid(x @ weights + bias)`` over raw (unstandardised) features ``x``: the shipped form."""

    weights: np.ndarray  # (features, genres)
    bias: np.ndarray  # (genres,)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return _sigmoid(x @ self.weights + self.bias)

    def shifted(self, thresholds: np.ndarray) -> LinearGenres:
        """The same head with each genre's threshold moved to 0.5."""
        t = np.clip(thresholds, 1e-4, 1 - 1e-4)
        return LinearGenres(self.weights, self.bias - np.log(t / (1 - t)))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def fit_weighted(
    x: np.ndarray, targets: np.ndarray, weights: np.ndarray, c: float, max_iter: int = 300
) -> LinearGenres:
    """Weighted binary cross-entropy + L2 (``1 / (2 C)`` per genre, sklearn's scale) on standardised ``x``."""
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-6
    z = (x - mean) / std
    n, d = z.shape
    g = targets.shape[1]
    scale = weights.sum(axis=0) + 1e-12  # each genre's loss is a weighted mean

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta[: d * g].reshape(d, g)
        b = theta[d * g :]
        logits = z @ w + b
        p = _sigmoid(logits)
        # log(1 + e^l) - y l, stable
        ce = np.logaddexp(0, logits) - targets * logits
        value = float(((weights * ce).sum(axis=0) / scale).sum() + (w * w).sum() / (2 * c * n))
        residual = weights * (p - targets) / scale
        grad_w = z.T @ residual + w / (c * n)
        grad_b = residual.sum(axis=0)
        return value, np.concatenate([grad_w.ravel(), grad_b])

    result = minimize(loss, np.zeros(d * g + g), jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    w = result.x[: d * g].reshape(d, g)
    b = result.x[d * g :]
    # Fold the standardisation in: the tagger computes x @ W + b on the raw outputs.
    return LinearGenres(weights=w / std[:, None], bias=b - (mean / std) @ w)


def balanced_weights(targets: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Per (window, genre) weights giving positives and negatives equal total weight per genre."""
    positive = (targets * known).sum(axis=0)
    negative = ((1 - targets) * known).sum(axis=0)
    total = positive + negative
    w_pos = total / (2 * np.maximum(positive, 1e-6))
    w_neg = total / (2 * np.maximum(negative, 1e-6))
    return known * (targets * w_pos + (1 - targets) * w_neg)


def taggram_prior(taggram: np.ndarray, genres: Sequence[str]) -> np.ndarray:
    """``(clips, genres)`` MSD evidence for each genre (max of its tags' scores; 1 where no tag speaks)."""
    prior = np.ones((len(taggram), len(genres)))
    for column, genre in enumerate(genres):
        tags = GENRE_MSD_TAGS.get(genre)
        if tags:
            prior[:, column] = taggram[:, [MSD_LABELS.index(t) for t in tags]].max(axis=1)
    return prior


def partial_shares(
    scores: np.ndarray, partials: Sequence[Sequence[tuple[str, ...]]], genres: Sequence[str]
) -> np.ndarray:
    """Each clip's share of its partial labels per member genre (0 elsewhere): scores normalised in the union."""
    shares = np.zeros_like(scores, dtype=np.float64)
    index = {g: i for i, g in enumerate(genres)}
    for row, groups in enumerate(partials):
        for group in groups:
            columns = [index[g] for g in group]
            values = scores[row, columns]
            shares[row, columns] = np.maximum(shares[row, columns], values / max(values.sum(), 1e-9))
    return shares


@dataclass
class TrainingSet:
    """Window rows of a set of clips: ``x`` (windows, features), ``clip`` (windows,) -> index into the clip arrays."""

    x: np.ndarray
    clip: np.ndarray
    labels: np.ndarray  # (clips, genres) of 1 / 0 / -1
    partials: list[tuple[tuple[str, ...], ...]]
    taggram_means: np.ndarray  # (clips, 50)


def fit_genres(data: TrainingSet, genres: Sequence[str], c: float, em_rounds: int = 1) -> LinearGenres:
    labels = data.labels
    known_clip = (labels >= 0).astype(np.float64)
    target_clip = (labels == 1).astype(np.float64)
    shares = partial_shares(taggram_prior(data.taggram_means, genres), data.partials, genres)
    head: LinearGenres | None = None
    for round_ in range(em_rounds + 1):
        if head is not None:
            track = track_scores(head.probabilities(data.x), data.clip, len(labels))
            shares = partial_shares(track, data.partials, genres)
        unknown = labels == -1
        targets = np.where(unknown, 1.0, target_clip)
        # An unknown member appears twice in effect: positive with weight r, negative with weight 1 - r.
        pos_w = np.where(unknown, shares, known_clip * target_clip)
        neg_w = np.where(unknown, 1 - shares, known_clip * (1 - target_clip))
        balance_pos = (pos_w.sum(axis=0) + neg_w.sum(axis=0)) / (2 * np.maximum(pos_w.sum(axis=0), 1e-6))
        balance_neg = (pos_w.sum(axis=0) + neg_w.sum(axis=0)) / (2 * np.maximum(neg_w.sum(axis=0), 1e-6))
        # Stack the two copies: (windows x 2) rows, targets 1 then 0.
        rows = data.clip
        x2 = np.concatenate([data.x, data.x])
        t2 = np.concatenate([np.ones((len(rows), len(genres))), np.zeros((len(rows), len(genres)))])
        w2 = np.concatenate([pos_w[rows] * balance_pos, neg_w[rows] * balance_neg])
        del targets
        head = fit_weighted(x2, t2, w2, c)
        if round_ == em_rounds or not any(data.partials):
            break
    assert head is not None
    return head


def track_scores(window_scores: np.ndarray, clip: np.ndarray, clips: int) -> np.ndarray:
    """Mean of each clip's windows' scores: ``(clips, genres)``."""
    sums = np.zeros((clips, window_scores.shape[1]))
    np.add.at(sums, clip, window_scores)
    counts = np.bincount(clip, minlength=clips)[:, None]
    return sums / np.maximum(counts, 1)
