"""``report.md`` and confusion matrices for a ``musicnn-transfer`` card, with other models' cards beside it.

Same table layout as the paper CNN's report (:func:`tagger.train.evaluate.genre_table`), one section
per protocol, each labelled with its protocol and clip counts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tagger.train.evaluate import genre_table, plot_confusion


def _spread(value: Any) -> str:
    if isinstance(value, dict):
        return f"{value['mean']:.3f} ± {value['std']:.3f}"
    return f"{value:.3f}"


def _rows(per_genre: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {g: row for g, row in per_genre.items() if row.get("support")}


def comparison(paths: Sequence[Path]) -> list[str]:
    """Markdown rows for other models' cards (e.g. the paper CNN's CV and fault-filtered runs)."""
    lines = []
    for path in paths:
        try:
            card = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError):
            continue
        metrics = card.get("metrics", {})
        scores = metrics.get("float", {})
        if "macro" not in scores:
            continue
        int8 = metrics.get("int8", {})
        lines.append(
            f"| {card.get('name')} (`{card.get('configuration')}`, {path.parent.name}) | {metrics.get('protocol')} | "
            f"{_spread(scores['macro']['f1'])} | {_spread(scores['track_accuracy'])} | "
            f"{_spread(int8['macro']['f1']) if 'macro' in int8 else '-'} |"
        )
    return lines


def write_report(out: Path, card: dict[str, Any], genres: tuple[str, ...], compare: Sequence[Path] = ()) -> None:
    """Write ``report.md`` and ``confusion*.png`` into ``out``."""
    metrics = card["metrics"]
    split = card["split"]
    parity = card["parity"]
    cv = metrics["cv"]
    cv_int8 = metrics["cv_int8"]
    ff = metrics["fault_filtered"]
    lists = metrics["lists_3fold"]
    lines = [
        f"# {card['name']} — configuration `{card['configuration']}`",
        "",
        f"- Data: `{split['data_root']}`, {split['clips_found']} clips {split['per_genre']}, "
        f"fingerprint `{card['data_fingerprint']}`",
        f"- Backbone: {card['architecture']['backbone']}; weights `{card['backbone_fingerprint'][:23]}…`",
        f"- Head: {card['architecture']['head']}",
        f"- Reproduce: `{card['reproduce']}`",
        "",
        "> 181 clips, 91 of them classical and 10 per other genre, largely by few artists: read every figure with "
        "its spread; they say little about a real library.",
        "",
        "## Random CV (artists leak between train and test: optimistic)",
        "",
        f"Protocol: {cv['protocol']}. Track level, Keras float backbone + head, mean ± std over folds.",
        "",
        genre_table(_rows(cv["float"]["per_genre"]), cv["float"]["macro"], "support (tracks x repeats)"),
        "",
        f"Track accuracy {_spread(cv['float']['track_accuracy'])}; window accuracy "
        f"{_spread(cv['float']['window_accuracy'])}. Pooled over all folds (summed confusion):",
        "",
        genre_table(cv["float"]["pooled"]["per_genre"], cv["float"]["pooled"]["macro"], "support (tracks x repeats)"),
        "",
        "![CV confusion](confusion.png)",
        "",
        "### Beside it: the paper CNN trained from scratch",
        "",
        "| model | protocol | macro-F1 (float) | track accuracy | macro-F1 (int8) |",
        "|---|---|---|---|---|",
        f"| {card['name']} (this) | random CV, same folds | {_spread(cv['float']['macro']['f1'])} | "
        f"{_spread(cv['float']['track_accuracy'])} | {_spread(cv_int8['int8']['macro']['f1'])} (repeat 0) |",
        f"| {card['name']} (this) | fault-filtered hold-out ({ff['test_clips']} test clips) | "
        f"{ff['float']['macro']['f1']:.3f} | {ff['float']['track_accuracy']:.3f} | "
        f"{ff['int8']['macro']['f1']:.3f} |",
        *comparison(compare),
        "",
        "## Artist-aware: fault-filtered lists",
        "",
        f"Protocol: {ff['protocol']}. {ff['train_clips']} training clips, {ff['test_clips']} test clips "
        f"{ff['test_per_genre']} (the sample holds few clips of the test list).",
        "",
        genre_table(_rows(ff["float"]["per_genre"]), ff["float"]["macro"], "support (tracks)"),
        "",
        f"Track accuracy {ff['float']['track_accuracy']:.3f}; int8 macro-F1 {ff['int8']['macro']['f1']:.3f}, "
        f"int8/float track agreement {ff['track_agreement']:.3f}. ![fault-filtered confusion](confusion_ff.png)",
        "",
        f"Lists in turn ({lists['protocol']}), pooled over the three folds "
        f"({lists['pooled']['tracks']} tracks scored):",
        "",
        genre_table(lists["pooled"]["per_genre"], lists["pooled"]["macro"], "support (tracks)"),
        "",
        "| test list | train clips | scored clips | excluded (genre not in training lists) | macro-F1 | accuracy |",
        "|---|---|---|---|---|---|",
        *(
            f"| {f['name']} | {f['train_clips']} | {f['test_clips']} | {f.get('excluded_untrainable', {})} | "
            f"{f['float_macro_f1']:.3f} | {f['float_track_accuracy']:.3f} |"
            for f in lists["folds"]
        ),
        "",
        "![lists confusion](confusion_lists.png)",
        "",
        "## int8 vs float",
        "",
        f"- {cv_int8['protocol']}: macro-F1 float {_spread(cv_int8['float']['macro']['f1'])}, int8 "
        f"{_spread(cv_int8['int8']['macro']['f1'])} (difference of fold means "
        f"{parity['macro_f1_difference_points']:.2f} points, target ≤ 1); pooled over the folds' held-out clips "
        f"{parity['pooled_macro_f1_float']:.3f} vs {parity['pooled_macro_f1_int8']:.3f} "
        f"({parity['pooled_macro_f1_difference_points']:.2f} points); track agreement mean "
        f"{cv_int8['track_agreement']['mean']:.3f}, worst fold {cv_int8['track_agreement']['min']:.3f} (target ≥ 0.98)",
        f"- fault-filtered hold-out: agreement {ff['track_agreement']:.3f}",
        f"- quantization: {card.get('quantization_detail', card.get('quantization'))}",
        f"- shipped file on all clips: {json.dumps(parity['shipped_model'])}",
        f"- size: int8 {parity['int8_bytes'] / 1024:.0f} KiB (target < 4 MiB), float {parity['float_bytes'] / 1024:.0f}"
        f" KiB; targets met: {parity['met']}",
        "",
        "### MSD zero-shot (top-3 genre-like tags contain the clip's genre)",
        "",
        "| genre | float | int8 |",
        "|---|---|---|",
        *(
            f"| {g} | {hit}/{n} | {parity['zero_shot_top3']['int8']['per_genre'][g][0]}/{n} |"
            for g, (hit, n) in parity["zero_shot_top3"]["float"]["per_genre"].items()
        ),
        f"| **total** | {'/'.join(map(str, parity['zero_shot_top3']['float']['total']))} | "
        f"{'/'.join(map(str, parity['zero_shot_top3']['int8']['total']))} |",
        "",
        "## Windows per track",
        "",
        f"{metrics['window_budget']['protocol']}.",
        "",
        "| max_windows | macro-F1 | track accuracy |",
        "|---|---|---|",
        *(
            f"| {k} | {_spread(v)} | {_spread(metrics['window_budget']['track_accuracy'][k])} |"
            for k, v in metrics["window_budget"]["macro_f1"].items()
        ),
        "",
        "Clips here are 15–30 s (5–10 windows), so budgets of 8 and 16 are nearly 'all' and the curve shows how "
        "many 3-s windows the head needs *within an excerpt*; it cannot show intros, breaks or changes of style "
        "in a long track, which spread windows sample and adjacent ones do not.",
        "",
        "### Time",
        "",
        f"Model time per window (shipped file, batch 8): {card['speed']['model_ms_per_window']} ms by thread count; "
        f"the same graph in float32: {card['speed'].get('float32_model_ms_per_window')} ms (XNNPACK's float kernels "
        "are faster than its int8 ones on this x86 CPU; int8 mostly saves size here).",
    ]
    long_track = card["speed"].get("long_track")
    if long_track:
        lines += [
            "",
            f"{long_track['track']} ({long_track['seconds']} s, {long_track['decoder']}, {long_track['threads']} "
            f"thread, load average {long_track['load_average']}): whole-track decode {long_track['full_decode_s']} s.",
            "",
            "| max_windows | windows | model s | decode + features s | total s |",
            "|---|---|---|---|---|",
            *(
                f"| {k} | {v['windows']} | {v['model_s']} | {v['decode_and_features_s']} | {v['total_s']} |"
                for k, v in long_track["budgets"].items()
            ),
        ]
    lines += [
        "",
        f"Card default: max_windows = {card['max_windows']}.",
        "",
        "## Thresholds",
        "",
        card["thresholds"]["method"],
        "",
        "| label | msd threshold | F1 on sample | CV F1 (chosen on train folds) | genres threshold |",
        "|---|---|---|---|---|",
    ]
    evidence = card["thresholds"]["evidence"]
    genres_head = card["heads"]["genres"]
    for tag, value in card["heads"]["msd"]["thresholds"].items():
        entry = evidence["msd"].get(tag, {})
        if "f1" in entry and "rule" in entry:
            lines.append(f"| {tag} | {value:.3f} | untrusted: best F1 {entry['f1']:.3f} at {entry['f1_optimal']:.3f} | "
                         f"{entry['cv']['f1']:.3f} | {genres_head['thresholds'][tag]:.3f} |")  # fmt: skip
        elif "f1" in entry:
            lines.append(f"| {tag} | {value:.3f} | {entry['f1']:.3f} ({entry['positives']} clips) | "
                         f"{entry['cv']['f1']:.3f} | {genres_head['thresholds'][tag]:.3f} |")  # fmt: skip
        else:
            lines.append(f"| {tag} | {value:.3f} | unmapped | – | {genres_head['thresholds'][tag]:.3f} |")
    for genre, entry in evidence["gtzan"].items():
        lines.append(f"| {genre} (gtzan) | {entry['value']:.3f} | {entry['f1']:.3f} (held-out) | – | "
                     f"{genres_head['thresholds'][genre]:.3f} |")  # fmt: skip
    vocab = card["thresholds"]["vocabularies_top1_on_held_out_folds"]
    lines += [
        "",
        "### Vocabularies at top-1 (CV held-out gtzan probabilities, shipped thresholds)",
        "",
        "| vocabulary | right | other label | nothing written | right (all clips) | right (mean over genres) |",
        "|---|---|---|---|---|---|",
        *(
            f"| {name} | {v['total']['right']} | {v['total']['other']} | {v['total']['nothing']} | "
            f"{v['right_rate']:.3f} | {v['macro_right_rate']:.3f} |"
            for name, v in vocab.items()
        ),
        "",
        "Wrong labels written at top-1 (genre: label count):",
        "",
        *(
            f"- {name}: "
            + "; ".join(
                f"{genre}: " + ", ".join(f"{label} {n}" for label, n in sorted(wrong.items(), key=lambda x: -x[1])[:3])
                for genre, wrong in v.get("wrong_labels", {}).items()
            )
            for name, v in vocab.items()
        ),
        "",
        f"Default vocabulary: `{card['default_head']}`."
        + (
            " On GTZAN's own genres the gtzan head writes the right genre more often than the broader `genres` "
            "vocabulary (table above); `genres` can also name genres GTZAN lacks, but its unmapped MSD tags are held "
            "to a conservative threshold, so on this evidence the narrower, more accurate head is the default and "
            "`--vocabulary genres` the broader option."
            if card["default_head"] == "gtzan"
            else ""
        ),
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    plot_confusion(cv["float"]["confusion"], genres, out / "confusion.png",
                   f"{card['name']}: random CV, summed over folds (float)")  # fmt: skip
    plot_confusion(ff["float"]["confusion"], genres, out / "confusion_ff.png",
                   f"{card['name']}: fault-filtered hold-out ({ff['test_clips']} clips)")  # fmt: skip
    plot_confusion(lists["pooled"]["confusion"], genres, out / "confusion_lists.png",
                   f"{card['name']}: fault-filtered lists in turn (pooled)")  # fmt: skip
