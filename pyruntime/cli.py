"""The ``pyruntime`` command: demo, convert, inspect, run, bench, calibrate."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import print_result, run_demo

    result = run_demo(seed=args.seed, out_path=args.output, quiet=args.json)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_result(result)
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from ._inspect import inspect_bytes, render

    report = inspect_bytes(Path(args.file).read_bytes(), args.file)
    print(render(report))
    return 0 if report.valid else 1


def _load_input(args: argparse.Namespace, model) -> tuple[np.ndarray, ...]:
    """One array per model input: --input (an .npy file, or an .npz with one array per input in order), else
    random: floats N(0, 1), token ids 0..9."""
    if args.input:
        if str(args.input).endswith(".npz"):
            with np.load(args.input) as z:
                arrays = [z[k] for k in z.files]
        else:
            arrays = [np.load(args.input)]
        return tuple(np.ascontiguousarray(a) if i["dtype"] == "int32" else np.ascontiguousarray(a, dtype=np.float32)
                     for a, i in zip(arrays, model.inputs, strict=False))
    rng = np.random.default_rng(args.seed)
    return tuple(rng.integers(0, 10, (args.batch, *i["shape"][1:])).astype(np.int32) if i["dtype"] == "int32"
                 else rng.standard_normal((args.batch, *i["shape"][1:])).astype(np.float32) for i in model.inputs)


def _cmd_run(args: argparse.Namespace) -> int:
    from . import load

    model = load(args.file)
    xs = _load_input(args, model)
    out = model.run(*xs)
    ys = out if isinstance(out, tuple) else (out,)
    if args.output:
        if len(ys) == 1:
            np.save(args.output, ys[0])
        else:
            np.savez(args.output, *ys)
        print(f"wrote {args.output}: shape{'s' if len(ys) > 1 else ''} {', '.join(str(y.shape) for y in ys)}")
    else:
        np.set_printoptions(precision=5, suppress=True, linewidth=120)
        for y in ys:
            print(y)
            if y.ndim == 2 and y.shape[1] > 1:
                print("argmax:", y.argmax(axis=1))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from . import _core, load
    from ._timing import time_call

    model = load(args.file, threads=args.threads)
    xs = _load_input(args, model)
    x = xs[0]
    print(model.summary_text(batch=x.shape[0]))
    seconds = time_call(lambda: model.run(*xs), min_time=args.seconds)
    if args.per_layer:
        from ._profile import profile_text

        print(f"\nper step (batch {x.shape[0]}, {model.threads} thread{'s' if model.threads > 1 else ''}):")
        print(profile_text(model.profile(xs, seconds=args.seconds), measured_s=seconds, top=args.top))
    predicted = sum(r["predicted_s"] for r in model.summary(batch=x.shape[0]))
    print(f"\nbatch {x.shape[0]}, {model.threads} thread{'s' if model.threads > 1 else ''}: "
          f"{seconds * 1e6:.1f} us per run ({_core.active_isa()} kernels); " +
          ("the cost model has no timings for some of its kernels" if np.isnan(predicted) else
           f"the cost model predicts {predicted * 1e6:.1f} us for the weight layers "
           f"({seconds / max(predicted, 1e-12):.2f}x)"))
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from . import _core
    from .cost.calibrate import calibrate, fit_errors

    if args.isa:
        _core.set_isa(args.isa)
    print(f"measuring the {_core.active_isa()} kernels: ", end="", flush=True)
    model, samples = calibrate(budget_s=args.budget, threads=args.threads,
                               progress=lambda cls: print(cls, end=" ", flush=True))
    if args.name:
        model.name = args.name
    ratios = np.array(fit_errors(model, samples))
    print(f"\n{len(samples)} timings; predicted / measured: median {np.median(ratios):.2f}, "
          f"range {ratios.min():.2f} .. {ratios.max():.2f}")
    bw = ", ".join(f"{t} thread{'s' if t > 1 else ''} {v / 1e9:.1f} GB/s" for t, v in sorted(model.read_bandwidth.items()))
    print(f"read bandwidth: {bw}; last-level cache {model.llc_bytes >> 20} MiB")
    model.save(args.output)
    print(f"wrote {args.output}; use it with PYRUNTIME_COST_PROFILE={args.output}")
    return 0


def _parse_dict_or_float(text: str | None, cast):
    if text is None:
        return None
    if "=" in text:
        return {k: cast(v) for k, v in (item.split("=", 1) for item in text.split(","))}
    return cast(text)


def _cmd_convert(args: argparse.Namespace) -> int:
    try:
        import torch
    except ImportError:
        print("pyruntime convert needs PyTorch: pip install 'pyruntime[torch]'", file=sys.stderr)
        return 2
    from .convert import from_torch

    module = torch.load(args.model, weights_only=False)
    if isinstance(module, dict):
        print("the file holds a state_dict; save the whole module (torch.save(model, path))", file=sys.stderr)
        return 2
    module.eval()
    shape = tuple(int(s) for s in args.input_shape.split(","))
    example = torch.zeros((1, *shape))
    calibration = np.load(args.calibration) if args.calibration else None
    cm = from_torch(module, example, sparsity=_parse_dict_or_float(args.sparsity, float),
                    bits=_parse_dict_or_float(args.bits, int), optimize=args.optimize, batch=args.batch,
                    threads=args.threads, size_budget=args.size_budget, speed_budget=args.speed_budget,
                    quantize=_parse_dict_or_float(args.quantize, str), calibration=calibration)
    cm.save(args.output)
    print(cm.report() if hasattr(cm, "report") else "")
    print(f"wrote {args.output}: {Path(args.output).stat().st_size} bytes")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyruntime", description="Runtime for compressed neural networks.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="train, prune, share, write, load and run a small MLP on the digits dataset")
    d.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--output", help="also keep the .pyrt file here")
    d.set_defaults(func=_cmd_demo)

    i = sub.add_parser("inspect", help="print the header, sections, tensors and graph of a .pyrt file")
    i.add_argument("file")
    i.set_defaults(func=_cmd_inspect)

    for name, func, helptext in (("run", _cmd_run, "run a model on a .npy input (or random data)"),
                                 ("bench", _cmd_bench, "time a model at a batch size")):
        r = sub.add_parser(name, help=helptext)
        r.add_argument("file")
        r.add_argument("--input", help=".npy file, shape (batch, *input_shape); .npz: one array per input, in order")
        r.add_argument("--batch", type=int, default=1, help="batch of random input when --input is absent")
        r.add_argument("--seed", type=int, default=0)
        if name == "run":
            r.add_argument("--output", help="write the output to this .npy file")
        else:
            r.add_argument("--seconds", type=float, default=1.0, help="time to spend measuring")
            r.add_argument("--threads", type=int, default=1, help="threads per run (0: one per hardware thread)")
            r.add_argument("--per-layer", action="store_true", help="also time every step: where the time goes")
            r.add_argument("--top", type=int, help="with --per-layer: list only the slowest N steps")
        r.set_defaults(func=func)

    k = sub.add_parser("calibrate", help="measure this machine's kernels for the cost model (about 20 s)")
    k.add_argument("-o", "--output", default="pyruntime-cost.json", help="profile to write (JSON)")
    k.add_argument("--isa", help="ISA level to measure (default: the active one)")
    k.add_argument("--budget", type=float, default=0.05, help="seconds of repetitions per timed call")
    k.add_argument("--threads", type=int, help="thread count to measure the read bandwidth at, besides 1")
    k.add_argument("--name", help="name recorded in the profile")
    k.set_defaults(func=_cmd_calibrate)

    c = sub.add_parser("convert", help="convert a saved torch.nn.Module (torch.save(model)) to .pyrt")
    c.add_argument("model")
    c.add_argument("output")
    c.add_argument("--input-shape", required=True, help="without batch, e.g. 784 or 1,28,28")
    c.add_argument("--sparsity", help="0.9, or per layer: fc1=0.92,fc2=0.9")
    c.add_argument("--bits", help="5, or per layer: fc1=5,fc2=6")
    c.add_argument("--quantize", help="int8 linear layers: int8 (= dynamic), dynamic or static; or per layer: "
                                      "fc1=static,fc2=dynamic")
    c.add_argument("--calibration", help="a .npy of sample inputs (N, *input shape) for --quantize static")
    c.add_argument("--optimize", choices=("size", "speed"), default="size",
                   help="per layer, the smallest file (default) or the fastest kernel (cost model)")
    c.add_argument("--batch", type=int, default=1, help="expected batch size, for --optimize speed")
    c.add_argument("--threads", type=int, default=1, help="expected threads per run, for --optimize speed")
    c.add_argument("--size-budget", type=float, help="with --optimize speed: file <= this x the smallest")
    c.add_argument("--speed-budget", type=float, help="with --optimize size: time <= this x the fastest")
    c.set_defaults(func=_cmd_convert)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as e:
        print(f"pyruntime {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
