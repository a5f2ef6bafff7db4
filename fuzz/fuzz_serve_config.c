/*
 * fuzz_serve_config.c — `psi serve --config` (tools/psi/serve_config.c) on
 * arbitrary bytes, written to a scratch folder next to an empty "m.gguf"
 * and an empty "k.pub" so that paths can resolve. A config it accepts must
 * keep the promises the server relies on: 1 to SRV_MAX_MODELS models with
 * distinct names, distinct key names and hashes, keys naming only models
 * that exist, and no restricted model without keys. Anything else traps.
 * hf: references are answered "not one" here (no network in a fuzzer).
 * Every refusal prints its line on stderr: run with -close_fd_mask=2.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_scratch.h"
#include "hub.h"
#include "serve.h"

bool hub_is_ref(const char *s)
{
    (void)s;
    return false;
}

char *hub_model_path(const char *cmd, const char *ref)
{
    (void)cmd;
    (void)ref;
    return NULL;
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (scratch_first("fuzz_serve_config")) {
        put("m.gguf", data, 0);
        put("k.pub", data, 0);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/config.json", dir);
    put("config.json", data, size);
    srv_front f = {.cfg = {.config_path = path}};
    if (config_load(&f) == 0) {
        if (f.n_models < 1 || f.n_models > SRV_MAX_MODELS) __builtin_trap();
        for (int i = 0; i < f.n_models; i++) {
            const srv *m = f.models[i];
            if (!m->model_id || !m->cfg.model_path || m->index != i || m->front != &f) __builtin_trap();
            if (m->restricted && !f.n_keys) __builtin_trap();
            for (int j = 0; j < i; j++)
                if (!strcmp(m->model_id, f.models[j]->model_id)) __builtin_trap();
        }
        for (size_t i = 0; i < f.n_keys; i++) {
            const srv_key *k = &f.keys[i];
            if (f.n_models < 64 && k->models >> f.n_models) __builtin_trap();
            if (!k->name[0] || memchr(k->name, 0, sizeof k->name) == NULL) __builtin_trap();
            for (size_t j = 0; j < i; j++)
                if (!strcmp(k->name, f.keys[j].name) || !memcmp(k->hash, f.keys[j].hash, sizeof k->hash))
                    __builtin_trap();
        }
    }
    srv_models_free(&f);
    free(f.keys);
    return 0;
}
