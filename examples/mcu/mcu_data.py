#!/usr/bin/env python3
"""The host side of the microcontroller example (examples/mcu): the test images for the firmware, and the
check of the firmware's predictions against the host runtime's.

    python mcu_data.py images DATA_DIR images.h [--count 100]
        writes the first COUNT MNIST test images (uint8, 28x28) and their labels as a C header
    python mcu_data.py compare MODEL DATA_DIR qemu.log [--count 100]
        runs MODEL in pyruntime (pyruntime.load(MODEL).run) on the same images, normalised as
        examples/lenet5.py feeds the model (pyruntime.datasets.load_mnist), reads the firmware's
        "image <i>: predicted <d> label <l>" lines from qemu.log and compares every prediction;
        exit 0 only if all COUNT agree
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

try:
    import pyruntime
except ImportError:  # a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import pyruntime

from pyruntime.datasets import load_mnist, mnist_dir

LINE = re.compile(r"^image (\d+): predicted (\d+) label (\d+)$", re.MULTILINE)


def _data(directory: str):
    d = mnist_dir(directory)
    if d is None:
        sys.exit(f"mcu_data.py: {directory} does not hold the four MNIST idx files")
    return d


def write_images(data_dir: str, out: str, count: int) -> None:
    test = load_mnist(_data(data_dir), normalize=False).test  # x / 255 in float32: exact, so x * 255 is the pixel
    pixels = np.rint(test.x[:count] * 255).astype(np.uint8)
    labels = test.y[:count].astype(np.uint8)
    lines = [f"/* images.h: the first {len(labels)} MNIST test images (uint8, 28x28, row-major) and their labels,",
             " * written by examples/mcu/mcu_data.py. */",
             "#ifndef MCU_IMAGES_H_", "#define MCU_IMAGES_H_", "", "#include <stdint.h>", "",
             f"#define MCU_IMAGE_COUNT {len(labels)}u", "",
             f"static const uint8_t mcu_labels[{len(labels)}] = {{{','.join(map(str, labels))}}};", "",
             f"static const uint8_t mcu_images[{len(labels)}][784] = {{"]
    for img in pixels.reshape(len(labels), -1):
        lines.append("  {" + ",".join(map(str, img)) + "},")
    lines += ["};", "", "#endif /* MCU_IMAGES_H_ */", ""]
    Path(out).write_text("\n".join(lines))
    print(f"wrote {out}: {len(labels)} images")


def compare(model_path: str, data_dir: str, log: str, count: int) -> int:
    test = load_mnist(_data(data_dir)).test  # (x / 255 - 0.1307) / 0.3081, float32: what lenet5.py evaluates
    x, y = np.ascontiguousarray(test.x[:count, None]), test.y[:count]
    scores = pyruntime.load(model_path).run(x)
    host = scores.argmax(axis=1)
    device = {int(i): (int(p), int(lab)) for i, p, lab in LINE.findall(Path(log).read_text(errors="replace"))}
    missing = [i for i in range(count) if i not in device]
    if missing:
        print(f"compare: the firmware printed no prediction for {len(missing)} of {count} images "
              f"(first: image {missing[0]})")
        return 1
    wrong_label = [i for i in range(count) if device[i][1] != y[i]]
    differ = [i for i in range(count) if device[i][0] != host[i]]
    for i in differ[:10]:
        print(f"compare: image {i}: firmware predicts {device[i][0]}, host runtime {host[i]} (host scores: "
              f"{scores[i, host[i]]:.7g} for {host[i]}, {scores[i, device[i][0]]:.7g} for {device[i][0]})")
    if wrong_label:
        print(f"compare: the firmware's labels differ from the MNIST file at {len(wrong_label)} images")
    host_correct = int((host == y).sum())
    if differ or wrong_label:
        print(f"compare: {count - len(differ)} of {count} predictions match the host runtime: MISMATCH")
        return 1
    print(f"compare: all {count} predictions match the host runtime (host: {host_correct} of {count} correct)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("images", help="write the images header")
    i.add_argument("data")
    i.add_argument("out")
    i.add_argument("--count", type=int, default=100)
    c = sub.add_parser("compare", help="compare the firmware's predictions with the host runtime's")
    c.add_argument("model")
    c.add_argument("data")
    c.add_argument("log")
    c.add_argument("--count", type=int, default=100)
    args = p.parse_args(argv)
    if args.cmd == "images":
        write_images(args.data, args.out, args.count)
        return 0
    return compare(args.model, args.data, args.log, args.count)


if __name__ == "__main__":
    sys.exit(main())
