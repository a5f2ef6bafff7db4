/*
 * serve_api.c — OpenAI's JSON for `psi serve`: request bodies of
 * /v1/chat/completions and /v1/completions into srv_request (validated
 * field by field, unknown fields ignored, prompts tokenized and measured
 * against the context), and results back into OpenAI's response, chunk,
 * error, model-list shapes, plus the Prometheus text of /metrics.
 * Shapes follow OpenAI's API reference (chat.completion,
 * chat.completion.chunk, text_completion, error objects).
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "serve.h"

void api_errorf(api_error *e, int status, const char *type, const char *param, const char *code,
                const char *fmt, ...)
{
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

#define BAD(param, ...) (api_errorf(e, 400, "invalid_request_error", param, NULL, __VA_ARGS__), false)

/* The message and param may quote the request (jansson's error text shows
 * the bytes near a syntax error; a role or a model name is cut at some
 * length): bytes that are not UTF-8 become U+FFFD, or the JSON could not
 * be made and the client would get a 500 instead of its 400. */
char *api_error_json(const api_error *e)
{
    json_t *msg = cli_json_text(e->message, strlen(e->message));
    json_t *param = e->param[0] ? cli_json_text(e->param, strlen(e->param)) : json_null();
    json_t *o = json_pack("{s:{s:o,s:s,s:o,s:o}}", "error", "message", msg, "type", e->type, "param", param, "code",
                          e->code ? json_string(e->code) : json_null());
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return txt;
}

/* ------------------------------------------------------------------ fields */

/* A field, NULL when absent or null (OpenAI clients send null for "unset"). */
static json_t *field(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    return json_is_null(v) ? NULL : v;
}

static bool opt_number(json_t *o, const char *name, double lo, double hi, float *out, api_error *e)
{
    json_t *v = field(o, name);
    if (!v) return true;
    if (!json_is_number(v)) return BAD(name, "'%s' must be a number", name);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) return BAD(name, "'%s' is %g; it must be between %g and %g", name, x, lo, hi);
    *out = (float)x;
    return true;
}

static bool opt_int(json_t *o, const char *name, long long lo, long long hi, long long *out, api_error *e)
{
    json_t *v = field(o, name);
    if (!v) return true;
    if (!json_is_integer(v)) return BAD(name, "'%s' must be an integer", name);
    long long x = json_integer_value(v);
    if (x < lo || x > hi) return BAD(name, "'%s' is %lld; it must be between %lld and %lld", name, x, lo, hi);
    *out = x;
    return true;
}

static bool opt_bool(json_t *o, const char *name, bool *out, api_error *e)
{
    json_t *v = field(o, name);
    if (!v) return true;
    if (!json_is_boolean(v)) return BAD(name, "'%s' must be true or false", name);
    *out = json_is_true(v);
    return true;
}

static bool oom(api_error *e)
{
    return api_errorf(e, 500, "server_error", NULL, NULL, "out of memory"), false;
}

static bool parse_stop(json_t *o, srv_request *r, api_error *e)
{
    json_t *v = field(o, "stop");
    if (!v) return true;
    json_t *one[1] = {v};
    json_t **items = one;
    size_t n = 1;
    if (json_is_array(v)) {
        n = json_array_size(v);
        if (n > SRV_MAX_STOP) return BAD("stop", "'stop' has %zu strings; at most %d are allowed", n, SRV_MAX_STOP);
        items = NULL;
    } else if (!json_is_string(v)) {
        return BAD("stop", "'stop' must be a string or an array of strings");
    }
    for (size_t i = 0; i < n; i++) {
        json_t *s = items ? items[i] : json_array_get(v, i);
        if (!json_is_string(s)) return BAD("stop", "'stop' must be a string or an array of strings");
        size_t len = json_string_length(s);
        if (!len) continue; /* an empty stop string would end every answer before it starts */
        if (memchr(json_string_value(s), 0, len)) return BAD("stop", "'stop' strings must not contain NUL");
        if (!(r->stop[r->n_stop] = strdup(json_string_value(s)))) return oom(e);
        r->n_stop++;
    }
    return true;
}

/* OpenAI's logit_bias: {"token id": bias, …}, ids of this model's
 * vocabulary, biases -100…100. */
static bool parse_logit_bias(srv *s, json_t *o, srv_request *r, api_error *e)
{
    json_t *v = field(o, "logit_bias"), *b;
    if (!v) return true;
    if (!json_is_object(v))
        return BAD("logit_bias", "'logit_bias' must be an object mapping token ids to numbers");
    size_t n = json_object_size(v);
    if (n > SRV_MAX_LOGIT_BIAS)
        return BAD("logit_bias", "'logit_bias' has %zu entries; at most %d are allowed", n,
                   SRV_MAX_LOGIT_BIAS);
    if (!n) return true;
    if (!(r->bias_id = malloc(n * sizeof *r->bias_id)) || !(r->bias_v = malloc(n * sizeof *r->bias_v)))
        return oom(e);
    const int32_t n_vocab = psi_model_n_vocab(s->model);
    const char *key;
    json_object_foreach(v, key, b)
    {
        char *end = NULL;
        long long id = key[0] >= '0' && key[0] <= '9' ? strtoll(key, &end, 10) : -1;
        if (id < 0 || id >= n_vocab || *end)
            return BAD("logit_bias", "'logit_bias' key '%.40s' is not a token id of this model (0 to %d)",
                       key, n_vocab - 1);
        double x = json_is_number(b) ? json_number_value(b) : NAN;
        if (!(x >= -100 && x <= 100))
            return BAD("logit_bias",
                       "'logit_bias' value for token %lld must be a number between -100 and 100", id);
        r->bias_id[r->n_bias] = (int32_t)id;
        r->bias_v[r->n_bias++] = (float)x;
    }
    return true;
}

/* Fields that would change what the answer is, which psi serve cannot do:
 * refused rather than ignored, so that a client never takes plain text for
 * JSON or for a tool call. Their neutral values pass. */
static bool refuse_unsupported(json_t *o, api_error *e)
{
    json_t *v = field(o, "response_format");
    if (v) {
        const char *type = json_string_value(json_object_get(v, "type"));
        if (!json_is_object(v) || !type)
            return BAD("response_format", "'response_format' must be an object with a string 'type'");
        if (strcmp(type, "text"))
            return BAD(
                "response_format",
                "'response_format' type '%.40s' is not supported: psi serve cannot constrain answers to "
                "JSON (only 'text')",
                type);
    }
    static const char *const lists[] = {"tools", "functions"};
    for (int i = 0; i < 2; i++)
        if ((v = field(o, lists[i])) && (!json_is_array(v) || json_array_size(v) > 0))
            return BAD(lists[i], "'%s' (function calling) is not supported by psi serve", lists[i]);
    static const char *const choices[] = {"tool_choice", "function_call"};
    for (int i = 0; i < 2; i++)
        if ((v = field(o, choices[i])) && !(json_is_string(v) && (!strcmp(json_string_value(v), "none") ||
                                                                  !strcmp(json_string_value(v), "auto"))))
            return BAD(choices[i], "'%s' must be \"none\" or \"auto\": psi serve has no function calling",
                       choices[i]);
    if ((v = field(o, "suffix")) && (!json_is_string(v) || json_string_length(v) > 0))
        return BAD("suffix", "'suffix' (text after the insertion) is not supported by psi serve");
    if ((v = field(o, "modalities"))) {
        size_t i;
        json_t *m;
        if (!json_is_array(v)) return BAD("modalities", "'modalities' must be an array of strings");
        json_array_foreach(v, i, m)
        {
            if (!json_is_string(m) || strcmp(json_string_value(m), "text"))
                return BAD("modalities", "'modalities' may hold only \"text\": psi serve answers in text");
        }
    }
    return true;
}

/* ------------------------------------------------------------------ routing */

/* The body as a JSON object, or NULL with e set. */
static json_t *load_body(const char *body, size_t len, api_error *e)
{
    json_error_t je;
    json_t *o = json_loadb(body, len, JSON_ALLOW_NUL, &je); /* NUL in text: refused with its field */
    if (!o) {
        (void)BAD(NULL, "the body is not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        (void)BAD(NULL, "the body must be a JSON object");
        return NULL;
    }
    return o;
}

bool api_may_use(const srv_key *key, const srv *m)
{
    return !m->restricted || (key && (key->models >> m->index & 1));
}

/* The one 404 for a model the caller may not see, whether it exists or not:
 * built from the name asked for alone, so that the two cannot be told apart. */
static void model_not_found(api_error *e, const char *name)
{
    api_errorf(e, 404, "invalid_request_error", "model", "model_not_found",
               "The model '%.200s' does not exist or you do not have access to it", name);
}

srv *api_find(srv_front *f, const srv_key *key, const char *name, size_t len, api_error *e)
{
    srv *found = NULL;
    for (int i = 0; i < f->n_models && strlen(name) == len; i++)
        if (!strcmp(name, f->models[i]->model_id) && api_may_use(key, f->models[i])) found = f->models[i];
    if (!found) model_not_found(e, name);
    return found;
}

srv *api_route(srv_front *f, const srv_key *key, const char *body, size_t len, char *asked, size_t asked_size,
               api_error *e)
{
    asked[0] = 0;
    json_t *o = load_body(body, len, e), *v = o ? field(o, "model") : NULL;
    srv *found = NULL;
    if (!o) return NULL;
    if (v && !json_is_string(v)) {
        (void)BAD("model", "'model' must be a string");
    } else if (!v) { /* no model: the only one the caller may use */
        int n = 0;
        for (int i = 0; i < f->n_models; i++)
            if (api_may_use(key, f->models[i])) found = f->models[i], n++;
        if (n != 1) {
            found = NULL;
            (void)BAD("model", "'model' is required: this server serves several models (GET /v1/models lists them)");
        }
    } else {
        snprintf(asked, asked_size, "%s", json_string_value(v));
        found = api_find(f, key, json_string_value(v), json_string_length(v), e);
    }
    json_decref(o);
    return found;
}

/* The fields both endpoints share (the model was chosen by api_route). */
static bool parse_common(srv *s, json_t *o, bool chat, srv_request *r, api_error *e)
{
    long long n = 1;
    if (!opt_int(o, "n", LLONG_MIN, LLONG_MAX, &n, e)) return false;
    if (n != 1) return BAD("n", "'n' is %lld: psi serve returns exactly one choice per request (n must be 1)", n);
    long long best_of = 1;
    if (!chat && !opt_int(o, "best_of", LLONG_MIN, LLONG_MAX, &best_of, e)) return false;
    if (best_of != 1) return BAD("best_of", "'best_of' must be 1: psi serve returns exactly one choice");
    bool echo = false;
    if (!chat && !opt_bool(o, "echo", &echo, e)) return false;
    if (echo) return BAD("echo", "'echo' is not supported");
    if (field(o, "user") && !json_is_string(field(o, "user"))) return BAD("user", "'user' must be a string");
    if (!refuse_unsupported(o, e) || !parse_logit_bias(s, o, r, e)) return false;

    long long max = -1;
    if (!opt_int(o, "max_tokens", 1, LLONG_MAX, &max, e)) return false;
    if (chat && !opt_int(o, "max_completion_tokens", 1, LLONG_MAX, &max, e)) return false;
    r->max_tokens = max > 0 ? max : (chat ? -1 : 16); /* OpenAI's completions default is 16 */

    psi_sampler_params *sp = &r->sp;
    *sp = psi_sampler_default_params();
    sp->temperature = 1.0f; /* OpenAI's defaults: plain sampling at temperature 1 */
    sp->top_k = 0;
    sp->top_p = 1.0f;
    sp->min_p = 0.0f;
    long long top_k = 0, seed;
    if (!opt_number(o, "temperature", 0, 2, &sp->temperature, e) || !opt_number(o, "top_p", 0, 1, &sp->top_p, e) ||
        !opt_number(o, "min_p", 0, 1, &sp->min_p, e) || !opt_int(o, "top_k", 0, INT32_MAX, &top_k, e) ||
        !opt_number(o, "presence_penalty", -2, 2, &sp->presence_penalty, e) ||
        !opt_number(o, "frequency_penalty", -2, 2, &sp->frequency_penalty, e))
        return false;
    sp->top_k = (int32_t)top_k;
    uint64_t id = 0;
    pthread_mutex_lock(&s->lock);
    id = ++s->next_id;
    pthread_mutex_unlock(&s->lock);
    seed = (long long)((uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ id);
    if (!opt_int(o, "seed", LLONG_MIN, LLONG_MAX, &seed, e)) return false;
    sp->seed = (uint64_t)seed;
    if (!parse_stop(o, r, e)) return false;

    r->n_logprobs = -1;
    if (chat) {
        bool lp = false;
        long long top = 0;
        if (!opt_bool(o, "logprobs", &lp, e) || !opt_int(o, "top_logprobs", 0, SRV_MAX_TOP_LOGPROBS, &top, e))
            return false;
        if (field(o, "top_logprobs") && !lp) return BAD("top_logprobs", "'top_logprobs' needs 'logprobs': true");
        if (lp) r->n_logprobs = (int)top;
    } else {
        long long lp = -1;
        if (!opt_int(o, "logprobs", 0, 5, &lp, e)) return false;
        r->n_logprobs = (int)lp;
    }
    if (!opt_bool(o, "stream", &r->stream, e) || !opt_bool(o, "ignore_eos", &r->ignore_eos, e)) return false;
    json_t *so = field(o, "stream_options");
    if (so && !json_is_object(so)) return BAD("stream_options", "'stream_options' must be an object");
    if (so && !opt_bool(so, "include_usage", &r->include_usage, e)) return false;
    snprintf(r->id, sizeof r->id, "%s-%016llx%08llx", chat ? "chatcmpl" : "cmpl", (unsigned long long)id,
             (unsigned long long)(sp->seed & 0xffffffffu));
    r->created = (long long)time(NULL);
    return true;
}

/* ------------------------------------------------------------------ prompts */

static bool tokenize_text(srv *s, const char *text, size_t len, srv_request *r, api_error *e)
{
    bool bos = psi_model_add_bos(s->model);
    int32_t n = 0;
    pthread_mutex_lock(&s->tok_lock);
    psi_status rc = psi_tokenize(s->model, text, len, bos, true, NULL, 0, &n);
    if (rc == PSI_ERR_BUFFER_SMALL && n > 0 && (r->prompt = malloc((size_t)n * sizeof *r->prompt)))
        rc = psi_tokenize(s->model, text, len, bos, true, r->prompt, n, &n);
    char msg[256];
    snprintf(msg, sizeof msg, "%s", psi_model_errmsg(s->model));
    pthread_mutex_unlock(&s->tok_lock);
    if (rc != PSI_OK && !(rc == PSI_ERR_BUFFER_SMALL && n == 0)) {
        if (rc == PSI_ERR_BUFFER_SMALL || rc == PSI_ERR_NO_MEMORY) return oom(e);
        return BAD("prompt", "cannot tokenize the prompt: %s", msg);
    }
    r->n_prompt = n;
    return true;
}

static bool parse_prompt(srv *s, json_t *o, srv_request *r, api_error *e)
{
    json_t *p = field(o, "prompt");
    if (!p) return BAD("prompt", "'prompt' is required");
    if (json_is_array(p) && json_array_size(p) == 1 &&
        (json_is_string(json_array_get(p, 0)) || json_is_array(json_array_get(p, 0))))
        p = json_array_get(p, 0); /* one prompt in a list */
    if (json_is_string(p)) return tokenize_text(s, json_string_value(p), json_string_length(p), r, e);
    if (!json_is_array(p)) return BAD("prompt", "'prompt' must be a string or an array of token ids");
    size_t n = json_array_size(p);
    if (n && json_is_string(json_array_get(p, 0)))
        return BAD("prompt", "'prompt' holds %zu prompts: psi serve takes one prompt per request", n);
    if (n > (size_t)INT32_MAX / 2) return BAD("prompt", "'prompt' is too long");
    if (n && !(r->prompt = malloc(n * sizeof *r->prompt))) return oom(e);
    int32_t n_vocab = psi_model_n_vocab(s->model);
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(p, i);
        if (!json_is_integer(t)) return BAD("prompt", "'prompt' must be a string or an array of token ids");
        long long id = json_integer_value(t);
        if (id < 0 || id >= n_vocab)
            return BAD("prompt", "token id %lld at prompt position %zu is out of range (vocabulary has %d tokens)",
                       id, i, n_vocab);
        r->prompt[i] = (int32_t)id;
    }
    r->n_prompt = (int32_t)n;
    return true;
}

/* Message content: a string, or an array of text parts (joined). */
static bool message_text(json_t *m, size_t i, char **own, const char **text, api_error *e)
{
    json_t *c = field(m, "content");
    *own = NULL;
    if (!c) {
        *text = "";
        return true;
    }
    if (json_is_string(c)) {
        if (memchr(json_string_value(c), 0, json_string_length(c)))
            return BAD("messages", "messages[%zu].content contains a NUL character", i);
        *text = json_string_value(c);
        return true;
    }
    if (!json_is_array(c)) return BAD("messages", "messages[%zu].content must be a string or an array of parts", i);
    size_t len = 0, cap = 0;
    char *buf = NULL;
    for (size_t k = 0; k < json_array_size(c); k++) {
        json_t *part = json_array_get(c, k), *ty = json_object_get(part, "type"), *tx = json_object_get(part, "text");
        if (!json_is_string(ty) || strcmp(json_string_value(ty), "text") || !json_is_string(tx)) {
            free(buf);
            return BAD("messages", "messages[%zu].content[%zu]: only parts {\"type\":\"text\",\"text\":\"…\"} are supported", i, k);
        }
        if (memchr(json_string_value(tx), 0, json_string_length(tx)) ||
            !buf_append(&buf, &len, &cap, json_string_value(tx), json_string_length(tx))) {
            free(buf);
            return BAD("messages", "messages[%zu].content[%zu] cannot be used", i, k);
        }
    }
    *own = buf;
    *text = buf ? buf : "";
    return true;
}

/* Run the guard on conv (its last turn is judged) and record the verdict
 * as the request's (input) or the answer's (output); a block sets
 * finish_reason content_filter. Under no lock. */
static void guard_judge(srv *s, const psi_chat_msg *conv, int32_t k, bool output, srv_request *r)
{
    srv_front *f = s->front;
    psi_guard_verdict v = {0};
    char raw[128], err[256] = "out of memory";
    psi_status rc = PSI_ERR_NO_MEMORY;
    if (conv) {
        pthread_mutex_lock(&f->guard_lock);
        uint32_t mask = f->cfg.guard_mask ? f->cfg.guard_mask : PSI_GUARD_ALL;
        rc = psi_guard_check(f->guard, conv, k, mask, (int32_t)f->cfg.n_threads, &v, raw, sizeof raw, err, sizeof err);
        pthread_mutex_unlock(&f->guard_lock);
    }
    const char *verdict = rc != PSI_OK ? "error" : v.safe ? "safe" : "unsafe";
    bool blocked = rc != PSI_OK ? !f->cfg.guard_fail_open : !v.safe;
    pthread_mutex_lock(&s->lock);
    srv_metrics *m = &s->m;
    if (output) {
        (*(rc != PSI_OK ? &m->guard_out_errors : v.safe ? &m->guard_out_safe : &m->guard_out_unsafe))++;
        r->guard_out_verdict = verdict;
        r->guard_out_categories = v.categories;
    } else {
        (*(rc != PSI_OK ? &m->guard_errors : v.safe ? &m->guard_safe : &m->guard_unsafe))++;
        r->guard_verdict = verdict;
        r->guard_categories = v.categories;
    }
    if (blocked) {
        r->blocked = true;
        r->finish = "content_filter";
    }
    pthread_mutex_unlock(&s->lock);
    if (rc != PSI_OK)
        fprintf(stderr, "psi serve: %s (%s %s)\n", err, output ? "answer" : "request", blocked ? "blocked" : "let through");
}

/* --guard-output: keep the turns the answer will be judged after. */
static void keep_conv(srv *s, const psi_chat_msg *conv, int32_t k, srv_request *r)
{
    if (!s->front->cfg.guard_output || !(r->guard_conv = calloc((size_t)k + 1, sizeof *r->guard_conv))) return;
    for (int32_t i = 0; i < k; i++) {
        r->guard_conv[i].role = strcmp(conv[i].role, "user") ? "assistant" : "user";
        if (!(r->guard_conv[i].content = strdup(conv[i].content))) break;
        r->n_guard_conv = i + 1;
    }
}

/* The guard's verdict on the conversation's last user turn (system and
 * tool messages are not shown to it; a conversation that does not end
 * with a user turn is not judged). Sets r->guard_verdict and r->blocked. */
static void guard_input(srv *s, const psi_chat_msg *msgs, size_t n, srv_request *r)
{
    psi_chat_msg *conv = calloc(n, sizeof *conv);
    int32_t k = 0;
    for (size_t i = 0; conv && i < n; i++)
        if (!strcmp(msgs[i].role, "user") || !strcmp(msgs[i].role, "assistant")) conv[k++] = msgs[i];
    if (conv) keep_conv(s, conv, k, r);
    if (!conv || (k > 0 && !strcmp(conv[k - 1].role, "user"))) guard_judge(s, conv, k, false, r);
    free(conv);
}

/* /v1/completions: the prompt is judged as a user turn (token ids as their text). */
static void guard_prompt(srv *s, json_t *o, srv_request *r)
{
    json_t *p = field(o, "prompt");
    if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0))) p = json_array_get(p, 0);
    char *own = NULL;
    const char *text = json_is_string(p) ? json_string_value(p) : NULL;
    if (!text) {
        size_t len = 0;
        pthread_mutex_lock(&s->tok_lock);
        psi_status rc = psi_detokenize(s->model, r->prompt, r->n_prompt, NULL, 0, &len);
        if ((rc == PSI_OK || rc == PSI_ERR_BUFFER_SMALL) && (own = malloc(len + 1)) &&
            psi_detokenize(s->model, r->prompt, r->n_prompt, own, len + 1, &len) != PSI_OK)
            own = (free(own), NULL);
        pthread_mutex_unlock(&s->tok_lock);
        text = own;
    }
    psi_chat_msg turn = {"user", text};
    keep_conv(s, &turn, text ? 1 : 0, r);
    guard_judge(s, text ? &turn : NULL, 1, false, r); /* no text: judged as a guard failure */
    free(own);
}

void api_guard_output(srv *s, srv_request *r)
{
    if (!s->front->guard || !s->front->cfg.guard_output || r->blocked || r->error[0] || !r->done) return;
    psi_chat_msg *conv = malloc(((size_t)r->n_guard_conv + 1) * sizeof *conv);
    if (conv) {
        if (r->n_guard_conv) memcpy(conv, r->guard_conv, (size_t)r->n_guard_conv * sizeof *conv);
        conv[r->n_guard_conv] = (psi_chat_msg){"assistant", r->text ? r->text : ""};
    }
    guard_judge(s, conv, r->n_guard_conv + 1, true, r);
    free(conv);
}

static bool parse_messages(srv *s, json_t *o, srv_request *r, api_error *e)
{
    json_t *ms = field(o, "messages");
    if (!ms) return BAD("messages", "'messages' is required");
    if (!json_is_array(ms) || !json_array_size(ms)) return BAD("messages", "'messages' must be a non-empty array");
    size_t n = json_array_size(ms);
    if (n > 100000) return BAD("messages", "too many messages (%zu)", n);
    psi_chat_msg *msgs = calloc(n, sizeof *msgs);
    char **own = calloc(n, sizeof *own);
    bool ok = msgs && own;
    if (!ok) oom(e);
    static const char *const roles[] = {"system", "user", "assistant", "tool", "ipython", "developer"};
    for (size_t i = 0; ok && i < n; i++) {
        json_t *m = json_array_get(ms, i), *role = field(m, "role");
        if (!json_is_object(m)) {
            ok = BAD("messages", "messages[%zu] must be an object", i);
            break;
        }
        if (!json_is_string(role)) {
            ok = BAD("messages", "messages[%zu].role must be a string", i);
            break;
        }
        const char *rs = NULL;
        for (size_t k = 0; k < sizeof roles / sizeof roles[0]; k++)
            if (!strcmp(json_string_value(role), roles[k])) rs = roles[k];
        if (!rs) {
            ok = BAD("messages", "messages[%zu].role '%.40s' is not one of system, developer, user, assistant, tool", i,
                     json_string_value(role));
            break;
        }
        msgs[i].role = strcmp(rs, "developer") ? rs : "system";
        ok = message_text(m, i, &own[i], &msgs[i].content, e);
    }
    if (ok) {
        char err[256] = "";
        int32_t cnt = 0;
        pthread_mutex_lock(&s->tok_lock);
        psi_status rc = psi_chat_tokenize(s->model, s->tmpl, msgs, (int32_t)n, true, NULL, 0, &cnt, err, sizeof err);
        if (rc == PSI_ERR_BUFFER_SMALL && (r->prompt = malloc((size_t)(cnt ? cnt : 1) * sizeof *r->prompt)))
            rc = psi_chat_tokenize(s->model, s->tmpl, msgs, (int32_t)n, true, r->prompt, cnt, &cnt, err, sizeof err);
        pthread_mutex_unlock(&s->tok_lock);
        if (rc == PSI_OK) r->n_prompt = cnt;
        else if (rc == PSI_ERR_INVALID_ARG) ok = BAD("messages", "%s", err);
        else ok = oom(e);
    }
    if (ok && s->front->guard) guard_input(s, msgs, n, r);
    for (size_t i = 0; own && i < n; i++) free(own[i]);
    free(own);
    free(msgs);
    return ok;
}

bool api_parse(srv *s, const char *body, size_t len, bool chat, srv_request *r, api_error *e)
{
    json_t *o = load_body(body, len, e);
    if (!o) return false;
    bool ok = parse_common(s, o, chat, r, e);
    ok = ok && (chat ? parse_messages(s, o, r, e) : parse_prompt(s, o, r, e));
    if (ok && !chat && s->front->guard && r->n_prompt > 0) guard_prompt(s, o, r);
    json_decref(o);
    if (!ok) return false;
    if (chat && s->tmpl_stop && r->n_stop < SRV_MAX_STOP) {
        if (!(r->stop[r->n_stop] = strdup(s->tmpl_stop))) return oom(e);
        r->n_stop++;
    }
    int32_t n_ctx = s->n_ctx;
    if (r->n_prompt == 0) return BAD(chat ? "messages" : "prompt", "the prompt is empty (0 tokens)");
    if (r->n_prompt > n_ctx) {
        api_errorf(e, 400, "invalid_request_error", chat ? "messages" : "prompt", "context_length_exceeded",
                   "This model's maximum context length is %d tokens, but the prompt has %d tokens", n_ctx,
                   r->n_prompt);
        return false;
    }
    r->detok_prev = chat ? -1 : r->prompt[r->n_prompt - 1];
    return true;
}

/* ---------------------------------------------------------------- responses */

static json_t *token_json(srv *s, int32_t prev, int32_t tok, json_t **bytes)
{
    char piece[256];
    int32_t n = psi_token_to_piece(s->model, prev, tok, piece, sizeof piece);
    if (n < 0) n = 0;
    if (n > (int32_t)sizeof piece) n = (int32_t)sizeof piece;
    if (bytes) {
        *bytes = json_array();
        for (int32_t i = 0; i < n; i++) json_array_append_new(*bytes, json_integer((unsigned char)piece[i]));
    }
    return cli_json_text(piece, (size_t)n);
}

static double lp_value(float x) { return isfinite(x) ? (double)x : -9999.0; }

/* Chat logprobs entries [from, to). */
static json_t *chat_logprobs(srv *s, const srv_request *r, size_t from, size_t to)
{
    json_t *content = json_array();
    for (size_t i = from; i < to; i++) {
        const srv_logprob *l = &r->lp[i];
        int32_t prev = i ? r->lp[i - 1].token : r->detok_prev;
        json_t *bytes, *top = json_array();
        json_t *tok = token_json(s, prev, l->token, &bytes);
        for (int k = 0; k < l->n_top; k++) {
            if (l->top[k].token < 0) break;
            json_t *tb, *tt = token_json(s, prev, l->top[k].token, &tb);
            json_array_append_new(top, json_pack("{s:o,s:f,s:o}", "token", tt, "logprob", lp_value(l->top[k].logprob),
                                                 "bytes", tb));
        }
        json_array_append_new(content, json_pack("{s:o,s:f,s:o,s:o}", "token", tok, "logprob", lp_value(l->logprob),
                                                 "bytes", bytes, "top_logprobs", top));
    }
    return json_pack("{s:o}", "content", content);
}

/* Legacy completions logprobs entries [from, to). */
static json_t *text_logprobs(srv *s, const srv_request *r, size_t from, size_t to, size_t text_off)
{
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    for (size_t i = from; i < to; i++) {
        const srv_logprob *l = &r->lp[i];
        int32_t prev = i ? r->lp[i - 1].token : r->detok_prev;
        json_t *tok = token_json(s, prev, l->token, NULL);
        size_t plen = json_string_length(tok);
        json_array_append_new(tokens, tok);
        json_array_append_new(lps, json_real(lp_value(l->logprob)));
        json_array_append_new(offs, json_integer((json_int_t)text_off));
        text_off += plen;
        json_t *top = json_object();
        for (int k = 0; k < l->n_top && l->top[k].token >= 0; k++) {
            json_t *tt = token_json(s, prev, l->top[k].token, NULL);
            json_object_set_new(top, json_string_value(tt), json_real(lp_value(l->top[k].logprob)));
            json_decref(tt);
        }
        json_array_append_new(tops, top);
    }
    return json_pack("{s:o,s:o,s:o,s:o}", "tokens", tokens, "token_logprobs", lps, "top_logprobs", tops, "text_offset",
                     offs);
}

static json_t *usage_json(const srv_request *r)
{
    return json_pack("{s:i,s:i,s:i,s:{s:i}}", "prompt_tokens", (json_int_t)r->n_prompt, "completion_tokens",
                     (json_int_t)r->n_gen, "total_tokens", (json_int_t)(r->n_prompt + r->n_gen),
                     "prompt_tokens_details", "cached_tokens", (json_int_t)r->n_cached);
}

/* A verdict and its categories as the response's `guard` object says them. */
static json_t *verdict_json(const char *verdict, uint32_t cats)
{
    json_t *a = json_array();
    char code[8];
    for (int c = 1; c <= PSI_GUARD_N_CATEGORIES; c++)
        if (cats >> (c - 1) & 1) {
            snprintf(code, sizeof code, "S%d", c);
            json_array_append_new(a, json_pack("{s:s,s:s}", "code", code, "name", psi_guard_category_name(c)));
        }
    return json_pack("{s:s,s:o}", "verdict", verdict, "categories", a);
}

static json_t *envelope(srv *s, const srv_request *r, bool chunk)
{
    const char *object = r->chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
    char fp[64];
    snprintf(fp, sizeof fp, "psi-%s", psi_version());
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:s}", "id", r->id, "object", object, "created",
                          (json_int_t)r->created, "model", s->model_id, "system_fingerprint", fp);
    if (o && (r->guard_verdict || r->guard_out_verdict)) { /* psi extension: what the guard said */
        json_t *g = r->guard_verdict ? verdict_json(r->guard_verdict, r->guard_categories) : json_object();
        if (r->guard_out_verdict)
            json_object_set_new(g, "output", verdict_json(r->guard_out_verdict, r->guard_out_categories));
        json_object_set_new(o, "guard", g);
    }
    return o;
}

char *api_final_json(srv *s, const srv_request *r)
{
    json_t *o = envelope(s, r, false), *choice;
    /* a blocked answer is withheld whole: its text and its tokens' logprobs */
    json_t *text = r->blocked ? json_string("") : cli_json_text(r->text ? r->text : "", r->text_len);
    json_t *lp = r->n_logprobs < 0 || r->blocked ? json_null()
                 : r->chat         ? chat_logprobs(s, r, 0, r->n_lp)
                                   : text_logprobs(s, r, 0, r->n_lp, 0);
    if (r->chat)
        choice = json_pack("{s:i,s:{s:s,s:o},s:o,s:s}", "index", 0, "message", "role", "assistant", "content", text,
                           "logprobs", lp, "finish_reason", r->finish ? r->finish : "stop");
    else
        choice = json_pack("{s:i,s:o,s:o,s:s}", "index", 0, "text", text, "logprobs", lp, "finish_reason",
                           r->finish ? r->finish : "stop");
    if (r->chat && r->blocked) { /* OpenAI's message.refusal, naming the categories */
        char why[512];
        snprintf(why, sizeof why, "%s blocked by the guard model", r->guard_out_verdict ? "answer" : "request");
        size_t at = strlen(why);
        uint32_t cats = r->guard_categories | r->guard_out_categories;
        for (int c = 1, first = 1; c <= PSI_GUARD_N_CATEGORIES && at < sizeof why; c++)
            if (cats >> (c - 1) & 1) {
                at += (size_t)snprintf(why + at, sizeof why - at, "%sS%d %s", first ? ": " : ", ", c,
                                       psi_guard_category_name(c));
                first = 0;
            }
        json_object_set_new(json_object_get(choice, "message"), "refusal", json_string(why));
    }
    json_object_set_new(o, "choices", json_pack("[o]", choice));
    json_object_set_new(o, "usage", usage_json(r));
    char *txt = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return txt;
}

static bool sse(json_t *o, char **buf, size_t *len, size_t *cap)
{
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    bool ok = txt && buf_append(buf, len, cap, "data: ", 6) && buf_append(buf, len, cap, txt, strlen(txt)) &&
              buf_append(buf, len, cap, "\n\n", 2);
    free(txt);
    return ok;
}

/* One chunk: delta text (may be NULL), logprobs, finish reason (may be NULL). */
static json_t *chunk_json(srv *s, const srv_request *r, bool role, json_t *text, json_t *lp, const char *finish)
{
    json_t *o = envelope(s, r, true), *choice;
    if (!lp) lp = json_null();
    if (r->chat) {
        json_t *delta = json_object();
        if (role) json_object_set_new(delta, "role", json_string("assistant"));
        if (text) json_object_set_new(delta, "content", text);
        choice = json_pack("{s:i,s:o,s:o,s:o}", "index", 0, "delta", delta, "logprobs", lp, "finish_reason",
                           finish ? json_string(finish) : json_null());
    } else {
        choice = json_pack("{s:i,s:o,s:o,s:o}", "index", 0, "text", text ? text : json_string(""), "logprobs", lp,
                           "finish_reason", finish ? json_string(finish) : json_null());
    }
    json_object_set_new(o, "choices", json_pack("[o]", choice));
    if (r->include_usage) json_object_set_new(o, "usage", json_null());
    return o;
}

bool api_stream_events(srv *s, const srv_request *r, bool first, size_t *text_off, size_t *lp_off, bool end,
                       char **buf, size_t *len, size_t *cap)
{
    bool ok = true;
    if (first && r->chat) ok = sse(chunk_json(s, r, true, json_string(""), NULL, NULL), buf, len, cap);
    if (r->error[0]) {
        api_error e;
        api_errorf(&e, 500, "server_error", NULL, NULL, "%s", r->error);
        char *txt = api_error_json(&e);
        ok = ok && txt && buf_append(buf, len, cap, "data: ", 6) && buf_append(buf, len, cap, txt, strlen(txt)) &&
             buf_append(buf, len, cap, "\n\n", 2);
        free(txt);
        return ok;
    }
    if (!r->blocked && (*text_off < r->text_len || *lp_off < r->n_lp)) {
        json_t *lp = NULL;
        if (r->n_logprobs >= 0)
            lp = r->chat ? chat_logprobs(s, r, *lp_off, r->n_lp) : text_logprobs(s, r, *lp_off, r->n_lp, *text_off);
        ok = ok && sse(chunk_json(s, r, false, cli_json_text(r->text + *text_off, r->text_len - *text_off), lp, NULL),
                       buf, len, cap);
        *text_off = r->text_len;
        *lp_off = r->n_lp;
    }
    if (end) {
        ok = ok && sse(chunk_json(s, r, false, NULL, NULL, r->finish ? r->finish : "stop"), buf, len, cap);
        if (r->include_usage) {
            json_t *o = envelope(s, r, true);
            json_object_set_new(o, "choices", json_array());
            json_object_set_new(o, "usage", usage_json(r));
            ok = ok && sse(o, buf, len, cap);
        }
        ok = ok && buf_append(buf, len, cap, "data: [DONE]\n\n", 14);
    }
    return ok;
}

char *api_models_json(srv_front *f, const srv_key *key, const srv *one)
{
    json_t *data = json_array(), *o;
    for (int i = 0; i < f->n_models; i++) {
        const srv *m = f->models[i];
        if ((one && m != one) || !api_may_use(key, m)) continue;
        json_array_append_new(data, json_pack("{s:s,s:s,s:I,s:s,s:s?}", "id", m->model_id, "object", "model",
                                              "created", (json_int_t)0, "owned_by", "psi", "license",
                                              m->license[0] ? m->license : NULL));
    }
    if (one) {
        o = json_incref(json_array_get(data, 0));
        json_decref(data);
    } else {
        o = json_pack("{s:s,s:o}", "object", "list", "data", data);
    }
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return txt;
}

/* Category codes as ["S1","S9"]. */
static json_t *codes_json(uint32_t cats)
{
    json_t *a = json_array();
    char code[8];
    for (int c = 1; c <= PSI_GUARD_N_CATEGORIES; c++)
        if (cats >> (c - 1) & 1) {
            snprintf(code, sizeof code, "S%d", c);
            json_array_append_new(a, json_string(code));
        }
    return a;
}

void api_audit(srv_front *f, const srv_request *r, int status)
{
    if (!f->cfg.audit_path) return; /* f->audit itself changes under audit_lock (SIGHUP) */
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    /* the model name is the one asked for, cut at 127 bytes, and the request
     * body the client's bytes: as UTF-8 (cli_json_text), or the line is lost */
    json_t *model = cli_json_text(r->model, strlen(r->model));
    json_t *o = json_pack("{s:s,s:s,s:o,s:s,s:i,s:i,s:i,s:s?,s:o,s:s?,s:i}", "time", when, "key",
                          r->key_name ? r->key_name : "-", "model", model, "endpoint",
                          r->chat ? "chat" : "completions", "tokens_in", (json_int_t)r->n_prompt, "tokens_cached",
                          (json_int_t)r->n_cached, "tokens_out",
                          (json_int_t)r->n_gen, "guard", r->guard_verdict, "categories",
                          codes_json(r->guard_categories), "finish", r->finish, "status", status);
    if (o && r->guard_out_verdict) { /* --guard-output: the answer's verdict, apart from the request's */
        json_object_set_new(o, "guard_output", json_string(r->guard_out_verdict));
        json_object_set_new(o, "output_categories", codes_json(r->guard_out_categories));
    }
    if (o && f->cfg.audit_content) {
        json_object_set_new(o, "request",
                            r->audit_request ? cli_json_text(r->audit_request, strlen(r->audit_request)) : json_null());
        json_object_set_new(o, "answer", cli_json_text(r->text ? r->text : "", r->text_len));
    }
    char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    pthread_mutex_lock(&f->audit_lock);
    errno = 0;
    bool ok = line && fprintf(f->audit, "%s\n", line) >= 0 && fflush(f->audit) == 0 && !ferror(f->audit);
    int e = line ? errno : ENOMEM;
    if (!ok) {
        f->audit_errors++;
        clearerr(f->audit);
        if (!f->audit_broken)
            fprintf(stderr, "psi serve: --audit-log %s: a line could not be written (%s); %s\n",
                    f->cfg.audit_path, e ? strerror(e) : "write error",
                    f->cfg.audit_fail_open ? "serving on without it (--audit-fail open)"
                                           : "completions are refused (503) until lines go through again");
    } else if (f->audit_broken) {
        fprintf(stderr, "psi serve: --audit-log %s: lines go through again\n", f->cfg.audit_path);
    }
    f->audit_broken = !ok;
    pthread_mutex_unlock(&f->audit_lock);
    free(line);
}

bool api_audit_blocked(srv_front *f)
{
    if (!f->cfg.audit_path || f->cfg.audit_fail_open) return false;
    pthread_mutex_lock(&f->audit_lock);
    bool b = f->audit_broken;
    pthread_mutex_unlock(&f->audit_lock);
    return b;
}

/* Sums over the models: the figures say nothing of which models exist. */
char *api_metrics_text(srv_front *f)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char line[512];
    srv_metrics m = {0};
    long q = 0;
    int active = 0, slots = 0;
    for (int i = 0; i < f->n_models; i++) {
        srv *s = f->models[i];
        pthread_mutex_lock(&s->lock);
        const srv_metrics *x = &s->m;
        m.completions += x->completions, m.rejected_busy += x->rejected_busy, m.steps += x->steps;
        m.prompt_tokens += x->prompt_tokens, m.prompt_seconds += x->prompt_seconds;
        m.prompt_cached += x->prompt_cached;
        m.gen_tokens += x->gen_tokens, m.gen_seconds += x->gen_seconds;
        m.guard_safe += x->guard_safe, m.guard_unsafe += x->guard_unsafe, m.guard_errors += x->guard_errors;
        m.guard_out_safe += x->guard_out_safe, m.guard_out_unsafe += x->guard_out_unsafe;
        m.guard_out_errors += x->guard_out_errors;
        q += s->q_len, active += s->n_active, slots += s->n_slots;
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_lock(&f->lock);
    double http_requests = (double)f->http_requests, errors = (double)f->errors;
    pthread_mutex_unlock(&f->lock);
    pthread_mutex_lock(&f->audit_lock);
    double audit_errors = (double)f->audit_errors;
    pthread_mutex_unlock(&f->audit_lock);
    struct {
        const char *name, *type, *help;
        double v;
    } rows[] = {
        {"psi_http_requests_total", "counter", "HTTP requests received", http_requests},
        {"psi_completions_total", "counter", "completion requests accepted", (double)m.completions},
        {"psi_request_errors_total", "counter", "requests answered with an error status", errors},
        {"psi_requests_rejected_busy_total", "counter", "requests refused because the queue was full",
         (double)m.rejected_busy},
        {"psi_prompt_tokens_total", "counter", "prompt tokens evaluated (tokens in)",
         (double)m.prompt_tokens},
        {"psi_prompt_tokens_cached_total", "counter",
         "prompt tokens found in a slot's prompt cache (not evaluated)", (double)m.prompt_cached},
        {"psi_generation_tokens_total", "counter", "tokens generated (tokens out)", (double)m.gen_tokens},
        {"psi_engine_steps_total", "counter", "batched forward passes", (double)m.steps},
        {"psi_guard_safe_total", "counter", "user turns the guard judged safe", (double)m.guard_safe},
        {"psi_guard_unsafe_total", "counter", "user turns the guard judged unsafe (blocked)",
         (double)m.guard_unsafe},
        {"psi_guard_errors_total", "counter", "guard failures and unparseable verdicts",
         (double)m.guard_errors},
        {"psi_audit_errors_total", "counter", "audit-log lines that could not be written", audit_errors},
        {"psi_guard_output_safe_total", "counter", "answers the guard judged safe (--guard-output)",
         (double)m.guard_out_safe},
        {"psi_guard_output_unsafe_total", "counter", "answers the guard judged unsafe (withheld)",
         (double)m.guard_out_unsafe},
        {"psi_guard_output_errors_total", "counter", "guard failures and unparseable verdicts on answers",
         (double)m.guard_out_errors},
        {"psi_queue_depth", "gauge", "requests waiting for a slot", (double)q},
        {"psi_slots_active", "gauge", "slots serving a request", (double)active},
        {"psi_slots_total", "gauge", "slots (--parallel, times the models)", (double)slots},
        {"psi_prompt_tokens_per_second", "gauge", "prompt throughput over the engine's busy time",
         m.prompt_seconds > 0 ? (double)m.prompt_tokens / m.prompt_seconds : 0},
        {"psi_generation_tokens_per_second", "gauge", "generation throughput over the engine's busy time",
         m.gen_seconds > 0 ? (double)m.gen_tokens / m.gen_seconds : 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int n = snprintf(line, sizeof line, "# HELP %s %s.\n# TYPE %s %s\n%s %.17g\n", rows[i].name, rows[i].help,
                         rows[i].name, rows[i].type, rows[i].name, rows[i].v);
        if (n < 0 || !buf_append(&buf, &len, &cap, line, (size_t)n)) {
            free(buf);
            return NULL;
        }
    }
    return buf;
}
