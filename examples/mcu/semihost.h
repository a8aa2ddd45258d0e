/*
 * semihost.h -- console output and exit through Arm semihosting (bkpt 0xAB), no C library needed:
 * QEMU (-semihosting-config enable=on,target=native) or a debugger services the call. SYS_WRITE0 prints a
 * NUL-terminated string; SYS_EXIT_EXTENDED ends the program with an exit status (QEMU's own status).
 */
#ifndef MCU_SEMIHOST_H_
#define MCU_SEMIHOST_H_

#include <stdint.h>

void sh_puts(const char* s);                   /* the string as it is (no newline added) */
void sh_put_u32(uint32_t v);                   /* decimal */
__attribute__((noreturn)) void sh_exit(int status);

#endif /* MCU_SEMIHOST_H_ */
