/*
 * fuzz_serve_request.c — `psi serve`'s request parser (api_parse in
 * tools/psi/serve_api.c) on arbitrary bytes: the first byte's low bit
 * picks /v1/chat/completions or /v1/completions, the rest is the body.
 * The body is routed first (api_route: its "model" field, "m" here, or
 * the only model when it has none), as the server does. The model (its
 * tokenizer and chat template only) is loaded once from
 * $PSI_FUZZ_MODEL (default ../shared/data/reference/llama3-tiny-Q8_0.gguf),
 * with a 64-token context so that long prompts meet the context check.
 *
 * Whatever the body, a request the parser accepts must be one the engine
 * can run: 1..n_ctx prompt tokens, each in the vocabulary, at most
 * SRV_MAX_STOP non-empty stop strings, sampler settings within OpenAI's
 * ranges, logprobs within 0..SRV_MAX_TOP_LOGPROBS, logit_bias entries
 * in the vocabulary and within ±100. A refusal must carry a
 * 4xx/5xx status, a type and a message, and api_error_json must give a
 * JSON object. Anything else traps. Built only with -DPSI_FUZZ=ON and
 * clang; see README.md.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static srv_front front;
static srv s;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *path = getenv("PSI_FUZZ_MODEL");
    if (!path) path = "../shared/data/reference/llama3-tiny-Q8_0.gguf";
    psi_model_params mp = psi_model_default_params();
    mp.vocab_only = true;
    char err[512];
    if (psi_model_load(path, &mp, &s.model, err, sizeof err) != PSI_OK ||
        psi_chat_template_detect(s.model, &s.tmpl, err, sizeof err) != PSI_OK) {
        fprintf(stderr, "fuzz_serve_request: %s (set PSI_FUZZ_MODEL)\n", err);
        exit(1);
    }
    s.tmpl_stop = psi_chat_stop_text(s.tmpl);
    s.front = &front;
    s.model_id = "m";
    s.n_ctx = 64;
    static srv *models[1] = {&s};
    front.models = models;
    front.n_models = 1;
    pthread_mutex_init(&s.lock, NULL);
    pthread_mutex_init(&s.tok_lock, NULL);
    return 0;
}

static void check_error(const api_error *e)
{
    if (e->status < 400 || e->status > 599 || !e->type || !e->message[0]) __builtin_trap();
    char *txt = api_error_json(e);
    if (!txt) __builtin_trap();
    json_t *o = json_loads(txt, 0, NULL);
    if (!json_is_object(json_object_get(o, "error"))) __builtin_trap();
    json_decref(o);
    free(txt);
}

static void check_request(const srv_request *r)
{
    int32_t n_vocab = psi_model_n_vocab(s.model);
    if (r->n_prompt < 1 || r->n_prompt > s.n_ctx || !r->prompt) __builtin_trap();
    for (int32_t i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= n_vocab) __builtin_trap();
    if (r->n_stop < 0 || r->n_stop > SRV_MAX_STOP) __builtin_trap();
    for (int i = 0; i < r->n_stop; i++)
        if (!r->stop[i] || !r->stop[i][0]) __builtin_trap();
    const psi_sampler_params *sp = &r->sp;
    if (!(sp->temperature >= 0 && sp->temperature <= 2) || !(sp->top_p >= 0 && sp->top_p <= 1) ||
        !(sp->min_p >= 0 && sp->min_p <= 1) || sp->top_k < 0 || !(fabsf(sp->presence_penalty) <= 2) ||
        !(fabsf(sp->frequency_penalty) <= 2))
        __builtin_trap();
    if (r->n_logprobs < -1 || r->n_logprobs > SRV_MAX_TOP_LOGPROBS) __builtin_trap();
    if (r->max_tokens == 0) __builtin_trap();
    if (r->detok_prev < -1 || r->detok_prev >= n_vocab) __builtin_trap();
    if (r->n_bias < 0 || r->n_bias > SRV_MAX_LOGIT_BIAS || (r->n_bias && (!r->bias_id || !r->bias_v)))
        __builtin_trap();
    for (int32_t i = 0; i < r->n_bias; i++)
        if (r->bias_id[i] < 0 || r->bias_id[i] >= n_vocab || !(fabsf(r->bias_v[i]) <= 100)) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536) return 0;
    bool chat = data[0] & 1;
    /* routing first, as the server does: the body's model, or the only one */
    char asked[128];
    api_error e = {0};
    srv *to = api_route(&front, NULL, (const char *)data + 1, size - 1, asked, sizeof asked, &e);
    if (!to) {
        check_error(&e);
        return 0;
    }
    if (to != &s) __builtin_trap();
    srv_request *r = calloc(1, sizeof *r);
    if (!r) return 0;
    if (api_parse(&s, (const char *)data + 1, size - 1, chat, r, &e))
        check_request(r);
    else
        check_error(&e);
    srv_request_free(r);
    return 0;
}
