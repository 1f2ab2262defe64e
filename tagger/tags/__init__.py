"""Read and write genre and mood tags, one storage style per tag family (after beets' mediafile).

Two roles are written, each one native field per file (:data:`Role`; ``tags.field_name(role)``):

=============================  ===========  ==========================================
family (formats)               ``"genre"``  ``"mood"``
=============================  ===========  ==========================================
ID3 (MP3, WAV, AIFF)           ``TCON``     ``TMOO`` (ID3v2.4), ``TXXX:MOOD`` (ID3v2.3)
Vorbis (FLAC, Ogg, Opus)       ``GENRE``    ``MOOD``
MP4 (M4A)                      ``©gen``     ``----:com.apple.iTunes:MOOD``
ASF (WMA)                      ``WM/Genre`` ``WM/Mood``
=============================  ===========  ==========================================

``read(role)``, ``read_all(role)``, ``as_stored(values, role)`` and ``write({role: values, ...})``
(one atomic rewrite for every role named, only their fields change) work alike for both;
``read_genres``, ``read_all_genres``, ``write_genres``, ``as_stored(genres)`` and ``field`` are the
genre role's shorthands.

``open_tags(path)`` picks the family by the file's *content*, using the same ``score``
functions ``mutagen.File`` uses but without the file name first, so a FLAC named ``.mp3``
is still treated as FLAC; only when the content is ambiguous or unknown does the extension
help (again through mutagen's scores). Every failure becomes a :mod:`tagger.errors` error
naming the file and a short reason:

* UnsupportedFormatError - not audio (empty, text, random bytes), or audio whose tags this
  tool does not write (Ogg FLAC, Speex, WavPack, ...), or not a regular file;
* TagReadError - the content looks like a supported format but mutagen cannot read it
  (corrupt/huge/truncated tags or headers), or the file cannot be read at all.

Writing is described in :mod:`tagger.tags.safe_write` (atomic replace, only the fields written change).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from mutagen import FileType
from mutagen.aac import AAC
from mutagen.ac3 import AC3
from mutagen.aiff import AIFF
from mutagen.apev2 import APEv2File
from mutagen.asf import ASF
from mutagen.dsdiff import DSDIFF
from mutagen.dsf import DSF
from mutagen.flac import FLAC
from mutagen.id3 import ID3FileType
from mutagen.monkeysaudio import MonkeysAudio
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.musepack import Musepack
from mutagen.oggflac import OggFLAC
from mutagen.oggopus import OggOpus
from mutagen.oggspeex import OggSpeex
from mutagen.oggtheora import OggTheora
from mutagen.oggvorbis import OggVorbis
from mutagen.optimfrog import OptimFROG
from mutagen.smf import SMF
from mutagen.tak import TAK
from mutagen.trueaudio import TrueAudio
from mutagen.wave import WAVE
from mutagen.wavpack import WavPack

from tagger.errors import TagReadError, UnsupportedFormatError
from tagger.files import SUPPORTED_EXTENSIONS, NotRegularFileError, open_regular
from tagger.tags.asf import ASFGenreTags
from tagger.tags.base import ROLES, FileIdentity, FormatOptions, GenreTags, Role
from tagger.tags.id3 import ID3GenreTags
from tagger.tags.mp4 import MP4GenreTags
from tagger.tags.reasons import reason_for
from tagger.tags.safe_write import TEMP_MARKER
from tagger.tags.vorbis import VorbisGenreTags

__all__ = [
    "FAMILIES",
    "ROLES",
    "SUPPORTED_EXTENSIONS",
    "TEMP_MARKER",
    "ASFGenreTags",
    "GenreTags",
    "ID3GenreTags",
    "MP4GenreTags",
    "Role",
    "VorbisGenreTags",
    "open_tags",
]

FAMILIES: tuple[type[GenreTags], ...] = (ID3GenreTags, VorbisGenreTags, MP4GenreTags, ASFGenreTags)

_FAMILY_OF: dict[type[FileType], type[GenreTags]] = {kind: family for family in FAMILIES for kind in family.kinds}

# Every format mutagen.File knows, so that known-but-unsupported audio is recognised as such.
_ALL_KINDS: tuple[type[FileType], ...] = (
    MP3, TrueAudio, OggTheora, OggSpeex, OggVorbis, OggFLAC, FLAC, AIFF, APEv2File, MP4,
    ID3FileType, WavPack, Musepack, MonkeysAudio, OptimFROG, ASF, OggOpus, AAC, AC3, SMF, TAK,
    DSF, DSDIFF, WAVE,
)  # fmt: skip

_HEADER_BYTES = 128  # what mutagen.File gives the score functions


def open_tags(
    path: str | Path, *, id3_version: int = 4, id3_separator: str = "; ", hardlinks: str = "keep"
) -> GenreTags:
    """Open ``path``'s tags in the storage style its content calls for.

    ``id3_version`` (3 or 4) is the ID3v2 version for files that get a new tag; existing
    v2.3/v2.4 tags keep theirs (see :mod:`tagger.tags.id3`). ``id3_separator`` joins several
    genres (moods) in an ID3v2.3 TCON (TXXX:MOOD). ``hardlinks``: "keep" writes a hard-linked file in place, "break"
    replaces it (see :mod:`tagger.tags.safe_write`).
    """
    if id3_version not in (3, 4):
        raise ValueError(f"id3_version must be 3 or 4, not {id3_version!r}")
    if not isinstance(id3_separator, str) or not id3_separator or "\x00" in id3_separator:
        raise ValueError(f"id3_separator must be a non-empty string without NUL, not {id3_separator!r}")
    file_path = Path(path)
    identity, kinds, looks_like_audio = _stat_and_candidates(file_path)
    audio = _load(file_path, kinds, looks_like_audio)
    family = _FAMILY_OF[type(audio)]
    return family(file_path, audio, identity, FormatOptions(id3_version, id3_separator, hardlinks))


def _stat_and_candidates(path: Path) -> tuple[FileIdentity, list[type[FileType]], bool]:
    """Refuse non-files before mutagen sees them (a FIFO would block it), then rank kinds."""
    try:
        with open_regular(path) as handle:
            st = os.fstat(handle.fileno())
            if st.st_size == 0:
                raise UnsupportedFormatError(path, "empty file")
            kinds, looks_like_audio = _candidates(path, handle)
    except NotRegularFileError as exc:
        raise UnsupportedFormatError(path, exc.reason) from exc
    except OSError as exc:
        raise TagReadError(path, reason_for(exc)) from exc
    return FileIdentity.of(st), kinds, looks_like_audio


def _best(path: str, handle: BinaryIO, header: bytes) -> type[FileType] | None:
    """mutagen.File's choice: highest score, ties broken by class name; None if nothing scores."""
    scores: list[tuple[int, str, type[FileType]]] = []
    for kind in _ALL_KINDS:
        handle.seek(0)
        try:
            score = int(kind.score(path, handle, header))
        except Exception:  # a scorer that chokes on this file just doesn't claim it
            score = 0
        scores.append((score, kind.__name__, kind))
    score, _, kind = max(scores, key=lambda item: (item[0], item[1]))
    return kind if score > 0 else None


def _candidates(path: Path, handle: BinaryIO) -> tuple[list[type[FileType]], bool]:
    """Kinds to try in order, and whether the content itself looked like audio."""
    header = handle.read(_HEADER_BYTES)
    by_content = _best("", handle, header)
    with_name = _best(os.fspath(path), handle, header)
    ordered: list[type[FileType]] = []
    id3_prefixed = header.startswith(b"ID3")  # an ID3v2 tag can precede MP3, FLAC, AAC, ...
    if by_content is not None and not id3_prefixed:
        ordered.append(by_content)
    if with_name is not None:
        ordered.append(with_name)
    if id3_prefixed:
        ordered += [MP3, FLAC]
    return list(dict.fromkeys(ordered)), by_content is not None


def _load(path: Path, kinds: list[type[FileType]], looks_like_audio: bool) -> FileType:
    """Load with the first candidate kind that reads; map every failure to a FileError."""
    if not kinds:
        raise UnsupportedFormatError(path, "not a recognised audio file")
    failures: list[tuple[type[FileType], Exception]] = []
    for kind in kinds:
        family = _FAMILY_OF.get(kind)
        try:
            audio = family.load(kind, os.fspath(path)) if family else kind(os.fspath(path))
        except Exception as exc:  # mutagen raises many types on bad data; all are reported
            failures.append((kind, exc))
            continue
        if family is None:
            raise UnsupportedFormatError(path, f"unsupported format ({kind.__name__})")
        return audio
    first_kind, first_error = failures[0]
    reason = reason_for(first_error, path)
    if isinstance(first_error, OSError) or looks_like_audio:
        raise TagReadError(path, f"unreadable {first_kind.__name__} file: {reason}") from first_error
    raise UnsupportedFormatError(path, f"not audio ({reason})") from first_error
