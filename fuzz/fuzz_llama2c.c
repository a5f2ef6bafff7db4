/*
 * fuzz_llama2c.c — libFuzzer target for the llama2.c checkpoint/tokenizer
 * parser behind `psi convert --from llama2c`. Input layout: u32 n, then n
 * bytes of checkpoint, then the tokenizer file (n is clamped to the input).
 * Built only with -DPSI_FUZZ=ON and clang; see README.md.
 */
#include <stdint.h>
#include <string.h>

#include "convert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) return 0;
    uint32_t n;
    memcpy(&n, data, 4);
    data += 4;
    size -= 4;
    if (n > size) n = (uint32_t)size;
    char err[512];
    gguf_writer *w = NULL;
    psi_status rc = l2c_build(data, n, "model.bin", data + n, size - n, "tok.bin", &w, err, sizeof err);
    if (rc == PSI_OK && !w) __builtin_trap();
    if (rc != PSI_OK && (w || !err[0] || strchr(err, '\n'))) __builtin_trap();
    gguf_writer_free(w);
    return 0;
}
