"""``tagger learn``: the owner's messy genre tags -> a learned vocabulary -> re-tagging without decoding.

The end-to-end tests build a small library at test time from the synthetic genres: album
folders of six 3-second tracks, most albums tagged in a messy vocabulary (case, spaces,
separators, an ID3v1 code, aliases, a multi-value ID3v2.3 string), some rare labels, and one
untagged album per genre that the learned vocabulary has to tag.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from mutagen.flac import FLAC
from mutagen.id3 import TCON
from mutagen.wave import WAVE
from sqlalchemy import select
from typer.testing import CliRunner

from tagger.cli import app
from tagger.errors import ModelError
from tagger.learn import LabelFigures, Learned, save_vocabulary
from tagger.learn.evaluate import best_threshold, cross_validate, grouped_folds
from tagger.learn.fit import fit_head
from tagger.model import ModelCard
from tagger.record import Library, TagOptions
from tagger.report import build_report
from tagger.scan import Scanner, ScanSummary
from tagger.store import Database, Track
from tagger.store.retag import stored_analyses
from tagger.tags import open_tags
from tagger.track import Outcome
from tagger.train.synthetic import RECIPES
from tagger.vocabulary import (
    EmbeddingHead,
    LearnedVocabulary,
    ModelVocabulary,
    load_learned_vocabulary,
    resolve_vocabulary,
    vocabularies_dir,
)
from tests.audio_factory import make_track
from tests.conftest import TINY_CARD
from tests.no_decoding import forbid_decoding

# ------------------------------------------------------------------------------------ head and figures


def test_best_threshold_separates_and_handles_no_positives() -> None:
    p = np.array([0.9, 0.8, 0.7, 0.3, 0.2])
    y = np.array([1, 1, 1, 0, 0])
    assert best_threshold(p, y) == pytest.approx(0.5)
    assert best_threshold(p, np.zeros(5, dtype=int)) == 0.5


def test_folds_keep_folders_whole_and_spread_each_labels_folders() -> None:
    """One big label and nine rare ones in two folders each (the GTZAN sample's shape)."""
    groups: list[str] = []
    rows: list[list[int]] = []
    for genre in range(10):
        for folder in range(19 if genre == 0 else 2):
            for _ in range(5 if genre == 0 else 3):
                groups.append(f"{genre}/{folder}")
                rows.append([int(genre == j) for j in range(10)])
    y = np.array(rows)
    fold_of = grouped_folds(groups, y, 5)
    for group in set(groups):
        assert len({fold_of[i] for i, g in enumerate(groups) if g == group}) == 1
    for label in range(10):
        assert len(set(fold_of[y[:, label] == 1])) == (5 if label == 0 else 2)
    assert np.array_equal(fold_of, grouped_folds(groups, y, 5))  # deterministic


def test_grouped_cross_validation_does_not_reward_memorising_albums() -> None:
    """Labels that follow the album, not the sound: album-grouped figures must stay near chance."""
    rng = np.random.default_rng(0)
    albums = 30
    centroids = rng.normal(size=(albums, 16))
    album_label = rng.integers(0, 2, size=albums)
    x = np.repeat(centroids, 8, axis=0) + 0.01 * rng.normal(size=(albums * 8, 16))
    y = np.repeat(album_label, 8)[:, None]
    groups = [f"album{i}" for i in np.repeat(np.arange(albums), 8)]
    _, figures, _ = cross_validate(x, y, groups, folds=5)
    assert figures[0][2] < 0.8  # an ungrouped split scores ~1.0 here by recognising albums


def test_the_joint_fit_is_scikit_learns_balanced_logistic_regression_per_label() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 12)) * rng.uniform(0.5, 3, size=12) + 1
    y = (x @ rng.normal(size=(12, 3)) + rng.normal(size=(300, 3)) * 2 > 3).astype(int)
    y[:, 2] = 0  # a label with no positive in this fold: a constant "no"
    head = fit_head(x, y, c=0.5)
    z = StandardScaler().fit_transform(x)
    for j in range(2):
        reference = LogisticRegression(C=0.5, class_weight="balanced", max_iter=5000, tol=1e-8).fit(z, y[:, j])
        np.testing.assert_allclose(head.weights[j], reference.coef_[0], atol=1e-3)
        assert head.bias[j] == pytest.approx(reference.intercept_[0], abs=1e-3)
    assert head.probabilities(x)[:, 2].max() < 1e-6


def test_linear_head_round_trips_through_json() -> None:
    rng = np.random.default_rng(1)
    head = EmbeddingHead(rng.normal(size=4), rng.uniform(0.5, 2, size=4), rng.normal(size=(3, 4)), rng.normal(size=3))
    again = EmbeddingHead.from_dict(json.loads(json.dumps(head.to_dict())))
    x = rng.normal(size=(5, 4))
    np.testing.assert_allclose(again.probabilities(x), head.probabilities(x), atol=1e-5)
    with pytest.raises(ValueError, match="embedding size"):
        EmbeddingHead.from_dict({**head.to_dict(), "mean": [0.0, 0.0]})


# ------------------------------------------------------------------------------------ the library

GENRES = ("drone", "techno", "chimes", "breaks")
SECONDS = 3.0
TRACKS_PER_ALBUM = 6
# genre -> the tag values of its albums (None: untagged); the file type follows the tag style.
ALBUM_TAGS: dict[str, list[list[str] | None]] = {
    "drone": [["Drone; Ambient"], ["drone"], ["DRONE "], ["Drone"], None],
    "techno": [["(18)"], ["Techno"], ["techno/Dance"], ["TECHNO"], None],  # ID3 in WAV; one v2.3 joined value
    "chimes": [["Chimes"], ["chimes"], ["Chimes, Bells"], ["CHIMES"], None],
    "breaks": [["Hip Hop"], ["Hip-Hop"], ["hiphop"], ["Hip-Hop"], None],
}
RARE_ALBUM = ("organ", ["Vaporwave"])  # one album of a genre the owner has too little of
EXPECTED = {"drone": "Drone", "techno": "Techno", "chimes": "Chimes", "breaks": "Hip-Hop"}
RARE_LABELS = {"ambient", "dance", "bells", "vaporwave"}


def _tag(path: Path, values: list[str]) -> None:
    """Raw values, as another tagger left them (not cleaned by our writer)."""
    if path.suffix == ".wav":
        wave = WAVE(path)
        wave.add_tags()
        assert wave.tags is not None
        wave.tags.add(TCON(encoding=3, text=values))
        wave.save(v2_version=3)
    else:
        flac = FLAC(path)
        flac["GENRE"] = values
        flac.save()


@pytest.fixture(scope="module")
def music_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("learn-template")
    albums = [(genre, i, tags) for genre, tag_list in ALBUM_TAGS.items() for i, tags in enumerate(tag_list)]
    albums.append((RARE_ALBUM[0], 0, RARE_ALBUM[1]))
    for genre, i, tags in albums:
        extension = ".wav" if genre == "techno" else ".flac"
        folder = root / ("untagged" if tags is None else "tagged") / f"{genre} album {i}"
        for n in range(TRACKS_PER_ALBUM):
            seed = 1000 * sorted(RECIPES).index(genre) + 10 * i + n
            path = make_track(
                folder / f"{n:02d}{extension}", genre=genre, seconds=SECONDS, sample_rate=16000, seed=seed
            )
            if tags is not None:
                _tag(path, tags)
    return root


def _scan(database: Database, card: ModelCard, root: Path, **options: object) -> ScanSummary:
    summary = ScanSummary()
    with Scanner(Library(database, card, TagOptions(**options))) as scanner:  # type: ignore[arg-type]
        for report in scanner.scan([root]):
            summary.add(report)
    return summary


@pytest.fixture(scope="module")
def learned_library(music_template: Path, tmp_path_factory: pytest.TempPathFactory, tiny_card: ModelCard) -> dict:
    """``tagger scan`` with the model's own vocabulary, then ``tagger learn`` (the CLI), as a user would."""
    work = tmp_path_factory.mktemp("learn")
    root = work / "music"
    shutil.copytree(music_template, root)
    db_path = work / "state" / "tagger.db"
    database = Database(db_path)
    first = _scan(database, tiny_card, root)
    assert not first.failures
    untagged = sorted((root / "untagged").rglob("*.*"))
    assert first.counts[Outcome.TAGGED] == len(untagged)  # the model's own labels, for now
    snapshot = {p: p.read_bytes() for p in sorted((root / "tagged").rglob("*.*"))}

    result = CliRunner().invoke(
        app, ["learn", str(root), "--db", str(db_path), "--model", str(TINY_CARD), "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    return {"root": root, "db": database, "summary": summary, "untagged": untagged, "tagged": snapshot}


@pytest.mark.model
def test_learn_recovers_the_owners_vocabulary_with_honest_figures(learned_library: dict, tiny_card: ModelCard) -> None:
    summary = learned_library["summary"]
    with learned_library["db"].session() as session:  # labels come from the owner's tags, never ours
        for track in session.scalars(select(Track).where(Track.path.contains("/untagged/"))):
            assert track.user_genres == []
    learned = {f["label"]: f for f in summary["learned"]}
    refused = {f["label"]: f for f in summary["refused"]}
    assert set(learned) == {"drone", "techno", "chimes", "hiphop"}, (learned, refused)
    assert {f["genre"] for f in learned.values()} == set(EXPECTED.values())
    assert set(refused) == RARE_LABELS
    assert all("fewer than 20" in f["refused"] and f["tracks"] == 6 for f in refused.values())
    assert summary["tracks"] == 4 * 4 * TRACKS_PER_ALBUM + TRACKS_PER_ALBUM
    assert summary["untagged"] == 4 * TRACKS_PER_ALBUM
    assert summary["folds"] == 5
    for figures in learned.values():
        assert figures["tracks"] == 4 * TRACKS_PER_ALBUM and figures["folders"] == 4
        assert 0.0 <= figures["precision"] <= 1.0 and 0.0 <= figures["recall"] <= 1.0
        assert figures["f1"] >= 0.8, figures  # the synthetic genres are easy for a trained model
        assert 0.05 <= figures["threshold"] <= 0.95

    path = vocabularies_dir(learned_library["db"].url) / "mine.json"
    card = json.loads(path.read_text())
    assert card["model_id"] == tiny_card.model_id
    assert card["head"]["task"] == "multilabel"
    assert card["head"]["labels"] == list(card["head"]["thresholds"])
    assert np.asarray(card["linear"]["weights"]).shape == (4, card["embedding_dims"])
    assert {f["label"] for f in card["evaluation"]["refused"]} == RARE_LABELS


@pytest.mark.model
def test_scan_with_the_learned_vocabulary_tags_untagged_tracks_without_decoding(
    learned_library: dict, tiny_card: ModelCard, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, database = learned_library["root"], learned_library["db"]

    forbid_decoding(monkeypatch)

    preview = _scan(database, tiny_card, root, vocabulary="mine", dry_run=True)
    assert preview.counts[Outcome.WOULD_TAG] == len(learned_library["untagged"])
    for change in preview.changes:  # existing -> proposed: our earlier guess -> the owner's vocabulary
        assert change.existing and change.existing[0] in GENRES
        assert change.proposed[0] in EXPECTED.values()

    summary = _scan(database, tiny_card, root, vocabulary="mine")
    assert not summary.failures
    assert summary.counts[Outcome.SKIPPED] == 0
    untagged = learned_library["untagged"]
    right = sum(open_tags(p).read_genres() == [EXPECTED[p.parent.name.split()[0]]] for p in untagged)
    assert right >= 0.9 * len(untagged), {str(p): open_tags(p).read_genres() for p in untagged}
    for path, data in learned_library["tagged"].items():  # policy keep: the owner's genres stay
        assert path.read_bytes() == data, path

    again = _scan(database, tiny_card, root, vocabulary="mine")
    assert again.counts == {Outcome.SKIPPED: sum(again.counts.values())}

    report = build_report(database, "mine")
    assert report.classified == report.tracks
    assert {row.genre for row in report.proposed} <= set(EXPECTED.values())

    # Learning again makes a new version: the next scan re-tags from the stored embeddings again.
    result = CliRunner().invoke(
        app, ["learn", str(root), "--db", database.url.removeprefix("sqlite:///"), "--model", str(TINY_CARD)]
    )
    assert result.exit_code == 0, result.output
    assert "Hip-Hop" in result.stdout and "Vaporwave" in result.stdout and "fewer than 20" in result.stdout
    assert (vocabularies_dir(database.url) / "mine.v1.json").exists()
    relearned = _scan(database, tiny_card, root, vocabulary="mine")
    assert relearned.counts[Outcome.SKIPPED] == 0 and not relearned.failures
    assert relearned.counts.total() == len(untagged) + len(learned_library["tagged"])


@pytest.mark.model
def test_classify_uses_a_learned_vocabulary(learned_library: dict) -> None:
    track = next(p for p in learned_library["untagged"] if "chimes" in p.parent.name)
    db = learned_library["db"].url.removeprefix("sqlite:///")
    result = CliRunner().invoke(
        app,
        ["classify", str(track), "--model", str(TINY_CARD), "--db", db, "--vocabulary", "mine", "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["vocabulary"] == "mine" and data["chosen"] == ["Chimes"]
    assert "mine" in data["vocabularies"] and data["windows"] == []


# ------------------------------------------------------------------------------------ saving and loading


@pytest.fixture
def small_learned(tiny_card: ModelCard) -> Learned:
    rng = np.random.default_rng(2)
    figures = [
        LabelFigures("drone", "Drone", 30, 5, 0.9, 0.8, 0.85, 0.05, 0.4),
        LabelFigures("rare", "Rare", 3, 1, refused="3 tracks (fewer than 20)"),
    ]
    head = EmbeddingHead(np.zeros(8), np.ones(8), rng.normal(size=(1, 8)), np.zeros(1))
    return Learned("mine", tiny_card.model_id, "genre", 20, 0.5, figures, tracks=33, folds=5, dims=8, head=head)


def test_saving_keeps_the_previous_version(small_learned: Learned, tmp_path: Path, tiny_card: ModelCard) -> None:
    directory = tmp_path / "vocabularies"
    first = save_vocabulary(small_learned, directory, now=datetime(2026, 1, 1, tzinfo=UTC))
    second = save_vocabulary(small_learned, directory)
    third = save_vocabulary(small_learned, directory)
    assert first == second == third == directory / "mine.json"
    assert json.loads(third.read_text())["version"] == 3
    assert json.loads((directory / "mine.v1.json").read_text())["learned_at"].startswith("2026-01-01")
    assert json.loads((directory / "mine.v2.json").read_text())["version"] == 2
    vocabulary = load_learned_vocabulary(third, tiny_card)
    assert vocabulary.needs_audio is False
    assert vocabulary.head.labels == ("drone",) and vocabulary.head.thresholds == {"drone": 0.4}
    assert vocabulary.head.genre_name("drone") == "Drone"
    assert load_learned_vocabulary(directory / "mine.v1.json", tiny_card).name == "mine.v1"


def test_a_vocabulary_learned_on_another_model_is_refused(
    small_learned: Learned, tmp_path: Path, tiny_card: ModelCard
) -> None:
    path = save_vocabulary(small_learned, tmp_path)
    other = replace(tiny_card, version="other")
    with pytest.raises(ModelError, match="learned on embeddings of tiny@"):
        load_learned_vocabulary(path, other)


def test_resolve_finds_learned_vocabularies_beside_the_database(
    small_learned: Learned, tmp_path: Path, tiny_card: ModelCard
) -> None:
    database = Database(tmp_path / "tagger.db")
    save_vocabulary(small_learned, vocabularies_dir(database.url))
    vocabulary = resolve_vocabulary(tiny_card, "mine", database.url)
    assert isinstance(vocabulary, LearnedVocabulary)
    assert isinstance(resolve_vocabulary(tiny_card, None, database.url), ModelVocabulary)
    assert stored_analyses(database, resolve_vocabulary(tiny_card, None, database.url), tiny_card.model_id) == {}
    with pytest.raises(ValueError, match="mine"):
        resolve_vocabulary(tiny_card, "yours", database.url)
