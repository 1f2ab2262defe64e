"""The owner's vocabulary ([genres] map, allow, ignore): on real tracks, the tiny model, a real SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tagger.aggregate import GenreScore, aggregate
from tagger.config import ConfigError, load_settings
from tagger.genres import GenreNormaliser, GenreRules, apply_rules, genre_key, normalise_genres, split_genres
from tagger.model import Classifier, ModelCard
from tagger.pipeline import analyse_track
from tagger.policy import Policy
from tagger.record import Library, TagOptions
from tagger.report import build_report
from tagger.scan import Scanner
from tagger.store import Database
from tagger.tags import open_tags
from tagger.track import Outcome, TrackReport
from tests.audio_factory import make_track
from tests.conftest import TINY_CARD

pytestmark = [pytest.mark.model]


def scan_one(database: Database, card: ModelCard, root: Path, **options: object) -> TrackReport:
    library = Library(database, card, TagOptions(**options))  # type: ignore[arg-type]
    with Scanner(library, isolate=False) as scanner:
        (report,) = scanner.scan([root])
    return report


@pytest.fixture
def techno(tmp_path: Path) -> Path:
    return make_track(tmp_path / "music" / "techno.flac", genre="techno", seconds=6.0)


def model_ranking(path: Path, card: ModelCard) -> list[GenreScore]:
    """The tiny model's own ranking of ``path``, most confident first (no rules)."""
    analysis = analyse_track(path, Classifier(card))
    return list(aggregate(analysis.probabilities["synthetic"], card.heads["synthetic"], top_k=5).ranked)


def test_rules_rename_merge_and_drop_ignoring_case_and_spaces() -> None:
    scores = [GenreScore("a", "hip hop", 0.5), GenreScore("b", "Rap", 0.3), GenreScore("c", "Pop", 0.2)]
    rules = GenreRules(map={"HipHop": "Hip-Hop", "rap": "Hip-Hop"}, ignore=("POP",))
    assert [(s.label, s.genre) for s in apply_rules(scores, rules)] == [("a", "Hip-Hop")]  # the likelier label stays
    assert [s.genre for s in apply_rules(scores, GenreRules(allow=("pop", "Rap")))] == ["Rap", "Pop"]


def test_scan_writes_the_canonical_name_and_report_counts_it(
    techno: Path, database: Database, tiny_card: ModelCard
) -> None:
    report = scan_one(database, tiny_card, techno.parent, genres=GenreRules(map={"TECHNO": "Electronic"}))
    assert report.outcome is Outcome.TAGGED
    assert open_tags(techno).read_genres() == ["Electronic"]
    assert [row.genre for row in build_report(database).genres] == ["Electronic"]


def test_an_ignored_genre_gives_its_place_to_the_next_only_if_it_passes_the_threshold(
    techno: Path, database: Database, tiny_card: ModelCard
) -> None:
    first, second = model_ranking(techno, tiny_card)[:2]
    assert first.genre == "techno"
    strict = scan_one(database, tiny_card, techno.parent, genres=GenreRules(ignore=("Techno",)), min_confidence=0.5)
    assert strict.outcome is Outcome.LOW_CONFIDENCE and second.confidence < 0.5
    assert open_tags(techno).read_genres() == []
    lenient = scan_one(database, tiny_card, techno.parent, genres=GenreRules(ignore=("techno",)))
    assert lenient.outcome is Outcome.TAGGED  # other rules: re-decided from the stored result
    assert open_tags(techno).read_genres() == [second.genre]


def test_allow_restricts_what_is_written(techno: Path, database: Database, tiny_card: ModelCard) -> None:
    ranking = model_ranking(techno, tiny_card)
    allowed = [ranking[3].genre, ranking[2].genre]
    report = scan_one(database, tiny_card, techno.parent, genres=GenreRules(allow=tuple(allowed)))
    assert open_tags(techno).read_genres() == [ranking[2].genre], report
    rules = GenreRules(allow=("Jazz",))
    refused = scan_one(database, tiny_card, techno.parent, genres=rules, policy=Policy.OVERWRITE)
    assert refused.outcome is Outcome.LOW_CONFIDENCE and refused.reason.startswith("no allowed genre (model: techno")
    assert open_tags(techno).read_genres() == [ranking[2].genre]  # left as it was


def test_genres_table_in_the_config_file_and_its_errors(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[genres]\nallow = ["Rock"]\n[genres.map]\n"Hip Hop" = "Hip-Hop"\n')
    settings = load_settings(config)
    assert settings.genres == GenreRules(map={"Hip Hop": "Hip-Hop"}, allow=("Rock",))
    assert settings.with_genre_lists(ignore=["Pop"]).genres.ignore == ("Pop",)
    for text, message in [
        ('[genres]\nallow = "Rock"\n', 'genres.allow: expected a list of strings, got "Rock"'),
        ("[genres.map]\nRap = 1\n", "genres.map: expected a table of strings"),
        ('[genres]\nalow = ["Rock"]\n', "unknown [genres] setting(s) alow"),
    ]:
        config.write_text(text)
        with pytest.raises(ConfigError) as error:
            load_settings(config)
        assert message in str(error.value)


def test_learn_reads_the_owners_tags_through_the_map() -> None:
    normaliser = GenreNormaliser(GenreRules(map={"Hip Hop": "Rap"}))
    assert normaliser.labels(["hip-hop; Rap"]) == ["rap"]
    assert normaliser.spelling("rap") == "Rap"


@pytest.mark.ffmpeg
def test_cli_flags_and_config_through_the_real_command(techno: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[genres.map]\ntechno = "Electronic"\n')
    env = {**os.environ, "TAGGER_DB": str(tmp_path / "cli.db"), "TAGGER_CONFIG": str(config)}
    base = [sys.executable, "-m", "tagger.cli"]
    shown = subprocess.run(
        [*base, "classify", str(techno), "--model", str(TINY_CARD), "--json", "--ignore", "Electronic"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "Electronic" not in [g["genre"] for g in json.loads(shown.stdout)["genres"]]
    scan = subprocess.run(
        [*base, "scan", str(techno.parent), "--model", str(TINY_CARD), "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert scan.returncode == 0, scan.stderr
    assert open_tags(techno).read_genres() == ["Electronic"]


# ------------------------------------------------------------------------------------ the owner's tag values -> names


@pytest.mark.parametrize(
    "spellings",
    [
        ["Hip Hop", "Hip-Hop", "hiphop", "HIP  HOP ", "hip_hop"],
        ["R&B", "RnB", "r & b", "Rhythm and Blues"],
        ["Drum & Bass", "Drum'n'Bass", "drum n bass", "DnB", "D&B", "Drum and Bass"],
        ["Rock'n'Roll", "Rock n Roll", "rock & roll", "Rock and Roll"],
        ["Électro", "electro", "ELECTRO"],
        ["Post-Rock", "post rock", "PostRock"],
    ],
)
def test_spellings_of_one_genre_share_a_key(spellings: list[str]) -> None:
    assert len({genre_key(s) for s in spellings}) == 1


def test_different_genres_keep_different_keys() -> None:
    keys = [genre_key(g) for g in ["Rock", "Hard Rock", "Pop", "Hip-Hop", "Trip-Hop", "Drum & Bass", "Bass"]]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["Drone; Ambient"], ["Drone", "Ambient"]),
        (["Techno/Dance"], ["Techno", "Dance"]),
        (["jazz, blues ,soul"], ["jazz", "blues", "soul"]),
        (["Jazz | Funk"], ["Jazz", "Funk"]),
        (["Rock", "Pop"], ["Rock", "Pop"]),  # several values (Vorbis, MP4, ID3v2.4)
        ([" DRONE  "], ["DRONE"]),
        (["Drum  and   Bass"], ["Drum and Bass"]),
        (["(17)"], ["Rock"]),  # ID3v1 genre codes
        (["(26)(17)"], ["Ambient", "Rock"]),
        (["(17)Hard Rock"], ["Rock", "Hard Rock"]),  # ID3v2.3 code + refinement
        (["18"], ["Techno"]),  # ID3v2.4 bare code
        (["(18); Dance"], ["Techno", "Dance"]),
        (["(RX)"], []),  # remix: not a genre
        (["(255)", "Unknown", "Other", "n/a", "", "  ", ";", "1999"], []),
    ],
)
def test_split_genres(values: list[str], expected: list[str]) -> None:
    assert split_genres(values) == expected


def test_normalise_genres_gives_distinct_keys_in_order() -> None:
    assert normalise_genres(["Hip Hop; hip-hop", "HIPHOP", "(18)", "techno"]) == ["hiphop", "techno"]
    assert normalise_genres([]) == []


def test_the_owners_commonest_spelling_is_written() -> None:
    normaliser = GenreNormaliser()
    for values in (["drone"], ["DRONE "], ["Drone"], ["Drone; Ambient"], ["hip-hop"], ["Hip-Hop"], ["Hip Hop"]):
        normaliser.labels(values)
    assert normaliser.spelling("drone") == "Drone"  # 2 of 4
    assert normaliser.spelling("hiphop") == "Hip Hop"  # a tie: capitalised beats lower case, then alphabetical
    assert normaliser.spelling("ambient") == "Ambient"
