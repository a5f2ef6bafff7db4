/*
 * fuzz_tokenizer.c — libFuzzer target for the tokenization of arbitrary
 * bytes. The vocabulary is loaded once from $PSI_FUZZ_VOCAB (default
 * ../shared/data/vocab/ggml-vocab-llama-spm.gguf; vocab/llama3-vocab.gguf
 * fuzzes the Llama 3 BPE tokenizer). Every input must tokenize, and decoding
 * the ids must give the input back: SentencePiece's vocabulary has byte
 * fallback, so every byte string is representable — except text holding
 * U+2581 itself, its space mark, which decodes as ' '; the BPE tokenizer
 * reads each byte that starts no valid UTF-8 character as U+FFFD (as
 * llama.cpp does), so its input comes back with those replaced.
 * The first input byte's low bit asks for parse_special (special-token
 * text becomes tokens; the round trip is then not checked, as control
 * tokens decode to nothing).
 * Built only with -DPSI_FUZZ=ON and clang; see README.md.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static gguf *g;
static vocab *v;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *path = getenv("PSI_FUZZ_VOCAB");
    if (!path) path = "../shared/data/vocab/ggml-vocab-llama-spm.gguf";
    char err[512];
    if (gguf_open(path, &g, err, sizeof err) || vocab_load(&v, g, err, sizeof err)) {
        fprintf(stderr, "fuzz_tokenizer: %s (set PSI_FUZZ_VOCAB)\n", err);
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096) return 0;
    bool special = data[0] & 1;
    data++;
    size--;
    int32_t ids[8192], n = 0;
    char err[256];
    if (vocab_tokenize(v, (const char *)data, size, false, special, ids, 8192, &n, err, sizeof err) != PSI_OK)
        __builtin_trap();
    if (special) return 0;
    char out[4 * 8192 + 16];
    size_t len = 0;
    for (int32_t i = 0; i < n; i++) {
        int32_t k = vocab_token_to_piece(v, i ? ids[i - 1] : -1, ids[i], out + len, sizeof out - len);
        if (k < 0 || (size_t)k > sizeof out - len) __builtin_trap();
        len += (size_t)k;
    }
    if (v->kind == VOCAB_BPE) {
        static char want[3 * 4096];
        size_t w = 0;
        for (size_t i = 0; i < size;) {
            size_t l = utf8_valid(data + i, size - i);
            memcpy(want + w, l ? (const char *)data + i : "\xef\xbf\xbd", l ? l : 3);
            w += l ? l : 3;
            i += l ? l : 1;
        }
        if (len != w || memcmp(out, want, w)) __builtin_trap();
        return 0;
    }
    bool has_mark = false;
    for (size_t i = 0; i + 2 < size; i++) has_mark |= data[i] == 0xE2 && data[i + 1] == 0x96 && data[i + 2] == 0x81;
    if (!has_mark && (len != size || memcmp(out, data, size))) __builtin_trap();
    return 0;
}
