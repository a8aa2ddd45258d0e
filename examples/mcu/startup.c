/*
 * startup.c -- reset and vector table for the Cortex-M4F of the MPS2 AN386 board (mps2_an386.ld).
 *
 * The core loads the initial stack pointer from word 0 of the vector table and jumps to word 1, the reset
 * handler, which: enables the FPU (CPACR: full access to CP10/CP11, or the first float instruction faults),
 * copies .data's initial values from flash to RAM, zeroes .bss, paints the unused stack with a pattern (so
 * main can measure how deep the stack went), and calls main. Every fault lands in one handler that reports
 * it through semihosting and exits with status 2, so a crash under QEMU ends the run instead of hanging it.
 */
#include <stdint.h>

#include "semihost.h"

extern uint32_t __data_start[], __data_end[], __data_load[], __bss_start[], __bss_end[];
extern uint32_t __stack_bottom[], __stack_top[];
int main(void);

#define CPACR (*(volatile uint32_t*)0xE000ED88u)
#define STACK_PAINT 0xA5A5A5A5u

void reset_handler(void) {
  CPACR |= 0xFu << 20; /* CP10 and CP11 (the FPU): full access */
  __asm__ volatile("dsb\n\tisb" ::: "memory");
  for (uint32_t *src = __data_load, *dst = __data_start; dst < __data_end;) *dst++ = *src++;
  for (uint32_t* p = __bss_start; p < __bss_end;) *p++ = 0;
  /* paint the stack below this frame (64 bytes of margin under the current stack pointer) */
  uint32_t* sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  for (uint32_t* p = __stack_bottom; p < sp - 16;) *p++ = STACK_PAINT;
  sh_exit(main());
}

/* Bytes of stack ever used: the painted words the program has not overwritten are the unused ones. */
uint32_t stack_used_bytes(void) {
  const uint32_t* p = __stack_bottom;
  while (p < __stack_top && *p == STACK_PAINT) ++p;
  return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

uint32_t stack_size_bytes(void) { return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)__stack_bottom); }

static void fault_handler(void) {
  sh_puts("fault: the firmware crashed (HardFault, MemManage, BusFault or UsageFault)\n");
  sh_exit(2);
}

static void default_handler(void) {
  sh_puts("fault: unexpected interrupt\n");
  sh_exit(2);
}

/* 16 core exceptions; the board's interrupts are never enabled, so none of their vectors is needed. */
__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(uintptr_t)__stack_top, /* initial SP */
    reset_handler,
    default_handler, /* NMI */
    fault_handler,   /* HardFault */
    fault_handler,   /* MemManage */
    fault_handler,   /* BusFault */
    fault_handler,   /* UsageFault */
    0, 0, 0, 0,
    default_handler, /* SVCall */
    default_handler, /* DebugMonitor */
    0,
    default_handler, /* PendSV */
    default_handler, /* SysTick */
};
