/* testutil.h — tiny assertion helpers for psi's C tests, and a byte builder
 * for the binary files (GGUF, llama2.c) that tests make by hand. */
#ifndef PSI_TESTUTIL_H
#define PSI_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern int tu_failures;
extern int tu_checks;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        tu_checks++;                                                                         \
        if (!(cond)) {                                                                       \
            tu_failures++;                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);          \
        }                                                                                    \
    } while (0)

#define CHECKF(cond, ...)                                                                    \
    do {                                                                                     \
        tu_checks++;                                                                         \
        if (!(cond)) {                                                                       \
            tu_failures++;                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
        }                                                                                    \
    } while (0)

/* $PSI_TEST_DATA or ../shared/data. */
const char *tu_data_dir(void);
/* Path under the data dir in a static buffer rotation (4 slots). */
const char *tu_data(const char *rel);
/* A fresh scratch directory for this test ($PSI_TMP/<name>). */
const char *tu_tmpdir(const char *name);
/* Read a whole file; returns malloc'd buffer (NUL-terminated) or NULL. */
char *tu_read_file(const char *path, size_t *size);
/* Print "N passed, M failed" and return the exit status. */
int tu_finish(const char *name);

/* Run argv[0] with argv (NULL-terminated), capturing stdout and stderr into
 * malloc'd NUL-terminated strings (either pointer may be NULL to discard).
 * Returns the exit status, or 128+signal when it died on a signal, or -1
 * when it could not be started. */
int tu_run(const char *const argv[], char **out, char **err);
/* The integers of a JSON array as "1 2 3 " (psi --tokens); malloc'd. */
struct json_t;
char *tu_ids_arg(struct json_t *arr);
/* Path of the psi program ($PSI, set by CTest). */
const char *tu_psi(void);

/* A growable byte buffer for hand-made files; zero-initialise it
 * (`tu_buf b = {0};`) and free it with tu_buf_free. Numbers go out
 * little-endian, the byte order of GGUF and of llama2.c checkpoints as
 * written on x86 and ARM. Out of memory exits the test with status 2. */
typedef struct tu_buf {
    uint8_t *p;
    size_t len, cap;
} tu_buf;

void tu_put(tu_buf *b, const void *src, size_t n);
void tu_put_u8(tu_buf *b, uint8_t v);
void tu_put_u16(tu_buf *b, uint16_t v);
void tu_put_u32(tu_buf *b, uint32_t v);
void tu_put_u64(tu_buf *b, uint64_t v);
void tu_put_i32(tu_buf *b, int32_t v);
void tu_put_f32(tu_buf *b, float v); /* the IEEE bits, unchanged (NaNs too) */
void tu_put_f64(tu_buf *b, double v);
/* Zero bytes until len is a multiple of align. */
void tu_put_pad(tu_buf *b, size_t align);
/* GGUF string: u64 length, then the bytes without a NUL. */
void tu_put_gguf_str(tu_buf *b, const char *s);
/* GGUF metadata key and value type; the caller writes the value. */
void tu_put_gguf_key(tu_buf *b, const char *key, uint32_t type);
/* GGUF tensor info: name, n_dims, ne[0..n_dims), type, offset. */
void tu_put_gguf_tinfo(tu_buf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                       uint64_t offset);
/* Frees b->p and zeroes *b, ready for reuse. */
void tu_buf_free(tu_buf *b);

/* xorshift64*: deterministic test data; each test keeps its own state. */
uint64_t tu_rng_u64(uint64_t *state);
float tu_rng_f32(uint64_t *state); /* uniform in [-1, 1) */

/* Tokenize (no special-token parsing) into a malloc'd array; *n = count,
 * or -1 (and NULL) on error, with the message in err. */
struct vocab;
int32_t *tu_tokenize(const struct vocab *v, const char *text, size_t len, int bos, int32_t *n, char *err,
                     size_t err_size);

#endif
