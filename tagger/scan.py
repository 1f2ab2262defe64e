"""One-shot bulk tagging: walk the roots, skip what is unchanged, classify the rest through an analysis backend
(:mod:`tagger.analysis`: worker processes, the model loaded once per worker; or a cluster's workers), then store +
tag each track, up to ``recorders`` tracks at a time, in this process or in ``recording_processes`` child processes
(:mod:`tagger.recorders`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Literal

import numpy as np

from tagger.album import AlbumTrack, album_tags, consensus
from tagger.analysis import DEFAULT_TIMEOUT, Analysed, AnalysisBackend, InProcess, ProcessPool
from tagger.errors import FileError, TagReadError, UnsupportedFormatError
from tagger.files import not_regular_reason, os_reason, unsupported_reason
from tagger.pipeline import TrackAnalysis
from tagger.record import AlbumChoice, Library, RecordJob
from tagger.recorders import RecordingProcesses, recorded_in_order
from tagger.store.retag import outdated_writes, stored_analyses
from tagger.summary import ScanSummary as ScanSummary  # its home before tagger.summary
from tagger.tags import open_tags
from tagger.tags.leases import BEING_WRITTEN, being_written
from tagger.track import FileState, KnownState, Outcome, TrackReport
from tagger.walk import iter_audio_files

Retag = tuple[Path, FileState, TrackAnalysis]  # root, state, analysis rebuilt from the database (no audio)
Todo = tuple[Path, Path, FileState]  # root, path, state
AlbumMode = Literal["consensus", "track"]
BATCH_LOOKUP_MAX = 500  # up to this many files (a daemon batch), the database is asked about just these


def _walk_failure(folder: Path, reason: str) -> TrackReport:
    """A folder the walk could not read: reported in the summary, not recorded (it is no track)."""
    return TrackReport(folder, Outcome.FAILED, reason=reason)


# ---------------------------------------------------------------- scan
class Scanner:
    """Runs scans; ``scan()``/``run()`` yield one :class:`TrackReport` per file as they go.

    The analyses come from ``backend`` (default: a :class:`ProcessPool` of ``workers``, or :class:`InProcess`
    without ``isolate``; :mod:`tagger.cluster` gives a Dask cluster's); whichever it is, this process stores
    them and writes the tags, or its ``recording_processes`` do (one scan process cannot record for the dozens of
    workers a cluster has). The backend (one model per worker) and the recording processes live as long as the
    scanner, so the daemon reuses them for every batch; use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        library: Library,
        workers: int = 1,
        threads: int = 1,
        max_windows: int | None = None,
        follow_symlinks: bool = False,
        force: bool = False,
        isolate: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        album_mode: AlbumMode = "track",
        backend: AnalysisBackend | None = None,
        recorders: int = 1,
        recording_processes: int = 0,
    ) -> None:
        self.library = library
        self.recorders = recorders  # tracks recorded at a time by each recording process (threads; tagger.recorders)
        self.recording_processes = recording_processes  # 0: recorded by this process
        self._recording: RecordingProcesses | None = None  # started on the first record
        self.max_windows = max_windows
        self.follow_symlinks = follow_symlinks
        self.force = force
        self.album_mode = album_mode  # consensus: a folder's albums are decided together once all are analysed
        # isolate: decode in worker processes, so a crashing or hanging decoder costs one track
        self.backend = backend or (
            ProcessPool(library.card, workers, threads, timeout) if isolate else InProcess(library.card, threads)
        )

    def __enter__(self) -> Scanner:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._close_recording()
        self.backend.close()

    def _close_recording(self) -> None:
        if self._recording is not None:
            self._recording.close()
            self._recording = None

    def reconfigure(self, library: Library, max_windows: int | None) -> None:
        """Tag through ``library`` (new tagging options) and analyse ``max_windows`` from the next file on.

        The analysis backend is kept: ``library`` must hold the model card the workers loaded; recording processes
        are started again with the new library's options."""
        self._close_recording()
        self.library = library
        self.max_windows = max_windows

    def scan(
        self, roots: Iterable[str | Path], on_planned: Callable[[int], None] | None = None
    ) -> Iterator[TrackReport]:
        """Every audio file under ``roots``, then one failure per folder the walk could not read;
        recorded tracks under ``roots`` whose files were deleted are marked gone."""
        roots = list(roots)
        unreadable: list[TrackReport] = []
        files = iter_audio_files(
            roots, self.follow_symlinks, lambda folder, reason: unreadable.append(_walk_failure(folder, reason))
        )
        yield from self.run(files, on_planned)
        yield from unreadable
        if not self.library.options.dry_run:
            yield from self._mark_vanished(roots, reported={str(report.path) for report in unreadable})

    def _mark_vanished(self, roots: list[str | Path], reported: set[str]) -> Iterator[TrackReport]:
        """After the walk, so that moved files were followed first (their old path is no longer recorded).
        A root the walk already reported as unreadable is not reported a second time."""
        vanished = self.library.vanished(roots)
        for root, tracks in vanished.unmounted.items():
            if str(root) in reported:
                continue
            reason = f"missing or empty (not mounted?): its {tracks} recorded tracks are not marked gone"
            yield TrackReport(Path(root), Outcome.FAILED, reason=reason)
        for path in vanished.paths:
            if self.library.mark_gone(path):
                yield TrackReport(Path(path), Outcome.GONE)

    def run(
        self,
        files: Iterable[tuple[Path, Path]],
        on_planned: Callable[[int], None] | None = None,
        *,
        force: bool | None = None,
    ) -> Iterator[TrackReport]:
        """The given ``(root, path)`` files: skip unchanged, follow moves, classify and record the rest.

        ``force`` (this run only; default: the scanner's own) classifies unchanged files again."""
        todo, done, retag = self.plan(files, force)
        if on_planned:
            on_planned(len(todo) + len(done) + len(retag))
        yield from done
        retagged = (RecordJob(root, analysis.path, state, analysis) for root, state, analysis in retag)
        analysed = zip(todo, self.backend.analyse([p for _, p, _ in todo], self.max_windows), strict=True)
        recorded: Iterator[RecordJob]
        if self.album_mode == "consensus":
            recorded = self._record_by_folder(analysed)
        else:
            recorded = (RecordJob(root, path, state, result) for (root, path, state), result in analysed)
        yield from self._recorded(chain(retagged, recorded))

    def _recorded(self, jobs: Iterator[RecordJob]) -> Iterator[TrackReport]:
        if self.recording_processes < 1:
            return recorded_in_order((partial(self.library.record_job, job) for job in jobs), self.recorders)
        if self._recording is None:
            self._recording = RecordingProcesses(self.library, self.recording_processes, self.recorders)
        return self._recording.recorded(jobs)

    def _record_by_folder(self, analysed: Iterable[tuple[Todo, Analysed]]) -> Iterator[RecordJob]:
        """Album consensus: the walk yields files sorted per folder, so a folder's tracks are held until
        the next folder starts, then decided together (each still recorded and written once)."""
        folder: list[tuple[Todo, Analysed]] = []
        for item in analysed:
            if folder and item[0][1].parent != folder[0][0][1].parent:
                yield from self._record_albums(folder)
                folder = []
            folder.append(item)
        yield from self._record_albums(folder)

    def _record_albums(self, items: list[tuple[Todo, Analysed]]) -> Iterator[RecordJob]:
        tracks: list[AlbumTrack] = []
        positions: list[int] = []
        for position, ((_, path, _), analysis) in enumerate(items):
            if isinstance(analysis, FileError):
                continue
            try:
                tags = album_tags(open_tags(path).read_other_tags())
            except (TagReadError, UnsupportedFormatError, FileError, OSError):
                tags = {}  # the track is decided on its own; recording it reports the tag problem
            probabilities = self.library.vocabulary.window_probabilities(analysis).astype(np.float64).mean(axis=0)
            tracks.append(AlbumTrack(folder=str(path.parent), name=path.name, probabilities=probabilities, **tags))
            positions.append(position)
        choices: dict[int, AlbumChoice] = {}
        for decision in consensus(tracks):
            for member in decision.members:
                choices[positions[member]] = AlbumChoice(decision.probabilities, member in decision.far)
        for position, ((root, path, state), analysis) in enumerate(items):
            yield RecordJob(root, path, state, analysis, choices.get(position))

    def plan(
        self, files: Iterable[tuple[Path, Path]], force: bool | None = None
    ) -> tuple[list[tuple[Path, Path, FileState]], list[TrackReport], list[Retag]]:
        """Stat everything: what needs classifying, the reports for what does not, and the unchanged
        tracks re-tagged from their stored result (never decoded again): decided with other options
        (policy, top-k, ...) than now, or to be tagged in a learned vocabulary from their embedding.
        Unchanged tracks whose genre the tool wrote from another model or head are classified again."""
        force = self.force if force is None else force
        # a daemon batch: look up just these
        batch = isinstance(files, list | tuple) and len(files) <= BATCH_LOOKUP_MAX
        paths = [str(path) for _, path in files] if batch else None
        known = self.library.known_states(paths)
        library = self.library
        db, vocabulary, model_id = library.db, library.vocabulary, library.card.model_id
        decided_with = library.options.decided_with
        stored = {} if force else stored_analyses(db, vocabulary, model_id, decided_with, paths, library.moods)
        outdated = set() if force else outdated_writes(db, vocabulary, model_id, paths, library.moods, decided_with)
        retag: list[Retag] = []
        todo: list[tuple[Path, Path, FileState]] = []
        done: list[TrackReport] = []
        walked: set[str] = set()
        for root, path in files:
            walked.add(str(path))
            try:
                st = os.stat(path)
            except OSError as error:
                done.append(self.library.record_failure(path, root, f"cannot stat: {os_reason(error)}", None))
                continue
            state = FileState.from_stat(st)
            unchanged = (
                not force and self.library.is_unchanged(known.get(str(path)), state) and str(path) not in outdated
            )
            # Judged before anything opens it: a FIFO would block the move fingerprint or a decoder.
            refused = not_regular_reason(st.st_mode) or unsupported_reason(path)
            if refused:
                done.append(
                    TrackReport(path, Outcome.SKIPPED)
                    if unchanged
                    else self.library.record_failure(path, root, refused, state)
                )
                continue
            if not unchanged and being_written(path):
                # A download still open for writing: decode nothing, store no result of half a file; no
                # size/mtime is recorded, so the next run looks again even if the file did not change.
                done.append(self.library.record_failure(path, root, BEING_WRITTEN, None))
                continue
            if unchanged:
                if (analysis := stored.get(str(path))) is not None:
                    retag.append((root, state, analysis))
                else:
                    done.append(TrackReport(path, Outcome.SKIPPED))
                continue
            todo.append((root, path, state))
        return self._follow_moves(todo, done, known, None if batch else walked), done, retag

    def _follow_moves(
        self, todo: list[Todo], done: list[TrackReport], known: dict[str, KnownState], walked: set[str] | None
    ) -> list[Todo]:
        """The files new to the database whose content is a track whose file is gone: that track moved here (a
        report in ``done``, no analysis). Once the walk is over, so that a whole scan asks the database once which
        contents can have moved, from the tracks not ``walked`` (a daemon's batch, ``walked`` None: each looked up)."""
        new = [str(path) not in known for _, path, _ in todo]
        sources = None if walked is None or not any(new) else self.library.move_sources(walked)
        analysed: list[Todo] = []
        for (root, path, state), is_new in zip(todo, new, strict=True):
            if is_new and (moved := self.library.try_move(path, root, state, sources)):
                done.append(moved)
            else:
                analysed.append((root, path, state))
        return analysed

    def recording_pids(self) -> set[int]:
        """The recording processes' ids (none before the first record, or with ``recording_processes`` 0)."""
        return self._recording.pids() if self._recording is not None else set()

    def worker_pids(self) -> set[int]:
        """The local pool's running workers' process ids (none before the first track): a restart changes them."""
        return self.backend.worker_pids() if isinstance(self.backend, ProcessPool) else set()
