"""The per-condition linear probe: standardized features, multinomial logistic regression.

Fitting uses scikit-learn (``StandardScaler`` + ``LogisticRegression``, lbfgs, multinomial loss); the
fitted probe is kept as plain arrays (scaler mean/scale, softmax coefficients, class names) so it can be
saved without pickle and scored with numpy alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lcd_moa.spec import ProbeSpec

_DEFAULTS = ProbeSpec()  # C and max_iter are declared once, in ProbeSpec


@dataclass
class LinearProbe:
    """A fitted probe in softmax form: ``P = softmax(((X - mean) / scale) @ coef.T + intercept)``.

    Attributes
    ----------
    classes
        Class names, in the order of the rows of ``coef``.
    mean, scale
        Standardization of each feature (from the training wells).
    coef
        ``(n_classes, n_features)`` softmax weights (a binary fit is expanded to two rows).
    intercept
        ``(n_classes,)`` softmax intercepts.
    """

    classes: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    def decision(self, X: np.ndarray) -> np.ndarray:
        """Softmax logits for the rows of ``X``."""
        return ((X - self.mean) / self.scale) @ self.coef.T + self.intercept

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n_rows, n_classes)``, columns in the order of ``classes``."""
        z = self.decision(np.asarray(X, dtype=np.float64))
        z -= z.max(axis=1, keepdims=True)  # stable softmax
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def fit_probe(
    X: np.ndarray, y: np.ndarray, *, C: float = _DEFAULTS.C, max_iter: int = _DEFAULTS.max_iter
) -> LinearProbe:
    """Fit a standardized multinomial logistic regression on wells ``X`` with labels ``y``.

    Parameters
    ----------
    X
        ``(n_wells, n_features)`` training features.
    y
        Class label of each well (at least two distinct labels).
    C
        Inverse L2 regularization strength of the logistic regression.
    max_iter
        lbfgs iteration limit.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(y).astype(str)
    classes = np.unique(y)
    if classes.size < 2:
        raise ValueError(f"a probe needs at least two classes, got {classes.tolist()}")
    scaler = StandardScaler().fit(X)
    model = LogisticRegression(C=C, max_iter=max_iter)
    with warnings.catch_warnings():
        # separable small-sample fits converge slowly; the probabilities are still usable and the
        # iteration limit is a documented parameter
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(scaler.transform(X), y)
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    if coef.shape[0] == 1:  # binary: P(class 1) = sigmoid(z) = softmax([0, z])[1]
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    return LinearProbe(
        classes=np.asarray(model.classes_).astype(str),
        mean=np.asarray(scaler.mean_, dtype=np.float64),
        scale=np.asarray(scaler.scale_, dtype=np.float64),
        coef=coef,
        intercept=intercept,
    )
