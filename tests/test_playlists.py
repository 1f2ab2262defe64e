"""`tagger playlists` on a real scanned library: real audio files, a SQLite file, M3U read back by the
`m3u8` parser, every entry resolved relative to its playlist."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import m3u8  # type: ignore[import-untyped]
import pytest
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TALB, TIT2, TPE1, TRCK
from sqlalchemy import select
from typer.testing import CliRunner

from tagger.cli import app
from tagger.config import ConfigError, WatchSettings, settings_from_dict
from tagger.daemon import Daemon
from tagger.daemon.playlists import PlaylistRefresher
from tagger.m3u import MARKER
from tagger.model import ModelCard
from tagger.playlists import PlaylistKind, collect, write_playlists
from tagger.record import Library, TagOptions
from tagger.scan import Scanner
from tagger.store import Database, Result
from tagger.systemd import Notifier
from tagger.tags import open_tags
from tests.audio_factory import make_track
from tests.conftest import TINY_CARD
from tests.mood_card import GENRE_MOODS, mood_card_path

pytestmark = [pytest.mark.model]

GENRES = ["drone", "techno", "chimes", "breaks", "organ"]
REPO = Path(__file__).resolve().parents[1]


def tag(path: Path, **fields: str) -> Path:
    """Set album/artist/title/track number with mutagen itself (FLAC or MP3)."""
    if path.suffix == ".flac":
        audio = FLAC(path)
        for key, value in fields.items():
            audio[key.upper()] = value
        audio.save()
    else:
        frames = {"album": TALB, "artist": TPE1, "title": TIT2, "tracknumber": TRCK}
        id3 = ID3()
        for key, value in fields.items():
            id3.add(frames[key](encoding=3, text=[value]))
        id3.save(path)
    return path


def make_library(root: Path) -> dict[str, Path]:
    """An album (numbered out of file-name order), loose singles in another folder, names with spaces."""
    tracks = {}
    for n, seed in ((3, 0), (1, 1), (2, 2)):  # file names a, b, c carry track numbers 3, 1, 2
        name = "abc"[seed]
        path = make_track(root / "Artist X" / "The Album" / f"{name}.flac", GENRES[seed], 1.0, 16000, seed)
        tracks[f"album{n}"] = tag(path, album="The Album", artist="Artist X", title=f"Song {n}", tracknumber=str(n))
    for seed in range(3, 6):
        path = make_track(root / "Loose files" / f"single é {seed}.mp3", GENRES[seed % 5], 1.0, 16000, seed)
        tracks[f"single{seed}"] = tag(path, artist="Someone", title=f"Single {seed}")
    return tracks


def scan(database: Database, card: ModelCard, root: Path) -> None:
    with Scanner(Library(database, card, TagOptions()), isolate=False) as scanner:
        list(scanner.scan([root]))


@pytest.fixture
def library(tmp_path: Path, database: Database, tiny_card: ModelCard) -> tuple[Path, dict[str, Path]]:
    root = tmp_path / "music"
    tracks = make_library(root)
    scan(database, tiny_card, root)
    return root, tracks


def read_playlist(path: Path) -> list[Path]:
    """The entries as a real M3U reader gives them, each resolved relative to the playlist's folder."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#EXTM3U\n"), path
    parsed = m3u8.loads(text)
    assert len(parsed.segments) == text.count("#EXTINF:"), "every EXTINF has its entry"
    resolved = []
    for segment in parsed.segments:
        assert not Path(segment.uri).is_absolute(), segment.uri
        resolved.append((path.parent / segment.uri).resolve())
    return resolved


def playlists_in(folder: Path) -> dict[str, list[Path]]:
    return {p.name: read_playlist(p) for p in sorted(folder.glob("*.m3u8"))}


def file_genre(path: Path) -> str:
    genres = open_tags(path).read_genres()
    assert len(genres) == 1, (path, genres)
    return genres[0]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_one_playlist_per_genre_every_entry_resolves(library: tuple[Path, dict[str, Path]], database: Database) -> None:
    root, tracks = library
    out = root / "Playlists"
    code, output = invoke("playlists", "--out", str(out), "--db", database.url)
    assert code == 0, output
    lists = playlists_in(out)
    expected: dict[str, set[Path]] = {}
    for path in tracks.values():
        expected.setdefault(file_genre(path) + ".m3u8", set()).add(path.resolve())
    assert {name: set(entries) for name, entries in lists.items()} == expected
    assert all(entry.is_file() for entries in lists.values() for entry in entries)
    for name in lists:
        text = (out / name).read_text()
        assert text.splitlines()[1].startswith(MARKER + "by=genre")
        assert f"#PLAYLIST:{name.removesuffix('.m3u8')}" in text
    parsed = m3u8.load(str(out / (file_genre(tracks["album1"]) + ".m3u8")))
    titles = {segment.title for segment in parsed.segments}
    assert "Artist X - Song 1" in titles
    assert all(segment.duration == 1 for segment in parsed.segments)  # seconds, from the database


def test_album_tracks_are_in_track_number_order_and_entries_survive_another_mount(
    tmp_path: Path, database: Database, tiny_card: ModelCard
) -> None:
    root = tmp_path / "music"
    album = root / "Album"
    paths = []
    for n, name in ((2, "a"), (3, "b"), (1, "c")):
        path = make_track(album / f"{name}.flac", "drone", 1.0, 16000, seed=0)
        paths.append(tag(path, album="One", artist="A", title=f"T{n}", tracknumber=f"{n}/3"))
        open_tags(path).write_genres(["Ambient"])  # the owner's genre: kept, and listed
    scan(database, tiny_card, root)
    write_playlists(database, root / "Playlists")
    assert read_playlist(root / "Playlists" / "Ambient.m3u8") == [album / "c.flac", album / "a.flac", album / "b.flac"]
    # A server that sees the library under another mount point: the same files resolve there.
    elsewhere = tmp_path / "mnt" / "media"
    shutil.copytree(root, elsewhere)
    assert read_playlist(elsewhere / "Playlists" / "Ambient.m3u8") == [
        elsewhere / "Album" / name for name in ("c.flac", "a.flac", "b.flac")
    ]


def test_stale_playlists_of_ours_go_foreign_files_stay(
    library: tuple[Path, dict[str, Path]], database: Database, tiny_card: ModelCard
) -> None:
    root, tracks = library
    out = root / "Playlists"
    first = write_playlists(database, out)
    a_genre = file_genre(tracks["album1"])
    foreign = out / "My mix.m3u8"
    foreign.write_bytes(b"#EXTM3U\n../Loose files/single \xc3\xa9 3.mp3\n")
    before = foreign.read_bytes()
    # Every track of one genre gets the owner's genre "Jazz": that genre's playlist is stale.
    retagged = [p for p in tracks.values() if file_genre(p) == a_genre]
    for path in retagged:
        open_tags(path).write_genres(["Jazz"])
    scan(database, tiny_card, root)
    done = write_playlists(database, out)
    assert out / f"{a_genre}.m3u8" in done.removed
    assert not (out / f"{a_genre}.m3u8").exists()
    assert set(read_playlist(out / "Jazz.m3u8")) == {p.resolve() for p in retagged}
    assert foreign.read_bytes() == before
    assert set(done.unchanged) == {p for p in first.written if p.exists() and p.name != "Jazz.m3u8"}


def test_a_foreign_file_with_a_genre_name_is_left_alone(
    library: tuple[Path, dict[str, Path]], database: Database
) -> None:
    root, tracks = library
    out = root / "Playlists"
    out.mkdir()
    name = file_genre(tracks["album1"]) + ".m3u8"
    (out / name).write_text("#EXTM3U\n#EXTINF:1,mine\nsomewhere.flac\n")
    code, output = invoke("playlists", "--out", str(out), "--db", database.url)
    assert code == 0
    assert (out / name).read_text() == "#EXTM3U\n#EXTINF:1,mine\nsomewhere.flac\n"
    assert "left alone" in output and name in output
    # another --by in the same folder leaves the genre playlists alone too
    assert write_playlists(database, out, PlaylistKind.ALBUM_GENRE).removed == []
    assert all(p.exists() for p in write_playlists(database, out).unchanged)


def test_album_genre_keeps_albums_whole(library: tuple[Path, dict[str, Path]], database: Database) -> None:
    root, tracks = library
    out = root / "Playlists"
    open_tags(tracks["album1"]).write_genres(["Folk"])
    open_tags(tracks["album2"]).write_genres(["Folk"])
    open_tags(tracks["album3"]).write_genres(["Blues"])
    done = write_playlists(database, out, PlaylistKind.ALBUM_GENRE)
    lists = playlists_in(out)
    album = {tracks[f"album{n}"].resolve() for n in (1, 2, 3)}
    assert set(lists["Folk (albums).m3u8"]) == album  # the Blues track goes with its album
    assert "Blues (albums).m3u8" not in lists
    singles = {p.resolve() for k, p in tracks.items() if k.startswith("single")}
    assert {e for name, entries in lists.items() if name != "Folk (albums).m3u8" for e in entries} == singles
    assert len(done.written) == len(lists)


def test_min_confidence_leaves_out_genres_the_model_did_not_hear(
    library: tuple[Path, dict[str, Path]], database: Database
) -> None:
    root, tracks = library
    open_tags(tracks["single3"]).write_genres(["Jazz"])  # the owner's word; the model ranks no Jazz
    entries = {Path(e.path): e for e in collect(database)}
    assert len(entries) == 6 and entries[tracks["single3"].resolve()].confidences.get("jazz") is None
    write_playlists(database, root / "Playlists", min_confidence=0.5)
    listed = {e for entries in playlists_in(root / "Playlists").values() for e in entries}
    assert listed == {p.resolve() for p in tracks.values()} - {tracks["single3"].resolve()}
    write_playlists(database, root / "Playlists")
    assert read_playlist(root / "Playlists" / "Jazz.m3u8") == [tracks["single3"].resolve()]


def test_bad_folder_is_one_line(tmp_path: Path, database: Database) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    code, output = invoke("playlists", "--out", str(not_a_folder), "--db", database.url)
    assert code == 1 and "Traceback" not in output and "playlists folder" in output
    assert not_a_folder.read_text() == "x"
    code, output = invoke("playlists", "--out", str(tmp_path / "p"), "--by", "colour", "--db", database.url)
    assert code == 2 and "--by" in output


def test_playlists_dir_and_options_from_the_config(
    library: tuple[Path, dict[str, Path]], database: Database, tmp_path: Path
) -> None:
    root, _ = library
    config = tmp_path / "config.toml"
    config.write_text(f'playlists_dir = "{root / "From config"}"\n[playlists]\nby = "album-genre"\n')
    code, output = invoke("playlists", "--config", str(config), "--db", database.url)
    assert code == 0, output
    names = [p.name for p in (root / "From config").glob("*.m3u8")]
    assert names and all(name.endswith(" (albums).m3u8") for name in names)


# ---------------------------------------------------------------------------- the daemon
@contextmanager
def daemon_with(library: Library, root: Path, refresher: PlaylistRefresher) -> Iterator[Daemon]:
    settings = WatchSettings(quiet_seconds=0.5, reconcile_hours=0.0)
    daemon = Daemon(library, [root], settings, isolate=False, notifier=Notifier({}), playlists=refresher)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not daemon.caught_up.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield daemon
    finally:
        daemon.request_stop()
        thread.join(15)
        assert not thread.is_alive()
        refresher.wait(30)


def test_the_daemon_keeps_playlists_current_in_batches(
    tmp_path: Path, database: Database, tiny_card: ModelCard
) -> None:
    root, staging, out = tmp_path / "music", tmp_path / "staging", tmp_path / "music" / "Playlists"
    root.mkdir()
    refresher = PlaylistRefresher(database, out, interval=2.0)
    made = [make_track(staging / f"t{i}.flac", GENRES[i % 5], 1.0, 16000, seed=i) for i in range(8)]
    with daemon_with(Library(database, tiny_card, TagOptions()), root, refresher):
        started = time.monotonic()
        for path in made:  # a burst: 8 files arrive within a second
            shutil.copy(path, root / path.name)
        wanted = {root / p.name for p in made}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listed = {e for entries in playlists_in(out).values() for e in entries} if out.exists() else set()
            if listed == wanted:
                break
            time.sleep(0.2)
        assert listed == wanted
        elapsed = time.monotonic() - started
        # At most one rewrite per 2 s (plus the one at start), never one per track.
        assert refresher.refreshes <= 2 + elapsed / 2.0 and refresher.refreshes < 1 + len(made)
        (root / "t0.flac").unlink()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and root / "t0.flac" in {
            e for entries in playlists_in(out).values() for e in entries
        }:
            time.sleep(0.2)
        assert root / "t0.flac" not in {e for entries in playlists_in(out).values() for e in entries}


def test_tagger_watch_keeps_the_configured_playlists(tmp_path: Path) -> None:
    """The real command in a second process: `playlists_dir` and `[playlists]` from the config file."""
    root, out, db_path = tmp_path / "music", tmp_path / "music" / "Lists", tmp_path / "state" / "tagger.db"
    root.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        f'model = "{TINY_CARD}"\nplaylists_dir = "{out}"\n[playlists]\nrefresh_seconds = 0.5\n'
        "[watch]\nquiet_seconds = 0.5\nreconcile_hours = 0.0\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "INVOCATION_ID", "TAGGER_DB")}
    command = [sys.executable, "-m", "tagger.cli", "watch", str(root), "--db", str(db_path), "--config", str(config)]
    process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        track = make_track(tmp_path / "t.flac", "organ", 1.0, 16000)
        time.sleep(1.0)
        shutil.copy(track, root / "t.flac")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(root / "t.flac" in e for e in playlists_in_if(out)):
            time.sleep(0.2)
        assert any(root / "t.flac" in entries for entries in playlists_in_if(out))
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
        stderr = process.stderr.read() if process.stderr else ""
    assert "playlists in" in stderr, stderr


def playlists_in_if(folder: Path) -> list[list[Path]]:
    return list(playlists_in(folder).values()) if folder.is_dir() else []


def test_a_failed_refresh_is_logged_and_retried(tmp_path: Path, database: Database) -> None:
    blocked = tmp_path / "not a folder"
    blocked.write_text("x")
    refresher = PlaylistRefresher(database, blocked, interval=5.0)
    assert refresher.maybe_refresh(100.0)
    refresher.wait(30)
    assert refresher.refreshes == 0 and blocked.read_text() == "x"
    assert not refresher.maybe_refresh(101.0)  # not before the interval
    blocked.unlink()
    assert refresher.maybe_refresh(105.0)  # retried without a new change
    refresher.wait(30)
    assert refresher.refreshes == 1 and blocked.is_dir()
    assert not refresher.maybe_refresh(200.0)  # nothing changed since


def test_playlist_settings_are_checked() -> None:
    settings = settings_from_dict({"playlists_dir": "~/lists", "playlists": {"refresh_seconds": 5, "by": "genre"}})
    assert settings.playlists_dir == str(Path("~/lists").expanduser())
    assert settings.playlists.refresh_seconds == 5.0
    with pytest.raises(ConfigError, match=r'playlists\.by: expected "genre" or "album-genre" or "mood", got "colour"'):
        settings_from_dict({"playlists": {"by": "colour"}})
    assert settings_from_dict({"playlists": {"by": "mood"}}).playlists.by == "mood"


# ---------------------------------------------------------------------------- moods
@pytest.fixture
def mood_library(tmp_path: Path, database: Database) -> tuple[Path, dict[str, Path]]:
    """The library scanned with a model that has a mood head: each result holds its track's moods."""
    root = tmp_path / "music"
    tracks = make_library(root)
    scan(database, ModelCard.load(mood_card_path(tmp_path / "model")), root)
    return root, tracks


def genre_of(path: Path) -> str:
    return GENRES["abc".index(path.stem)] if path.suffix == ".flac" else GENRES[int(path.stem[-1]) % 5]


def test_one_playlist_per_mood_of_the_latest_results(
    mood_library: tuple[Path, dict[str, Path]], database: Database
) -> None:
    root, tracks = mood_library
    out = root / "Playlists"
    open_tags(tracks["album1"]).write_genres(["Happy"])  # a genre of the same name: its own playlist, its own file
    code, output = invoke("playlists", "--out", str(out), "--by", "mood", "--db", database.url)
    assert code == 0, output
    expected: dict[str, set[Path]] = {}
    for path in tracks.values():
        expected.setdefault(f"{GENRE_MOODS[genre_of(path)]} (mood).m3u8", set()).add(path.resolve())
    assert len(expected) >= 3  # drone Sad, techno Aggressive, chimes and breaks Happy, organ Relaxed
    lists = playlists_in(out)
    assert {name: set(entries) for name, entries in lists.items()} == expected
    assert all((out / name).read_text().splitlines()[1].startswith(MARKER + "by=mood") for name in lists)
    code, output = invoke("playlists", "--out", str(out), "--db", database.url)  # by genre: beside them
    assert code == 0, output
    assert read_playlist(out / "Happy.m3u8") == [tracks["album1"].resolve()]
    assert {name: set(entries) for name, entries in playlists_in(out).items() if "(mood)" in name} == expected

    with database.session() as session:  # as if the head had abstained on album1, and heard single3's mood weakly
        for result in session.scalars(select(Result)):
            assert result.moods is not None
            if result.track.path == str(tracks["album1"].resolve()):
                result.moods = {**result.moods, "chosen": [], "abstained": True}
            elif result.track.path == str(tracks["single3"].resolve()):
                result.moods = {**result.moods, "ranked": [{**r, "confidence": 0.4} for r in result.moods["ranked"]]}
        session.commit()
    done = write_playlists(database, out, PlaylistKind.MOOD, min_confidence=0.5)
    listed = {e for name, entries in playlists_in(out).items() if "(mood)" in name for e in entries}
    assert listed == {p.resolve() for p in tracks.values()} - {tracks["album1"].resolve(), tracks["single3"].resolve()}
    assert all(p.name.endswith(" (mood).m3u8") for p in done.removed + done.written)  # genre playlists untouched
    assert read_playlist(out / "Happy.m3u8") == [tracks["album1"].resolve()]


def test_the_daemons_refresher_writes_mood_playlists_from_the_config(
    mood_library: tuple[Path, dict[str, Path]], database: Database
) -> None:
    root, tracks = mood_library
    settings = settings_from_dict({"playlists_dir": str(root / "Lists"), "playlists": {"by": "mood"}})
    refresher = PlaylistRefresher.from_settings(database, settings)
    assert refresher.kind is PlaylistKind.MOOD and refresher.maybe_refresh(100.0)
    refresher.wait(60)
    lists = playlists_in(root / "Lists")
    assert refresher.refreshes == 1 and lists and all(name.endswith(" (mood).m3u8") for name in lists)
    assert {e for entries in lists.values() for e in entries} == {p.resolve() for p in tracks.values()}
