"""The worker side: a plugin holding the model (loaded once per worker process) and the task that analyses one
track with it. Both run in ``dask worker`` processes, which need genre-tagger installed, not the model file:
the plugin carries the model's bytes, so every worker runs exactly the recorder's model."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin, get_worker

from tagger.model import Classifier, ModelCard
from tagger.scan import Analysed, analyse_safely


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
        self.model = card.model_file.read_bytes()
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


def analyse_on_worker(path: str, max_windows: int | None, plugin: str) -> Analysed:
    """One track on this worker with its plugin's model; a bad file comes back as a value, as in the local pool."""
    model = get_worker().plugins[plugin]
    assert isinstance(model, ModelPlugin)
    return analyse_safely(Path(path), model.classifier(), max_windows)
