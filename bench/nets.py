"""Whole networks for bench/test_nets.py: SqueezeNet v1.0, ResNet-18 and MobileNet-V2 as plain torch.nn
modules (torchvision's architectures, layer for layer, written here: torchvision is not a dependency), with
random weights from a fixed seed, and their compressed pyruntime forms (converted once, then cached).

Weights: convolutions Kaiming-normal (fan out, as torchvision's ResNet and MobileNet-V2 initialise them;
SqueezeNet's final conv N(0, 0.01) as torchvision's), conv and Linear biases N(0, 0.05) (torchvision starts
them at 0; nonzero ones exercise the bias path), Linear weights N(0, 0.01). Every batch norm gets random
running statistics (mean ~ N(0, 0.1), var ~ U(0.5, 1.5)) so that folding it into the conv before it is
exercised. Eval mode. Speed does not depend on the values, only on the shapes, sparsity and encodings.

Variants (VARIANTS), converted with pyruntime.convert.from_torch, Deep Compression's magnitude pruning
(``sparsity``) and k-means weight sharing (``bits``) per layer, ``optimize="size"`` (the converter's default:
each layer in the encoding of the smallest file, the paper's aim; the choice and its reason per layer are in
``cm.report()``, printed by ``python bench/nets.py -v``). ``optimize="speed"`` keeps several layers in fp32
(dense or csr): a file several times larger for a small gain at batch 1, not what Deep Compression ships.
At 33% density ``codebook`` (an index per weight, pruned ones included, run dense) and ``csr+codebook`` are
within a few percent in size, so SqueezeNet's layers split between the two.

  squeezenet-8bit   33% density (sparsity 0.67), 8-bit codebooks: SqueezeNet's Deep Compression figures
  squeezenet-4bit   33% density, 4-bit codebooks
  resnet18-4bit     80% pruned (sparsity 0.8), 4-bit;   resnet18-8bit      the same, 8-bit
  mobilenetv2-4bit  80% pruned, 4-bit;                  mobilenetv2-8bit   the same, 8-bit

A float ``sparsity`` / ``bits`` applies to every conv and Linear alike; a mapping sets them per layer path.
The defaults are poor for two kinds of layer, and this module passes mappings that treat them apart:

- the first conv (3 input channels; 3*7*7 = 147 weights per filter in SqueezeNet and ResNet-18, 27 in
  MobileNet-V2) is not pruned and keeps 8 bits in every variant. It sees the raw image, every weight feeds
  an RGB pixel directly, and pruning it buys nothing: it holds 1.1% of SqueezeNet's weights, 0.08% of
  ResNet-18's, 0.03% of MobileNet-V2's (Deep Compression kept 84% of AlexNet's conv1);
- MobileNet-V2's 17 depthwise 3x3 convs (9 weights per channel, 1.9% of its weights) are not pruned and keep
  8 bits: at 80% a channel would keep about 2 of its 9 taps, and one 16-value codebook per layer shared by
  channels whose folded batch-norm scales differ is coarse.

Every other conv and Linear (SqueezeNet's final 1x1 conv classifier, ResNet-18's fc and downsample convs,
MobileNet-V2's 1x1 expand / project convs, its last 1x1 320 -> 1280 and its classifier) gets the variant's
sparsity and bits.

Conversion (pruning and k-means per layer; ResNet-18 has 11.7 M weights) takes seconds per variant, more
on a slow machine: the .pyrt bytes are cached in PYRT_BENCH_CACHE (default: a folder under the system temp
dir), keyed by the variant, a hash of its settings, of the network's weights and architecture, of the
converter's source, and pyruntime's version and format version; a JSON beside each file keeps the
conversion time and the converter's report.

    python bench/nets.py                     # convert (or read from the cache) and check every variant
    python bench/nets.py resnet18-4bit -v    # one variant, with the converter's per-layer report
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import pyruntime
from pyruntime import _core
from pyruntime.convert import decode_tensor, from_torch
from pyruntime.convert.torch_capture import assign_weights

SEED = 20240611
INPUT_SHAPE = (3, 224, 224)
NUM_CLASSES = 1000
# Bump when a network's forward changes in a way its weights and repr() do not show (the cache key).
NETS_REVISION = 1
# max |y - y_ref| / max |y_ref| of the runtime against the torch module with the compressed weights
CHECK_TOL = 1e-3


# --------------------------------------------------------------------------------------------------
# Networks


class Fire(nn.Module):
    """SqueezeNet's fire module: 1x1 squeeze, then 1x1 and 3x3 expand side by side, concatenated."""

    def __init__(self, c_in: int, squeeze: int, e1: int, e3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(c_in, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, e1, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, e3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)


class SqueezeNet(nn.Module):
    """SqueezeNet v1.0 (torchvision's squeezenet1_0): 1.25 M weights, no Linear layer."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, kernel_size=7, stride=2), nn.ReLU(inplace=True), _pool(),
            Fire(96, 16, 64, 64), Fire(128, 16, 64, 64), Fire(128, 32, 128, 128), _pool(),
            Fire(256, 32, 128, 128), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256),
            _pool(), Fire(512, 64, 256, 256))
        self.classifier = nn.Sequential(nn.Dropout(p=0.5), nn.Conv2d(512, num_classes, 1),
                                        nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


class BasicBlock(nn.Module):
    """ResNet's two 3x3 convs with batch norms and the residual add (1x1 stride-2 downsample when needed)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 (torchvision's resnet18): 11.7 M weights."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def conv_bn_relu6(c_in: int, c_out: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """MobileNet-V2's block: 1x1 expand (skipped at expansion 1), depthwise 3x3, linear 1x1 project, and the
    residual add when the shape is kept."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.use_res_connect = stride == 1 and c_in == c_out
        layers: list[nn.Module] = [conv_bn_relu6(c_in, hidden, 1)] if expand != 1 else []
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNet-V2, width 1.0 (torchvision's mobilenet_v2): 3.5 M weights."""

    # expansion t, output channels c, repeats n, first stride s
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_relu6(3, 32, 3, 2)]
        c_in = 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(c_in, c, s if i == 0 else 1, t))
                c_in = c
        layers.append(conv_bn_relu6(c_in, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


NETS: dict[str, type[nn.Module]] = {"squeezenet": SqueezeNet, "resnet18": ResNet18,
                                    "mobilenetv2": MobileNetV2}


def randomize(net: nn.Module, seed: int) -> nn.Module:
    """The weights described in the module docstring, from `seed`; eval mode."""
    g = torch.Generator().manual_seed(seed)
    last_conv = [m for m in net.modules() if isinstance(m, nn.Conv2d)][-1]
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                if isinstance(net, SqueezeNet) and m is last_conv:
                    m.weight.normal_(0.0, 0.01, generator=g)
                else:
                    fan_out = m.out_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                    m.weight.normal_(0.0, float(np.sqrt(2.0 / fan_out)), generator=g)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 0.01, generator=g)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
                m.running_mean.normal_(0.0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.normal_(0.0, 0.05, generator=g)
    return net.eval()


def build_net(name: str) -> nn.Module:
    """A fresh `name` network ("squeezenet", "resnet18", "mobilenetv2") with its seeded weights, eval mode."""
    return randomize(NETS[name](), SEED + list(NETS).index(name))


def example_input(batch: int, seed: int = 0) -> np.ndarray:
    """A fixed [batch, 3, 224, 224] float32 input (standard normal: a normalised image's scale)."""
    return np.random.default_rng(seed * 1009 + batch).standard_normal((batch, *INPUT_SHAPE), dtype=np.float32)


def module_fp32_bytes(net: nn.Module) -> int:
    """Bytes of all the module's parameters as fp32, batch norms' gamma and beta included (what torch holds;
    the converter's dense_fp32_bytes counts the folded network's weights and biases instead)."""
    return sum(4 * p.numel() for p in net.parameters())


# --------------------------------------------------------------------------------------------------
# Variants and their compressed forms


@dataclass(frozen=True)
class Variant:
    name: str
    net: str
    sparsity: float  # of every layer but the first conv and depthwise convs (see the module docstring)
    bits: int
    first_bits: int = 8  # bits of the layers kept unpruned

    def settings(self, net: nn.Module) -> tuple[dict[str, float | None], dict[str, int]]:
        """from_torch's per-layer `sparsity` and `bits` mappings, by module path."""
        sparsity: dict[str, float | None] = {}
        bits: dict[str, int] = {}
        convs = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
        for path, m in net.named_modules():
            if not isinstance(m, (nn.Conv2d, nn.Linear)):
                continue
            depthwise = isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels
            keep = path == convs[0] or depthwise
            sparsity[path] = None if keep else self.sparsity
            bits[path] = self.first_bits if keep else self.bits
        return sparsity, bits


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("squeezenet-8bit", "squeezenet", 0.67, 8),
    Variant("squeezenet-4bit", "squeezenet", 0.67, 4),
    Variant("resnet18-4bit", "resnet18", 0.8, 4),
    Variant("resnet18-8bit", "resnet18", 0.8, 8),
    Variant("mobilenetv2-4bit", "mobilenetv2", 0.8, 4),
    Variant("mobilenetv2-8bit", "mobilenetv2", 0.8, 8),
)}
OPTIMIZE = "size"


def cache_dir() -> Path:
    d = os.environ.get("PYRT_BENCH_CACHE") or os.path.join(tempfile.gettempdir(), "pyrt-bench-nets")
    return Path(d)


def _converter_digest() -> str:
    """A hash of the converter's and cost model's source: a changed converter converts again."""
    root = Path(pyruntime.__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted([*root.glob("convert/*.py"), *root.glob("cost/*.py")]):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def _net_digest(net: nn.Module) -> str:
    h = hashlib.sha256(repr(net).encode())
    for k, v in net.state_dict().items():
        h.update(k.encode() + v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_key(variant: Variant, net: nn.Module) -> str:
    sparsity, bits = variant.settings(net)
    blob = json.dumps({"variant": variant.name, "sparsity": sparsity, "bits": bits, "optimize": OPTIMIZE,
                       "input": INPUT_SHAPE, "seed": SEED, "revision": NETS_REVISION,
                       "pyruntime": pyruntime.__version__, "format": _core.FORMAT_VERSION,
                       "net": _net_digest(net), "converter": _converter_digest()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Compressed:
    variant: Variant
    data: bytes  # the .pyrt file
    info: dict[str, Any]  # convert_seconds, file_bytes, dense_fp32_bytes, encodings, report, key
    cached: bool  # read from the cache (info["convert_seconds"] is the first conversion's)
    path: Path


def convert(variant: Variant, net: nn.Module) -> tuple[bytes, dict[str, Any]]:
    """Converts `net` (not modified) with the variant's settings: the file and what to remember of it."""
    sparsity, bits = variant.settings(net)
    t0 = time.perf_counter()
    cm = from_torch(copy.deepcopy(net), torch.zeros(1, *INPUT_SHAPE), sparsity=sparsity, bits=bits,
                    optimize=OPTIMIZE)
    data = cm.to_bytes()
    seconds = time.perf_counter() - t0
    encodings: dict[str, int] = {}
    for r in cm.layers:
        encodings[r.encoding] = encodings.get(r.encoding, 0) + 1
    nnz = sum(r.nonzeros for r in cm.layers)
    weights = sum(int(np.prod(r.shape)) for r in cm.layers)
    return data, {"convert_seconds": seconds, "file_bytes": len(data), "dense_fp32_bytes": cm.dense_bytes,
                  "nonzeros": nnz, "weights": weights, "encodings": encodings, "report": cm.report(),
                  "optimize": OPTIMIZE, "sparsity": variant.sparsity, "bits": variant.bits}


def compressed(name: str, net: nn.Module | None = None) -> Compressed:
    """The variant's .pyrt bytes, from the cache or converted (and cached) now."""
    variant = VARIANTS[name]
    net = build_net(variant.net) if net is None else net
    key = cache_key(variant, net)
    path = cache_dir() / f"{name}-{key}.pyrt"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return Compressed(variant, path.read_bytes(), json.loads(meta.read_text()), True, path)
    data, info = convert(variant, net)
    info["key"] = key
    path.parent.mkdir(parents=True, exist_ok=True)
    for p, content in ((path, data), (meta, json.dumps(info, indent=1).encode())):
        tmp = p.with_name(f"{p.name}.{os.getpid()}.tmp")
        tmp.write_bytes(content)
        os.replace(tmp, p)
    return Compressed(variant, data, info, False, path)


def compressed_module(net: nn.Module, data: bytes) -> nn.Module:
    """A copy of `net` computing with exactly the weights the .pyrt file holds (pruned, shared, batch norms
    folded: each folded batch norm made an identity), read back from the file itself."""
    model = _core.read_model(data)
    meta = json.loads(model["metadata"])
    tensors = {t["name"]: t for t in model["tensors"]}
    weights = {}
    for layer in meta["layers"]:
        b = tensors.get(f"{layer}.bias")
        weights[layer] = (decode_tensor(tensors[f"{layer}.weight"]), None if b is None else decode_tensor(b))
    out = copy.deepcopy(net)
    assign_weights(out, weights, meta.get("folded_batchnorm"), meta.get("functional_layers"))
    return out.eval()


def torch_forward(module: nn.Module, x: np.ndarray, dtype: torch.dtype = torch.float64) -> np.ndarray:
    """The module's output for x in `dtype` (float64: a reference), as float64 numpy."""
    m = copy.deepcopy(module).to(dtype)
    with torch.inference_mode():
        return m(torch.from_numpy(x).to(dtype)).double().numpy()


def normalized_error(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / max |ref|."""
    got = np.asarray(got)
    assert got.shape == ref.shape, f"output shape {got.shape}, expected {ref.shape}"
    return float(np.abs(got.astype(np.float64) - ref).max() / np.abs(ref).max())


def check(c: Compressed, net: nn.Module, batch: int = 1, threads: int = 1) -> float:
    """The runtime's output against float64 torch with the compressed weights; raises past CHECK_TOL."""
    x = example_input(batch)
    ref = torch_forward(compressed_module(net, c.data), x)
    err = normalized_error(pyruntime.load(c.data, threads=threads).run(x), ref)
    if err > CHECK_TOL:
        raise AssertionError(f"{c.variant.name}: pyruntime against torch with the compressed weights: "
                             f"normalized max error {err:.3g} > {CHECK_TOL}")
    return err


def main() -> int:
    ap = argparse.ArgumentParser(description="Convert (or read from the cache) and check the bench networks.")
    ap.add_argument("variants", nargs="*", default=list(VARIANTS), help=f"of {', '.join(VARIANTS)}")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the converter's per-layer report")
    args = ap.parse_args()
    print(f"cache: {cache_dir()}  (PYRT_BENCH_CACHE)  ISA {_core.active_isa()}")
    print("| variant | convert (s) | cached | density | .pyrt bytes | dense fp32 bytes | ratio | encodings "
          "| error |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.variants:
        if name not in VARIANTS:
            ap.error(f"unknown variant {name!r}")
        net = build_net(VARIANTS[name].net)
        c = compressed(name, net)
        i = c.info
        err = check(c, net)
        enc = ", ".join(f"{k} {v}" for k, v in sorted(i["encodings"].items()))
        print(f"| {name} | {i['convert_seconds']:.1f} | {'yes' if c.cached else 'no'} | "
              f"{i['nonzeros'] / i['weights']:.3f} | {i['file_bytes']} | {i['dense_fp32_bytes']} | "
              f"{i['dense_fp32_bytes'] / i['file_bytes']:.1f}x | {enc} | {err:.2g} |", flush=True)
        if args.verbose:
            print(i["report"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
