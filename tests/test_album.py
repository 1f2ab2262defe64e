"""Album consensus rules (pure): which tracks form an album, the mean, the far tracks."""

from __future__ import annotations

import numpy as np

from tagger.album import AlbumTrack, album_groups, album_probabilities, consensus, track_number

CLASSICAL = np.array([0.8, 0.1, 0.1])
JAZZ = np.array([0.3, 0.6, 0.1])
ROCK = np.array([0.05, 0.05, 0.9])


def track(folder: str, name: str, p: np.ndarray = CLASSICAL, **tags: str) -> AlbumTrack:
    return AlbumTrack(folder=folder, name=name, probabilities=p, **tags)


def test_tracks_of_one_album_get_the_mean_and_a_far_track_is_reported() -> None:
    tracks = [track("a", f"{i:02d}.flac", CLASSICAL, album="Suites", album_artist="Bach") for i in range(1, 8)]
    tracks += [track("a", f"{i:02d}.flac", JAZZ, album="Suites", album_artist="Bach") for i in (8, 9, 10)]
    tracks.append(track("a", "11.flac", ROCK, album="Suites", album_artist="Bach"))
    (decision,) = consensus(tracks)
    assert decision.members == tuple(range(11))
    assert np.allclose(decision.probabilities, (7 * CLASSICAL + 3 * JAZZ + ROCK) / 11)
    assert decision.far == (10,)  # the jazz ones still give classical 0.3 of their 0.6: near enough
    after = album_probabilities(tracks)
    assert all(int(p.argmax()) == 0 for p in after)


def test_a_flat_folder_of_unrelated_files_is_never_an_album() -> None:
    tracks = [
        track("inbox", "some song.mp3", CLASSICAL, artist="A"),
        track("inbox", "other.mp3", ROCK, artist="B"),
        track("inbox", "03 third.mp3", JAZZ),
    ]
    assert album_groups(tracks) == []
    assert [p.tolist() for p in album_probabilities(tracks)] == [CLASSICAL.tolist(), ROCK.tolist(), JAZZ.tolist()]


def test_an_untagged_folder_is_an_album_only_when_it_looks_like_one_release() -> None:
    numbered = [track("rip", f"{i:02d} - title.ogg") for i in (1, 2, 3)]
    assert album_groups(numbered) == [(0, 1, 2)]
    twice = [track("rip", "01 a.ogg"), track("rip", "01 b.ogg")]
    assert album_groups(twice) == []
    two_artists = [track("rip", "01 a.ogg", artist="X"), track("rip", "02 b.ogg", artist="Y")]
    assert album_groups(two_artists) == []
    tag_numbers = [track("rip", "a.ogg", track_number="1/2"), track("rip", "b.ogg", track_number="2/2")]
    assert album_groups(tag_numbers) == [(0, 1)]
    assert album_groups([track("rip", "01 only.ogg")]) == []


def test_album_tags_decide_across_folders_and_split_a_disagreeing_folder() -> None:
    tracks = [
        track("cd1", "01.flac", album="Box", album_artist="Miles Davis"),
        track("cd2", "01.flac", album="Box", album_artist="Miles Davis"),
        track("hits1", "01.flac", album="Greatest Hits"),  # no album artist: one folder's album at most
        track("hits2", "01.flac", album="Greatest Hits"),
        track("mixed", "01.flac", album="One"),
        track("mixed", "02.flac", album="Two"),
        track("mixed", "03.flac"),
    ]
    assert album_groups(tracks) == [(0, 1)]


def test_track_numbers() -> None:
    assert track_number(track("f", "x.mp3", track_number=" 7/12")) == 7
    assert track_number(track("f", "1-03 Song.mp3")) == 3  # disc-track
    assert track_number(track("f", "Song 2.mp3")) is None
    assert track_number(track("f", "x.mp3", track_number="A1")) is None
