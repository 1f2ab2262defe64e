"""The head itself: standardisation + one class-balanced logistic regression per label, fit jointly."""

from __future__ import annotations

import numpy as np

from tagger.vocabulary import EmbeddingHead

REGULARISATION_C = 0.5  # inverse L2 strength: a little firmer than sklearn's 1.0, for few tracks per label


def fit_head(x: np.ndarray, y: np.ndarray, c: float = REGULARISATION_C) -> EmbeddingHead:
    """Standardise, then one class-balanced L2 logistic regression per column of ``y`` (0/1).

    The regressions are independent, so their summed objective is separable: one L-BFGS run
    over all labels finds what ``LogisticRegression(C=c, class_weight="balanced")`` finds for
    each label alone (a test checks), in one vectorised pass instead of a Python loop of fits,
    which keeps 10,000 tracks within seconds (measured: 10,000 tracks, 7,500 tagged, 30 labels,
    200 dims, 6 fits (5 folds + final): 18 s on 2 busy cores, against 4 minutes looping over
    scikit-learn's ``LogisticRegression``).
    """
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    weights = np.zeros((y.shape[1], x.shape[1]))
    bias = np.zeros(y.shape[1])
    constant = y.min(axis=0) == y.max(axis=0)  # this fold has no positive (or no negative): predict the constant
    bias[constant] = np.where(y[0, constant] > 0, 30.0, -30.0)
    varied = np.flatnonzero(~constant)
    if len(varied):
        weights[varied], bias[varied] = _balanced_logistic(z, y[:, varied].astype(np.float64), c)
    return EmbeddingHead(scaler.mean_.copy(), scaler.scale_.copy(), weights, bias)


def _balanced_logistic(z: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Minimise, for every label j at once, sum_i s_ij * logloss(y_ij, z_i . w_j + b_j) + |w_j|^2 / 2c.

    ``s`` are the class-balanced sample weights, n / (2 n_class) (scikit-learn's ``"balanced"``).
    """
    from scipy.optimize import minimize
    from scipy.special import expit
    from threadpoolctl import threadpool_limits

    n, dims = z.shape
    labels = y.shape[1]
    positives = y.sum(axis=0)
    s = np.where(y > 0, n / (2 * positives), n / (2 * (n - positives)))

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: labels * dims].reshape(labels, dims), theta[labels * dims :]
        logits = z @ w.T + b
        loss = np.sum(s * (np.logaddexp(0.0, logits) - y * logits)) + 0.5 / c * np.sum(w * w)
        g = s * (expit(logits) - y)
        gradient = np.concatenate([(g.T @ z + w / c).ravel(), g.sum(axis=0)])
        return float(loss / n), gradient / n

    start = np.zeros(labels * (dims + 1))
    # One BLAS thread: these matrices are small, and threads cost more than they save (6x slower measured).
    with threadpool_limits(1, user_api="blas"):
        result = minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": 5000, "gtol": 1e-6})
    return result.x[: labels * dims].reshape(labels, dims), result.x[labels * dims :]
