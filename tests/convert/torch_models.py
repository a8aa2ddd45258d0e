"""Whole networks as plain torch modules with random weights, for the from_torch tests and bench/test_bert.py
(neither torchvision nor transformers is a dependency: each class follows its library's module tree and
forward, layer for layer, so that module paths and traced ops are the ones a user's model has).

  BertModel         Hugging Face's BertModel, eager attention (transformers 4.x, absolute positions, no
                    cache): embeddings (word / position / token type, LayerNorm, Dropout), the encoder's
                    BertLayer stack (self-attention, output, intermediate with GELU, output), the pooler
                    (first token, dense, tanh). forward(input_ids, attention_mask) -> (sequence, pooled).
                    bert_tiny() / bert_base() build the configurations the tests and the benchmark use.
  VGG16             torchvision's vgg16 (configuration "D", no batch norm), adaptive 7x7 average pool.
  ResNet50          torchvision's resnet50 (Bottleneck v1.5: the stride on the 3x3 conv).
  MobileNetV2       torchvision's mobilenet_v2 (inverted residuals, ReLU6).
  EfficientNetB0    torchvision's efficientnet_b0 (MBConv with squeeze-excitation, SiLU); stochastic depth,
                    an identity in eval mode, is left out.
  SmallMixed        Conv1d, Upsample(nearest, x2), LeakyReLU, AdaptiveAvgPool2d((3, 3)), Tanh, Sigmoid.

The CNNs take a ``width`` multiplier of their channels (torchvision's rounding to multiples of 8 for the
MobileNets) and ``num_classes``, to keep tests fast; at width 1 they have torchvision's shapes exactly.
:func:`randomize` gives every network its weights from a seed, eval mode, batch norms with random running
statistics and affine parameters (so that folding them is exercised).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

# --------------------------------------------------------------------------------------------------
# BERT (transformers' modeling_bert.py, eager attention)


class BertEmbeddings(nn.Module):
    """Word, position and token type embeddings summed, then LayerNorm and dropout. The position ids and
    token type ids are the buffers HF registers, sliced to the sequence length (``[1, T]``: the sums
    broadcast over the batch)."""

    def __init__(self, vocab: int, hidden: int, max_pos: int, type_vocab: int, eps: float,
                 pad_token_id: int = 0) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden, padding_idx=pad_token_id)
        self.position_embeddings = nn.Embedding(max_pos, hidden)
        self.token_type_embeddings = nn.Embedding(type_vocab, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(0.1)
        self.register_buffer("position_ids", torch.arange(max_pos).expand((1, -1)), persistent=False)
        self.register_buffer("token_type_ids", torch.zeros(self.position_ids.size(), dtype=torch.long),
                             persistent=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        seq_length = input_ids.size(1)
        position_ids = self.position_ids[:, :seq_length]
        token_type_ids = self.token_type_ids[:, :seq_length]
        inputs_embeds = self.word_embeddings(input_ids)
        token_type_embeddings = self.token_type_embeddings(token_type_ids)
        embeddings = inputs_embeds + token_type_embeddings
        position_embeddings = self.position_embeddings(position_ids)
        embeddings += position_embeddings
        embeddings = self.LayerNorm(embeddings)
        return self.dropout(embeddings)


class BertSelfAttention(nn.Module):
    """Multi-head scaled dot-product attention. ``hf_shapes``: build the head shapes as transformers does,
    ``x.size()[:-1] + (heads, head_dim)``; else with explicit sizes, ``x.view(b, t, heads, head_dim)``."""

    def __init__(self, hidden: int, heads: int, hf_shapes: bool = False) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not a multiple of the number of heads {heads}")
        self.num_attention_heads = heads
        self.attention_head_size = hidden // heads
        self.all_head_size = hidden
        self.hf_shapes = hf_shapes
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(0.1)

    def transpose_for_scores(self, x: torch.Tensor) -> torch.Tensor:
        if self.hf_shapes:
            x = x.view(x.size()[:-1] + (self.num_attention_heads, self.attention_head_size))
        else:
            x = x.view(x.size(0), x.size(1), self.num_attention_heads, self.attention_head_size)
        return x.permute(0, 2, 1, 3)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor]:
        mixed_query_layer = self.query(hidden_states)
        key_layer = self.transpose_for_scores(self.key(hidden_states))
        value_layer = self.transpose_for_scores(self.value(hidden_states))
        query_layer = self.transpose_for_scores(mixed_query_layer)

        attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
        attention_scores = attention_scores / math.sqrt(self.attention_head_size)
        attention_scores = attention_scores + attention_mask
        attention_probs = nn.functional.softmax(attention_scores, dim=-1)
        attention_probs = self.dropout(attention_probs)

        context_layer = torch.matmul(attention_probs, value_layer)
        context_layer = context_layer.permute(0, 2, 1, 3).contiguous()
        if self.hf_shapes:
            context_layer = context_layer.view(context_layer.size()[:-2] + (self.all_head_size,))
        else:
            context_layer = context_layer.view(context_layer.size(0), context_layer.size(1), self.all_head_size)
        return (context_layer,)


class BertSelfOutput(nn.Module):
    def __init__(self, hidden: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(0.1)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        hidden_states = self.dropout(self.dense(hidden_states))
        return self.LayerNorm(hidden_states + input_tensor)


class BertAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, eps: float, hf_shapes: bool = False) -> None:
        super().__init__()
        self.self = BertSelfAttention(hidden, heads, hf_shapes)
        self.output = BertSelfOutput(hidden, eps)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor]:
        self_outputs = self.self(hidden_states, attention_mask)
        attention_output = self.output(self_outputs[0], hidden_states)
        return (attention_output,) + self_outputs[1:]


def _activation(hidden_act: str) -> nn.Module:
    if hidden_act == "gelu":
        return nn.GELU()
    if hidden_act in ("gelu_tanh", "gelu_new", "gelu_pytorch_tanh"):
        return nn.GELU(approximate="tanh")
    raise ValueError(f"hidden_act {hidden_act!r}: expected 'gelu' or 'gelu_tanh'")


class BertIntermediate(nn.Module):
    def __init__(self, hidden: int, intermediate: int, hidden_act: str) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, intermediate)
        self.intermediate_act_fn = _activation(hidden_act)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class BertOutput(nn.Module):
    def __init__(self, intermediate: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(intermediate, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(0.1)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        hidden_states = self.dropout(self.dense(hidden_states))
        return self.LayerNorm(hidden_states + input_tensor)


class BertLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float, hidden_act: str,
                 hf_shapes: bool = False) -> None:
        super().__init__()
        self.attention = BertAttention(hidden, heads, eps, hf_shapes)
        self.intermediate = BertIntermediate(hidden, intermediate, hidden_act)
        self.output = BertOutput(intermediate, hidden, eps)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor]:
        self_attention_outputs = self.attention(hidden_states, attention_mask)
        attention_output = self_attention_outputs[0]
        intermediate_output = self.intermediate(attention_output)
        layer_output = self.output(intermediate_output, attention_output)
        return (layer_output,)


class BertEncoder(nn.Module):
    def __init__(self, layers: int, *args: object) -> None:
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(*args) for _ in range(layers)])  # type: ignore[arg-type]

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor]:
        for layer_module in self.layer:
            hidden_states = layer_module(hidden_states, attention_mask)[0]
        return (hidden_states,)


class BertPooler(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        first_token_tensor = hidden_states[:, 0]
        return self.activation(self.dense(first_token_tensor))


class BertModel(nn.Module):
    """transformers' BertModel (eager attention), BERT-base's configuration by default (110 M parameters).

    forward(input_ids [B, T] integers, attention_mask [B, T] 1 / 0, any dtype) -> (sequence_output
    [B, T, hidden], pooled_output [B, hidden]). The mask becomes the additive bias
    ``(1 - mask[:, None, None, :]) * -10000`` of every layer's attention scores (transformers < 4.31)."""

    def __init__(self, vocab: int = 30522, hidden: int = 768, layers: int = 12, heads: int = 12,
                 intermediate: int = 3072, max_pos: int = 512, type_vocab: int = 2, eps: float = 1e-12,
                 hidden_act: str = "gelu", hf_shapes: bool = False) -> None:
        super().__init__()
        self.config = {"vocab": vocab, "hidden": hidden, "layers": layers, "heads": heads,
                       "intermediate": intermediate, "max_pos": max_pos, "type_vocab": type_vocab, "eps": eps,
                       "hidden_act": hidden_act, "hf_shapes": hf_shapes}
        self.embeddings = BertEmbeddings(vocab, hidden, max_pos, type_vocab, eps)
        self.encoder = BertEncoder(layers, hidden, heads, intermediate, eps, hidden_act, hf_shapes)
        self.pooler = BertPooler(hidden)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        extended_attention_mask = attention_mask[:, None, None, :]
        extended_attention_mask = extended_attention_mask.to(torch.float32)
        extended_attention_mask = (1.0 - extended_attention_mask) * -10000.0
        embedding_output = self.embeddings(input_ids)
        encoder_outputs = self.encoder(embedding_output, extended_attention_mask)
        sequence_output = encoder_outputs[0]
        pooled_output = self.pooler(sequence_output)
        return sequence_output, pooled_output


def bert_tiny(**kw: object) -> BertModel:
    """2 layers, hidden 64, 4 heads, intermediate 128, vocabulary 100, 64 positions (keyword overrides)."""
    cfg: dict[str, object] = {"vocab": 100, "hidden": 64, "layers": 2, "heads": 4, "intermediate": 128,
                              "max_pos": 64}
    cfg.update(kw)
    return BertModel(**cfg)  # type: ignore[arg-type]


def bert_base(**kw: object) -> BertModel:
    """bert-base-uncased's configuration: 12 layers, hidden 768, 12 heads, intermediate 3072, 30522 tokens."""
    return BertModel(**kw)  # type: ignore[arg-type]


def bert_inputs(batch: int, tokens: int, vocab: int, seed: int = 0, pad: Sequence[int] = ()) -> tuple[
        torch.Tensor, torch.Tensor]:
    """Token ids (int64, [CLS]-like id 1 first) and an int64 attention mask of ones; sample ``i`` of ``pad``
    (one entry per sample, from the first) keeps only its first ``pad[i]`` tokens (the rest mask 0, id 0)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (batch, tokens), generator=g)
    ids[:, 0] = 1
    mask = torch.ones(batch, tokens, dtype=torch.long)
    for i, n in enumerate(pad):
        if n < tokens:
            mask[i, n:] = 0
            ids[i, n:] = 0
    return ids, mask


# --------------------------------------------------------------------------------------------------
# CNNs (torchvision.models)


def _make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """torchvision's channel rounding (from the TF MobileNet code): the nearest multiple of ``divisor``, not
    below 90% of ``v``."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _w(c: int, width: float) -> int:
    return max(1, round(c * width))


VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    """torchvision's vgg16: 13 3x3 convs with ReLU, 5 max pools, AdaptiveAvgPool2d((7, 7)), three Linear
    layers (138 M parameters at width 1). ``width`` scales the conv channels and the classifier's 4096."""

    def __init__(self, num_classes: int = 1000, width: float = 1.0, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for v in VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                c = _w(int(v), width)
                layers += [nn.Conv2d(c_in, c, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                c_in = c
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        fc = _w(4096, width)
        self.classifier = nn.Sequential(
            nn.Linear(c_in * 7 * 7, fc), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(fc, fc), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(fc, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class Bottleneck(nn.Module):
    """ResNet-50's block: 1x1 reduce, 3x3 (stride here, v1.5), 1x1 expand x4, batch norms, residual add."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet50(nn.Module):
    """torchvision's resnet50 (25.6 M parameters at width 1): stem, [3, 4, 6, 3] Bottlenecks, global average
    pool, fc. ``width`` scales every block's planes (64, 128, 256, 512) and the stem."""

    def __init__(self, num_classes: int = 1000, width: float = 1.0, layers: Sequence[int] = (3, 4, 6, 3)) -> None:
        super().__init__()
        self.inplanes = _w(64, width)
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(_w(64, width), layers[0])
        self.layer2 = self._make_layer(_w(128, width), layers[1], stride=2)
        self.layer3 = self._make_layer(_w(256, width), layers[2], stride=2)
        self.layer4 = self._make_layer(_w(512, width), layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(_w(512, width) * Bottleneck.expansion, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


class Conv2dNormActivation(nn.Sequential):
    """torchvision.ops.Conv2dNormActivation: conv (no bias, "same" padding for odd kernels), BatchNorm2d,
    an optional activation."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 activation_layer: type[nn.Module] | None = nn.ReLU) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out)]
        if activation_layer is not None:
            layers.append(activation_layer(inplace=True))
        super().__init__(*layers)
        self.out_channels = c_out


class InvertedResidual(nn.Module):
    """MobileNet-V2's block: 1x1 expand (none at expansion 1), depthwise 3x3, linear 1x1 project, and the
    residual add when the shape is kept."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden_dim = round(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden_dim, kernel_size=1, activation_layer=nn.ReLU6))
        layers += [Conv2dNormActivation(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim,
                                        activation_layer=nn.ReLU6),
                   nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's mobilenet_v2 (3.5 M parameters at width 1.0), ``width`` its width_mult."""

    # expansion t, output channels c, repeats n, first stride s
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))

    def __init__(self, num_classes: int = 1000, width: float = 1.0, dropout: float = 0.2) -> None:
        super().__init__()
        input_channel = _make_divisible(32 * width)
        self.last_channel = _make_divisible(1280 * max(1.0, width))
        features: list[nn.Module] = [Conv2dNormActivation(3, input_channel, stride=2, activation_layer=nn.ReLU6)]
        for t, c, n, s in self.SETTINGS:
            output_channel = _make_divisible(c * width)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel, s if i == 0 else 1, t))
                input_channel = output_channel
        features.append(Conv2dNormActivation(input_channel, self.last_channel, kernel_size=1,
                                             activation_layer=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        return self.classifier(x)


class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation: global average pool, 1x1 conv, activation, 1x1 conv, sigmoid; the
    [B, C, 1, 1] gate multiplies the feature map."""

    def __init__(self, input_channels: int, squeeze_channels: int, activation: type[nn.Module] = nn.ReLU,
                 scale_activation: type[nn.Module] = nn.Sigmoid) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def _scale(self, input: torch.Tensor) -> torch.Tensor:
        scale = self.avgpool(input)
        scale = self.fc1(scale)
        scale = self.activation(scale)
        scale = self.fc2(scale)
        return self.scale_activation(scale)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        scale = self._scale(input)
        return scale * input


class _SiLUInplace(nn.SiLU):
    """nn.SiLU(inplace=True), as torchvision's ``partial(nn.SiLU, inplace=True)``."""

    def __init__(self) -> None:
        super().__init__(inplace=True)


class MBConv(nn.Module):
    """EfficientNet's block: 1x1 expand + SiLU (none at expansion 1), depthwise k x k + SiLU, squeeze-excitation
    (squeeze to a quarter of the block's input channels), linear 1x1 project, residual add when the shape is
    kept (torchvision's stochastic depth, an identity in eval mode, left out)."""

    def __init__(self, expand_ratio: float, kernel: int, stride: int, input_channels: int,
                 out_channels: int) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and input_channels == out_channels
        expanded_channels = _make_divisible(input_channels * expand_ratio)
        layers: list[nn.Module] = []
        if expanded_channels != input_channels:
            layers.append(Conv2dNormActivation(input_channels, expanded_channels, kernel_size=1,
                                               activation_layer=nn.SiLU))
        layers.append(Conv2dNormActivation(expanded_channels, expanded_channels, kernel_size=kernel, stride=stride,
                                           groups=expanded_channels, activation_layer=nn.SiLU))
        squeeze_channels = max(1, input_channels // 4)
        layers.append(SqueezeExcitation(expanded_channels, squeeze_channels, activation=_SiLUInplace))
        layers.append(Conv2dNormActivation(expanded_channels, out_channels, kernel_size=1, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        result = self.block(input)
        if self.use_res_connect:
            result += input
        return result


class EfficientNetB0(nn.Module):
    """torchvision's efficientnet_b0 (5.3 M parameters at width 1): stem, 16 MBConv blocks in 7 stages,
    1x1 conv to 1280, global average pool, dropout, Linear. ``width`` is the width multiplier (torchvision's
    width_mult; B0's depth multiplier is 1)."""

    # expand_ratio, kernel, stride, input_channels, out_channels, num_layers
    SETTINGS = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
                (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))

    def __init__(self, num_classes: int = 1000, width: float = 1.0, dropout: float = 0.2) -> None:
        super().__init__()
        ch = [(e, k, s, _make_divisible(i * width), _make_divisible(o * width), n) for e, k, s, i, o, n in
              self.SETTINGS]
        layers: list[nn.Module] = [Conv2dNormActivation(3, ch[0][3], stride=2, activation_layer=nn.SiLU)]
        for e, k, s, i, o, n in ch:
            stage = [MBConv(e, k, s if j == 0 else 1, i if j == 0 else o, o) for j in range(n)]
            layers.append(nn.Sequential(*stage))
        last_in = ch[-1][4]
        last_out = 4 * last_in
        layers.append(Conv2dNormActivation(last_in, last_out, kernel_size=1, activation_layer=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True), nn.Linear(last_out, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class SmallMixed(nn.Module):
    """[B, 4, 16] -> Conv1d -> LeakyReLU -> [B, 8, 4, 4] -> Upsample(x2, nearest) -> Conv2d -> Tanh ->
    AdaptiveAvgPool2d((3, 3)) (windows of 3 or 4 rows / columns, overlapping) -> Linear -> Sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1d = nn.Conv1d(4, 8, kernel_size=3, padding=1)
        self.act1 = nn.LeakyReLU(0.1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv2d = nn.Conv2d(8, 6, kernel_size=3, padding=1)
        self.act2 = nn.Tanh()
        self.pool = nn.AdaptiveAvgPool2d((3, 3))
        self.fc = nn.Linear(6 * 3 * 3, 5)
        self.out = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.conv1d(x))
        x = x.view(x.size(0), 8, 4, 4)
        x = self.act2(self.conv2d(self.up(x)))
        x = torch.flatten(self.pool(x), 1)
        return self.out(self.fc(x))


# --------------------------------------------------------------------------------------------------
# Weights


def randomize(net: nn.Module, seed: int = 0, std: float | None = None) -> nn.Module:
    """Random weights from ``seed``, eval mode; returns ``net``.

    Linear / Embedding weights N(0, std) (default: 0.02, BERT's initializer range, for a BertModel, else
    1 / sqrt(fan in)); conv weights Kaiming-normal (fan out, as torchvision); biases N(0, 0.05); LayerNorm
    gamma 1 + N(0, 0.1), beta N(0, 0.1); batch norms running mean N(0, 0.1), var U(0.5, 1.5), gamma
    U(0.5, 1.5), beta N(0, 0.1). An embedding's padding row stays zero (as transformers initialises it)."""
    g = torch.Generator().manual_seed(seed)
    bert = isinstance(net, BertModel)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                fan_out = m.out_channels // m.groups * math.prod(m.kernel_size)
                m.weight.normal_(0.0, math.sqrt(2.0 / fan_out), generator=g)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0.0, std or (0.02 if bert else 1.0 / math.sqrt(m.in_features)), generator=g)
            elif isinstance(m, nn.Embedding):
                m.weight.normal_(0.0, std or 0.02, generator=g)
                if m.padding_idx is not None:
                    m.weight[m.padding_idx].zero_()
            elif isinstance(m, nn.LayerNorm):
                m.weight.normal_(1.0, 0.1, generator=g)
                m.bias.normal_(0.0, 0.1, generator=g)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.normal_(0.0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0.0, 0.1, generator=g)
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.normal_(0.0, 0.05, generator=g)
    return net.eval()


def weighted_layers(net: nn.Module) -> list[str]:
    """Module paths of the Linear, Conv1d, Conv2d and Embedding layers, in definition order."""
    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding)
    return [name for name, m in net.named_modules() if isinstance(m, kinds)]


def fp32_bytes(net: nn.Module) -> int:
    """Bytes of every parameter as fp32 (the checkpoint's size, buffers aside)."""
    return sum(4 * p.numel() for p in net.parameters())
