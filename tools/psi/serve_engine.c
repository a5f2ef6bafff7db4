/*
 * serve_engine.c — the scheduler of `psi serve`: continuous batching over
 * one psi_context with one sequence per slot.
 *
 * Each step builds ONE psi_context_decode_batch call holding the pending
 * token of every generating slot plus at most prefill_chunk prompt tokens of
 * slots still reading their prompt (chunked prefill, FIFO), so the weights
 * are read once per step whatever the number of conversations and a long
 * prompt never stalls the others for more than one chunk. Waiting requests
 * are admitted FIFO as slots free up. A cancelled request (client gone)
 * gives its slot back at the start of the next step.
 *
 * Prompt cache: a slot's sequence keeps its KV entries when its request
 * ends, and the slot remembers their token ids (hist). A waiting request
 * goes to the free slot whose history shares the longest prefix with its
 * prompt; that prefix is kept (the sequence is truncated to it) and only
 * the rest is prefilled. At least the prompt's last token is always
 * evaluated, for its logits. Attention reads positions 0..pos of the
 * sequence only, so entries past the kept prefix are never read before
 * they are written again. A slot's tokens serve only requests made with the
 * same API key. --no-prompt-cache empties every sequence.
 *
 * Only the engine thread touches the context, samplers and detokenizers;
 * results reach the HTTP threads through the request under the server lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve.h"

struct srv_slot {
    srv_request *req;   /* NULL: free */
    int32_t seq;
    int32_t n_fed;      /* prompt tokens evaluated */
    int32_t pending;    /* sampled, not yet evaluated (-1: none) */
    int32_t batch_at;   /* index of this slot's logits in the step's batch, or -1 */
    psi_sampler *smp;
    psi_detok *detok;
    char *acc;          /* all generated text so far */
    size_t acc_len, acc_cap, released;
    srv_logprob *lp;    /* logprobs not yet handed over */
    size_t n_lp, lp_cap;
    int32_t n_gen;
    const char *finish;
    char error[256];
    double t_first;
    int32_t *hist;      /* token ids at the sequence's positions: the prompt, then each sampled token */
    int32_t n_hist, hist_cap; /* once the request ends: exactly the positions the sequence holds */
    uint64_t used;      /* assignment stamp: the least recently used slot goes first among equals */
    const char *owner;  /* the API key (its name, in front->keys) of the request hist came from */
};

double srv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

bool buf_append(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = (*len + n + 1) * 2;
        if (c < 256) c = 256;
        char *p = realloc(*buf, c);
        if (!p) return false;
        *buf = p;
        *cap = c;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = 0;
    return true;
}

void srv_request_free(srv_request *r)
{
    if (!r) return;
    free(r->prompt);
    free(r->bias_id);
    free(r->bias_v);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->text);
    free(r->lp);
    free(r->audit_request);
    for (int32_t i = 0; i < r->n_guard_conv; i++) free((char *)r->guard_conv[i].content);
    free(r->guard_conv);
    free(r);
}

void srv_request_unref(srv *s, srv_request *r)
{
    (void)s;
    if (r && --r->refs == 0) srv_request_free(r);
}

int engine_init(srv *s)
{
    s->n_slots = (int)s->cfg.parallel;
    s->slots = calloc((size_t)s->n_slots, sizeof *s->slots);
    s->queue = calloc((size_t)s->cfg.queue_max, sizeof *s->queue);
    s->batch = malloc(((size_t)s->n_slots + (size_t)s->cfg.prefill_chunk) * sizeof *s->batch);
    if (!s->slots || !s->queue || !s->batch) {
        fprintf(stderr, "psi serve: out of memory\n");
        return -1;
    }
    for (int i = 0; i < s->n_slots; i++) {
        s->slots[i].seq = i;
        s->slots[i].batch_at = -1;
    }
    return 0;
}

int engine_submit(srv *s, srv_request *r)
{
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    if (s->stopping) rc = 2;
    else if (s->q_len >= s->cfg.queue_max) rc = 1;
    else {
        r->refs++;
        r->t_submit = srv_now();
        s->queue[(s->q_head + s->q_len) % s->cfg.queue_max] = r;
        s->q_len++;
        pthread_cond_signal(&s->work);
    }
    if (rc == 1) s->m.rejected_busy++;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Give the slot back (engine thread, under the lock): the request is done. */
static void slot_release(srv *s, srv_slot *sl)
{
    srv_request *r = sl->req;
    if (sl->error[0] && !r->error[0]) snprintf(r->error, sizeof r->error, "%s", sl->error);
    if (!r->finish) r->finish = sl->finish ? sl->finish : "stop";
    r->done = true;
    srv_request_unref(s, r);
    psi_sampler_free(sl->smp);
    psi_detok_free(sl->detok);
    /* the last sampled token (and a prompt cut short) was never evaluated */
    int32_t n_keep = psi_context_seq_n_past(s->ctx, sl->seq);
    if (sl->n_hist < n_keep) n_keep = sl->n_hist;
    if (s->cfg.no_prompt_cache || sl->error[0] || n_keep < 0) n_keep = 0;
    psi_context_seq_truncate(s->ctx, sl->seq, n_keep);
    srv_slot keep = {.seq = sl->seq, .hist = sl->hist, .n_hist = n_keep, .hist_cap = sl->hist_cap, .used = sl->used,
                     .owner = sl->owner};
    free(sl->acc);
    free(sl->lp);
    *sl = keep;
    sl->pending = -1;
    sl->batch_at = -1;
    s->n_active--;
}

/* Tokens the slot's sequence holds that begin r's prompt. Only for the
 * same API key: cached_tokens (and the time to the first token) would tell
 * one key what another key's prompts begin with. */
static int32_t slot_prefix(const srv_slot *sl, const srv_request *r)
{
    if (sl->owner != r->key_name) return 0;
    int32_t n = sl->n_hist < r->n_prompt ? sl->n_hist : r->n_prompt, i = 0;
    while (i < n && sl->hist[i] == r->prompt[i]) i++;
    return i;
}

/* The free slot for r: the longest cached prefix of its prompt, then the
 * least recently used; NULL when every slot is busy. */
static srv_slot *slot_pick(srv *s, const srv_request *r, int32_t *prefix)
{
    srv_slot *best = NULL;
    *prefix = 0;
    for (int i = 0; i < s->n_slots; i++) {
        srv_slot *sl = &s->slots[i];
        if (sl->req) continue;
        int32_t p = slot_prefix(sl, r);
        if (!best || p > *prefix || (p == *prefix && sl->used < best->used)) {
            best = sl;
            *prefix = p;
        }
    }
    return best;
}

/* Put a waiting request into a free slot (under the lock); the sequence
 * keeps its first `prefix` positions (they hold the prompt's first tokens). */
static void slot_assign(srv *s, srv_slot *sl, srv_request *r, int32_t prefix)
{
    sl->req = r;
    sl->n_fed = 0;
    sl->pending = -1;
    sl->batch_at = -1;
    sl->used = ++s->n_assigned;
    s->n_active++;
    if (psi_sampler_new(&r->sp, &sl->smp) != PSI_OK ||
        psi_sampler_set_logit_bias(sl->smp, r->bias_id, r->bias_v, r->n_bias) != PSI_OK ||
        psi_detok_new(s->model, r->detok_prev, &sl->detok) != PSI_OK) {
        snprintf(sl->error, sizeof sl->error, "cannot start the request (invalid sampler settings or out of memory)");
        slot_release(s, sl);
        return;
    }
    if (prefix >= r->n_prompt) prefix = r->n_prompt - 1; /* the last prompt token gives the logits */
    if (psi_context_seq_truncate(s->ctx, sl->seq, prefix) != PSI_OK) {
        prefix = 0;
        psi_context_seq_truncate(s->ctx, sl->seq, 0);
    }
    if (!sl->hist && !s->cfg.no_prompt_cache) { /* the prompt and every sampled token fit n_ctx + 1 */
        sl->hist = malloc(((size_t)s->n_ctx + 1) * sizeof *sl->hist);
        sl->hist_cap = sl->hist ? s->n_ctx + 1 : 0;
    }
    sl->n_hist = 0;
    sl->owner = r->key_name;
    if (r->n_prompt <= sl->hist_cap) {
        memcpy(sl->hist, r->prompt, (size_t)r->n_prompt * sizeof *r->prompt);
        sl->n_hist = r->n_prompt;
    }
    sl->n_fed = prefix;
    r->n_cached = prefix;
    s->m.prompt_cached += (uint64_t)prefix;
}

/* Length of the longest suffix of text[0..n) that begins some stop string. */
static size_t stop_hold(const srv_request *r, const char *text, size_t n)
{
    size_t hold = 0;
    for (int i = 0; i < r->n_stop; i++) {
        size_t m = strlen(r->stop[i]);
        for (size_t k = m - 1; k > hold; k--)
            if (n >= k && !memcmp(text + n - k, r->stop[i], k)) {
                hold = k;
                break;
            }
    }
    return hold;
}

/* Append new text to the slot; a stop string ends the answer just before
 * it. The earliest match wins; none can start in text already released
 * (slot_publish holds back any tail that could begin one). */
static void slot_text(srv_slot *sl, const char *t, size_t n)
{
    if (!n || sl->finish) return;
    if (!buf_append(&sl->acc, &sl->acc_len, &sl->acc_cap, t, n)) {
        snprintf(sl->error, sizeof sl->error, "out of memory");
        sl->finish = "stop";
        return;
    }
    const srv_request *r = sl->req;
    const char *first = NULL;
    for (int i = 0; i < r->n_stop; i++) {
        const char *hit = strstr(sl->acc + sl->released, r->stop[i]);
        if (hit && (!first || hit < first)) first = hit;
    }
    if (first) {
        sl->acc_len = (size_t)(first - sl->acc);
        sl->acc[sl->acc_len] = 0;
        sl->finish = "stop";
    }
}

/* The answer ends without a stop string: what the detokenizer still holds
 * (a character cut off) comes out as U+FFFD. */
static void slot_finish(srv_slot *sl, const char *why)
{
    const char *t;
    size_t n;
    if (psi_detok_flush(sl->detok, &t, &n) == PSI_OK) slot_text(sl, t, n);
    if (!sl->finish) sl->finish = why;
}

/* One sampled token: logprobs, end-of-generation, text, limits. */
static void slot_token(srv *s, srv_slot *sl, const float *logits)
{
    srv_request *r = sl->req;
    int32_t n_vocab = psi_model_n_vocab(s->model);
    int32_t tok = psi_sampler_sample(sl->smp, logits, n_vocab);
    if (tok < 0) {
        snprintf(sl->error, sizeof sl->error, "sampling failed");
        sl->finish = "stop";
        return;
    }
    psi_sampler_accept(sl->smp, tok);
    if (!sl->n_gen) sl->t_first = srv_now();
    sl->n_gen++;
    if (sl->n_hist == r->n_prompt + sl->n_gen - 1 && sl->n_hist < sl->hist_cap) sl->hist[sl->n_hist++] = tok;
    if (r->n_logprobs >= 0) {
        if (sl->n_lp == sl->lp_cap) {
            size_t cap = sl->lp_cap ? sl->lp_cap * 2 : 16;
            srv_logprob *p = realloc(sl->lp, cap * sizeof *p);
            if (p) {
                sl->lp = p;
                sl->lp_cap = cap;
            }
        }
        if (sl->n_lp < sl->lp_cap) {
            srv_logprob *e = &sl->lp[sl->n_lp++];
            e->token = tok;
            e->n_top = r->n_logprobs;
            psi_logprobs(logits, n_vocab, tok, &e->logprob, e->top, e->n_top);
        }
    }
    if (!r->ignore_eos && psi_token_is_eog(s->model, tok)) {
        slot_finish(sl, "stop");
        return;
    }
    const char *t;
    size_t n;
    if (psi_detok_push(sl->detok, tok, &t, &n) == PSI_OK) slot_text(sl, t, n);
    if (sl->finish) return;
    if ((r->max_tokens > 0 && sl->n_gen >= r->max_tokens) ||
        psi_context_seq_n_past(s->ctx, sl->seq) >= psi_context_n_ctx(s->ctx))
        slot_finish(sl, "length");
    else
        sl->pending = tok;
}

/* Hand what the slot may show to its request (under the lock). */
static void slot_publish(srv_slot *sl)
{
    srv_request *r = sl->req;
    size_t upto = sl->finish ? sl->acc_len : sl->acc_len - stop_hold(r, sl->acc, sl->acc_len);
    if (upto > sl->released) {
        if (!buf_append(&r->text, &r->text_len, &r->text_cap, sl->acc + sl->released, upto - sl->released))
            snprintf(sl->error, sizeof sl->error, "out of memory");
        sl->released = upto;
    }
    if (sl->n_lp) {
        if (r->n_lp + sl->n_lp > r->lp_cap) {
            size_t cap = (r->n_lp + sl->n_lp) * 2;
            srv_logprob *p = realloc(r->lp, cap * sizeof *p);
            if (p) {
                r->lp = p;
                r->lp_cap = cap;
            }
        }
        if (r->n_lp + sl->n_lp <= r->lp_cap) {
            memcpy(r->lp + r->n_lp, sl->lp, sl->n_lp * sizeof *sl->lp);
            r->n_lp += sl->n_lp;
        }
        sl->n_lp = 0;
    }
    r->n_gen = sl->n_gen;
    if (sl->t_first > 0 && r->t_first_token == 0) r->t_first_token = sl->t_first;
}

/* Builds the step's batch; returns its size (0: nothing to do). */
static int32_t build_batch(srv *s, psi_batch_token *b, int32_t *n_prompt)
{
    int32_t n = 0, budget = (int32_t)s->cfg.prefill_chunk;
    *n_prompt = 0;
    for (int i = 0; i < s->n_slots; i++) {
        srv_slot *sl = &s->slots[i];
        sl->batch_at = -1;
        if (sl->req && sl->pending >= 0) {
            sl->batch_at = n;
            b[n++] = (psi_batch_token){sl->pending, sl->seq, true};
        }
    }
    /* prefill FIFO: the slot admitted first (lowest submit time) goes first.
     * The whole step stays within prefill_chunk tokens where it can (the
     * library evaluates a batch in slices: one slice reads the weights once),
     * but a waiting prompt always gets at least 16. */
    budget -= n;
    if (budget < 16) budget = 16;
    for (;;) {
        srv_slot *first = NULL;
        for (int i = 0; i < s->n_slots; i++) {
            srv_slot *sl = &s->slots[i];
            if (sl->req && sl->pending < 0 && sl->batch_at == -1 && !sl->finish && sl->n_fed < sl->req->n_prompt &&
                (!first || sl->req->t_submit < first->req->t_submit))
                first = sl;
        }
        if (!first || budget <= 0) break;
        int32_t k = first->req->n_prompt - first->n_fed;
        if (k > budget) k = budget;
        for (int32_t j = 0; j < k; j++) {
            int32_t at = first->n_fed + j;
            bool last = at == first->req->n_prompt - 1;
            if (last) first->batch_at = n;
            b[n++] = (psi_batch_token){first->req->prompt[at], first->seq, last};
        }
        first->n_fed += k;
        if (first->batch_at < 0) first->batch_at = -2; /* fed this step, no logits yet */
        budget -= k;
        *n_prompt += k;
    }
    return n;
}

static void *engine_main(void *arg)
{
    srv *s = arg;
    psi_batch_token *batch = s->batch;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        for (int i = 0; i < s->n_slots; i++) {
            srv_slot *sl = &s->slots[i];
            if (sl->req && (sl->req->cancelled || s->stopping)) {
                if (s->stopping && !sl->req->cancelled) snprintf(sl->error, sizeof sl->error, "the server is shutting down");
                slot_release(s, sl);
            }
        }
        while (s->q_len && !s->stopping) {
            srv_request *r = s->queue[s->q_head];
            int32_t prefix;
            srv_slot *free_slot = slot_pick(s, r, &prefix);
            if (!free_slot && !r->cancelled) break;
            s->q_head = (s->q_head + 1) % s->cfg.queue_max;
            s->q_len--;
            if (r->cancelled) {
                r->done = true;
                srv_request_unref(s, r);
            } else {
                slot_assign(s, free_slot, r, prefix);
            }
        }
        if (s->stopping) break;
        if (!s->n_active) {
            pthread_cond_broadcast(&s->progress);
            pthread_cond_wait(&s->work, &s->lock);
            continue;
        }
        int32_t n_prompt;
        int32_t n = build_batch(s, batch, &n_prompt);
        pthread_mutex_unlock(&s->lock);

        double t0 = srv_now();
        psi_status rc = n ? psi_context_decode_batch(s->ctx, batch, n) : PSI_OK;
        for (int i = 0; i < s->n_slots; i++) {
            srv_slot *sl = &s->slots[i];
            if (!sl->req || sl->batch_at == -1) continue;
            if (rc != PSI_OK) {
                snprintf(sl->error, sizeof sl->error, "evaluation failed: %s", psi_context_errmsg(s->ctx));
                sl->finish = "stop";
                continue;
            }
            if (sl->batch_at >= 0) {
                sl->pending = -1;
                slot_token(s, sl, psi_context_batch_logits(s->ctx, sl->batch_at));
            }
        }
        double dt = srv_now() - t0;

        pthread_mutex_lock(&s->lock);
        int32_t n_gen = n - n_prompt;
        s->m.steps++;
        s->m.prompt_tokens += (uint64_t)n_prompt;
        s->m.gen_tokens += (uint64_t)n_gen;
        if (n) {
            s->m.prompt_seconds += dt * n_prompt / n;
            s->m.gen_seconds += dt * n_gen / n;
        }
        for (int i = 0; i < s->n_slots; i++) {
            srv_slot *sl = &s->slots[i];
            if (!sl->req) continue;
            slot_publish(sl);
            if (sl->finish || sl->error[0]) slot_release(s, sl);
        }
        pthread_cond_broadcast(&s->progress);
    }
    /* stopping: fail whatever still waits */
    while (s->q_len) {
        srv_request *r = s->queue[s->q_head];
        s->q_head = (s->q_head + 1) % s->cfg.queue_max;
        s->q_len--;
        if (!r->error[0]) snprintf(r->error, sizeof r->error, "the server is shutting down");
        r->done = true;
        srv_request_unref(s, r);
    }
    pthread_cond_broadcast(&s->progress);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int engine_start(srv *s)
{
    if (pthread_create(&s->engine, NULL, engine_main, s)) {
        fprintf(stderr, "psi serve: cannot start the engine thread\n");
        return -1;
    }
    s->engine_started = true;
    return 0;
}

void engine_stop(srv *s)
{
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->work);
    pthread_cond_broadcast(&s->progress);
    pthread_mutex_unlock(&s->lock);
    if (s->engine_started) pthread_join(s->engine, NULL);
    s->engine_started = false;
}

void engine_free(srv *s)
{
    for (int i = 0; s->slots && i < s->n_slots; i++) free(s->slots[i].hist);
    free(s->slots);
    free(s->queue);
    free(s->batch);
    s->slots = NULL;
    s->queue = NULL;
    s->batch = NULL;
}
