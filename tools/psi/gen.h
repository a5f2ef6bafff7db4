/*
 * gen.h — what the generating sub-commands (run, logits, tokenize,
 * detokenize, chat) share: their options, the option parser, and opening
 * a model with a prompt and a context.
 */
#ifndef PSI_GEN_H
#define PSI_GEN_H

#include <stdbool.h>
#include <stdint.h>

#include "psi.h"
#include "trust.h"

typedef struct opts {
    const char *cmd;
    const char *model;
    const char *prompt;
    const char *prompt_file;
    const char *tokens;
    const char *out;
    long n_predict;
    long n_threads;
    long n_ctx;
    double temp, top_p, min_p;
    long top_k;
    uint64_t seed;
    bool seed_set;
    bool json;
    bool no_bos;
    bool ignore_eos;
    bool pieces;
    bool parse_special;
    char *detok_ids; /* detokenize: the ids given as arguments, joined */
    bool verbose;
    bool no_mmap; /* --no-mmap: weights read into memory, not mapped from the file */
    psi_type kv_type;
    const char *system;        /* chat: --system */
    const char *chat_template; /* chat: --chat-template */
    trust_opts trust;          /* run, logits, chat: licence and signature checks */
} opts;

/* Parse the options; 0 = parsed, 1 = error (printed), -1 = help printed. */
int gen_parse_opts(opts *o, int argc, char **argv, const char *help);

typedef struct session {
    psi_model *model;
    psi_context *ctx;
    int32_t *prompt;
    int32_t n_prompt;
} session;

/* Load the model and turn -p / -f / --tokens into prompt ids; with
 * need_ctx also make a context with room for the prompt + extra_ctx. */
int gen_session_open(session *s, const opts *o, bool need_ctx, long extra_ctx);
void gen_session_free(session *s);

/* The sampler the options describe; NULL (error printed) when invalid. */
psi_sampler *gen_sampler(const opts *o);

/* psi_context_decode of a prompt (logits for its last token only), in
 * chunks, with a progress line on stderr when it is a terminal and the
 * prompt takes more than a second; the same results as one call. */
psi_status gen_prefill(const char *cmd, psi_context *ctx, const int32_t *toks, int32_t n);

/* Monotonic clock in milliseconds. */
double gen_now_ms(void);

#endif
