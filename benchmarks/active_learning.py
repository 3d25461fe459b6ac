"""Active learning on real data: Modera's review selection vs random labelling.

Davidson 2017 embeddings (packaged all-MiniLM-L6-v2, see davidson_embeddings.py) are split once into a
stratified 30% test set and a pool. Each run starts from 50 random pool labels and adds 50 per round up
to 1,000. The model is scikit-learn LogisticRegression(class_weight="balanced", max_iter=1000) over the
embeddings, a multi-class classifier whose predict_proba gives the per-class probabilities that
``modera.labeling.active.select`` ranks. It stands in for the champion model, which would be too slow to
fine-tune 20 times per run on CPU. Strategies:

* random: 50 pool items drawn at random;
* entropy: ``select(probs, 50, embeddings=pool, strategy="entropy", max_similarity=0.95)``;
* margin: the same with ``strategy="margin"``;
* entropy+quota: entropy with ``quotas={"hate": 10}`` (10 of every 50 chosen for the hate class).

Three seeds (the initial 50 and the random draws), means reported. Metrics on the test set after every
round: macro-F1 and hate F1 (the rare class, ~6%). A PNG with both curves goes to --out-dir.

    make bench-active-learning DATA=../shared/data
    python -m benchmarks.active_learning --data-dir ../shared/data --seeds 3
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.davidson_embeddings import CLASS_NAMES, DEFAULT_CACHE, load_embeddings

STRATEGIES = ("random", "entropy", "margin", "entropy+quota")
REPORT_AT = (100, 250, 500, 1000)


def fit_predict(X: np.ndarray, y: np.ndarray):
    """A fitted LogisticRegression and a function giving (n, 3) probabilities in class order 0, 1, 2."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(class_weight="balanced", max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)

    def proba(rows: np.ndarray) -> np.ndarray:
        out = np.zeros((len(rows), len(CLASS_NAMES)))
        out[:, model.classes_] = model.predict_proba(rows)  # a class not yet labelled stays at 0
        return out

    return model, proba


def evaluate(model, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score

    pred = model.predict(X)
    return {"macro_f1": float(f1_score(y, pred, average="macro", labels=[0, 1, 2], zero_division=0)),
            "hate_f1": float(f1_score(y == 0, pred == 0, zero_division=0))}


def choose(strategy: str, probs: np.ndarray, emb: np.ndarray, batch: int, rng: np.random.Generator) -> np.ndarray:
    """Positions (into the unlabelled pool) of the next ``batch`` items to label."""
    from modera.labeling.active import select

    if strategy == "random":
        return rng.choice(len(probs), min(batch, len(probs)), replace=False)
    quotas = {"hate": 10} if strategy == "entropy+quota" else None
    picks = select(probs, batch, classes=CLASS_NAMES, embeddings=emb, strategy=strategy.split("+")[0],
                   quotas=quotas, max_similarity=0.95)
    return np.array([p.row for p in picks], dtype=np.int64)


def run(strategy: str, X: np.ndarray, y: np.ndarray, pool: np.ndarray, test: np.ndarray, seed: int,
        start: int, batch: int, budget: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    labelled = list(rng.choice(pool, start, replace=False))
    curve = []
    while True:
        model, proba = fit_predict(X[labelled], y[labelled])
        scores = evaluate(model, X[test], y[test])
        curve.append({"labels": len(labelled), **scores,
                      "hate_labelled": int((y[labelled] == 0).sum())})
        if len(labelled) >= budget:
            return curve
        rest = np.setdiff1d(pool, labelled)
        picked = choose(strategy, proba(X[rest]), X[rest], min(batch, budget - len(labelled)), rng)
        labelled.extend(rest[picked].tolist())


def mean_curves(runs: list[list[dict]]) -> list[dict]:
    return [{key: float(np.mean([r[i][key] for r in runs])) for key in runs[0][i]} for i in range(len(runs[0]))]


def plot(curves: dict[str, list[dict]], full: dict[str, float], path: Path, seeds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in zip(axes, ("macro_f1", "hate_f1"), ("macro-F1", "hate F1")):
        for name, curve in curves.items():
            ax.plot([c["labels"] for c in curve], [c[key] for c in curve], marker=".", label=name)
        ax.axhline(full[key], color="grey", linestyle="--", linewidth=1, label="all pool labels")
        ax.set_xlabel("labelled items")
        ax.set_ylabel(title)
        ax.set_title(f"Davidson test set: {title}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Active learning, LogisticRegression on MiniLM embeddings (mean of {seeds} seeds)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    from sklearn.model_selection import train_test_split

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data"), help="the shared data folder")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where the embeddings are cached")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_CACHE, help="PNG and JSON go here")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--start", type=int, default=50)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--budget", type=int, default=1000)
    p.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    args = p.parse_args(argv)
    X, y = load_embeddings(args.data_dir, args.cache_dir)
    rows = np.arange(len(y))
    pool, test = train_test_split(rows, test_size=0.3, stratify=y, random_state=0)
    print(f"\nDavidson 2017: pool {len(pool)}, test {len(test)} (stratified 30%); {args.start} random labels, then "
          f"{args.batch} per round to {args.budget}; {args.seeds} seeds")
    print("Model: LogisticRegression(class_weight='balanced', max_iter=1000) on all-MiniLM-L6-v2 embeddings, standing "
          "in for the champion model (fine-tuning it 20 times per run is too slow on CPU).")
    started = time.perf_counter()
    full_model, _ = fit_predict(X[pool], y[pool])
    full = evaluate(full_model, X[test], y[test])
    print(f"Reference, all {len(pool)} pool labels: macro-F1 {full['macro_f1']:.3f}, hate F1 {full['hate_f1']:.3f} "
          f"({time.perf_counter() - started:.1f}s)")
    curves, raw = {}, {}
    for strategy in args.strategies:
        started = time.perf_counter()
        raw[strategy] = [run(strategy, X, y, pool, test, seed, args.start, args.batch, args.budget)
                         for seed in range(args.seeds)]
        curves[strategy] = mean_curves(raw[strategy])
        print(f"  {strategy}: {time.perf_counter() - started:.0f}s", flush=True)
    print_table(curves)
    out = args.out_dir.expanduser()
    png = out / "active_learning.png"
    plot(curves, full, png, args.seeds)
    (out / "active_learning.json").write_text(json.dumps({"full_pool": full, "mean": curves, "runs": raw}, indent=1))
    print(f"\nwrote {png} and {out / 'active_learning.json'}")


def print_table(curves: dict[str, list[dict]]) -> None:
    base = {c["labels"]: c for c in curves.get("random", [])}
    print("\n| labels | strategy | macro-F1 | vs random | hate F1 | vs random | hate items labelled |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for at in REPORT_AT:
        for name, curve in curves.items():
            point = next((c for c in curve if c["labels"] == at), None)
            if point is None:
                continue
            ref = base.get(at)
            rm = f"{point['macro_f1'] / ref['macro_f1']:.2f}x" if ref and ref["macro_f1"] else "n/a"
            rh = f"{point['hate_f1'] / ref['hate_f1']:.2f}x" if ref and ref["hate_f1"] else "n/a"
            print(f"| {at} | {name} | {point['macro_f1']:.3f} | {rm} | {point['hate_f1']:.3f} | {rh} | "
                  f"{point['hate_labelled']:.0f} |")


if __name__ == "__main__":
    main()
