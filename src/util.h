/*
 * util.h — internal helpers shared by every module: the one allocation layer
 * (so tests can make allocations fail), overflow-checked size arithmetic,
 * error-message formatting and fp16/bf16 conversions.
 */
#ifndef PSI_UTIL_H
#define PSI_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "psi.h"

/* Map a whole regular, non-empty file read-only (*p, *size; munmap it).
 * PSI_ERR_IO with a message naming the path otherwise. */
psi_status map_file_ro(const char *path, const uint8_t **p, size_t *size, char *err, size_t n);

/* Bytes of memory this process may use: the physical memory, or a cgroup
 * limit below it (v2 memory.max, v1 memory.limit_in_bytes); 0 if unknown. */
uint64_t mem_limit(void);
/* CPUs a cgroup quota allows this process (v2 cpu.max, v1 cpu.cfs_quota_us
 * over cpu.cfs_period_us, rounded up); 0 without a quota. */
int cpu_quota(void);

/* PSI_ERR_IO with a message when a file cannot be written at out (a
 * directory, or a folder that does not exist), checked before long work. */
psi_status check_output(const char *out, char *err, size_t n);

/* PSI_ERR_INVALID_ARG with a message when out names the same file as in
 * (through links too), which writing out would replace; PSI_OK otherwise,
 * also when either does not exist. For the writers of new files. */
psi_status check_not_input(const char *out, const char *in, char *err, size_t n);

/* ---- allocation: every heap allocation of the library goes through these. */
void *mem_alloc(size_t n);
void *mem_calloc(size_t count, size_t size);
void *mem_realloc(void *p, size_t n);
/* n bytes starting on a cache line (MEM_LINE bytes), freed by mem_free.
 * For the activations the matrix kernels read in 32-byte vectors: from
 * malloc, a large block starts 16 bytes into a page, so every other load
 * straddles two lines (F16 pp512 kernel: 25 against 31 GMAC/s aligned). */
#define MEM_LINE 64
void *mem_alloc_lines(size_t n);
void mem_free(void *p);
char *mem_strndup(const char *s, size_t n);
/* Test hook: make the allocation after `n` more successful ones fail
 * (n < 0 disables). Only tests call it. */
void psi__mem_fail_after(long n);

/* ---- overflow-checked arithmetic: return true on overflow. */
static inline bool u64_add_ovf(uint64_t a, uint64_t b, uint64_t *r) { return __builtin_add_overflow(a, b, r); }
static inline bool u64_mul_ovf(uint64_t a, uint64_t b, uint64_t *r) { return __builtin_mul_overflow(a, b, r); }
static inline bool size_mul_ovf(size_t a, size_t b, size_t *r) { return __builtin_mul_overflow(a, b, r); }
static inline bool size_add_ovf(size_t a, size_t b, size_t *r) { return __builtin_add_overflow(a, b, r); }

/* ---- error messages: printf into a caller buffer (NULL or size 0 ignored). */
void err_setf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void err_vsetf(char *buf, size_t size, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

/* ---- half-precision conversions (IEEE binary16 and bfloat16). */
float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);  /* round to nearest even, as ggml/F16C do */
static inline float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
uint16_t f32_to_bf16(float f);  /* round to nearest even; NaN stays NaN */

/* ---- UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF). */
/* Length (1..4) of the valid character at s[0..n), or 0 when s does not
 * start with one (n > 0). */
size_t utf8_valid(const uint8_t *s, size_t n);
/* s[0..n) into out (size > 0 bytes, NUL-terminated) with every byte that
 * does not begin a valid character as U+FFFD, cut between characters
 * when out is full; returns the length written. For text from files or
 * clients that goes into JSON, which takes UTF-8 only. */
size_t utf8_sanitize(const uint8_t *s, size_t n, char *out, size_t size);
/* How many bytes at s[0..n) (n > 0) could begin a valid character: equals
 * the character's length for a valid one; is n (< the length it needs) for
 * a character cut by the end of the buffer; otherwise the length of the
 * invalid prefix ("maximal subpart", at least 1) that a decoder replaces by
 * one U+FFFD. *need gets the length the first byte announces (1 for a byte
 * that cannot start a character). */
size_t utf8_prefix(const uint8_t *s, size_t n, size_t *need);

/* ---- unaligned little-endian loads (GGUF data is little-endian). */
static inline uint16_t rd_u16(const void *p) { uint16_t v; memcpy(&v, p, sizeof v); return v; }
static inline uint32_t rd_u32(const void *p) { uint32_t v; memcpy(&v, p, sizeof v); return v; }
static inline uint64_t rd_u64(const void *p) { uint64_t v; memcpy(&v, p, sizeof v); return v; }
static inline float rd_f32(const void *p) { float v; memcpy(&v, p, sizeof v); return v; }

#endif
