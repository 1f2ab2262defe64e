"""``tagger learn --field mood``: the owner's MOOD tags -> a learned mood vocabulary (role "mood").

The library is built at test time from the synthetic genres: album folders of six 3-second tracks
whose owner wrote MOOD tags through mutagen, in a messy spelling (FLAC: Vorbis ``MOOD``; the techno
albums are WAV with an ID3v2.3 ``TXXX:MOOD``, "; "-joined as v2.3 stores several values): drone and
chimes albums are Calm, techno and breaks albums Energetic, and one album per genre carries no mood,
for the learned vocabulary to tag. The scans are real scans with the tiny fixture model
(it has no mood head, so every MOOD value in the files is the owner's).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from mutagen.flac import FLAC
from mutagen.id3 import TALB, TPE1, TXXX
from mutagen.wave import WAVE
from sqlalchemy import select
from typer.testing import CliRunner
from typer.testing import Result as Invocation

from tagger.aggregate import aggregate
from tagger.cli import app
from tagger.genres import GenreNormaliser, GenreRules, split_values, tag_key
from tagger.learn import LabelFigures, Learned, save_vocabulary
from tagger.model import ModelCard
from tagger.record import Library, TagOptions
from tagger.scan import Scanner, ScanSummary
from tagger.store import Database, Result, Track
from tagger.store.retag import stored_analyses
from tagger.tags import open_tags
from tagger.track import Outcome
from tagger.train.synthetic import RECIPES
from tagger.vocabulary import (
    EmbeddingHead,
    LearnedVocabulary,
    available,
    load_learned_vocabulary,
    resolve_mood_vocabulary,
    resolve_vocabulary,
    vocabularies_dir,
)
from tests.audio_factory import make_track
from tests.conftest import TINY_CARD
from tests.no_decoding import forbid_decoding

# ------------------------------------------------------------------------------------ the owner's MOOD values


def test_mood_spellings_merge_without_the_genre_only_rules() -> None:
    assert len({tag_key(s, "mood") for s in ["Laid-Back", "laid back", "LAID BACK ", "Laid_back"]}) == 1
    assert tag_key("Dark & Moody", "mood") == tag_key("dark and moody", "mood")
    # The genre aliases are about genres: in a MOOD field "OST" is not "Soundtrack".
    assert tag_key("OST", "genre") == tag_key("Soundtrack", "genre")
    assert tag_key("OST", "mood") != tag_key("Soundtrack", "mood")


def test_mood_values_split_like_genres_but_keep_what_id3v1_codes_would_rename() -> None:
    assert split_values(["Calm; Dreamy", "Happy/Upbeat", "sad, slow", "Mood", "n/a", ""], "mood") == [
        "Calm",
        "Dreamy",
        "Happy",
        "Upbeat",
        "sad",
        "slow",
    ]
    assert split_values(["(17)"], "mood") == ["(17)"]  # a genre field's "(17)" is Rock; a mood field's is not
    assert split_values(["(17)"], "genre") == ["Rock"]
    assert split_values(["Genre"], "mood") == ["Genre"] and split_values(["Genre"], "genre") == []


def test_a_mood_normaliser_takes_the_owners_commonest_spelling_and_no_genre_map() -> None:
    normaliser = GenreNormaliser(role="mood")
    for values in (["calm"], ["Calm"], ["Calm; Dreamy"], ["CALM "]):
        normaliser.labels(values)
    assert normaliser.labels(["DnB"]) == ["dnb"]  # a genre alias would make it "drumandbass"
    assert normaliser.spelling("calm") == "Calm"
    with pytest.raises(ValueError, match="genres"):
        GenreNormaliser(GenreRules(map={"Calm": "Chill"}), role="mood")


# ------------------------------------------------------------------------------------ the library

SECONDS = 3.0
TRACKS_PER_ALBUM = 6
MOOD_OF = {"drone": "Calm", "chimes": "Calm", "techno": "Energetic", "breaks": "Energetic"}
# genre -> the MOOD values of its albums, as the owner (or another tagger) left them; None: no MOOD tag.
ALBUM_MOODS: dict[str, list[list[str] | None]] = {
    "drone": [["Calm"], ["calm; Dreamy"], None],
    "chimes": [["CALM "], ["Calm"], None],
    "techno": [["Energetic"], ["energetic/Upbeat"], None],
    "breaks": [["ENERGETIC"], ["Energetic"], None],
}
RARE = {"dreamy", "upbeat"}


@pytest.fixture(scope="module")
def mood_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("learn-moods-template")
    for genre, albums in ALBUM_MOODS.items():
        for i, moods in enumerate(albums):
            folder = root / ("untagged" if moods is None else "tagged") / f"{genre} album {i}"
            for n in range(TRACKS_PER_ALBUM):
                seed = 7000 + 1000 * sorted(RECIPES).index(genre) + 10 * i + n
                extension = ".wav" if genre == "techno" else ".flac"
                path = make_track(
                    folder / f"{n:02d}{extension}", genre=genre, seconds=SECONDS, sample_rate=16000, seed=seed
                )
                _tag(path, f"{genre} album {i}", f"{genre} artist", moods)
    return root


def _tag(path: Path, album: str, artist: str, moods: list[str] | None) -> None:
    """Raw values, as another tagger left them (not cleaned by our writer)."""
    if path.suffix == ".wav":
        wave = WAVE(path)
        wave.add_tags()
        assert wave.tags is not None
        wave.tags.add(TALB(encoding=3, text=[album]))
        wave.tags.add(TPE1(encoding=3, text=[artist]))
        if moods is not None:
            wave.tags.add(TXXX(encoding=3, desc="MOOD", text=["; ".join(moods)]))
        wave.save(v2_version=3)
    else:
        flac = FLAC(path)
        flac["ALBUM"], flac["ARTIST"] = album, artist
        if moods is not None:
            flac["MOOD"] = moods
        flac.save()


def _scan(database: Database, card: ModelCard, root: Path, **options: object) -> ScanSummary:
    summary = ScanSummary()
    with Scanner(Library(database, card, TagOptions(**options))) as scanner:  # type: ignore[arg-type]
        for report in scanner.scan([root]):
            summary.add(report)
    return summary


def _learn(db_path: Path, *args: str) -> Invocation:
    return CliRunner().invoke(
        app, ["learn", *args, "--db", str(db_path), "--model", str(TINY_CARD)], catch_exceptions=False
    )


def _said(result: Invocation) -> str:
    """What the owner reads, rich's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def mood_library(mood_template: Path, tmp_path_factory: pytest.TempPathFactory, tiny_card: ModelCard) -> dict:
    """A real scan (it stores the owner's MOOD values as ``Track.user_moods``), then ``tagger learn --field mood``."""
    work = tmp_path_factory.mktemp("learn-moods")
    root = work / "music"
    shutil.copytree(mood_template, root)
    db_path = work / "state" / "tagger.db"
    database = Database(db_path)
    first = _scan(database, tiny_card, root)
    assert not first.failures
    learned = _learn(db_path, str(root), "--field", "mood", "--json")
    assert learned.exit_code == 0, learned.output
    assert "saved" in learned.stderr and 'mood_vocabulary = "mymoods"' in learned.stderr
    tagged = {p: p.read_bytes() for p in sorted((root / "tagged").rglob("*.*"))}
    summary = json.loads(learned.stdout)
    return {"root": root, "db": database, "db_path": db_path, "summary": summary, "tagged": tagged}


@pytest.mark.model
def test_learn_moods_from_the_owners_mood_tags(mood_library: dict, tiny_card: ModelCard) -> None:
    summary, database = mood_library["summary"], mood_library["db"]
    with database.session() as session:  # the labels are the owner's MOOD values, as the scan stored them
        moods = dict(session.execute(select(Track.path, Track.user_moods)).tuples().all())
    assert sum(bool(m) for m in moods.values()) == 4 * 2 * TRACKS_PER_ALBUM
    assert all(not m for path, m in moods.items() if "/untagged/" in path)

    assert summary["field"] == "mood" and summary["name"] == "mymoods"
    learned = {f["label"]: f for f in summary["learned"]}
    refused = {f["label"]: f for f in summary["refused"]}
    assert set(learned) == {"calm", "energetic"}, (learned, refused)
    assert {f["mood"] for f in learned.values()} == {"Calm", "Energetic"}  # the owner's commonest spelling
    assert set(refused) == RARE and all("fewer than 20" in f["refused"] for f in refused.values())
    assert summary["tracks"] == 4 * 2 * TRACKS_PER_ALBUM and summary["untagged"] == 4 * TRACKS_PER_ALBUM
    for figures in learned.values():
        assert figures["tracks"] == 4 * TRACKS_PER_ALBUM and figures["groups"] == 4 and figures["grouping"] == "album"
        # Half the tagged tracks carry each mood: saying it of every track gives F1 2/3 and precision 1/2.
        assert figures["f1"] >= 0.8 and figures["precision"] > 0.6, figures

    path = vocabularies_dir(database.url) / "mymoods.json"
    card = json.loads(path.read_text())
    assert card["field"] == "mood" and card["head"]["role"] == "mood"
    assert card["head"]["tag_names"] == {"calm": "Calm", "energetic": "Energetic"}
    assert np.asarray(card["linear"]["weights"]).shape == (2, card["embedding_dims"])
    assert {f["mood"] for f in card["evaluation"]["labels"]} == {"Calm", "Energetic"}
    assert not (vocabularies_dir(database.url) / "mine.json").exists()  # the genres' default name stays free


@pytest.mark.model
def test_a_learned_mood_vocabulary_is_a_mood_vocabulary_only(mood_library: dict, tiny_card: ModelCard) -> None:
    url = mood_library["db"].url
    moods = resolve_mood_vocabulary(tiny_card, "mymoods", url)
    assert isinstance(moods, LearnedVocabulary) and moods.needs_audio is False
    assert moods.head.role == "mood" and moods.head.genre_name("calm") == "Calm"
    with pytest.raises(ValueError, match="'mymoods' is a mood vocabulary, not a genre one"):
        resolve_vocabulary(tiny_card, "mymoods", url)
    assert "mymoods" not in available(tiny_card, url)
    with pytest.raises(ValueError, match="available: mymoods"):
        resolve_mood_vocabulary(tiny_card, "yours", url)

    # Applied as a re-tag applies it, to the stored embeddings (no decoding), on the albums without a mood:
    # none of their tracks was learned from.
    loaded = load_learned_vocabulary(vocabularies_dir(url) / "mymoods.json", tiny_card)
    assert loaded.head.labels == ("calm", "energetic")
    stored = stored_analyses(mood_library["db"], loaded, tiny_card.model_id)
    untagged = {path: analysis for path, analysis in stored.items() if "/untagged/" in path}
    assert len(untagged) == 4 * TRACKS_PER_ALBUM
    right = 0
    for path, analysis in untagged.items():
        chosen = aggregate(loaded.window_probabilities(analysis), loaded.head, top_k=1).chosen
        right += list(chosen) == [MOOD_OF[Path(path).parent.name.split()[0]]]
    assert right >= 0.75 * len(untagged), right  # chance: half


@pytest.mark.model
def test_learning_moods_under_a_genre_vocabularys_name_is_refused(mood_library: dict, tiny_card: ModelCard) -> None:
    directory = vocabularies_dir(mood_library["db"].url)
    genres = Learned(
        "mygenres",
        tiny_card.model_id,
        "genre",
        20,
        0.5,
        [LabelFigures("drone", "Drone", 30, 5, 0.9, 0.8, 0.85, 0.05, 0.4)],
        tracks=30,
        folds=5,
        dims=8,
        head=EmbeddingHead(np.zeros(8), np.ones(8), np.ones((1, 8)), np.zeros(1)),
    )
    saved = save_vocabulary(genres, directory)
    before = saved.read_bytes()
    refused = _learn(mood_library["db_path"], "--field", "mood", "--vocabulary", "mygenres")
    assert refused.exit_code == 1
    assert "'mygenres' is your learned genre vocabulary: pick another --vocabulary for moods" in _said(refused)
    assert saved.read_bytes() == before and not (directory / "mygenres.v1.json").exists()
    unknown = _learn(mood_library["db_path"], "--field", "colour")
    assert unknown.exit_code == 1
    assert "field 'colour': the database keeps only genre, mood per track" in _said(unknown)
    assert "Traceback" not in unknown.output


@pytest.mark.model
def test_too_few_mood_tags_is_one_clear_message(mood_library: dict, tmp_path: Path) -> None:
    one_album = str(mood_library["root"] / "tagged" / "drone album 0")
    few = _learn(mood_library["db_path"], one_album, "--field", "mood")
    assert few.exit_code == 1
    assert "nothing learned: no label passed" in _said(few) and "6 tracks (fewer than 20)" in _said(few)
    assert "refused moods" in _said(few)
    none = _learn(tmp_path / "empty.db", "--field", "mood")
    assert none.exit_code == 1
    assert "nothing learned: no scanned track with a mood tag has an embedding" in _said(none)
    assert not (tmp_path / "vocabularies").exists()


@pytest.mark.model
def test_scans_write_the_learned_moods_from_the_stored_embeddings(
    mood_library: dict, tiny_card: ModelCard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``mood_vocabulary = "mymoods"``: the next scan re-decides every track from its stored result, decoding none."""
    root, database = mood_library["root"], mood_library["db"]

    forbid_decoding(monkeypatch)

    summary = _scan(database, tiny_card, root, mood_vocabulary="mymoods")
    assert not summary.failures
    untagged = sorted((root / "untagged").rglob("*.*"))
    right = sum(open_tags(p).read("mood") == [MOOD_OF[p.parent.name.split()[0]]] for p in untagged)
    assert right >= 0.9 * len(untagged), {str(p): open_tags(p).read("mood") for p in untagged}
    for path, data in mood_library["tagged"].items():  # policy keep: the owner's moods (and files) stay
        assert path.read_bytes() == data, path
    with database.session() as session:
        stored = session.scalars(select(Result.moods).join(Track).where(Track.path == str(untagged[0]))).all()
    assert stored[-1]["vocabulary"] == "mymoods" and set(stored[-1]["scores"]) == {"calm", "energetic"}
    assert "valence" not in stored[-1]  # the axes are the four quadrants' only

    again = _scan(database, tiny_card, root, mood_vocabulary="mymoods")
    assert again.counts == {Outcome.SKIPPED: sum(again.counts.values())}


@pytest.mark.model
def test_a_mood_vocabulary_learned_again_is_applied_by_the_next_scan(mood_library: dict, tiny_card: ModelCard) -> None:
    root, database = mood_library["root"], mood_library["db"]
    first = _scan(database, tiny_card, root, mood_vocabulary="mymoods")
    assert not first.failures
    relearn = _learn(mood_library["db_path"], str(root), "--field", "mood")
    assert relearn.exit_code == 0, relearn.output
    assert (vocabularies_dir(database.url) / "mymoods.v1.json").exists()
    relearned = _scan(database, tiny_card, root, mood_vocabulary="mymoods")
    assert relearned.counts[Outcome.SKIPPED] == 0 and not relearned.failures, relearned.counts
