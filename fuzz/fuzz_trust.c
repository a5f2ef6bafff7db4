/*
 * fuzz_trust.c — the trust parsers on arbitrary bytes: the input is used in
 * turn as a Llama Guard verdict, a signature file (FILE.sig), a public key
 * file and a licence acceptance store. Each must give a status, never crash or accept: a
 * signature file made of fuzz bytes can never verify (the fuzzer cannot
 * forge ed25519), so PSI_OK traps.
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
    if (scratch_first("fuzz_trust")) {
        char err[256], name[128];
        snprintf(name, sizeof name, "%s/k", dir);
        if (psi_keygen(name, err, sizeof err) != PSI_OK) abort();
        put("model", (const uint8_t *)"model bytes", 11);
    }
    char err[256], pub[128], model[128], store[128];
    snprintf(pub, sizeof pub, "%s/k.pub", dir);
    snprintf(model, sizeof model, "%s/model", dir);
    snprintf(store, sizeof store, "%s/store.json", dir);
    psi_guard_verdict v;
    if (psi_guard_parse((const char *)data, size, &v) == PSI_OK && v.safe && v.categories) __builtin_trap();
    put("model.sig", data, size);
    if (psi_verify_file(pub, model, NULL, NULL, err, sizeof err) == PSI_OK) __builtin_trap();
    put("other.pub", data, size);
    snprintf(pub, sizeof pub, "%s/other.pub", dir);
    psi_verify_file(pub, model, NULL, NULL, err, sizeof err);
    put("store.json", data, size);
    psi_license_info li = {.id = "llama3", .need = PSI_LICENSE_ACCEPT};
    bool yes;
    psi_license_is_accepted(store, model, &li, &yes, err, sizeof err);
    return 0;
}
