"""``report.md`` (per-genre table in the paper's format, parity, training) and ``confusion.png`` from a card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tagger.train.evaluate import genre_table, plot_confusion

# The paper's figures (random 80/20 split of the full GTZAN, 1000 clips), for comparison.
PAPER_FIGURES = {"precision": 0.79, "recall": 0.79, "f1": 0.78, "rock_f1": 0.56, "classical_f1": 0.95}
SMALL_DATA_CLIPS = 500


def _figure(value: Any) -> str:
    if isinstance(value, dict):
        return f"{value['mean']:.3f} ± {value['std']:.3f}"
    return f"{value:.3f}"


def _shown_rows(scores: dict[str, Any], genres: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Genres with test clips, or that the model predicted for some test clip (a genre with neither has no row)."""
    predicted = dict(zip(genres, (sum(column) for column in zip(*scores["confusion"], strict=True)), strict=True))
    return {genre: row for genre, row in scores["per_genre"].items() if row["support"] or predicted.get(genre)}


def write(out: Path, card: dict[str, Any], genres: tuple[str, ...]) -> None:
    """Write ``report.md`` and ``confusion.png`` into ``out``."""
    metrics = card["metrics"]
    parity = card["parity"]
    split = card["split"]
    training = card["training"]
    is_cv = "per_fold" in metrics
    clips = split.get("clips_found", 0)
    spread = " (mean ± std over folds)" if is_cv else ""
    lines = [
        f"# {card['name']} — configuration `{card['configuration']}`",
        "",
        f"- Data: `{split.get('data_root', '?')}`, {clips} clips found, fingerprint `{card['data_fingerprint']}`",
        f"- Protocol: {metrics['protocol']}",
        f"- Seed {card['seed']}; trainer {card['trainer_version']}; created {card['created']}",
    ]
    if split.get("unreadable"):
        lines.append(f"- Unreadable clips skipped: {len(split['unreadable'])}")
    if split.get("protocol") == "fault-filtered":
        lines.append(
            f"- Fault-filtered lists {split['listed']}; present here {split['present']}; missing {split['missing']}; "
            f"clips in no list excluded: {split['excluded_unlisted']}; validation from: {split['valid_from']}"
        )
    if "counts" in split:
        lines.append(f"- Counts: {split['counts']}")
    if clips < SMALL_DATA_CLIPS:
        lines += [
            "",
            f"> Figures from {clips} clips: a small set (GTZAN's sample is also artist-heavy), so they say "
            "little about the model on real libraries; read them with their spread.",
        ]
    support = "support (tracks x repeats)" if is_cv else "support (tracks)"
    for kind in ("float", "int8"):
        scores = metrics[kind]
        lines += [
            "",
            f"## Track level, {'Keras float' if kind == 'float' else 'int8 TFLite (through tagger.model.Classifier)'}"
            f"{spread}",
            "",
            genre_table(_shown_rows(scores, genres), scores["macro"], support),
            "",
            f"Track accuracy {_figure(scores['track_accuracy'])}; "
            f"window accuracy {_figure(scores['window_accuracy'])}.",
        ]
        if "pooled" in scores:
            lines += [
                "",
                "Pooled over every fold's held-out predictions (summed confusion matrix; each clip counted once "
                "per repeat):",
                "",
                genre_table(scores["pooled"]["per_genre"], scores["pooled"]["macro"], "support (tracks x repeats)"),
            ]
    lines += [
        "",
        "## The paper (random 80/20 split of the full GTZAN, 1000 clips)",
        "",
        f"Average precision / recall / F1 {PAPER_FIGURES['precision']:.2f} / {PAPER_FIGURES['recall']:.2f} / "
        f"{PAPER_FIGURES['f1']:.2f}; rock F1 {PAPER_FIGURES['rock_f1']:.2f}; classical F1 "
        f"{PAPER_FIGURES['classical_f1']:.2f}.",
        "",
        "## Parity (int8 vs float)",
        "",
        f"- Evaluated on: {parity['evaluated_on']}",
        f"- Track-level agreement: {parity['track_agreement']:.3f} (target ≥ {parity['targets']['track_agreement']})",
        f"- Macro-F1 float {parity['macro_f1_float']:.3f}, int8 {parity['macro_f1_int8']:.3f} "
        f"(difference {parity['macro_f1_difference_points']:.2f} points, "
        f"target ≤ {parity['targets']['macro_f1_points']})",
        f"- int8 model {parity['int8_bytes'] / 1024:.0f} KiB (target < 2 MiB); targets met: {parity['met']}",
    ]
    if "final_model" in parity:
        final = parity["final_model"]
        lines.append(
            f"- Shipped model, on {final['evaluated_on']}: agreement {final['track_agreement']:.3f}, "
            f"macro-F1 float {final['macro_f1_float']:.3f} / int8 {final['macro_f1_int8']:.3f}"
        )
    lines += ["", "## Training", ""]
    lines += [f"- {key}: {value}" for key, value in training.items() if key != "history"]
    if is_cv:
        lines += ["", "| repeat | fold | test clips | best epoch | float macro-F1 | int8 macro-F1 | agreement |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        lines += [
            f"| {f['repeat']} | {f['fold']} | {f['test_clips']} | {f['best_epoch']} | {f['float_macro_f1']:.3f} | "
            f"{f['int8_macro_f1']:.3f} | {f['track_agreement']:.3f} |"
            for f in metrics["per_fold"]
        ]
    lines += ["", "![confusion matrix](confusion.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    title = f"{card['name']} ({card['configuration']}): track level, float" + (", summed over folds" if is_cv else "")
    plot_confusion(metrics["float"]["confusion"], genres, out / "confusion.png", title)
