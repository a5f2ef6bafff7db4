/*
 * fuzz_model.c — the model loader (psi_model_load: hyperparameters, tensor
 * table, types and shapes, tokenizer, repacking) on each input as a GGUF
 * file, and when it loads, a 4-token prompt through a 16-token context (the
 * forward pass over whatever shapes the loader let through), its logits
 * read. A refusal must say why in one line; anything
 * that crashes or trips ASan/UBSan stops the run. Seed: a small model,
 * e.g. ../shared/data/models/stories260K.gguf (1.1 MB: run with -max_len
 * at its size or more). One thread, so a run is deterministic.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_scratch.h"
#include "psi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    scratch_first("fuzz_model");
    put("m.gguf", data, size);
    char path[128], err[1024] = "";
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    psi_model *m = NULL;
    if (psi_model_load(path, NULL, &m, err, sizeof err) != PSI_OK) {
        if (m || !err[0] || strchr(err, '\n')) __builtin_trap();
        return 0;
    }
    psi_context_params cp = psi_context_default_params();
    cp.n_ctx = 16;
    cp.n_threads = 1;
    psi_context *c = NULL;
    if (psi_context_new(m, &cp, &c, err, sizeof err) == PSI_OK) {
        int32_t nv = psi_model_n_vocab(m), toks[4];
        for (int i = 0; i < 4; i++) toks[i] = nv > 0 ? (int32_t)((uint32_t)(i * 7 + 1) % (uint32_t)nv) : 0;
        if (psi_context_decode(c, toks, 4, false) == PSI_OK) {
            const float *l = psi_context_logits(c, -1);
            volatile float s = 0;
            for (int32_t k = 0; l && k < nv; k++) s += l[k];
            (void)s;
        }
        psi_context_free(c);
    }
    psi_model_free(m);
    return 0;
}
