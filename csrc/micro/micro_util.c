/*
 * micro_util.c -- the bare-metal runtime's small services: the one error buffer (the only mutable static of
 * csrc/micro) with a printf-free formatter for its messages, the CRC-32 of the file format (a 16-entry
 * nibble table: 64 bytes of flash instead of 1 KB), the UTF-8 check of tensor names, and the bounds-checked
 * byte reader every parse goes through.
 */
#include "micro_internal.h"

static char micro_error[256];

const char* pyrt_micro_last_error(void) { return micro_error; }

/* Appends s to buf[*at..cap-1), keeping room for the terminator. */
static void put_str(char* buf, size_t cap, size_t* at, const char* s) {
  while (*s && *at + 1 < cap) buf[(*at)++] = *s++;
}

static void put_unsigned(char* buf, size_t cap, size_t* at, unsigned long long v) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = (char)('0' + (int)(v % 10u));
    v /= 10u;
  } while (v);
  while (n > 0 && *at + 1 < cap) buf[(*at)++] = digits[--n];
}

size_t micro_vformat(char* buf, size_t cap, const char* fmt, va_list ap) {
  size_t at = 0;
  if (cap == 0) return 0;
  for (; *fmt && at + 1 < cap; ++fmt) {
    if (*fmt != '%' || fmt[1] == '\0') {
      buf[at++] = *fmt;
      continue;
    }
    switch (*++fmt) {
      case 's': {
        const char* s = va_arg(ap, const char*);
        put_str(buf, cap, &at, s ? s : "(null)");
        break;
      }
      case 'u': put_unsigned(buf, cap, &at, va_arg(ap, unsigned)); break;
      case 'L': put_unsigned(buf, cap, &at, va_arg(ap, unsigned long long)); break;
      case 'd': {
        const int v = va_arg(ap, int);
        if (v < 0) {
          put_str(buf, cap, &at, "-");
          put_unsigned(buf, cap, &at, (unsigned long long)(-(long long)v));
        } else {
          put_unsigned(buf, cap, &at, (unsigned long long)v);
        }
        break;
      }
      default: buf[at++] = *fmt; break; /* %% and anything unknown: the character itself */
    }
  }
  buf[at] = '\0';
  return at;
}

size_t micro_format(char* buf, size_t cap, const char* fmt, ...) {
  va_list ap;
  size_t n;
  va_start(ap, fmt);
  n = micro_vformat(buf, cap, fmt, ap);
  va_end(ap);
  return n;
}

pyrt_status micro_fail(pyrt_status st, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  micro_vformat(micro_error, sizeof micro_error, fmt, ap);
  va_end(ap);
  return st;
}

/* CRC-32 (IEEE, reflected 0xEDB88320), four bits at a time. */
uint32_t micro_crc32(const uint8_t* p, size_t n) {
  static const uint32_t nibble[16] = {0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
                                      0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
                                      0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};
  uint32_t crc = 0xFFFFFFFFu;
  size_t i;
  for (i = 0; i < n; ++i) {
    crc ^= p[i];
    crc = (crc >> 4) ^ nibble[crc & 15u];
    crc = (crc >> 4) ^ nibble[crc & 15u];
  }
  return crc ^ 0xFFFFFFFFu;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF (as csrc/common/utf8.h). */
int micro_utf8_valid(const uint8_t* p, size_t n) {
  static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  size_t i = 0, len, k;
  uint32_t cp;
  while (i < n) {
    const uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1Fu;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0Fu;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07u;
    else return 0;
    if (len > n - i) return 0;
    for (k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (p[i + k] & 0x3Fu);
    }
    if (cp < min_cp[len] || cp > 0x10FFFFu || (cp >= 0xD800u && cp <= 0xDFFFu)) return 0;
    i += len;
  }
  return 1;
}

pyrt_status micro_take(micro_reader* r, uint64_t n, const uint8_t** out) {
  if (n > (uint64_t)(r->size - r->pos))
    return micro_fail(PYRT_BAD_FORMAT, "%s: data ends early (needs %L more bytes at offset %L, %L left)", r->what,
                      (unsigned long long)n, (unsigned long long)r->pos, (unsigned long long)(r->size - r->pos));
  if (out) *out = r->p + r->pos;
  r->pos += (size_t)n;
  return PYRT_OK;
}

pyrt_status micro_get_u32(micro_reader* r, uint32_t* out) {
  const uint8_t* p = NULL;
  const pyrt_status st = micro_take(r, 4, &p);
  if (st == PYRT_OK) *out = micro_u32(p);
  return st;
}

pyrt_status micro_skip_to(micro_reader* r, size_t multiple) {
  const size_t pad = (multiple - r->pos % multiple) % multiple;
  return micro_take(r, pad, NULL);
}
