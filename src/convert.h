/*
 * convert.h — converters from other checkpoint formats to GGUF. The public
 * entry points are in psi.h; these in-memory forms exist so the parsers can
 * be fuzzed and tested without files.
 */
#ifndef PSI_CONVERT_H
#define PSI_CONVERT_H

#include "gguf.h"

/* Parse a llama2.c checkpoint and tokenizer held in memory and describe
 * the GGUF to write in *out (tensor data is borrowed from `model`, which
 * must outlive the writer). Names are used in messages. */
psi_status l2c_build(const void *model, size_t model_size, const char *model_name, const void *tok,
                     size_t tok_size, const char *tok_name, gguf_writer **out, char *err, size_t n);

#endif
