"""Locate the pretrained MSD_musicnn checkpoint (Pons & Serra's ``musicnn`` 0.1.0, ISC licence).

The weights ship only inside the ``musicnn`` wheel, whose metadata pins ``numpy<1.17``: the
package must never be installed with its dependencies nor imported (its code is TF1). So we
only *read files* out of it: from ``$TAGGER_MUSICNN_DIR``, from an installed copy found with
``importlib.util.find_spec`` (which does not import the package), or from a wheel fetched
with ``pip download --no-deps`` into the user cache, of which only ``musicnn/MSD_musicnn/*``
is unpacked.

The checkpoint's files have an empty basename (``.index``, ``.data-00000-of-00001``, ...),
so the *prefix* is the folder path plus ``/``. Its ``checkpoint`` file names the authors'
own path and is useless; open the prefix with :func:`open_checkpoint`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from platformdirs import user_cache_dir

MUSICNN_VERSION = "0.1.0"
MODEL_NAME = "MSD_musicnn"
SECOND_MODEL_NAME = "MTT_musicnn"  # the same network trained on MagnaTagATune: evaluated as extra features only
WHEEL_NAME = f"musicnn-{MUSICNN_VERSION}-py3-none-any.whl"
ENV_DIR = "TAGGER_MUSICNN_DIR"

# The 50 last.fm tags of the Million Song Dataset, in MSD_musicnn's output order
# (``MSD_LABELS`` in the wheel's musicnn/configuration.py; a test checks it against that file).
MSD_LABELS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
    "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
    "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist",
    "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy", "catchy", "funk",
    "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
)  # fmt: skip


class PretrainedNotFound(RuntimeError):
    """The checkpoint is neither configured, installed, cached nor downloadable."""


def cache_dir() -> Path:
    """Where the downloaded wheel and the unpacked checkpoint live."""
    return Path(user_cache_dir("genre-tagger")) / "musicnn"


def _is_checkpoint_dir(folder: Path) -> bool:
    return (folder / ".index").is_file() and (folder / ".data-00000-of-00001").is_file()


def _prefix(folder: Path) -> str:
    return str(folder.resolve()) + "/"


def _from_env(name: str = MODEL_NAME) -> str | None:
    """``$TAGGER_MUSICNN_DIR``: the checkpoint folder itself (MSD_musicnn only), a musicnn package folder or a wheel."""
    value = os.environ.get(ENV_DIR)
    if not value:
        return None
    path = Path(value).expanduser()
    if path.is_file() and path.suffix == ".whl":
        return extract_checkpoint(path, cache_dir(), name)
    for folder in ([path] if name == MODEL_NAME else []) + [path / name, path / "musicnn" / name]:
        if _is_checkpoint_dir(folder):
            return _prefix(folder)
    raise PretrainedNotFound(f"${ENV_DIR}={value} holds no {name} checkpoint (.index and .data files)")


def _from_installed(name: str = MODEL_NAME) -> str | None:
    """An installed ``musicnn`` package's folder, located without importing it."""
    try:
        spec = importlib.util.find_spec("musicnn")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / name
        if _is_checkpoint_dir(folder):
            return _prefix(folder)
    return None


def extract_checkpoint(wheel: Path, dest: Path, name: str = MODEL_NAME) -> str:
    """Unpack only ``musicnn/<name>/*`` from ``wheel`` into ``dest/<name>``; return the prefix.

    Unpacks into a temporary folder then renames it, so a concurrent or interrupted run never
    leaves a half-written checkpoint behind.
    """
    member_prefix = f"musicnn/{name}/"
    target = dest / name
    if _is_checkpoint_dir(target):
        return _prefix(target)
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest))
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.infolist() if m.filename.startswith(member_prefix) and not m.is_dir()]
            for member in members:
                file_name = member.filename[len(member_prefix) :]
                if not file_name or "/" in file_name or file_name in (".", ".."):
                    continue  # flat folder expected; refuse anything that could escape it
                with archive.open(member) as source, open(staging / file_name, "wb") as out:
                    shutil.copyfileobj(source, out)
        staging.chmod(0o755)  # mkdtemp makes it private; it is a plain cache folder
        if not _is_checkpoint_dir(staging):
            raise PretrainedNotFound(f"{wheel} holds no {member_prefix} checkpoint")
        try:
            staging.rename(target)
        except OSError:
            if not _is_checkpoint_dir(target):  # lost a race to another process: theirs is fine
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return _prefix(target)


def download_wheel(dest: Path | None = None) -> Path:
    """The musicnn wheel in ``dest`` (default: the cache), fetched with pip if absent.

    ``--no-deps`` keeps pip from resolving musicnn's ancient pins; ``--only-binary`` keeps it
    from building the sdist (which would run its setup.py).
    """
    dest = dest or cache_dir()
    wheel = dest / WHEEL_NAME
    if wheel.is_file():
        return wheel
    dest.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", f"musicnn=={MUSICNN_VERSION}", "-d", str(dest),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not wheel.is_file():
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise PretrainedNotFound(f"pip download of musicnn=={MUSICNN_VERSION} failed: {detail[0]}")
    return wheel


def locate_checkpoint(download: bool = True, name: str = MODEL_NAME) -> str:
    """The ``name`` checkpoint prefix (folder + ``/``), trying env var, installed package, cache, pip."""
    for finder in (_from_env, _from_installed):
        found = finder(name)
        if found:
            return found
    cached = cache_dir() / name
    if _is_checkpoint_dir(cached):
        return _prefix(cached)
    wheel = cache_dir() / WHEEL_NAME
    if not wheel.is_file():
        if not download:
            raise PretrainedNotFound(f"no {name} checkpoint found and downloading is disabled")
        wheel = download_wheel()
    return extract_checkpoint(wheel, cache_dir(), name)


def open_checkpoint(prefix: str) -> Any:
    """A ``CheckpointReader`` for ``prefix``.

    ``tf.train.load_checkpoint`` cannot be used here: the prefix is a folder path ending in
    ``/``, which it treats as a directory and resolves through the unusable ``checkpoint``
    file. The reader it would return is built directly instead.
    """
    import tensorflow as tf  # deferred: TensorFlow loads only when a model is built or converted

    if not Path(prefix + ".index").is_file():
        raise PretrainedNotFound(f"no checkpoint index at {prefix}.index")
    return tf.compat.v1.train.NewCheckpointReader(prefix)


# Names in the authors' training graph (``.meta``), used to check the port against it.
REFERENCE_INPUT = "model/Placeholder:0"  # [None, 187, 96] log-mel
REFERENCE_TRAINING_FLAG = "model/Placeholder_2:0"  # bool: batch norm / dropout in training mode
REFERENCE_TAGGRAM = "model/Sigmoid:0"
REFERENCE_EMBEDDING = "model/batch_normalization_10/batchnorm/add_1:0"  # musicnn's "penultimate"
_TRAINING_ONLY = re.compile(r"^(gradients|save|metrics|init)(/|$)|Adam|beta[12]_power|global_step")


def reference_graph_def(prefix: str) -> Any:
    """The authors' inference graph from ``<prefix>.meta``, with variables frozen to checkpoint values.

    Training nodes (gradients, Adam, saver, metrics) and ``_output_shapes`` attributes are
    dropped, the graph is cut to what the taggram and embedding need, and each ``VariableV2``
    is replaced by a constant holding its checkpoint value.
    """
    import tensorflow as tf  # deferred: TensorFlow loads only when a model is built or converted
    from tensorflow.core.protobuf import meta_graph_pb2  # deferred, as above

    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString(Path(prefix + ".meta").read_bytes())
    stripped = tf.compat.v1.GraphDef()
    stripped.versions.CopyFrom(meta.graph_def.versions)
    for node in meta.graph_def.node:
        if not _TRAINING_ONLY.search(node.name):
            stripped.node.add().CopyFrom(node)
    outputs = [REFERENCE_TAGGRAM.split(":")[0], REFERENCE_EMBEDDING.split(":")[0]]
    graph_def = tf.compat.v1.graph_util.extract_sub_graph(stripped, outputs)
    reader = open_checkpoint(prefix)
    for node in graph_def.node:
        node.attr.pop("_output_shapes", None)
        if node.op in ("VariableV2", "Variable"):
            value = reader.get_tensor(node.name)
            node.op = "Const"
            for key in list(node.attr):
                del node.attr[key]
            node.attr["dtype"].type = tf.dtypes.as_dtype(value.dtype).as_datatype_enum
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    return graph_def


def reference_outputs(prefix: str, windows: Any, batch_size: int = 64) -> tuple[Any, Any]:
    """Taggram ``(n, 50)`` and embedding ``(n, 200)`` of the authors' graph for ``windows`` (inference mode)."""
    import tensorflow as tf  # deferred: TensorFlow loads only when a model is built or converted

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(reference_graph_def(prefix), name="")
    windows = np.asarray(windows, dtype=np.float32)
    taggrams, embeddings = [], []
    with tf.compat.v1.Session(graph=graph) as session:
        for start in range(0, len(windows), batch_size):
            feed = {REFERENCE_INPUT: windows[start : start + batch_size], REFERENCE_TRAINING_FLAG: False}
            taggram, embedding = session.run([REFERENCE_TAGGRAM, REFERENCE_EMBEDDING], feed_dict=feed)
            taggrams.append(taggram)
            embeddings.append(embedding)
    return np.concatenate(taggrams), np.concatenate(embeddings)
