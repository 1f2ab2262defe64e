"""``musicnn-transfer``: the shipped default model, a linear genre head on the frozen MSD_musicnn backbone.

Why transfer rather than training from scratch: the GTZAN sample holds 181 clips (91 classical,
10 of each other genre), far too few to learn audio features; MSD_musicnn learnt them from
~200k Million Song Dataset tracks. So the backbone is frozen, its window outputs (200-d
embedding, 50-tag taggram) are computed once and cached (:mod:`tagger.train.musicnn.backbone`), and only a
standardised, class-balanced multinomial logistic regression is trained on them, at window
level, with ``C`` and the feature set chosen by inner CV on the training clips
(:mod:`tagger.train.musicnn.softmax_head`). Tracks are scored as the tagger scores them: argmax of the mean
of the windows' probabilities.

Fine-tuning the backbone is not done: with ~90 non-classical clips, updating 790k weights
overfits faster than anything the inner CV could pick up, costs CPU hours per fold here, and
would break the int8 layout check (:func:`~tagger.train.musicnn.layouts.integer_friendly` is proven
equal to the authors' graph only for their weights).

Protocols (all on the same data, all scored at track level):

* ``cv``: repeated stratified k-fold, the paper CNN trainer's exact folds
  (:func:`tagger.train.splits.repeated_kfold` with the same seed); random, so a test clip's artist
  is usually also in training (GTZAN is artist-heavy): optimistic.
* ``fault-filtered``: the artist-disjoint lists (Kereliuk et al. 2015): train on the sample's
  clips in the train+valid lists, test on those in the test list (the paper trainer's
  ``fault-filtered --valid-from train``). Honest about artists, but on this sample the test
  list holds 30 clips, 26 of them classical.
* ``lists-3fold``: each fault-filtered list in turn is the test part and the other two train
  (artist-disjoint across lists). Every listed clip is tested once, but a list may hold all
  of a genre's clips (all blues and country clips are in ``valid``, all rock and reggae in
  ``train``), so a fold cannot learn that genre: those test clips are left out of that fold's
  scores and counted.

int8 parity is measured through :class:`tagger.model.Classifier` on held-out clips: each
``parity`` fold's head and backbone are converted to int8 (calibrated on that fold's training
windows only) and run on its test clips.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from tagger.train.cache import FeatureCache
from tagger.train.card import write_card
from tagger.train.datasets import scan
from tagger.train.musicnn.backbone import BackboneOutputs, all_outputs, checkpoint_fingerprint
from tagger.train.musicnn.config import GTZAN_GENRES, Options, Prepared
from tagger.train.musicnn.folds import FoldResult, fit_fold, int8_parity, lists_3fold
from tagger.train.musicnn.port import build_musicnn, load_checkpoint_weights
from tagger.train.musicnn.pretrained import locate_checkpoint
from tagger.train.musicnn.ship import fit_shipped
from tagger.train.musicnn.transfer_card import protocol_metrics, transfer_card
from tagger.train.musicnn.transfer_markdown import write_report
from tagger.train.musicnn.vocabulary import choose_thresholds, vocabulary_evidence
from tagger.train.splits import fault_filtered, repeated_kfold


def prepare(options: Options) -> Prepared:
    """Scan the clips and get every clip's backbone outputs (cached; the backbone is loaded only on a miss)."""
    started = time.perf_counter()
    dataset = scan(options.data, options.genres or list(GTZAN_GENRES))
    options.log(f"{len(dataset.clips)} clips in {len(dataset.genres)} genres under {dataset.root}")
    prefix = locate_checkpoint(download=options.download)
    fingerprint = checkpoint_fingerprint(prefix)
    features = FeatureCache(options.cache_dir)

    class LazyModel:
        """Build and load the port only if some clip's outputs are not cached."""

        model: Any = None

        def __call__(self, windows: np.ndarray, training: bool = False) -> Any:
            if self.model is None:
                self.model = build_musicnn()
                load_checkpoint_weights(self.model, prefix)
            return self.model(windows, training=training)

    directory = options.cache_dir / "musicnn-outputs" if options.cache_dir is not None else None
    backbone = BackboneOutputs(LazyModel(), options.config.features, features, directory, fingerprint,
                               options.config.budgets)  # fmt: skip
    outputs, failed = all_outputs(dataset, backbone)
    options.log(
        f"backbone outputs: {backbone.cached} from cache, {backbone.computed} computed, {len(failed)} unreadable"
    )
    return Prepared(dataset, outputs, failed, features, fingerprint, time.perf_counter() - started)


def run(options: Options) -> dict[str, Any]:
    """Evaluate every protocol, fit and convert the shipped model, write card + report; return the card."""
    with threadpool_limits(limits=1, user_api="blas"):  # many-threaded BLAS on a busy 2-core box thrashes
        return _run(options)


def _run(options: Options) -> dict[str, Any]:
    config = options.config
    started = time.perf_counter()
    prepared = prepare(options)
    dataset = prepared.dataset
    genres = dataset.genres
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    log = options.log

    # 1. Random repeated stratified k-fold (the paper trainer's folds), with the window-budget curve.
    splits = list(repeated_kfold(dataset, config.folds, config.repeats, seed=config.seed))
    cv_folds: list[FoldResult] = []
    with tempfile.TemporaryDirectory(prefix="transfer-", dir=out) as scratch_name:
        scratch = Path(scratch_name)
        for n, split in enumerate(splits, start=1):
            fold = fit_fold(prepared, config, "cv", f"r{split.repeat}f{split.fold}",
                            split.train + split.valid, split.test, budgets=True)  # fmt: skip
            fold.repeat = split.repeat
            if split.repeat is not None and split.repeat < config.parity_repeats:
                int8_parity(prepared, config, fold, scratch, options.workers, options.download)
            log(f"cv fold {n}/{len(splits)}: {fold.selection.feature_set} C={fold.selection.c:g}, "
                f"macro-F1 {fold.scores.macro['f1']:.3f}"
                + (f", int8 {fold.int8_scores.macro['f1']:.3f} agreement {fold.int8_agreement:.3f}"
                   if fold.int8_scores else ""))  # fmt: skip
            cv_folds.append(fold)

        # 2. Artist-aware: the fault-filtered hold-out, and the three lists in turn.
        ff_split = fault_filtered(dataset, options.lists_dir, valid_from="train", seed=config.seed)
        ff = fit_fold(prepared, config, "fault-filtered", "fault-filtered", ff_split.train + ff_split.valid,
                      ff_split.test, budgets=True)  # fmt: skip
        int8_parity(prepared, config, ff, scratch, options.workers, options.download)
        assert ff.int8_scores is not None  # int8_parity just set it
        log(
            f"fault-filtered hold-out: {len(ff.train)} train, {len(ff.test)} test clips, macro-F1 "
            f"{ff.scores.macro['f1']:.3f}, int8 {ff.int8_scores.macro['f1']:.3f}"
        )
        lists = [fit_fold(prepared, config, "lists-3fold", f"test={part}", train, test)
                 for part, train, test in lists_3fold(dataset, options.lists_dir)]  # fmt: skip
        for fold in lists:
            log(
                f"lists-3fold {fold.name}: {len(fold.test)} scored, excluded {fold.excluded}, "
                f"macro-F1 {fold.scores.macro['f1']:.3f}"
            )

    # 3. Thresholds and the vocabulary evidence.
    thresholds = choose_thresholds(prepared, config, cv_folds, [(s.train + s.valid, s.test) for s in splits])
    evidence = vocabulary_evidence(prepared, config, cv_folds, thresholds)
    log(
        "vocabularies at top-1 on held-out folds: "
        + ", ".join(f"{k} {v['right_rate']:.3f} right, {v['total']['nothing']} nothing" for k, v in evidence.items())
    )

    # 4. The shipped model: head on every clip, int8 with every head, card.
    shipped = fit_shipped(options, prepared, thresholds, log)

    metrics = protocol_metrics(config, genres, cv_folds, ff, lists)
    card = transfer_card(options, prepared, shipped, thresholds, evidence, metrics, cv_folds, ff,
                 time.perf_counter() - started)  # fmt: skip
    write_card(card, out / f"{options.name}.json")
    write_report(out, card, genres, options.compare)
    if options.ship is not None:
        options.ship.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / f"{options.name}.tflite", options.ship / f"{options.name}.tflite")
        write_card(card, options.ship / f"{options.name}.json")
        log(f"shipped {options.ship / (options.name + '.tflite')} and its card")
    log(f"wrote {out / (options.name + '.tflite')}, its card, report.md ({time.perf_counter() - started:.0f} s)")
    return card
