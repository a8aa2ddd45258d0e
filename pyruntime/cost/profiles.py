"""Built-in cost profiles: coefficients measured by ``pyruntime calibrate`` on reference machines, one
JSON file per ISA level in ``profiles/`` (written with ``pyruntime calibrate --isa <level> -o
pyruntime/cost/profiles/<level>.json``). The f32 kernel classes and the read bandwidth come from a 2-core
AMD EPYC (Zen 4, 32 MiB L3, bandwidth at 1 and 2 threads; avx512vnni has the avx512 ones, as its f32
kernels are those), the int8 classes from a 2-core Intel Xeon with AVX-512 VNNI and VBMI, measured at
each level with ``calibrate(classes=INT8_CLASSES)``, and the conv terms (:mod:`pyruntime.cost.conv`)
from that Xeon too, with ``calibrate_conv(builtin_profile(level))`` at each level (avx512vnni has the
avx512 ones: its f32 conv kernels are those); each profile's ``measured`` says which, by ISA and
threads.

On another machine the absolute times differ, but the ranking of encodings, which is what the
converter's choice needs, follows from the kernels' structure and mostly carries over; calibrate to
get this machine's own numbers.
"""
from __future__ import annotations

import json
from importlib import resources

from .model import CostModel

ISA_ORDER = ("ref", "avx2", "avx512", "avx512vnni", "amx")
# Levels with no profile of their own and the profile that stands in for them: the aarch64 levels take the
# avx2 one (the nearest x86 kernels in structure: no masked loads, the same tile shapes per vector).
STAND_IN = {"neon": "avx2", "neon_dot": "avx2"}


def available() -> list[str]:
    """ISA levels with a built-in profile."""
    folder = resources.files(__package__) / "profiles"
    return [isa for isa in ISA_ORDER if (folder / f"{isa}.json").is_file()]


def builtin_profile(isa: str) -> CostModel:
    """The built-in profile for ``isa``, else for the nearest level below it that has one (then above)."""
    have = available()
    if not have:
        raise FileNotFoundError("no built-in cost profiles are installed (pyruntime/cost/profiles/*.json)")
    if isa in have:
        pick = isa
    elif STAND_IN.get(isa) in have:
        pick = STAND_IN[isa]
    else:
        rank = ISA_ORDER.index(isa) if isa in ISA_ORDER else len(ISA_ORDER)
        below = [p for p in have if ISA_ORDER.index(p) <= rank]
        pick = below[-1] if below else have[0]
    text = (resources.files(__package__) / "profiles" / f"{pick}.json").read_text()
    model = CostModel.from_dict(json.loads(text))
    if pick != isa:
        model.name += f" (used for {isa}: no profile of its own)"
    return model
