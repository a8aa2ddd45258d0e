/*
 * semihost.c -- the two semihosting calls the firmware needs and the number formatting it prints with (no
 * printf: newlib's pulls in its heap and its reentrancy structures). A call is `bkpt 0xAB` with the
 * operation in r0 and its argument (a pointer) in r1; the host writes the result to r0.
 */
#include "semihost.h"

#define SYS_WRITE0 0x04
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026

static uint32_t semihost_call(uint32_t op, const void* arg) {
  register uint32_t r0 __asm__("r0") = op;
  register const void* r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void sh_puts(const char* s) { semihost_call(SYS_WRITE0, s); }

void sh_put_u32(uint32_t v) {
  char buf[11];
  char* p = buf + sizeof buf - 1;
  *p = '\0';
  do { *--p = (char)('0' + v % 10); v /= 10; } while (v);
  sh_puts(p);
}

void sh_exit(int status) {
  /* SYS_EXIT_EXTENDED: a block {reason, exit status} (plain SYS_EXIT on AArch32 carries no status) */
  const uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)status};
  semihost_call(SYS_EXIT_EXTENDED, block);
  for (;;) {}
}
