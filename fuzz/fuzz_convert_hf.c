/*
 * fuzz_convert_hf.c — `psi convert --from hf` (src/convert_hf.c) on a whole
 * checkpoint folder made from each input: up to four parts separated by NUL
 * bytes, config.json, the safetensors header (a JSON object, written as
 * model.safetensors after its 8-byte length and followed by 64 KiB of zero
 * tensor data), tokenizer.json and tokenizer_config.json; a missing or empty
 * part leaves its file out. A conversion it accepts must write a GGUF that
 * psi's reader opens; a refusal must say why in one line. Anything else
 * traps. Seed: fuzz/seed_convert_hf.py (a consistent 1-layer model).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_scratch.h"
#include "gguf.h"
#include "psi.h"

enum { HEADER_MAX = 64 * 1024, ZEROS = 64 * 1024 }; /* a longer header part is cut */

static void put_safetensors(const uint8_t *hdr, size_t n)
{
    static uint8_t buf[8 + HEADER_MAX + ZEROS];
    if (n > HEADER_MAX) n = HEADER_MAX;
    uint64_t len = n;
    memcpy(buf, &len, 8);
    memcpy(buf + 8, hdr, n);
    memset(buf + 8 + n, 0, ZEROS);
    put("model.safetensors", buf, 8 + n + ZEROS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[4] = {"config.json", "model.safetensors", "tokenizer.json",
                                         "tokenizer_config.json"};
    scratch_first("fuzz_convert_hf");
    const uint8_t *p = data, *end = data + size;
    for (int k = 0; k < 4; k++) {
        const uint8_t *z = p < end ? memchr(p, 0, (size_t)(end - p)) : NULL;
        size_t n = p < end ? (size_t)((z ? z : end) - p) : 0;
        char path[128];
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        unlink(path);
        if (n) {
            if (k == 1) put_safetensors(p, n);
            else put(names[k], p, n);
        }
        p = z ? z + 1 : end;
    }
    char out[128], err[1024] = "";
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    unlink(out);
    psi_status rc = psi_convert_hf(dir, out, NULL, err, sizeof err);
    if (rc != PSI_OK) {
        if (!err[0] || strchr(err, '\n')) __builtin_trap();
        if (access(out, F_OK) == 0) __builtin_trap(); /* no file left behind a refusal */
        return 0;
    }
    gguf *g = NULL;
    if (gguf_open(out, &g, err, sizeof err) != PSI_OK) __builtin_trap();
    gguf_close(g);
    return 0;
}
