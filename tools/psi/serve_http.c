/*
 * serve_http.c — the HTTP side of `psi serve` on libmicrohttpd: one thread
 * per connection, routing (404 unknown path, 405 wrong method), Bearer
 * authentication against the keys (--api-key-file or --config), each
 * request to the model it names (one the key may use), request bodies up to --max-body
 * (413 beyond), OpenAI errors, and answers: whole JSON documents, or
 * Server-Sent Events streamed from the engine's output as it comes.
 *
 * A client that goes away is noticed while its thread waits for the engine
 * (poll for POLLRDHUP every 50 ms): the request is cancelled and the engine
 * gives its slot back at the start of its next step.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "serve.h"

enum route { R_HEALTH, R_METRICS, R_MODELS, R_CHAT, R_COMPLETIONS, R_MODEL_ONE };

static const struct {
    const char *path;
    const char *method;
    enum route route;
} routes[] = {
    {"/health", "GET", R_HEALTH},
    {"/metrics", "GET", R_METRICS},
    {"/v1/models", "GET", R_MODELS},
    {"/v1/chat/completions", "POST", R_CHAT},
    {"/v1/completions", "POST", R_COMPLETIONS},
};

typedef struct conn {
    enum route route;
    char *body;
    size_t len, cap;
    bool too_big;
    size_t dropped; /* body bytes read and thrown away once too_big */
    const srv_key *key; /* the API key used (see authorized); NULL without keys */
} conn;

/* ------------------------------------------------------------------ answers */

/* The Access-Control-Allow-Origin value for this request under --cors: "*",
 * the request's Origin when listed, else NULL (no CORS headers). */
static const char *cors_allow(const srv_front *f, struct MHD_Connection *c)
{
    const char *list = f->cfg.cors;
    const char *origin = list ? MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin") : NULL;
    if (!origin) return NULL;
    if (!strcmp(list, "*")) return "*";
    size_t n = strlen(origin);
    for (const char *p = list;;) {
        size_t k = strcspn(p, ",");
        if (k == n && !strncmp(p, origin, n)) return origin;
        if (!p[k]) return NULL;
        p += k + 1;
    }
}

static void add_cors(const srv_front *f, struct MHD_Connection *c, struct MHD_Response *rsp)
{
    const char *allow = cors_allow(f, c);
    if (!allow) return;
    MHD_add_response_header(rsp, "Access-Control-Allow-Origin", allow);
    MHD_add_response_header(rsp, "Access-Control-Expose-Headers", "Retry-After");
    if (strcmp(allow, "*")) MHD_add_response_header(rsp, "Vary", "Origin");
}

/* A CORS preflight (OPTIONS) from an allowed origin: 204 saying what the
 * browser may send. The headers asked for are echoed when they are plain
 * header names (the openai client adds its own x-stainless-* ones). */
static enum MHD_Result preflight(srv_front *f, struct MHD_Connection *c)
{
    struct MHD_Response *rsp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!rsp) return MHD_NO;
    const char *asked = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Access-Control-Request-Headers");
    const size_t n = asked ? strlen(asked) : 0;
    bool plain = asked && n < 2048 &&
                 strspn(asked, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_, ") == n;
    add_cors(f, c, rsp);
    MHD_add_response_header(rsp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    MHD_add_response_header(rsp, "Access-Control-Allow-Headers",
                            plain ? asked : "Authorization, Content-Type");
    MHD_add_response_header(rsp, "Access-Control-Max-Age", "600");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_NO_CONTENT, rsp);
    MHD_destroy_response(rsp);
    return rc;
}

static enum MHD_Result respond(srv_front *f, struct MHD_Connection *c, unsigned status, const char *type, char *body,
                               const char *retry_after)
{
    if (!body) {
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        type = "application/json";
        body = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}");
        if (!body) return MHD_NO;
    }
    struct MHD_Response *rsp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!rsp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(rsp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (retry_after) MHD_add_response_header(rsp, MHD_HTTP_HEADER_RETRY_AFTER, retry_after);
    if (status == MHD_HTTP_UNAUTHORIZED) MHD_add_response_header(rsp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    add_cors(f, c, rsp);
    if (status >= 400) {
        pthread_mutex_lock(&f->lock);
        f->errors++;
        pthread_mutex_unlock(&f->lock);
    }
    enum MHD_Result rc = MHD_queue_response(c, status, rsp);
    MHD_destroy_response(rsp);
    return rc;
}

static enum MHD_Result respond_error(srv_front *f, struct MHD_Connection *c, const api_error *e,
                                     const char *retry_after)
{
    return respond(f, c, (unsigned)e->status, "application/json", api_error_json(e), retry_after);
}

static enum MHD_Result fail(srv_front *f, struct MHD_Connection *c, int status, const char *type, const char *code,
                            const char *msg, const char *retry_after)
{
    api_error e;
    api_errorf(&e, status, type, NULL, code, "%s", msg);
    return respond_error(f, c, &e, retry_after);
}

/* 413: a body over --max-body. */
static enum MHD_Result fail_too_large(srv_front *f, struct MHD_Connection *c)
{
    char msg[128];
    snprintf(msg, sizeof msg, "the request body is larger than %ld bytes", f->cfg.max_body);
    return fail(f, c, 413, "invalid_request_error", "request_too_large", msg, NULL);
}

/* 503, retry in a second: the models are still loading. */
static enum MHD_Result fail_loading(srv_front *f, struct MHD_Connection *c)
{
    return fail(f, c, 503, "server_error", "model_loading", "the model is still loading", "1");
}

static bool front_ready(srv_front *f)
{
    pthread_mutex_lock(&f->lock);
    bool ready = f->ready;
    pthread_mutex_unlock(&f->lock);
    return ready;
}

/* ---------------------------------------------------------------- auth */

int http_load_keys(srv_front *fr)
{
    const char *path = fr->cfg.api_key_file;
    if (!path) return 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "psi serve: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            line[--n] = 0;
        if (n == 0 || line[0] == '#') continue;
        srv_key *k = realloc(fr->keys, (fr->n_keys + 1) * sizeof *k);
        if (!k) break;
        fr->keys = k;
        k += fr->n_keys++;
        snprintf(k->name, sizeof k->name, "key%zu", fr->n_keys); /* the file has no names: its line among the keys */
        k->models = ~(uint64_t)0;
        crypto_hash_sha256(k->hash, (const unsigned char *)line, (unsigned long long)n);
    }
    free(line);
    fclose(f);
    if (!fr->n_keys) {
        fprintf(stderr, "psi serve: %s holds no API key (one per line)\n", path);
        return -1;
    }
    return 0;
}

/* Constant time in the key: the key's SHA-256 is compared with every
 * stored hash (sodium_memcmp), whatever matched before. false when keys
 * are set and none matches; *key: the match (NULL when no keys are set). */
static bool authorized(srv_front *f, struct MHD_Connection *c, const srv_key **key)
{
    *key = NULL;
    if (!f->n_keys) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7)) return false;
    h += 7;
    while (*h == ' ') h++;
    unsigned char hash[32];
    crypto_hash_sha256(hash, (const unsigned char *)h, strlen(h));
    for (size_t i = 0; i < f->n_keys; i++)
        if (sodium_memcmp(hash, f->keys[i].hash, sizeof hash) == 0) *key = &f->keys[i];
    return *key != NULL;
}

/* ---------------------------------------------------------------- streaming */

static bool client_gone(int fd)
{
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static int conn_fd(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* Wait (under the lock) up to 50 ms for news; false when the client left
 * (the request is then cancelled). */
static bool wait_news(srv *s, srv_request *r, int fd)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&s->progress, &s->lock, &ts);
    if (!r->done && client_gone(fd)) {
        r->cancelled = true;
        pthread_cond_signal(&s->work);
        return false;
    }
    return true;
}

typedef struct stream {
    srv *s;
    srv_request *r;
    struct MHD_Connection *c;
    int fd;
    char *buf;
    size_t len, cap, off;
    size_t text_off, lp_off;
    bool first, finished;
    bool held;      /* --guard-output: the answer is held back until judged */
} stream;

/* While the engine works on a request the connection's idle timeout is
 * off (a long prompt or a queue may take longer than --timeout); it is back
 * on, counted from now, while the answer is being sent. */
static void idle_timeout(srv *s, struct MHD_Connection *c, bool on)
{
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, on ? (unsigned)s->cfg.timeout_s : 0u);
}

/* Wait (under the lock) until the engine is done with r; false when the
 * client left. */
static bool wait_done(srv *s, srv_request *r, int fd)
{
    while (!r->done)
        if (!wait_news(s, r, fd)) return false;
    return true;
}

/* Blocks until there is something to send (returning 0, "nothing yet",
 * would spin). */
static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    stream *st = cls;
    srv *s = st->s;
    srv_request *r = st->r;
    while (st->off == st->len) {
        if (st->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        st->off = st->len = 0;
        idle_timeout(s, st->c, false);
        pthread_mutex_lock(&s->lock);
        if (st->held) { /* nothing is sent before the whole answer has been judged */
            bool here = wait_done(s, r, st->fd);
            pthread_mutex_unlock(&s->lock);
            if (!here) return MHD_CONTENT_READER_END_WITH_ERROR;
            api_guard_output(s, r);
            st->held = false;
            pthread_mutex_lock(&s->lock);
        }
        while (!(st->first && r->chat) && !r->done && r->text_len == st->text_off && r->n_lp == st->lp_off)
            if (!wait_news(s, r, st->fd)) {
                pthread_mutex_unlock(&s->lock);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
        idle_timeout(s, st->c, true);
        bool end = r->done;
        bool ok = api_stream_events(s, r, st->first, &st->text_off, &st->lp_off, end, &st->buf, &st->len, &st->cap);
        pthread_mutex_unlock(&s->lock);
        st->first = false;
        if (!ok) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (end) st->finished = true;
    }
    size_t n = st->len - st->off < max ? st->len - st->off : max;
    memcpy(out, st->buf + st->off, n);
    st->off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    stream *st = cls;
    srv *s = st->s;
    pthread_mutex_lock(&s->lock);
    api_audit(s->front, st->r, !st->r->done ? 499 : st->r->error[0] ? 500 : 200); /* the stream's outcome */
    if (!st->r->done) {
        st->r->cancelled = true;
        pthread_cond_signal(&s->work);
    }
    srv_request_unref(s, st->r);
    pthread_mutex_unlock(&s->lock);
    free(st->buf);
    free(st);
}

/* ---------------------------------------------------------------- completions */

static enum MHD_Result completion(srv_front *f, struct MHD_Connection *c, conn *cn)
{
    if (!front_ready(f)) return fail_loading(f, c);
    const bool audit_blocked = api_audit_blocked(f);
    srv_request *r = calloc(1, sizeof *r);
    if (!r) return fail(f, c, 500, "server_error", NULL, "out of memory", NULL);
    r->refs = 1;
    r->chat = cn->route == R_CHAT;
    r->key_name = cn->key ? cn->key->name : NULL;
    if (f->cfg.audit_content && cn->body) r->audit_request = strndup(cn->body, cn->len);
    api_error e;
    const char *body = cn->body ? cn->body : "";
    srv *s = api_route(f, cn->key, body, cn->len, r->model, sizeof r->model, &e);
    if (s) snprintf(r->model, sizeof r->model, "%s", s->model_id);
    if (s && audit_blocked) { /* --audit-fail closed: this line is the probe that may clear it */
        api_errorf(&e, 503, "server_error", NULL, "audit_log_unavailable",
                   "the audit log cannot be written, so no completion is served; retry later");
        api_audit(f, r, 503);
        srv_request_free(r);
        return respond_error(f, c, &e, "5");
    }
    if (!s || !api_parse(s, body, cn->len, r->chat, r, &e)) {
        api_audit(f, r, e.status);
        srv_request_free(r);
        return respond_error(f, c, &e, NULL);
    }
    if (r->blocked) { /* the guard said no: a normal answer, nothing generated */
        char *out = NULL;
        size_t len = 0, cap = 0, text_off = 0, lp_off = 0;
        if (!r->stream) out = api_final_json(s, r);
        else if (!api_stream_events(s, r, true, &text_off, &lp_off, true, &out, &len, &cap)) out = (free(out), NULL);
        bool sse_body = r->stream;
        api_audit(f, r, 200);
        srv_request_free(r);
        return respond(f, c, MHD_HTTP_OK, sse_body ? "text/event-stream" : "application/json", out, NULL);
    }
    int sub = engine_submit(s, r);
    if (sub) {
        api_audit(f, r, 503);
        srv_request_free(r);
        return sub == 1 ? fail(f, c, 503, "server_error", "server_overloaded",
                               "the server is busy: every slot is in use and the queue is full; retry later", "1")
                        : fail(f, c, 503, "server_error", "shutting_down", "the server is shutting down", NULL);
    }
    pthread_mutex_lock(&s->lock);
    s->m.completions++;
    pthread_mutex_unlock(&s->lock);
    int fd = conn_fd(c);
    if (r->stream) {
        stream *st = calloc(1, sizeof *st);
        struct MHD_Response *rsp =
            st ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, st, stream_free) : NULL;
        if (!rsp) {
            free(st);
            pthread_mutex_lock(&s->lock);
            r->cancelled = true;
            pthread_cond_signal(&s->work);
            srv_request_unref(s, r);
            pthread_mutex_unlock(&s->lock);
            return MHD_NO;
        }
        *st = (stream){.s = s, .r = r, .c = c, .fd = fd, .first = true, .held = f->guard && f->cfg.guard_output};
        MHD_add_response_header(rsp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(rsp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        add_cors(f, c, rsp);
        enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, rsp);
        MHD_destroy_response(rsp);
        return rc;
    }
    idle_timeout(s, c, false);
    pthread_mutex_lock(&s->lock);
    bool here = wait_done(s, r, fd);
    pthread_mutex_unlock(&s->lock);
    if (here) api_guard_output(s, r); /* no-op without --guard-output */
    pthread_mutex_lock(&s->lock);
    char *out = NULL;
    api_error err = {0};
    if (here && r->error[0]) api_errorf(&err, 500, "server_error", NULL, NULL, "%s", r->error);
    else if (here) out = api_final_json(s, r);
    api_audit(f, r, !here ? 499 : err.status ? err.status : 200); /* 499: the client went away */
    srv_request_unref(s, r);
    pthread_mutex_unlock(&s->lock);
    if (!here) return MHD_NO; /* nobody to answer */
    idle_timeout(s, c, true);
    if (err.status) return respond_error(f, c, &err, NULL);
    return respond(f, c, MHD_HTTP_OK, "application/json", out, NULL);
}

/* ---------------------------------------------------------------- dispatch */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    srv_front *f = cls;
    conn *cn = *con_cls;
    if (!cn) {
        pthread_mutex_lock(&f->lock);
        f->http_requests++;
        pthread_mutex_unlock(&f->lock);
        int found = -1;
        bool path_known = false;
        for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
            if (!strcmp(url, routes[i].path)) {
                path_known = true;
                if (!strcmp(method, routes[i].method) || (!strcmp(method, "HEAD") && !strcmp(routes[i].method, "GET")))
                    found = (int)i;
            }
        bool model_one = !strncmp(url, "/v1/models/", 11) && (!strcmp(method, "GET") || !strcmp(method, "HEAD"));
        /* a browser's preflight carries no API key; without --cors (or from
         * another origin) OPTIONS is a 405 like any other method */
        if (!strcmp(method, "OPTIONS") && (path_known || !strncmp(url, "/v1/models/", 11)) &&
            cors_allow(f, c))
            return preflight(f, c);
        if (found < 0 && !model_one) {
            if (!path_known && strncmp(url, "/v1/models/", 11))
                return fail(f, c, 404, "invalid_request_error", "not_found", "no such endpoint", NULL);
            char msg[128];
            snprintf(msg, sizeof msg, "method %.20s is not allowed here", method);
            return fail(f, c, 405, "invalid_request_error", "method_not_allowed", msg, NULL);
        }
        enum route rt = model_one ? R_MODEL_ONE : routes[found].route;
        const srv_key *key = NULL;
        if (rt != R_HEALTH && !authorized(f, c, &key))
            return fail(f, c, 401, "invalid_request_error", "invalid_api_key",
                        "a valid API key is required (Authorization: Bearer KEY)", NULL);
        /* A body announced too large is refused at once when the client waits
         * for "100 Continue" or the body is absurd; otherwise it is read and
         * dropped so that the client, still sending, gets to read the 413. */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
        unsigned long long announced = cl ? strtoull(cl, NULL, 10) : 0;
        if (announced > (unsigned long long)f->cfg.max_body &&
            ((expect && strcasestr(expect, "100-continue")) || announced / 16 > (unsigned long long)f->cfg.max_body)) {
            return fail_too_large(f, c);
        }
        if (!(cn = calloc(1, sizeof *cn))) return MHD_NO;
        cn->route = rt;
        cn->key = key;
        *con_cls = cn;
        return MHD_YES;
    }
    if (*upload_size) {
        if (cn->too_big && (cn->dropped += *upload_size) / 16 > (size_t)f->cfg.max_body) {
            return fail_too_large(f, c);
        }
        if (!cn->too_big && cn->len + *upload_size > (size_t)f->cfg.max_body) {
            cn->too_big = true;
            free(cn->body);
            cn->body = NULL;
            cn->len = cn->cap = 0;
        }
        if (!cn->too_big && !buf_append(&cn->body, &cn->len, &cn->cap, upload, *upload_size)) return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    if (cn->too_big) return fail_too_large(f, c);
    switch (cn->route) {
    case R_HEALTH:
        return front_ready(f) ? respond(f, c, 200, "application/json", strdup("{\"status\":\"ok\"}"), NULL)
                              : fail_loading(f, c);
    case R_METRICS: return respond(f, c, 200, "text/plain; version=0.0.4", api_metrics_text(f), NULL);
    case R_MODELS: return respond(f, c, 200, "application/json", api_models_json(f, cn->key, NULL), NULL);
    case R_MODEL_ONE: {
        api_error e;
        srv *m = api_find(f, cn->key, url + 11, strlen(url + 11), &e);
        return m ? respond(f, c, 200, "application/json", api_models_json(f, cn->key, m), NULL)
                 : respond_error(f, c, &e, NULL);
    }
    case R_CHAT:
    case R_COMPLETIONS: return completion(f, c, cn);
    }
    return MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)c;
    (void)why;
    conn *cn = *con_cls;
    if (cn) free(cn->body);
    free(cn);
    *con_cls = NULL;
}

int http_start(srv_front *f)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%ld", f->cfg.port);
    int gai = getaddrinfo(f->cfg.host, port, &hints, &ai);
    if (gai) {
        fprintf(stderr, "psi serve: --host %s: %s\n", f->cfg.host, gai_strerror(gai));
        return -1;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    if (f->cfg.verbose) flags |= MHD_USE_ERROR_LOG;
    f->daemon = MHD_start_daemon(flags, (uint16_t)f->cfg.port, NULL, NULL, on_request, f, MHD_OPTION_SOCK_ADDR,
                                 ai->ai_addr, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)f->cfg.timeout_s,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)f->cfg.max_connections,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, f, MHD_OPTION_END);
    int family = ai->ai_family;
    freeaddrinfo(ai);
    if (!f->daemon) {
        fprintf(stderr, "psi serve: cannot listen on %s port %ld (in use, or not an address of this machine)\n",
                f->cfg.host, f->cfg.port);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(f->daemon, MHD_DAEMON_INFO_BIND_PORT);
    fprintf(stderr, "psi serve: listening on http://%s%s%s:%u\n", family == AF_INET6 ? "[" : "", f->cfg.host,
            family == AF_INET6 ? "]" : "", di ? di->port : (unsigned)f->cfg.port);
    return 0;
}

void http_stop(srv_front *f)
{
    if (f->daemon) MHD_stop_daemon(f->daemon);
    f->daemon = NULL;
}
