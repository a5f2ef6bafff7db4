/*
 * serve.h — `psi serve`, the OpenAI-compatible HTTP server, in three parts
 * that share this header:
 *   serve_http.c    libmicrohttpd: routing, auth, bodies, SSE streaming
 *   serve_api.c     OpenAI JSON → srv_request, results → OpenAI JSON
 *   serve_engine.c  the scheduler: slots, FIFO queue, continuous batching
 *   serve_config.c  --config: the models, their access, the named keys
 * cmd_serve.c parses the options and runs start-up and shutdown.
 *
 * One server (srv_front: the HTTP daemon, the keys, the guard, the audit
 * log) serves one or more models; each served model is a `srv` with its
 * own psi_context and engine thread (slots, queue, batching), so N models
 * take the sum of their memory and never wait for each other. Requests are
 * routed by their `model` field.
 *
 * Threads: libmicrohttpd runs one thread per connection; each model's
 * engine thread owns its psi_context, the samplers and detokenizers. They
 * meet in that model's lock (srv.lock): its queue, its requests' results
 * and its metrics are read and written only under it.
 */
#ifndef PSI_SERVE_H
#define PSI_SERVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "psi.h"
#include "trust.h"

#define SRV_MAX_STOP 4       /* stop strings per request (OpenAI's limit) */
#define SRV_MAX_TOP_LOGPROBS 20
#define SRV_MAX_LOGIT_BIAS   1024  /* logit_bias entries per request */
#define SRV_MAX_MODELS 64    /* models of one server (a key's models are a 64-bit mask) */

typedef struct srv_config {
    const char *model_path;
    const char *alias;         /* model id; default: the file's basename */
    const char *host;
    const char *api_key_file;
    const char *chat_template; /* NULL: recognised from the model */
    long port;
    long parallel;             /* slots = sequences of the context */
    long n_ctx;                /* per slot */
    long n_threads;
    long queue_max;            /* waiting requests beyond the slots */
    long timeout_s;            /* idle connection timeout */
    long max_body;             /* bytes */
    long prefill_chunk;        /* prompt tokens per engine step */
    long max_connections;
    psi_type kv_type;
    bool verbose;
    trust_opts trust;          /* licence and signature checks (trust.h) */
    const char *config_path;   /* --config: models, access, named keys (serve_config.c) */
    const char *guard_path;    /* --guard: Llama Guard 3 model judging each user turn */
    bool guard_output;         /* --guard-output: the guard also judges each answer */
    bool guard_fail_open;      /* --guard-fail open: a guard failure lets the request through */
    uint32_t guard_mask;       /* --guard-categories (0: all) */
    const char *audit_path;    /* --audit-log: JSON lines, one per completion request */
    bool audit_content;        /* --audit-content: with the request and the answer text */
    bool audit_fail_open;      /* --audit-fail open: serve on while the audit log cannot be written */
    bool no_prompt_cache;      /* --no-prompt-cache: every request prefills its whole prompt */
    bool no_mmap;              /* --no-mmap: weights read into memory, not mapped from the file */
    const char *cors;          /* --cors: "*" or origins separated by commas; NULL: no CORS headers */
} srv_config;

/* One generated token's probabilities (logprobs requests). */
typedef struct srv_logprob {
    int32_t token;
    float logprob;
    int32_t n_top;
    psi_token_logprob top[SRV_MAX_TOP_LOGPROBS];
} srv_logprob;

/* A completion request. The HTTP thread fills the first part, then hands it
 * to the engine (engine_submit); everything after `refs` is guarded by the
 * server lock. Freed when both sides have let go (srv_request_unref). */
typedef struct srv_request {
    bool chat;
    bool stream;
    bool include_usage;
    bool ignore_eos;     /* psi extension: generate past end-of-generation tokens */
    int32_t *prompt;
    int32_t n_prompt;
    int32_t detok_prev;  /* token before the first generated one (-1: start of text) */
    int64_t max_tokens;  /* <= 0: until the context is full */
    psi_sampler_params sp;
    int32_t *bias_id; /* logit_bias: bias_v[i] added to logit bias_id[i] */
    float *bias_v;
    int32_t n_bias;
    char *stop[SRV_MAX_STOP];
    int n_stop;
    int n_logprobs;      /* -1: none; else top alternatives per token (0..20) */
    char id[48];
    long long created;

    int refs;
    char *text;          /* released text, whole UTF-8 characters */
    size_t text_len, text_cap;
    srv_logprob *lp;     /* [n_lp] one per generated token (logprobs requests) */
    size_t n_lp, lp_cap;
    int32_t n_gen;
    int32_t n_cached;    /* prompt tokens whose KV entries a slot already held (not evaluated) */
    const char *finish;  /* "stop" | "length" once done */
    bool done;           /* the engine has let go; finish or error set */
    bool cancelled;      /* the client went away */
    char error[256];     /* non-empty: failed (engine error, shutdown) */
    double t_submit, t_first_token;
    /* set by api_parse when a guard runs: "safe", "unsafe" or "error" */
    const char *guard_verdict;
    uint32_t guard_categories; /* violated categories (unsafe) */
    /* set by api_guard_output (--guard-output) once the answer is complete */
    const char *guard_out_verdict;
    uint32_t guard_out_categories;
    psi_chat_msg *guard_conv;  /* --guard-output: the user/assistant turns the answer follows (owned) */
    int32_t n_guard_conv;
    bool blocked;              /* answered with finish_reason content_filter: never generated
                                  (input) or the answer withheld (output) */
    const char *key_name;      /* API key used (its name), NULL without keys */
    char model[128];           /* the model asked for (audit log) */
    char *audit_request;       /* --audit-content: the request body */
} srv_request;

typedef struct srv_slot srv_slot;

typedef struct srv_metrics {
    uint64_t completions, rejected_busy; /* the HTTP counters are the front's */
    uint64_t prompt_tokens, gen_tokens;
    uint64_t prompt_cached; /* prompt tokens taken from a slot's cache, not evaluated */
    double prompt_seconds, gen_seconds; /* engine time, split by tokens */
    uint64_t steps;
    uint64_t guard_safe, guard_unsafe, guard_errors; /* guard verdicts on user turns */
    uint64_t guard_out_safe, guard_out_unsafe, guard_out_errors; /* on answers (--guard-output) */
} srv_metrics;

typedef struct srv_front srv_front;

/* One served model: its context and engine. */
typedef struct srv {
    srv_config cfg;         /* the server's options; model_path, alias, chat_template, trust its own */
    srv_front *front;
    int index;              /* among front->models */
    bool restricted;        /* --config access "restricted": only keys that list it */
    char *own_name, *own_path, *own_pub; /* --config: name, resolved path and require_signed (owned) */
    const char *model_id;
    char license[64];       /* the model's general.license, "" when none */
    psi_model *model;
    psi_context *ctx;
    int32_t n_ctx;          /* per slot (read by the HTTP threads; the context is the engine's) */
    const char *tmpl;       /* chat template */
    const char *tmpl_stop;  /* its stop text, or NULL */
    pthread_mutex_t lock;
    pthread_cond_t work;    /* engine: a request arrived or was cancelled */
    pthread_cond_t progress; /* readers: some request has new output */
    pthread_mutex_t tok_lock; /* tokenizer calls (psi_tokenize writes the model's errmsg) */
    bool stopping;
    srv_request **queue;    /* FIFO ring of waiting requests */
    long q_head, q_len;
    srv_slot *slots;
    psi_batch_token *batch; /* [slots + prefill_chunk] the engine's step */
    int n_slots, n_active;
    srv_metrics m;
    uint64_t next_id;
    uint64_t n_assigned;    /* requests put into slots (the slots' LRU stamps) */
    pthread_t engine;
    bool engine_started;
} srv;

/* An API key: --api-key-file lines (named key1, key2, …, every model) or
 * --config keys (a name, the restricted models they may use). */
typedef struct srv_key {
    char name[64];
    unsigned char hash[32]; /* SHA-256 of the key */
    uint64_t models;        /* restricted models it may use: bit i = front->models[i] */
} srv_key;

/* The server: what every model shares. */
struct srv_front {
    srv_config cfg;
    srv **models;
    int n_models;
    srv_key *keys;          /* none: no authentication (open models only) */
    size_t n_keys;
    psi_model *guard;       /* --guard model, or NULL; used under guard_lock */
    pthread_mutex_t guard_lock;
    FILE *audit;            /* --audit-log, or NULL; written under audit_lock */
    pthread_mutex_t audit_lock;
    bool audit_broken;     /* the last audit line could not be written (under audit_lock) */
    uint64_t audit_errors; /* lines lost (under audit_lock) */
    struct MHD_Daemon *daemon;
    pthread_mutex_t lock;   /* ready and the HTTP counters */
    bool ready;             /* every model loaded */
    uint64_t http_requests, errors;
};

/* serve_engine.c */
int engine_init(srv *s);   /* slots, queue; 0 or -1 (message printed) */
int engine_start(srv *s);
/* Under no lock. Takes a reference. 0 = queued, 1 = queue full, 2 = stopping. */
int engine_submit(srv *s, srv_request *r);
void engine_stop(srv *s);  /* cancel everything, join the thread */
void engine_free(srv *s);
void srv_request_unref(srv *s, srv_request *r); /* under the lock */
void srv_request_free(srv_request *r);

/* serve_api.c */
typedef struct api_error {
    int status;
    const char *type;     /* "invalid_request_error", … */
    const char *code;     /* or NULL */
    char param[64];       /* or empty */
    char message[512];
} api_error;

/* May this key (NULL: no keys configured) use the model? */
bool api_may_use(const srv_key *key, const srv *m);
/* The model of that name (len: its length; one with a NUL inside matches none) if
 * the key may use it; else NULL and the 404 "does not exist or you do not
 * have access to it", the same bytes whether it exists or not. */
srv *api_find(srv_front *f, const srv_key *key, const char *name, size_t len, api_error *e);
/* The model a request body asks for, among those the key may use: its
 * `model` field, or the only one the key may use when it has none. NULL
 * with e set otherwise — a model the key may not use gets exactly the 404
 * of a model that does not exist. asked receives the name asked for. */
srv *api_route(srv_front *f, const srv_key *key, const char *body, size_t len, char *asked, size_t asked_size,
               api_error *e);
/* Fill r from a request body; tokenizes the prompt (under tok_lock). false
 * with e set on any error. */
bool api_parse(srv *s, const char *body, size_t len, bool chat, srv_request *r, api_error *e);
void api_errorf(api_error *e, int status, const char *type, const char *param, const char *code,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* JSON body texts, malloc'd (NULL when out of memory). */
char *api_error_json(const api_error *e);
char *api_final_json(srv *s, const srv_request *r);  /* non-streaming answer; under the lock */
/* The next SSE event(s) of a stream (text/logprobs from *text_off, *lp_off);
 * under the lock. first: add the role chunk; end: add the finish, usage
 * and [DONE]. Appends to *buf. */
bool api_stream_events(srv *s, const srv_request *r, bool first, size_t *text_off, size_t *lp_off, bool end,
                       char **buf, size_t *len, size_t *cap);
/* The models the key may use; one (the one named) when one is not NULL. */
char *api_models_json(srv_front *f, const srv_key *key, const srv *one);
/* --guard-output: judge the finished answer (under no lock; r is done);
 * an unsafe one is withheld (r->blocked, finish_reason content_filter). */
void api_guard_output(srv *s, srv_request *r);
/* One audit-log line for a finished completion request (no-op without
 * --audit-log). A line that cannot be written is counted and said on
 * stderr (once, and again when lines go through again). */
void api_audit(srv_front *f, const srv_request *r, int status);
/* True while completions must be refused: --audit-fail closed and the last
 * audit line could not be written. */
bool api_audit_blocked(srv_front *f);
char *api_metrics_text(srv_front *f);

/* serve_http.c */
int http_start(srv_front *f);    /* 0 or -1 (message printed) */
void http_stop(srv_front *f);
int http_load_keys(srv_front *f); /* --api-key-file */

/* serve_config.c: read --config into f (models created, not loaded; keys).
 * 0, or -1 with one line printed. */
int config_load(srv_front *f);
void srv_models_free(srv_front *f); /* f->models, however made */

double srv_now(void);      /* monotonic seconds */
bool buf_append(char **buf, size_t *len, size_t *cap, const char *data, size_t n);

#endif
