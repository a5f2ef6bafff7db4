/*
 * fuzz_gguf.c — libFuzzer target for the GGUF reader: gguf_parse on the raw
 * input and, when it is accepted, gguf_print plus a check of what an accepted
 * file promises (every string and every tensor's data inside the input,
 * tensor data aligned). A broken promise traps, so libFuzzer saves the input.
 * Built only with -DPSI_FUZZ=ON and clang; see README.md. Not a unit test:
 * tests/test_gguf_fuzz.c is the short deterministic run in the test suite.
 */
#include <stdint.h>
#include <stdio.h>

#include "gguf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Opened once: the harness's only state, never read by the library. */
static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    devnull = fopen("/dev/null", "w");
    return 0;
}

static int inside(const uint8_t *base, size_t size, const void *p, uint64_t n)
{
    const uint8_t *q = p;
    return q >= base && (size_t)(q - base) <= size && n <= size - (size_t)(q - base);
}

static void check_promises(const gguf *g, const uint8_t *data, size_t size)
{
    if (g->base != data || g->size != size || !g->alignment || (g->alignment & (g->alignment - 1)) ||
        g->data_offset % g->alignment)
        __builtin_trap();
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const gguf_kv *kv = &g->kv[i];
        if (!inside(data, size, kv->key.ptr, kv->key.len) || kv->type >= GGUF_VTYPE_COUNT) __builtin_trap();
        if (kv->strs)
            for (uint64_t j = 0; j < kv->n; j++)
                if (!inside(data, size, kv->strs[j].ptr, kv->strs[j].len)) __builtin_trap();
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        uint64_t at = (uint64_t)((const uint8_t *)t->data - data);
        if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS || !inside(data, size, t->name.ptr, t->name.len) ||
            !inside(data, size, t->data, t->nbytes) || at < g->data_offset ||
            (at - g->data_offset) % g->alignment)
            __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gguf *g = NULL;
    char err[512];
    if (gguf_parse(data, size, "fuzz.gguf", &g, err, sizeof err) != PSI_OK) return 0;
    check_promises(g, data, size);
    if (devnull) gguf_print(g, devnull, 1 + (int)(size % 16));
    gguf_close(g);
    return 0;
}
