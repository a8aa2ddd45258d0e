/*
 * main.c -- LeNet-5 on MNIST on a Cortex-M4F: the compressed .pyrt model runs from flash through the
 * bare-metal runtime (pyruntime_micro.h), every byte of RAM in one static arena.
 *
 * model.h (pyruntime export-c) holds the model file as a const array, so it stays in flash; images.h
 * (mcu_data.py images) holds N test images as uint8 28x28 and their labels. The build sizes the arena: a
 * first image built with MCU_SIZE_ONLY prints pyrt_micro_memory_bytes' figures and exits, and the
 * firmware is then built with -DARENA_BYTES=<arena_bytes> (see the Makefile). Each image is normalised as
 * the model was trained (examples/lenet5.py through pyruntime.datasets.load_mnist: x / 255, then minus
 * the MNIST mean 0.1307, divided by its std 0.3081, in float32) and run; one line per image:
 *     image <i>: predicted <d> label <l>
 *     bits <i> <h>
 * (h: FNV-1a of the scores' bytes, so the host can check every output bit for bit), then the count of correct ones and the timer ticks of the inferences. Under QEMU with -icount shift=0
 * every instruction takes 1 ns of virtual time, so the board's 25 MHz timer counts one tick per 40
 * instructions; the firmware also times a loop of known length ("calibration") so the script that reads
 * the output turns ticks into instructions without assuming the clock.
 *
 * MCU_LOAD_FLAGS (Makefile LOAD_FLAGS, default 0) are the flags given to pyrt_micro_memory_bytes_ex and
 * pyrt_micro_load_ex: 1 (PYRT_MICRO_STREAM_WEIGHTS) leaves the Huffman-coded weight streams in flash and
 * decodes them during each run, for a smaller arena and more instructions per inference.
 */
#include <stdint.h>

#include "images.h"
#include "model.h"
#include "pyruntime_micro.h"
#include "semihost.h"

#ifndef MODEL_ARRAY
#define MODEL_ARRAY model_pyrt
#endif
#define MODEL_LEN_(a) a##_len
#define MODEL_LEN(a) MODEL_LEN_(a)
#ifndef MCU_LOAD_FLAGS
#define MCU_LOAD_FLAGS 0
#endif

uint32_t stack_used_bytes(void);
uint32_t stack_size_bytes(void);

static void put_sizes(const pyrt_micro_sizes* s) {
  sh_puts("arena_bytes ");
  sh_put_u32((uint32_t)s->arena_bytes);
  sh_puts(" (weights ");
  sh_put_u32((uint32_t)s->weight_bytes);
  sh_puts(", activations ");
  sh_put_u32((uint32_t)s->activation_bytes);
  sh_puts(", model tables ");
  sh_put_u32((uint32_t)s->model_bytes);
  sh_puts(")\n");
}

static int fail(const char* what, pyrt_status st) {
  sh_puts(what);
  sh_puts(" failed (status ");
  sh_put_u32((uint32_t)st);
  sh_puts("): ");
  sh_puts(pyrt_micro_last_error());
  sh_puts("\n");
  return 1;
}

#ifdef MCU_SIZE_ONLY

int main(void) {
  pyrt_micro_sizes need;
  pyrt_status st = pyrt_micro_memory_bytes_ex(MODEL_ARRAY, MODEL_LEN(MODEL_ARRAY), MCU_LOAD_FLAGS, &need);
  if (st != PYRT_OK) return fail("pyrt_micro_memory_bytes", st);
  put_sizes(&need);
  return 0;
}

#else

#ifndef ARENA_BYTES
#error "build with -DARENA_BYTES=<bytes> (the Makefile takes it from the MCU_SIZE_ONLY image's output)"
#endif

/* FNV-1a (32-bit) of n floats' bytes, little-endian as they lie in memory (mcu_data.py fnv1a). */
static uint32_t fnv1a(const float* x, uint32_t n) {
  const uint8_t* p = (const uint8_t*)x;
  uint32_t h = 0x811C9DC5u, i;
  for (i = 0; i < 4u * n; ++i) h = (h ^ p[i]) * 0x01000193u;
  return h;
}

static void put_hex(uint32_t v) {
  char s[9];
  int i;
  for (i = 7; i >= 0; --i, v >>= 4) s[i] = "0123456789abcdef"[v & 15u];
  s[8] = '\0';
  sh_puts(s);
}

/* CMSDK APB timer 0 of the MPS2 board: a 32-bit down-counter clocked by the 25 MHz peripheral clock. */
#define TIMER0_CTRL (*(volatile uint32_t*)0x40000000u)
#define TIMER0_VALUE (*(volatile uint32_t*)0x40000004u)
#define TIMER0_RELOAD (*(volatile uint32_t*)0x40000008u)

static void timer_start(void) {
  TIMER0_CTRL = 0;
  TIMER0_RELOAD = 0xFFFFFFFFu;
  TIMER0_VALUE = 0xFFFFFFFFu;
  TIMER0_CTRL = 1; /* enable, no interrupt */
}

static uint32_t timer_ticks(void) { return 0xFFFFFFFFu - TIMER0_VALUE; }

/* 2 instructions (subs, bne) per iteration: a known instruction count to calibrate the timer against. */
#define CALIBRATION_ITERATIONS 1000000u
static uint32_t calibration_ticks(void) {
  uint32_t n = CALIBRATION_ITERATIONS;
  timer_start();
  uint32_t t0 = timer_ticks();
  __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
  return timer_ticks() - t0;
}

#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FP)
#define MCU_CORE "a Cortex-M4F (mps2-an386)"
#else /* the Makefile's ARCH set to -mcpu=cortex-m3 -mthumb, run on mps2-an385 */
#define MCU_CORE "a Cortex-M3 (mps2-an385: no FPU, no DSP extension)"
#endif

static uint8_t arena[ARENA_BYTES] __attribute__((aligned(16)));

int main(void) {
  sh_puts("pyruntime micro: LeNet-5 on " MCU_CORE ", model ");
  sh_put_u32((uint32_t)MODEL_LEN(MODEL_ARRAY));
  sh_puts(" bytes in flash");
  sh_puts((MCU_LOAD_FLAGS & PYRT_MICRO_STREAM_WEIGHTS) ? ", weight streams decoded during each run\n" : "\n");
  pyrt_micro_sizes need;
  pyrt_status st = pyrt_micro_memory_bytes_ex(MODEL_ARRAY, MODEL_LEN(MODEL_ARRAY), MCU_LOAD_FLAGS, &need);
  if (st != PYRT_OK) return fail("pyrt_micro_memory_bytes", st);
  put_sizes(&need);
  pyrt_micro_model* model;
  st = pyrt_micro_load_ex(MODEL_ARRAY, MODEL_LEN(MODEL_ARRAY), MCU_LOAD_FLAGS, arena, sizeof arena, &model);
  if (st != PYRT_OK) return fail("pyrt_micro_load", st);
  if (pyrt_micro_input_size(model) != 28 * 28 || pyrt_micro_output_size(model) < 2 ||
      pyrt_micro_output_size(model) > 16) {
    sh_puts("the model does not take one 28x28 image to at most 16 scores\n");
    return 1;
  }
  const uint32_t classes = (uint32_t)pyrt_micro_output_size(model);

  static float input[28 * 28];
  float scores[16];
  uint32_t correct = 0, ticks = 0;
  for (uint32_t i = 0; i < MCU_IMAGE_COUNT; ++i) {
    for (uint32_t k = 0; k < 28 * 28; ++k)
      input[k] = ((float)mcu_images[i][k] / 255.0f - 0.1307f) / 0.3081f; /* as load_mnist, in float32 */
    timer_start();
    const uint32_t t0 = timer_ticks();
    st = pyrt_micro_run(model, input, scores);
    ticks += timer_ticks() - t0;
    if (st != PYRT_OK) return fail("pyrt_micro_run", st);
    uint32_t best = 0;
    for (uint32_t c = 1; c < classes; ++c)
      if (scores[c] > scores[best]) best = c; /* the first of equal maxima, as numpy's argmax */
    correct += best == mcu_labels[i];
    sh_puts("image ");
    sh_put_u32(i);
    sh_puts(": predicted ");
    sh_put_u32(best);
    sh_puts(" label ");
    sh_put_u32(mcu_labels[i]);
    sh_puts("\nbits ");
    sh_put_u32(i);
    sh_puts(" ");
    put_hex(fnv1a(scores, classes));
    sh_puts("\n");
  }
  sh_puts("correct ");
  sh_put_u32(correct);
  sh_puts(" of ");
  sh_put_u32(MCU_IMAGE_COUNT);
  sh_puts("\ninference ticks ");
  sh_put_u32(ticks);
  sh_puts(" for ");
  sh_put_u32(MCU_IMAGE_COUNT);
  sh_puts(" images\ncalibration ");
  sh_put_u32(2u * CALIBRATION_ITERATIONS);
  sh_puts(" instructions = ");
  sh_put_u32(calibration_ticks());
  sh_puts(" ticks\nstack used ");
  sh_put_u32(stack_used_bytes());
  sh_puts(" of ");
  sh_put_u32(stack_size_bytes());
  sh_puts(" bytes\n");
  return 0;
}

#endif
