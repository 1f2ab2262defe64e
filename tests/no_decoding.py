"""Make any decoding in this process, or any track sent to the scan's worker pool, fail the test."""

from __future__ import annotations

import pytest

from tagger import audio
from tagger.analysis import ProcessPool


def forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-tag from stored results must decode nothing: ``audio.probe``/``read_segments`` raise, and so does
    the worker pool when it is given a track (it would decode it in another process, out of reach of a patch)."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a track was decoded again")

    monkeypatch.setattr(audio, "probe", refuse)
    monkeypatch.setattr(audio, "read_segments", refuse)
    original = ProcessPool.analyse
    monkeypatch.setattr(
        ProcessPool, "analyse", lambda self, paths, windows: refuse() if paths else original(self, paths, windows)
    )
