"""The worker side: a plugin holding the model (loaded once per worker process) and the task that analyses a few
tracks with it. Both run in ``dask worker`` processes, which need genre-tagger installed, not the model file:
the plugin carries the model's bytes, so every worker runs exactly the recorder's model."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin, get_worker

from tagger.analysis import Analysed, analyse_safely
from tagger.errors import ModelError
from tagger.model import Classifier, ModelCard


def plugin_name(card: ModelCard, model: bytes) -> str:
    """Keyed by the card and its file's content: a scan with another model gets its own plugin."""
    digest = hashlib.sha1(model + json.dumps(card.raw, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"genre-tagger-model-{card.model_id}-{digest}"


class ModelPlugin(WorkerPlugin):
    """One :class:`Classifier` per worker thread (a TFLite interpreter is not thread-safe); the first is loaded
    at registration, so a model that cannot load fails the registration, before any track is sent."""

    def __init__(self, card: ModelCard, threads: int = 1) -> None:
        self.card = card
        self.threads = threads
        try:
            self.model = card.model_file.read_bytes()  # sent to every worker: they need no model file of their own
        except OSError as error:
            raise ModelError(f"cannot read model file {card.model_file}: {error.strerror or error}") from None
        self.name = plugin_name(card, self.model)
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_local"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def setup(self, worker: Any) -> None:
        model_file = Path(worker.local_directory) / f"{self.name}.tflite"
        model_file.write_bytes(self.model)
        self.card = replace(self.card, model_file=model_file)
        self.classifier()

    def classifier(self) -> Classifier:
        classifier: Classifier | None = getattr(self._local, "classifier", None)
        if classifier is None:
            classifier = self._local.classifier = Classifier(self.card, threads=self.threads)
        return classifier


def analyse_on_worker(paths: list[str], max_windows: int | None, plugin: str) -> list[Analysed]:
    """A few tracks on this worker with its plugin's model, one result each; a bad file comes back as a value, as in
    the local pool."""
    model = get_worker().plugins[plugin]
    assert isinstance(model, ModelPlugin)
    return [analyse_safely(Path(path), model.classifier(), max_windows) for path in paths]


async def end_worker_process() -> None:
    """Run in a worker's event loop (``Client.run(..., wait=False)`` takes coroutines only): the process exits at
    once, a thread stuck in a decoder with it, and its nanny starts a fresh one."""
    os._exit(70)
