"""The paper's network: three convolution + max-pool layers over log-mel windows, dense softmax.

The paper fixes the input (599 frames x 128 mel bands), the three conv/max-pool stages and the
softmax; it is silent on the rest, so these choices are ours and go in the card:
convolutions run along time with the mel bands as input channels (a 1-D "time" convolution,
as in Dieleman's 599x128 design), kernel 4 frames, ReLU, valid padding; after the third
pool the remaining frames are pooled globally (mean and max, concatenated) so the softmax
sees a fixed-length vector that is also the track embedding; weights use Keras defaults
(Glorot uniform). Batch norm and dropout are switches used by the improved configurations.
"""

from __future__ import annotations

from typing import Any

from tagger.train.paper.configs import Config

EMBEDDING = "embedding"


def build(config: Config, n_classes: int) -> tuple[Any, Any]:
    """``(train_model, export_model)``: the first outputs probabilities; the second, sharing its
    layers, outputs ``{head: probabilities, "embedding": pooled vector}`` for conversion."""
    import keras  # deferred: TensorFlow loads only when a model is built or converted

    net = config.network
    params = config.features
    inputs = keras.Input((params.window_frames, params.n_mels), name="logmel")
    x = inputs
    for block, (filters, pool) in enumerate(zip(net.filters, net.pools, strict=True), start=1):
        x = keras.layers.Conv1D(filters, net.kernel, padding="valid", use_bias=not net.batch_norm, name=f"conv{block}")(
            x
        )
        if net.batch_norm:
            x = keras.layers.BatchNormalization(name=f"bn{block}")(x)
        x = keras.layers.ReLU(name=f"relu{block}")(x)
        x = keras.layers.MaxPooling1D(pool, name=f"pool{block}")(x)
    if net.global_pool != "mean+max":
        raise ValueError(f"unknown global pooling {net.global_pool!r}")
    mean = keras.layers.GlobalAveragePooling1D(name="time_mean")(x)
    peak = keras.layers.GlobalMaxPooling1D(name="time_max")(x)
    embedding = keras.layers.Concatenate(name=EMBEDDING)([mean, peak])
    if embedding.shape[-1] == n_classes:
        raise ValueError("embedding width equals the number of genres; the card could not tell the outputs apart")
    hidden = keras.layers.Dropout(net.dropout, name="dropout")(embedding) if net.dropout else embedding
    probabilities = keras.layers.Dense(n_classes, activation="softmax", name=config.head)(hidden)
    train_model = keras.Model(inputs, probabilities, name=f"{config.name}_train")
    export_model = keras.Model(inputs, {config.head: probabilities, EMBEDDING: embedding}, name=config.name)
    return train_model, export_model


def describe(model: Any) -> list[dict[str, Any]]:
    """The layer list for the card: name, type, output shape, parameter count and key settings."""
    layers = []
    for layer in model.layers:
        entry: dict[str, Any] = {
            "name": layer.name,
            "type": type(layer).__name__,
            "output_shape": [d for d in layer.output.shape[1:]],
            "params": int(layer.count_params()),
        }
        config = layer.get_config()
        for key in ("filters", "kernel_size", "strides", "padding", "pool_size", "rate", "units", "activation"):
            if key in config:
                entry[key] = config[key]
        layers.append(entry)
    return layers
