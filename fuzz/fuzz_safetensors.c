/*
 * fuzz_safetensors.c — libFuzzer target for the safetensors header parser
 * behind `psi convert --from hf`. The input is a whole file; every tensor the
 * parser accepts is read end to end, so an offset it let through that points
 * outside the input shows up under ASan. Built only with -DPSI_FUZZ=ON and
 * clang; see README.md.
 */
#include <stdint.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    st_file *f = NULL;
    psi_status rc = st_parse(data, size, "fuzz.safetensors", &f, err, sizeof err);
    if (rc == PSI_OK && !f) __builtin_trap();
    if (rc != PSI_OK && (f || !err[0] || strchr(err, '\n'))) __builtin_trap();
    volatile float sink = 0;
    for (size_t i = 0; f && i < f->n_tensors; i++)
        for (uint64_t j = 0; j < f->tensors[i].n_elems; j++) sink += st_get_f32(&f->tensors[i], j);
    (void)sink;
    st_close(f);
    return 0;
}
