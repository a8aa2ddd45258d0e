"""The ``pyruntime`` command: demo, convert, inspect, run, bench, calibrate, export-c."""
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


def _load_model(path: str, threads: int = 1):
    """The .pyrt model at ``path``; one line saying what the file is when it is another kind."""
    from . import load
    from .convert.sources import sniff

    kind = sniff(path)
    if kind not in ("pyrt", "unknown"):
        hint = "convert it first: pyruntime convert" if kind in ("onnx", "torch.export", "torchscript", "torch-pickle",
                                                                  "pickle") else "expected a .pyrt model"
        raise ValueError(f"{path} is {'an' if kind[0] in 'aeiou' else 'a'} {kind} file, not a .pyrt model: {hint}")
    return load(path, threads=threads)


def _load_input(args: argparse.Namespace, model) -> tuple[np.ndarray, ...]:
    """One array per model input: --input (an .npy file, or an .npz with one array per input in order), else
    random (said on stderr): floats N(0, 1), token ids 0..9. No dtype is converted, as in Model.run."""
    inputs = model.inputs
    if not args.input:
        print(f"pyruntime {args.command}: no --input: running on random data (batch {args.batch}, seed {args.seed}: "
              "floats N(0, 1), token ids 0..9)", file=sys.stderr)
        rng = np.random.default_rng(args.seed)
        return tuple(rng.integers(0, 10, (args.batch, *i["shape"][1:])).astype(np.int32) if i["dtype"] == "int32"
                     else rng.standard_normal((args.batch, *i["shape"][1:])).astype(np.float32) for i in inputs)
    from .convert.sources import sniff

    kind = sniff(args.input)
    if kind == "npz":
        with np.load(args.input, allow_pickle=False) as z:
            arrays = [z[k] for k in z.files]
    elif kind == "npy":
        arrays = [np.load(args.input, allow_pickle=False)]
    else:
        raise ValueError(f"--input {args.input}: {'a .pyrt model' if kind == 'pyrt' else 'not an .npy or .npz file'}; "
                         "expected an .npy array, or an .npz with one array per input")
    if len(arrays) != len(inputs):
        raise ValueError(f"--input {args.input}: {len(arrays)} array{'s' if len(arrays) != 1 else ''}, the model "
                         f"takes {len(inputs)} input{'s' if len(inputs) != 1 else ''}")
    for k, (a, i) in enumerate(zip(arrays, inputs, strict=True)):
        if i["dtype"] == "float32" and a.dtype != np.float32:
            who = "the array" if len(inputs) == 1 else f"array {k}"
            raise ValueError(f"--input {args.input}: {who} is {a.dtype}, the model takes float32 (as Model.run "
                             "does, nothing is converted: save x.astype(np.float32))")
    return tuple(arrays)


def _cmd_run(args: argparse.Namespace) -> int:
    model = _load_model(args.file)
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
    from . import _core
    from ._progress import bar
    from ._timing import time_call

    model = _load_model(args.file, threads=args.threads)
    xs = _load_input(args, model)
    x = xs[0]
    print(model.summary_text(batch=x.shape[0]))
    with bar(5, f"timing batch {x.shape[0]}", unit="repeat") as b:
        seconds = time_call(lambda: model.run(*xs), min_time=args.seconds, progress=b.update)
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
    from .cost.calibrate import CLASSES, CONV_CLASSES, calibrate, fit_errors

    if args.isa:
        _core.set_isa(args.isa)
    from ._progress import bar, enabled

    print(f"measuring the {_core.active_isa()} kernels: ", end="" if not enabled() else "\n", flush=True)
    with bar(len(CLASSES) + len(CONV_CLASSES), "kernel classes", unit="class") as b:
        def progress(cls: str) -> None:
            if enabled():
                b.set_postfix_str(cls)
                b.update()
            else:
                print(cls, end=" ", flush=True)

        model, samples = calibrate(budget_s=args.budget, threads=args.threads, progress=progress)
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


def _parse_dict_or_float(text: str | None, cast, what: str):
    """``0.9`` or ``fc1=0.92,fc2=0.9``; a ValueError naming the option and the expected form otherwise."""
    if text is None:
        return None
    try:
        if "=" in text:
            return {k.strip(): cast(v) for k, v in (item.split("=", 1) for item in text.split(","))}
        return cast(text)
    except ValueError:
        kind = {float: "a number", int: "an integer", str: "a word"}[cast]
        raise ValueError(f"{what} {text!r}: expected {kind}, or per layer name=value,name=value") from None


def _load_npy(path: str, what: str) -> np.ndarray:
    """An .npy file for ``what``; one line for a missing file or a file of another kind."""
    from .convert.sources import sniff

    kind = sniff(path)
    if kind != "npy":
        found = {"npz": "an .npz archive (give one .npy)", "pyrt": "a .pyrt model", "onnx": "an ONNX model",
                 "torch.export": "a torch.export program"}.get(kind, "not an .npy file")
        raise ValueError(f"{what} {path}: {found}; expected an .npy array (np.save)")
    return np.load(path, allow_pickle=False)


def _cmd_convert(args: argparse.Namespace) -> int:
    from .convert.sources import convert_file, parse_shape

    shapes = [parse_shape(t) for t in args.input_shape or ()]
    calibration = _load_npy(args.calibration, "--calibration") if args.calibration else None
    cm = convert_file(args.model, input_shapes=shapes, trust_pickle=args.trust_pickle,
                      sparsity=_parse_dict_or_float(args.sparsity, float, "--sparsity"),
                      bits=_parse_dict_or_float(args.bits, int, "--bits"), optimize=args.optimize,
                      batch=args.batch, threads=args.threads, size_budget=args.size_budget,
                      speed_budget=args.speed_budget, quantize=_parse_dict_or_float(args.quantize, str, "--quantize"),
                      calibration=calibration)
    cm.save(args.output)
    print(cm.report())
    print(f"wrote {args.output}: {Path(args.output).stat().st_size} bytes")
    return 0


def _cmd_export_c(args: argparse.Namespace) -> int:
    from .export_c import export_c

    text = export_c(args.file, args.name)  # everything is checked before the first byte is printed
    sys.stdout.write(text)
    return 0


def _version_text() -> str:
    try:
        from . import __version__, _core

        return (f"pyruntime {__version__} (file format versions 1-{_core.FORMAT_VERSION}, "
                f"kernels: {_core.active_isa()})")
    except ImportError as e:
        return f"pyruntime (the compiled core does not import: {e})"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyruntime", description="Runtime for compressed neural networks.")
    p.add_argument("--version", action="version", version=_version_text())
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

    k = sub.add_parser("calibrate", help="measure this machine's kernels for the cost model (about a minute)")
    k.add_argument("-o", "--output", default="pyruntime-cost.json", help="profile to write (JSON)")
    k.add_argument("--isa", help="ISA level to measure (default: the active one)")
    k.add_argument("--budget", type=float, default=0.05, help="seconds of repetitions per timed call")
    k.add_argument("--threads", type=int, help="thread count to measure the read bandwidth at, besides 1")
    k.add_argument("--name", help="name recorded in the profile")
    k.set_defaults(func=_cmd_calibrate)

    c = sub.add_parser(
        "convert", help="convert an ONNX model, a torch.export program (.pt2), a TorchScript file or a pickled "
                        "torch module to .pyrt",
        description="Converts a trained network to a compressed .pyrt file. MODEL is recognised by its content: an "
                    "ONNX model (.onnx), a torch.export program (torch.export.save, .pt2), a TorchScript file "
                    "(torch.jit.save; needs --input-shape), or a whole torch module saved with torch.save (needs "
                    "--input-shape and --trust-pickle). SECURITY: a torch.save file is a pickle, and loading it "
                    "(torch.load(weights_only=False)) runs any code stored in it; --trust-pickle says you trust the "
                    "file. Prefer ONNX or torch.export files, which hold no code.")
    c.add_argument("model", help="the model file (.onnx, .pt2, TorchScript, or torch.save'd module)")
    c.add_argument("output", help="the .pyrt file to write")
    c.add_argument("--input-shape", action="append",
                   help="per-sample shape without the batch, e.g. 784, 1,28,28 or 1x28x28; add :int for token ids "
                        "(128:int); repeat for several inputs; needed for torch modules and TorchScript")
    c.add_argument("--trust-pickle", action="store_true",
                   help="allow loading a pickled torch module: unpickling runs code from the file, so only "
                        "for files you trust")
    c.add_argument("--sparsity", help="0.9, or per layer: fc1=0.92,fc2=0.9")
    c.add_argument("--bits", help="5, or per layer: fc1=5,fc2=6")
    c.add_argument("--quantize", help="int8 linear layers: int8 (= dynamic), dynamic or static; or per layer: "
                                      "fc1=static,fc2=dynamic")
    c.add_argument("--calibration", help="a .npy of sample inputs (N, *input shape) for --quantize static")
    c.add_argument("--optimize", choices=("size", "speed"), default="size",
                   help="per layer, the smallest file (default) or the fastest kernel (cost model)")
    c.add_argument("--batch", type=int, default=1, help="expected batch size, for --optimize speed")
    c.add_argument("--threads", type=int, default=1, help="expected threads per run, for --optimize speed")
    c.add_argument("--size-budget", type=float, help="with --optimize speed: each layer's file <= this x its smallest "
                                                         "(default 1.5; inf: no bound)")
    c.add_argument("--speed-budget", type=float, help="with --optimize size: time <= this x the fastest")
    c.set_defaults(func=_cmd_convert)

    e = sub.add_parser("export-c", help="print a .pyrt model as a C header (a byte array for firmware: flash)",
                       description="Prints a C header holding the model file's bytes as a 16-byte-aligned "
                                   "`static const unsigned char NAME[]` and `NAME_len`, for pyrt_micro_load "
                                   "(pyruntime_micro.h). The file is loaded and checked first.")
    e.add_argument("file", help="the .pyrt model")
    e.add_argument("--name", help="the array's C identifier (default: the file name, sanitized: lenet5_pyrt)")
    e.set_defaults(func=_cmd_export_c)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, ImportError) as e:  # FormatError and UnsupportedError included
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"pyruntime {args.command}: {type(e).__name__}: {first}", file=sys.stderr)
        return 2 if isinstance(e, ImportError) else 1


if __name__ == "__main__":
    sys.exit(main())
