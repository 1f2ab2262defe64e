"""Layouts of the loaded MSD_musicnn port that compute the same function, rearranged for TFLite.

:func:`fast_layout` is the shipped layout (im2col + one matrix multiply per timbral block, batch norm
after the frequency pool); :func:`integer_friendly` is the layout for full-integer int8 (kept for the
zero-shot comparison). Both are proven equal to the port in float by the tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tagger.train.musicnn.port import _keras


def _bn_affine(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    """Inference-mode batch norm as ``y = scale·x + shift``."""
    gamma, beta, mean, variance = (np.asarray(w.numpy(), dtype=np.float64) for w in layer.weights)
    scale = gamma / np.sqrt(variance + layer.epsilon)
    return scale, beta - scale * mean


def integer_friendly(port: Any) -> Any:
    """A float model computing exactly what ``port`` computes, rearranged for full-integer int8.

    int8 TFLite quantizes each activation tensor with one scale, and a concatenation forces one
    scale on all its inputs. In the original layout the front-end blocks, the three mid-end
    outputs and the pooled features all share the scale of the widest one (about 0.6), and the
    pooled features then meet batch-norm gains up to ~120: converted as is, the penultimate
    layer's error is ~40% of its spread. Here, with the same weights:

    * every concatenation followed by a linear layer becomes a sum of per-part linear layers
      (the mid-end's first convolution per front-end block; the penultimate dense layer per
      source and pooling kind, with the back-end batch norm folded in), so each part keeps
      its own scale;
    * each batch norm that follows a ReLU (so cannot fold into a convolution) becomes a 1×1
      depthwise convolution, whose per-channel weights quantize per channel (a MUL by a
      constant vector would quantize all gains with one scale).

    Inputs/outputs and their names are unchanged; there are no dropout layers (inference only).
    """
    keras = _keras()
    layers = keras.layers

    def affine(x: Any, bn_name: str, new_name: str) -> Any:
        scale, shift = _bn_affine(port.get_layer(bn_name))
        channels = len(scale)
        if len(x.shape) == 4:
            layer = layers.DepthwiseConv2D(1, name=new_name)
            out = layer(x)
            layer.set_weights([scale.reshape(1, 1, channels, 1), shift])
        else:
            layer = layers.DepthwiseConv1D(1, name=new_name)
            out = layer(x)
            layer.set_weights([scale.reshape(1, channels, 1), shift])
        return out

    logmel = keras.Input(shape=port.input.shape[1:], dtype="float32", name="logmel")
    n_mels = int(logmel.shape[-1])
    x = layers.Reshape((-1, n_mels, 1), name="expand")(logmel)
    x = affine(x, "input_bn", "input_bn")
    padded = layers.ZeroPadding2D(((3, 3), (0, 0)), name="timbral_pad")(x)

    sources: list[tuple[str, Any]] = []
    for tag, source_input in (
        ("timbral_74", padded), ("timbral_77", padded),
        ("temporal_128", x), ("temporal_64", x), ("temporal_32", x),
    ):  # fmt: skip
        conv = port.get_layer(f"{tag}_conv")
        new_conv = layers.Conv2D.from_config(conv.get_config())
        y = new_conv(source_input)
        new_conv.set_weights(conv.get_weights())
        y = affine(y, f"{tag}_bn", f"{tag}_bn")
        y = layers.MaxPooling2D(pool_size=(1, int(y.shape[2])), name=f"{tag}_pool")(y)
        sources.append((tag, layers.Reshape((-1, int(y.shape[-1])), name=f"{tag}_squeeze")(y)))

    def split_conv1d(parts: list[tuple[str, Any]], conv_name: str) -> Any:
        conv = port.get_layer(conv_name)
        kernel, bias = (w.numpy() for w in conv.weights)
        outputs: list[Any] = []
        offset = 0
        for i, (tag, part) in enumerate(parts):
            width = int(part.shape[-1])
            padded_part = layers.ZeroPadding1D(3, name=f"{conv_name}_pad_{tag}")(part)
            piece = layers.Conv1D(kernel.shape[-1], kernel.shape[0], use_bias=i == 0, name=f"{conv_name}_{tag}")
            outputs.append(piece(padded_part))
            piece.set_weights([kernel[:, offset : offset + width, :]] + ([bias] if i == 0 else []))
            offset += width
        if offset != kernel.shape[1]:
            raise ValueError(f"{conv_name}: parts cover {offset} of {kernel.shape[1]} input channels")
        total = outputs[0] if len(outputs) == 1 else layers.Add(name=f"{conv_name}_sum")(outputs)
        return layers.Activation("relu", name=f"{conv_name}_relu")(total)

    cnn1 = affine(split_conv1d(sources, "midend_1_conv"), "midend_1_bn", "midend_1_bn")
    res = affine(split_conv1d([("cnn1", cnn1)], "midend_2_conv"), "midend_2_bn", "midend_2_bn")
    cnn2 = layers.Add(name="midend_2_residual")([res, cnn1])
    res = affine(split_conv1d([("cnn2", cnn2)], "midend_3_conv"), "midend_3_bn", "midend_3_bn")
    cnn3 = layers.Add(name="midend_3_residual")([res, cnn2])
    sources += [("cnn1", cnn1), ("cnn2", cnn2), ("cnn3", cnn3)]

    # Back-end: pooled feature 2c is max of channel c, 2c+1 its mean; fold the batch norm into
    # the dense layer (W' = diag(scale)·W, b' = b + shift·W) and split it per source and kind.
    scale, shift = _bn_affine(port.get_layer("pool_bn"))
    kernel, bias = (np.asarray(w.numpy(), dtype=np.float64) for w in port.get_layer("penultimate").weights)
    folded_kernel = scale[:, None] * kernel
    folded_bias = bias + shift @ kernel
    partials: list[Any] = []
    offset = 0
    for tag, source in sources:
        width = int(source.shape[-1])
        pools = (("max", layers.GlobalMaxPooling1D, 0), ("mean", layers.GlobalAveragePooling1D, 1))
        for kind, pool_layer, parity in pools:
            rows = 2 * np.arange(offset, offset + width) + parity
            dense = layers.Dense(kernel.shape[1], use_bias=not partials, name=f"penultimate_{tag}_{kind}")
            partials.append(dense(pool_layer(name=f"{tag}_time_{kind}")(source)))
            dense.set_weights(
                [folded_kernel[rows].astype(np.float32)]
                + ([folded_bias.astype(np.float32)] if len(partials) == 1 else [])
            )
        offset += width
    if 2 * offset != kernel.shape[0]:
        raise ValueError(f"back-end sources cover {2 * offset} of {kernel.shape[0]} pooled features")
    penultimate = layers.Activation("relu", name="penultimate")(layers.Add(name="penultimate_sum")(partials))
    units = int(penultimate.shape[-1])
    embedding = affine(layers.Reshape((1, units), name="embedding_expand")(penultimate), "embedding", "embedding_bn")
    embedding = layers.Reshape((units,), name="embedding")(embedding)
    logits_port = port.get_layer("logits")
    logits_layer = layers.Dense.from_config(logits_port.get_config())
    logits = logits_layer(embedding)
    logits_layer.set_weights(logits_port.get_weights())
    taggram = layers.Activation("sigmoid", name="taggram")(logits)
    return keras.Model(
        inputs=logmel, outputs={"taggram": taggram, "embedding": embedding}, name=f"{port.name}_int8_friendly"
    )


def _shift_layers() -> tuple[Any, Any, Any]:
    """The small layers :func:`fast_layout` needs, defined on first use (importing this module needs no Keras)."""
    import keras  # deferred: TensorFlow loads only when a model is built or converted

    class Shifts(keras.layers.Layer):
        """``count`` slices of ``length`` along ``axis``, each shifted by one, stacked on the last axis (im2col by
        strided slices and one concatenation: exact, and the same in int8 as in float)."""

        def __init__(self, axis: int, count: int, length: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.axis, self.count, self.length = axis, count, length

        def call(self, x: Any) -> Any:
            parts = []
            for shift in range(self.count):
                index = [slice(None)] * len(x.shape)
                index[self.axis] = slice(shift, shift + self.length)
                parts.append(x[tuple(index)])
            return keras.ops.concatenate(parts, axis=-1)

        def compute_output_shape(self, shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
            out = list(shape)
            out[self.axis] = self.length
            out[-1] = None if shape[-1] is None else shape[-1] * self.count
            return tuple(out)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "axis": self.axis, "count": self.count, "length": self.length}

    class Affine(keras.layers.Layer):
        """``x·scale + shift`` over the last axis: an inference batch norm (float MUL + ADD)."""

        def __init__(self, scale: Any, shift: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.scale = [float(v) for v in np.ravel(scale)]
            self.shift = [float(v) for v in np.ravel(shift)]

        def call(self, x: Any) -> Any:
            scale = np.asarray(self.scale, dtype=np.float32)
            shift = np.asarray(self.shift, dtype=np.float32)
            return x * scale + shift

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "scale": self.scale, "shift": self.shift}

    class PooledBatchNorm(Affine):
        """``relu(x·sign(scale))·scale + shift`` of ``x = max(sign(scale)·y)`` over frequency bins: the block's
        ReLU and batch norm after the max-pool. A negative scale turns the max into a min (``max(s·relu(y)) =
        s·relu(min y)``), hence the sign, which :func:`fast_layout` also puts into the block's weights."""

        def call(self, x: Any) -> Any:
            scale = np.asarray(self.scale, dtype=np.float32)
            shift = np.asarray(self.shift, dtype=np.float32)
            return keras.ops.relu(x * np.sign(scale)) * scale + shift

    return Shifts, Affine, PooledBatchNorm


def fast_layout(port: Any, timbral: str = "fc", temporal: str = "conv") -> Any:
    """A float model computing what ``port`` computes, laid out for fast CPU inference (TFLite, one core).

    musicnn's front-end convolves one input channel with large kernels (7x38, 7x67, 128x1, ...), which leaves
    a convolution kernel nothing to vectorise over. Here, with the same weights and exactly the same sums:

    * each front-end block is one matrix multiply over an im2col of its input, built by strided slices
      (``timbral="fc"``: 7 time shifts x 38 / 67 frequency shifts -> 266 / 469 values per output, one
      FULLY_CONNECTED to 204 filters; ``"conv"``: the frequency shifts only, as channels of a 7x1 convolution);
      the three temporal blocks share one im2col of 128 time shifts (their 'same' paddings align inside it) and
      one FULLY_CONNECTED to 3x51 filters (``temporal="fc"``; ``"dilated"``: 32 shifts as channels of a 4-tap
      convolution dilated by 32);
    * each block's ReLU and batch norm move after its frequency max-pool (``max relu = relu max``; a batch norm
      with a negative scale turns the max into a min, so those filters' weights change sign), so they run on
      frames x filters, not on every bin;
    * the mid-end and back-end are the port's, concatenations kept (all float), the back-end batch norm folded
      into the penultimate dense layer, split into a max and a mean part (the original interleaves them).

    Layer names: ``logits`` is the port's tag layer (weights copied); outputs ``taggram`` and ``embedding``.
    """
    keras = _keras()
    layers = keras.layers
    shifts, affine_layer, pooled_bn = _shift_layers()

    def affine(bn_name: str, new_name: str | None = None) -> Any:
        scale, shift = _bn_affine(port.get_layer(bn_name))
        return affine_layer(scale, shift, name=new_name or bn_name)

    def kernel_of(name: str) -> tuple[np.ndarray, np.ndarray]:
        kernel, bias = (np.asarray(w.numpy(), dtype=np.float32) for w in port.get_layer(name).weights)
        return kernel, bias

    def pooled_affine(bn_names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        parts = [_bn_affine(port.get_layer(n)) for n in bn_names]
        scale = np.concatenate([p[0] for p in parts])
        return scale, np.concatenate([p[1] for p in parts]), np.where(scale < 0, -1.0, 1.0).astype(np.float32)

    n_frames, n_mels = (int(d) for d in port.input.shape[1:])
    logmel = keras.Input(shape=(n_frames, n_mels), dtype="float32", name="logmel")
    x = layers.Reshape((n_frames, n_mels, 1), name="expand")(logmel)
    x = affine("input_bn")(x)

    blocks: list[Any] = []
    padded = layers.ZeroPadding2D(((3, 3), (0, 0)), name="timbral_pad")(x)
    time_shifts = shifts(1, 7, n_frames, name="timbral_time_shifts")(padded) if timbral == "fc" else None
    for tag in ("timbral_74", "timbral_77"):
        kernel, bias = kernel_of(f"{tag}_conv")  # (7, width, 1, filters)
        taps, width, _, filters = kernel.shape
        bins = n_mels - width + 1
        scale, shift, sign = pooled_affine([f"{tag}_bn"])
        kernel, bias = kernel * sign, bias * sign
        if timbral == "fc":
            patches = shifts(2, width, bins, name=f"{tag}_patches")(time_shifts)  # value index = df·7 + dt
            dense = layers.Conv2D(filters, 1, name=f"{tag}_conv")  # 1x1: one GEMM with the bias fused
            y = dense(patches)
            dense.set_weights([kernel[:, :, 0, :].transpose(1, 0, 2).reshape(1, 1, width * taps, filters), bias])
        elif timbral == "conv":
            stacked = shifts(2, width, bins, name=f"{tag}_patches")(padded)  # channel = df
            conv = layers.Conv2D(filters, (taps, 1), name=f"{tag}_conv")
            y = conv(stacked)
            conv.set_weights([kernel.transpose(0, 2, 1, 3), bias])
        else:
            raise ValueError(f"timbral formulation {timbral!r}: 'fc' or 'conv'")
        y = layers.MaxPooling2D(pool_size=(1, bins), name=f"{tag}_pool")(y)
        y = layers.Reshape((n_frames, filters), name=f"{tag}_squeeze")(y)
        blocks.append(pooled_bn(scale, shift, name=f"{tag}_bn")(y))

    # Temporal blocks: kernel k with 'same' padding reads frames t - (k-1)//2 ... ; inside a window of 128
    # frames padded by 63 before, the 64-tap kernel sits at offset 32 and the 32-tap one at offset 48.
    tags = ("temporal_128", "temporal_64", "temporal_32")
    if temporal == "conv":  # the port's convolutions, each block's ReLU and batch norm after its pool
        for tag in tags:
            kernel, bias = kernel_of(f"{tag}_conv")
            scale, shift, sign = pooled_affine([f"{tag}_bn"])
            conv = layers.Conv2D(kernel.shape[-1], kernel.shape[:2], padding="same", name=f"{tag}_conv")
            y = conv(x)
            conv.set_weights([kernel * sign, bias * sign])
            y = layers.MaxPooling2D(pool_size=(1, n_mels), name=f"{tag}_pool")(y)
            y = layers.Reshape((n_frames, kernel.shape[-1]), name=f"{tag}_squeeze")(y)
            blocks.append(pooled_bn(scale, shift, name=f"{tag}_bn")(y))
        return _fast_rest(port, logmel, blocks)
    weights = [kernel_of(f"{tag}_conv") for tag in tags]
    span = weights[0][0].shape[0]
    lead = (span - 1) // 2
    total = sum(k.shape[-1] for k, _ in weights)
    combined = np.zeros((span, total), dtype=np.float32)
    column = 0
    for kernel, _ in weights:
        taps, filters = kernel.shape[0], kernel.shape[-1]
        start = lead - (taps - 1) // 2
        combined[start : start + taps, column : column + filters] = kernel[:, 0, 0, :]
        column += filters
    scale, shift, sign = pooled_affine([f"{tag}_bn" for tag in tags])
    combined, bias = combined * sign, np.concatenate([b for _, b in weights]) * sign
    long_pad = layers.ZeroPadding2D(((lead, span - 1 - lead), (0, 0)), name="temporal_pad")(x)
    if temporal == "fc":
        patches = shifts(1, span, n_frames, name="temporal_patches")(long_pad)  # (frames, mels, 128)
        dense = layers.Conv2D(total, 1, name="temporal_conv")
        y = dense(patches)
        dense.set_weights([combined.reshape(1, 1, span, total), bias])
    elif temporal == "dilated":
        step = 32
        stacked = shifts(1, step, n_frames + span - step, name="temporal_patches")(long_pad)
        conv = layers.Conv2D(total, (span // step, 1), dilation_rate=(step, 1), name="temporal_conv")
        y = conv(stacked)
        conv.set_weights([combined.reshape(span // step, 1, step, total), bias])
    else:
        raise ValueError(f"temporal formulation {temporal!r}: 'conv', 'fc' or 'dilated'")
    y = layers.MaxPooling2D(pool_size=(1, n_mels), name="temporal_pool")(y)
    y = layers.Reshape((n_frames, total), name="temporal_squeeze")(y)
    blocks.append(pooled_bn(scale, shift, name="temporal_bn")(y))
    return _fast_rest(port, logmel, blocks)


def _fast_rest(port: Any, logmel: Any, blocks: list[Any]) -> Any:
    """:func:`fast_layout`'s mid-end and back-end on the front-end ``blocks`` (float, the port's weights)."""
    keras = _keras()
    layers = keras.layers
    _, affine_layer, _ = _shift_layers()

    def affine(bn_name: str) -> Any:
        scale, shift = _bn_affine(port.get_layer(bn_name))
        return affine_layer(scale, shift, name=bn_name)

    frontend = layers.Concatenate(axis=-1, name="frontend")(blocks)

    def midend_block(h: Any, tag: str) -> Any:
        conv_port = port.get_layer(f"{tag}_conv")
        h = layers.ZeroPadding1D(3, name=f"{tag}_pad")(h)
        conv = layers.Conv1D.from_config(conv_port.get_config())
        h = conv(h)
        conv.set_weights(conv_port.get_weights())
        return affine(f"{tag}_bn")(h)

    cnn1 = midend_block(frontend, "midend_1")
    cnn2 = layers.Add(name="midend_2_residual")([midend_block(cnn1, "midend_2"), cnn1])
    cnn3 = layers.Add(name="midend_3_residual")([midend_block(cnn2, "midend_3"), cnn2])
    midend = layers.Concatenate(axis=-1, name="midend")([frontend, cnn1, cnn2, cnn3])

    # Back-end: pooled feature 2c is the max of channel c, 2c+1 its mean; batch norm folded into the dense layer.
    scale, shift = _bn_affine(port.get_layer("pool_bn"))
    kernel, bias64 = (np.asarray(w.numpy(), dtype=np.float64) for w in port.get_layer("penultimate").weights)
    folded = scale[:, None] * kernel
    to_max = layers.Dense(kernel.shape[1], name="penultimate_max")
    to_mean = layers.Dense(kernel.shape[1], use_bias=False, name="penultimate_mean")
    summed = layers.Add(name="penultimate_sum")(
        [to_max(layers.GlobalMaxPooling1D(name="time_max")(midend)),
         to_mean(layers.GlobalAveragePooling1D(name="time_mean")(midend))]
    )  # fmt: skip
    to_max.set_weights([folded[0::2].astype(np.float32), (bias64 + shift @ kernel).astype(np.float32)])
    to_mean.set_weights([folded[1::2].astype(np.float32)])
    penultimate = layers.Activation("relu", name="penultimate")(summed)
    embedding = affine("embedding")(penultimate)
    logits_port = port.get_layer("logits")
    logits_layer = layers.Dense.from_config(logits_port.get_config())
    logits = logits_layer(embedding)
    logits_layer.set_weights(logits_port.get_weights())
    taggram = layers.Activation("sigmoid", name="taggram")(logits)
    return keras.Model(inputs=logmel, outputs={"taggram": taggram, "embedding": embedding}, name=f"{port.name}_fast")
