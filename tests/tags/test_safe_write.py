"""A genre write changes the genre and nothing else, or nothing at all: refusals, links, failures mid-write."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mutagen import FileType
from mutagen.aiff import AIFF
from mutagen.asf import ASF
from mutagen.flac import FLAC
from mutagen.id3 import TPE1, Encoding
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from tagger.errors import TagReadError, TagWriteError
from tagger.tags import TEMP_MARKER, open_tags
from tests.audio_factory import ALL_EXTENSIONS
from tests.tags.conftest import OLD_GENRE, is_root, no_temp_files, payload, unchanged

Factory = Callable[..., Path]
MUTAGEN_CLASS: dict[str, type[FileType]] = {
    ".mp3": MP3, ".wav": WAVE, ".aiff": AIFF, ".flac": FLAC, ".ogg": OggVorbis, ".opus": OggOpus,
    ".m4a": MP4, ".wma": ASF,
}  # fmt: skip


# ------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("ext", ALL_EXTENSIONS)
def test_read_only_file_is_refused(ext: str, tagged: Factory) -> None:
    path = tagged(ext)
    tags = open_tags(path)
    path.chmod(0o444)
    with unchanged(path), pytest.raises(TagWriteError, match="read-only file") as info:
        tags.write_genres(["Rock"])
    assert info.value.path == path
    assert tags.read_genres() == [OLD_GENRE]  # the object still describes the file as it is


def test_file_the_user_may_not_write_is_refused(tagged: Factory, monkeypatch: Any) -> None:
    """os.access says no (someone else's 0644 file) although the directory would allow a replace.

    Tests run as root here, for whom os.access always says yes, so the answer is injected.
    """
    path = tagged(".flac")
    tags = open_tags(path)
    real_access = os.access

    def access(target: Any, mode: int, **kwargs: Any) -> bool:
        if Path(target) == path and mode & os.W_OK:
            return False
        return real_access(target, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    with unchanged(path), pytest.raises(TagWriteError, match="permission denied"):
        tags.write_genres(["Rock"])


def test_read_only_directory_is_refused(tagged: Factory) -> None:
    path = tagged(".mp3")
    tags = open_tags(path)
    path.parent.chmod(0o555)
    try:
        with unchanged(path), pytest.raises(TagWriteError, match="directory not writable"):
            tags.write_genres(["Rock"])
    finally:
        path.parent.chmod(0o755)


@pytest.mark.parametrize("genres", ["Rock", [1], ["ok", "bad\x00value"], ["line\nbreak"], ["\ud800"]], ids=repr)
def test_invalid_genres_are_refused(genres: Any, tagged: Factory) -> None:
    path = tagged(".ogg")
    with unchanged(path), pytest.raises(TagWriteError):
        open_tags(path).write_genres(genres)


def test_bad_options_are_programming_errors(tagged: Factory) -> None:
    path = tagged(".mp3")
    with pytest.raises(ValueError):
        open_tags(path, id3_version=2)
    with pytest.raises(ValueError):
        open_tags(path, id3_separator="")


# ------------------------------------------------------------------------- links and identity


def test_symlink_is_written_through(tagged: Factory, tmp_path: Path) -> None:
    target = tagged(".flac")
    links = tmp_path / "links"
    links.mkdir()
    link = links / "link.flac"
    link.symlink_to(target)
    before_payload = payload(target)
    tags = open_tags(link)
    tags.write_genres(["Rock"])
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert open_tags(target).read_genres() == ["Rock"]
    assert payload(target) == before_payload
    assert tags.path == link
    assert no_temp_files(links) and no_temp_files(target.parent)


def test_dangling_symlink_is_a_read_error(tmp_path: Path) -> None:
    link = tmp_path / "gone.mp3"
    link.symlink_to(tmp_path / "missing.mp3")
    with pytest.raises(TagReadError, match="no such file"):
        open_tags(link)


def test_file_swapped_since_open_is_refused(tagged: Factory, fresh: Factory) -> None:
    path = tagged(".mp3")
    tags = open_tags(path)
    newcomer = fresh(".mp3", name="newcomer")
    os.replace(newcomer, path)
    with unchanged(path), pytest.raises(TagWriteError, match="replaced since it was opened"):
        tags.write_genres(["Rock"])


def test_permissions_owner_and_xattrs_are_kept(tagged: Factory) -> None:
    path = tagged(".wav")
    path.chmod(0o640)
    try:
        os.setxattr(path, "user.rating", b"5")
        has_xattr = True
    except OSError:
        has_xattr = False
    if is_root():
        os.chown(path, 12345, 23456)
    open_tags(path).write_genres(["Rock"])
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    if is_root():
        assert (st.st_uid, st.st_gid) == (12345, 23456)
    if has_xattr:
        assert os.getxattr(path, "user.rating") == b"5"


def test_very_long_file_name(fresh: Factory) -> None:
    path = fresh(".opus", name="x" * 245)
    open_tags(path).write_genres(["Rock"])
    assert open_tags(path).read_genres() == ["Rock"]
    assert no_temp_files(path.parent)


# ------------------------------------------------------------------------- failures mid-write


def _sabotaged_save(error: BaseException, calls: list[str]) -> Callable[..., None]:
    """A save that scribbles over the file it was given (the temp copy) and then fails."""

    def save(self: FileType, *args: Any, **kwargs: Any) -> None:
        calls.append(self.filename)
        with open(self.filename, "r+b") as handle:
            handle.write(b"\x00" * 512)
        raise error

    return save


@pytest.mark.parametrize("ext", ALL_EXTENSIONS)
def test_failing_mutagen_save_leaves_original(ext: str, tagged: Factory, monkeypatch: Any) -> None:
    path = tagged(ext)
    tags = open_tags(path)
    calls: list[str] = []
    no_space = OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(MUTAGEN_CLASS[ext], "save", _sabotaged_save(no_space, calls))
    with unchanged(path), pytest.raises(TagWriteError, match="no space left on device"):
        tags.write_genres(["Rock"])
    assert len(calls) == 1
    written = Path(calls[0])
    assert written.parent == path.parent and written.name.startswith(f".{path.name}{TEMP_MARKER}")
    monkeypatch.undo()
    tags.write_genres(["Rock"])  # nothing was left half-done: the next try just works
    assert open_tags(path).read_genres() == ["Rock"]


def test_interrupt_mid_write_propagates_and_cleans_up(tagged: Factory, monkeypatch: Any) -> None:
    path = tagged(".flac")
    monkeypatch.setattr(FLAC, "save", _sabotaged_save(KeyboardInterrupt(), []))
    with unchanged(path), pytest.raises(KeyboardInterrupt):
        open_tags(path).write_genres(["Rock"])


@pytest.mark.parametrize("step", ["replace", "fsync", "chmod"])
def test_failing_os_step_leaves_original(step: str, tagged: Factory, monkeypatch: Any) -> None:
    path = tagged(".aiff")
    tags = open_tags(path)

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, step, fail)
    with unchanged(path), pytest.raises(TagWriteError, match="input/output error"):
        tags.write_genres(["Rock"])


@pytest.mark.parametrize("kernel", ["refuses", "answers zero"])
def test_copy_falls_back_where_the_kernel_will_not_copy_ranges(kernel: str, tagged: Factory, monkeypatch: Any) -> None:
    """FUSE, old kernels across devices, or no copy_file_range at all: the temp copy is made the plain way."""
    path = tagged(".flac")
    audio, calls = payload(path), []

    def copy_file_range(*args: Any) -> int:
        calls.append(args)
        if kernel == "refuses":
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return 0

    monkeypatch.setattr(os, "copy_file_range", copy_file_range)
    open_tags(path).write_genres(["Rock"])
    assert calls and open_tags(path).read_genres() == ["Rock"]
    assert payload(path) == audio and no_temp_files(path.parent)


def test_copy_that_fails_midway_leaves_original(tagged: Factory, monkeypatch: Any) -> None:
    path = tagged(".mp3")
    real = os.copy_file_range

    def copy_file_range(source: int, destination: int, count: int, *args: Any) -> int:
        if os.fstat(destination).st_size:  # the first chunk went through: the disk fails now
            raise OSError(errno.EIO, "Input/output error")
        return real(source, destination, min(count, 4096), *args)

    monkeypatch.setattr(os, "copy_file_range", copy_file_range)
    with unchanged(path), pytest.raises(TagWriteError, match="input/output error"):
        open_tags(path).write_genres(["Rock"])


def test_directory_that_rejects_temp_files(tagged: Factory, monkeypatch: Any) -> None:
    """As root a 0555 directory is still writable, so simulate the filesystem saying no."""
    import tempfile

    path = tagged(".wma")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with unchanged(path), pytest.raises(TagWriteError, match="cannot create temp file: permission denied"):
        open_tags(path).write_genres(["Rock"])


@pytest.mark.parametrize("ext", [".flac", ".mp3", ".m4a", ".wma"])
def test_save_that_touches_other_tags_is_caught(ext: str, tagged: Factory, monkeypatch: Any) -> None:
    """The re-read check refuses a write that changed anything but the genre."""
    path = tagged(ext)
    original_save = MUTAGEN_CLASS[ext].save

    def meddling_save(self: FileType, *args: Any, **kwargs: Any) -> None:
        if ext == ".flac":
            self.tags["ARTIST"] = "Someone Else"
        elif ext == ".mp3":
            self.tags.add(TPE1(encoding=Encoding.UTF8, text=["Someone Else"]))
        elif ext == ".m4a":
            self.tags["\xa9ART"] = ["Someone Else"]
        else:
            self.tags["Author"] = "Someone Else"
        original_save(self, *args, **kwargs)

    monkeypatch.setattr(MUTAGEN_CLASS[ext], "save", meddling_save)
    with unchanged(path), pytest.raises(TagWriteError, match="verification failed: other tags changed"):
        open_tags(path).write_genres(["Rock"])


def test_save_that_loses_the_genre_is_caught(tagged: Factory, monkeypatch: Any) -> None:
    path = tagged(".ogg")
    original_save = OggVorbis.save

    def forgetful_save(self: FileType, *args: Any, **kwargs: Any) -> None:
        del self.tags["GENRE"]
        original_save(self, *args, **kwargs)

    monkeypatch.setattr(OggVorbis, "save", forgetful_save)
    with unchanged(path), pytest.raises(TagWriteError, match="verification failed: wrote"):
        open_tags(path).write_genres(["Rock"])


def test_concurrent_edit_is_not_clobbered(tagged: Factory, monkeypatch: Any) -> None:
    """Another program changes the file while we work on the copy: we back off, its edit stays."""
    path = tagged(".mp3")
    original_save = MP3.save

    def save_while_someone_else_writes(self: FileType, *args: Any, **kwargs: Any) -> None:
        original_save(self, *args, **kwargs)
        with open(path, "ab") as handle:
            handle.write(b"\x00" * 10)

    monkeypatch.setattr(MP3, "save", save_while_someone_else_writes)
    with pytest.raises(TagWriteError, match="changed on disk while writing"):
        open_tags(path).write_genres(["Rock"])
    assert path.read_bytes().endswith(b"\x00" * 10)
    assert open_tags(path).read_genres() == [OLD_GENRE]
    assert no_temp_files(path.parent)
