#!/usr/bin/env bash
# examples/mcu/run.sh DATA_DIR [model.pyrt] -- LeNet-5 on a Cortex-M4F under QEMU, checked against the host.
#
# Makes the model if none is given (examples/lenet5.py --quick: about 2.5 minutes on one core; kept in the
# build folder and reused), exports it as a C header (pyruntime export-c), writes the first 100 MNIST test
# images as another, builds the firmware (Makefile: arm-none-eabi-gcc, csrc/micro/*.c), runs it on QEMU's
# mps2-an386 board, runs the same model file on the same images in the host runtime, compares every
# prediction, and prints the flash, RAM and instruction figures; then the same model in stream mode
# (pyrt_micro_load_ex with PYRT_MICRO_STREAM_WEIGHTS: the weight streams decoded during each run, a smaller
# arena), whose outputs must equal the default mode's bit for bit. Then the same for the same weights as a
# static int8 model (mcu_data.py int8: decoded, calibrated on 256 training images, converted with
# quantize="static"; its dense layers run the SMLAD dot product), whose outputs must match the host's bit for
# bit, and that model again on a Cortex-M3 (mps2-an385: no DSP extension, no FPU). Exit 0 only if all
# predictions (and the int8 model's outputs) match.
#
# Environment: PYTHON (default: the repository's .venv, else python3), MCU_BUILD (default build/mcu),
# MCU_IMAGES (100), MCU_QEMU_TIMEOUT (seconds, 300), MCU_INT8 (1; 0 leaves the int8 model out), MCU_STREAM
# (1; 0 leaves the stream-mode firmware out). Installs the
# Debian packages gcc-arm-none-eabi,
# libnewlib-arm-none-eabi and qemu-system-arm when missing (as root, or through sudo).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 DATA_DIR [model.pyrt]   (DATA_DIR: the four MNIST idx files)" >&2
  exit 2
fi
DATA="$(cd "$1" && pwd)"
BUILD="${MCU_BUILD:-$REPO/build/mcu}"
IMAGES="${MCU_IMAGES:-100}"
TIMEOUT="${MCU_QEMU_TIMEOUT:-300}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
start=$SECONDS
mkdir -p "$BUILD"

# 1. the tools
need=()
command -v arm-none-eabi-gcc >/dev/null || need+=(gcc-arm-none-eabi)
if ! command -v arm-none-eabi-gcc >/dev/null || [[ ! -f "$(arm-none-eabi-gcc -print-file-name=nano.specs)" ]]; then
  need+=(libnewlib-arm-none-eabi)
fi
command -v qemu-system-arm >/dev/null || need+=(qemu-system-arm)
if [[ ${#need[@]} -gt 0 ]]; then
  echo "== installing ${need[*]}"
  SUDO=; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

# 2. the model
if [[ $# -eq 2 ]]; then
  MODEL="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
else
  MODEL="$BUILD/lenet5.pyrt"
  if [[ -f "$MODEL" ]]; then
    echo "== reusing $MODEL (delete it to train again)"
  else
    echo "== training LeNet-5 (examples/lenet5.py --quick, about 2.5 minutes)"
    (cd "$REPO" && "$PYTHON" examples/lenet5.py --quick --data "$DATA" --out "$MODEL.tmp") && mv "$MODEL.tmp" "$MODEL"
  fi
fi

# 3. the firmware of one model: built, run under QEMU, compared with the host runtime, its figures printed
# firmware LABEL MODEL BUILD_DIR MACHINE ARCH [--exact|""] [LOAD_FLAGS]   (MACHINE: mps2-an386 for a Cortex-M4F,
# mps2-an385 for a Cortex-M3; ARCH: the compiler's target flags; LOAD_FLAGS: pyrt_micro_load_ex's, default 0)
firmware() {
  local label=$1 model=$2 build=$3 machine=$4 arch=$5 exact=${6:-} flags=${7:-0}
  local qemu_flags="-M $machine -nographic -monitor none -semihosting-config enable=on,target=native -icount shift=0"
  mkdir -p "$build"
  echo "== $label: building the firmware ($build)"
  rm -f "$build/model.h" "$build/images.h" # regenerated every time (another model, other images), the library kept
  make -s -C "$HERE" BUILD="$build" MODEL="$model" DATA="$DATA" IMAGES="$IMAGES" PYTHON="$PYTHON" ARCH="$arch" \
    LOAD_FLAGS="$flags" QEMU_FLAGS="$qemu_flags" all >"$build/make.log" 2>&1 ||
    { cat "$build/make.log"; echo "run.sh: the firmware did not build" >&2; exit 1; }
  local elf="$build/firmware.elf"

  # run it (semihosting output arrives on QEMU's stderr)
  echo "== $label: running it: qemu-system-arm -M $machine (timeout ${TIMEOUT} s)"
  local t0=$SECONDS qemu_rc cmp_rc
  set +e
  # shellcheck disable=SC2086
  timeout "$TIMEOUT" qemu-system-arm $qemu_flags -kernel "$elf" >"$build/qemu.log" 2>&1
  qemu_rc=$?
  set -e
  local qemu_s=$((SECONDS - t0))
  head -n 4 "$build/qemu.log"
  echo "  ..."
  tail -n 6 "$build/qemu.log"
  if [[ $qemu_rc -ne 0 ]]; then
    [[ $qemu_rc -eq 124 ]] && echo "run.sh: QEMU did not finish within ${TIMEOUT} s" >&2
    echo "run.sh: the firmware exited with status $qemu_rc" >&2
    exit 1
  fi

  # the host runtime on the same file and images
  echo "== $label: comparing with the host runtime (pyruntime.load(model).run(images))"
  set +e
  "$PYTHON" "$HERE/mcu_data.py" compare "$model" "$DATA" "$build/qemu.log" --count "$IMAGES" $exact
  cmp_rc=$?
  set -e

  # the figures
  sym_size() { local h; h=$(arm-none-eabi-nm -S "$elf" | awk -v s="$1" '$4 == s { print $2 }'); echo $((16#${h:-0})); }
  sec_size() { arm-none-eabi-size -A "$elf" | awk -v s="$1" '$1 == s { print $2 }'; }
  local text data bss stack model_b images arena_line stack_used ticks cal_insn cal_ticks
  text=$(sec_size .text); data=$(sec_size .data); bss=$(sec_size .bss); stack=$(sec_size .stack)
  model_b=$(sym_size model_pyrt); images=$(( $(sym_size mcu_images) + $(sym_size mcu_labels) ))
  arena_line=$(sed -n 's/^arena_bytes //p' "$build/qemu.log")
  stack_used=$(sed -n 's/^stack used \([0-9]*\).*/\1/p' "$build/qemu.log")
  ticks=$(sed -n 's/^inference ticks \([0-9]*\).*/\1/p' "$build/qemu.log")
  cal_insn=$(sed -n 's/^calibration \([0-9]*\) instructions = \([0-9]*\) ticks/\1/p' "$build/qemu.log")
  cal_ticks=$(sed -n 's/^calibration \([0-9]*\) instructions = \([0-9]*\) ticks/\2/p' "$build/qemu.log")
  echo "== $label: figures ($(basename "$model"), $IMAGES images)"
  echo "flash: $((text + data)) bytes = code and constants $((text - model_b - images)) + model array $model_b (the .pyrt file)"
  echo "       + test images $images (not part of a deployment) + .data initial values $data"
  echo "RAM:   $((data + bss + stack)) bytes = .data $data + .bss $bss + stack $stack (${stack_used} used at the deepest)"
  echo "       .bss holds the arena: $arena_line, and the firmware's 3136-byte input buffer"
  "$PYTHON" - "$ticks" "$IMAGES" "$cal_insn" "$cal_ticks" <<'PY'
import sys
ticks, n, cal_insn, cal_ticks = map(int, sys.argv[1:])
per_tick = cal_insn / cal_ticks
print(f"instructions per inference: {ticks * per_tick / n:,.0f} (QEMU -icount shift=0: 1 ns of virtual time per "
      f"instruction; the board's 25 MHz timer, {per_tick:.0f} instructions a tick, read around each "
      f"pyrt_micro_run; calibrated on a loop of {cal_insn:,} instructions). Instructions, not cycles: QEMU "
      f"models no pipeline, flash wait states or cache.")
PY
  echo "run.sh: $label: QEMU ${qemu_s} s"
  if [[ $cmp_rc -ne 0 ]]; then
    echo "run.sh: FAILED: the $label firmware's outputs differ from the host runtime's" >&2
    exit 1
  fi
}

M4F="-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16"
firmware "model" "$MODEL" "$BUILD" mps2-an386 "$M4F"

# the same model and firmware in stream mode (its own build folder: another arena.h): the same outputs, bit for bit
if [[ "${MCU_STREAM:-1}" != 0 ]]; then
  firmware "model, stream mode" "$MODEL" "$BUILD/stream" mps2-an386 "$M4F" "" 1
  if ! cmp -s <(grep '^bits ' "$BUILD/qemu.log") <(grep '^bits ' "$BUILD/stream/qemu.log"); then
    echo "run.sh: FAILED: the stream-mode firmware's outputs differ from the default mode's" >&2
    exit 1
  fi
  echo "run.sh: model, stream mode: all $IMAGES outputs bit for bit those of the default mode"
fi

# 4. the same weights as a static int8 model (its own build folders: another model.h, arena.h): on the
# Cortex-M4F (SMLAD, VFMA), then on a Cortex-M3 (no DSP extension, no FPU: the scalar dot product, soft
# float and the runtime's own fmaf), both bit for bit with the host
if [[ "${MCU_INT8:-1}" != 0 ]]; then
  INT8_MODEL="$BUILD/int8/$(basename "$MODEL" .pyrt)_int8.pyrt"
  mkdir -p "$BUILD/int8"
  echo "== int8: the same weights as a static int8 model (mcu_data.py int8)"
  (cd "$BUILD/int8" && "$PYTHON" "$HERE/mcu_data.py" int8 "$MODEL" "$DATA" "$INT8_MODEL")
  firmware "int8" "$INT8_MODEL" "$BUILD/int8" mps2-an386 "$M4F" --exact
  firmware "int8 on a Cortex-M3" "$INT8_MODEL" "$BUILD/int8-m3" mps2-an385 "-mcpu=cortex-m3 -mthumb" --exact
fi

echo "run.sh: $((SECONDS - start)) s in all"
echo "run.sh: OK: all $IMAGES predictions of the firmware match the host runtime$([[ "${MCU_INT8:-1}" != 0 ]] && echo ", and the int8 model's outputs bit for bit (Cortex-M4F and M3)")"
