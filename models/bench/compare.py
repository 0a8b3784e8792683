"""Score scikit-learn baselines on the response-rate reference split.

Trains LogisticRegression and HistGradientBoostingClassifier on the bank
marketing data (UCI, CC BY 4.0, Moro, Cortez and Rita 2014, DOI
10.24432/C5K306) without the `duration` column. Both use the same stratified
split as the Rust trainer. The script prints ROC AUC, PR AUC, Brier score,
log-loss and training time on the test rows.

The split rule is the one in `models/src/split.rs`. Row i (0-based, header
excluded) gets the key splitmix64(seed, i), the i-th output of a SplitMix64
generator seeded with `seed`. Within each class, rows are ordered by
(key, i). The first floor(70 n / 100) go to train, the next floor(15 n / 100)
to validation, and the rest to test.

Usage: python models/bench/compare.py PATH/bank-full.csv [--seed 42]
Needs: scikit-learn and pandas (pip install scikit-learn pandas).
"""

import argparse
import hashlib
import time

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

MASK = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15
CATEGORICAL = [
    "job",
    "marital",
    "education",
    "default",
    "housing",
    "loan",
    "contact",
    "month",
    "poutcome",
]
NUMERIC = ["age", "balance", "day", "campaign", "pdays", "previous"]


def splitmix64(seed: int, index: int) -> int:
    """Return the index-th output (0-based) of SplitMix64 seeded with seed."""
    z = (seed + (index + 1) * GOLDEN_GAMMA) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def stratified_split(labels: np.ndarray, seed: int):
    """Split row indices into train, validation and test (70/15/15 per class)."""
    train, validation, test = [], [], []
    for label in (0, 1):
        rows = [i for i in range(len(labels)) if labels[i] == label]
        rows.sort(key=lambda i: (splitmix64(seed, i), i))
        n_train = len(rows) * 70 // 100
        n_validation = len(rows) * 15 // 100
        train += rows[:n_train]
        validation += rows[n_train : n_train + n_validation]
        test += rows[n_train + n_validation :]
    return sorted(train), sorted(validation), sorted(test)


def fingerprint(rows) -> str:
    """Return the first 16 hex digits of SHA-256 over the comma-joined rows."""
    text = ",".join(str(i) for i in rows)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def metrics(y_true, p) -> dict:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return {
        "roc_auc": roc_auc_score(y_true, p),
        "pr_auc": average_precision_score(y_true, p),
        "brier": brier_score_loss(y_true, p),
        "log_loss": log_loss(y_true, p),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="path of bank-full.csv (';'-separated)")
    parser.add_argument("--seed", type=int, default=42, help="split seed")
    args = parser.parse_args()

    frame = pd.read_csv(args.csv, sep=";")
    y = (frame.pop("y") == "yes").astype(int).to_numpy()
    # `duration` is known only after the call ends, so it cannot predict it.
    frame = frame.drop(columns=["duration"])
    train, validation, test = stratified_split(y, args.seed)
    print(
        f"split: train {len(train)}, validation {len(validation)}, "
        f"test {len(test)}, test fingerprint {fingerprint(test)}"
    )
    x_train, y_train = frame.iloc[train], y[train]
    x_test, y_test = frame.iloc[test], y[test]

    logistic = make_pipeline(
        ColumnTransformer(
            [
                ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                ("numeric", StandardScaler(), NUMERIC),
            ]
        ),
        LogisticRegression(max_iter=2000),
    )
    boosting = make_pipeline(
        ColumnTransformer(
            [
                (
                    "categorical",
                    OrdinalEncoder(
                        handle_unknown="use_encoded_value", unknown_value=-1
                    ),
                    CATEGORICAL,
                ),
                ("numeric", "passthrough", NUMERIC),
            ]
        ),
        HistGradientBoostingClassifier(
            categorical_features=list(range(len(CATEGORICAL))), random_state=args.seed
        ),
    )

    print(
        f"{'model':<32} {'ROC AUC':>8} {'PR AUC':>8} {'Brier':>8} "
        f"{'log-loss':>8} {'train s':>8}"
    )
    for name, model in [
        ("sklearn LogisticRegression", logistic),
        ("sklearn HistGradientBoosting", boosting),
    ]:
        start = time.perf_counter()
        model.fit(x_train, y_train)
        seconds = time.perf_counter() - start
        scores = metrics(y_test, model.predict_proba(x_test)[:, 1])
        print(
            f"{name:<32} {scores['roc_auc']:>8.4f} {scores['pr_auc']:>8.4f} "
            f"{scores['brier']:>8.4f} {scores['log_loss']:>8.4f} {seconds:>8.2f}"
        )


if __name__ == "__main__":
    main()
