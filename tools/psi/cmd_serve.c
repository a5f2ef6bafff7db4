/*
 * cmd_serve.c — `psi serve`: options, start-up and shutdown of the
 * OpenAI-compatible server (serve.h describes its parts, docs/server.md
 * its API). The HTTP side starts first so /health can say 503 while the
 * models load; SIGINT/SIGTERM cancel what is in flight and free everything;
 * SIGHUP opens the audit log again (log rotation).
 * Also `psi keyhash`, the hash --config stores for an API key.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "hub.h"
#include "serve.h"

static const char *serve_help =
    "usage: psi serve -m FILE [options]\n"
    "       psi serve --config FILE [options]\n"
    "  -m FILE               GGUF model\n"
    "  --config FILE         JSON: several models, each open or restricted, and named API keys (their\n"
    "                        SHA-256, see psi keyhash) with the restricted models each may use\n"
    "  --host ADDR           address to listen on (default 127.0.0.1)\n"
    "  --port N              port (default 8080; 0 picks a free one, printed on stderr)\n"
    "  --parallel N          slots: conversations evaluated together (default 4)\n"
    "  -c N                  context size per slot in tokens (default: the model's, at most 4096)\n"
    "  -t N                  threads (default: every core)\n"
    "  --kv-type f16|f32|q8_0  KV cache type (default f16)\n"
    "  --alias NAME          model id clients use (default: the file's name)\n"
    "  --chat-template NAME  llama3, llama3.1, llama3.2, llama2 or plain (default: from the model)\n"
    "  --api-key-file FILE   require a key from FILE (one per line) as Authorization: Bearer KEY\n"
    "                        (-m only)\n"
    "  --queue N             requests that may wait for a slot (default 64; beyond: 503)\n"
    "  --max-body BYTES      largest request body (default 4194304; beyond: 413)\n"
    "  --timeout S           close connections idle this long (default 60)\n"
    "  --prefill-chunk N     tokens per step, prompt pieces and other slots' tokens (default 256)\n"
    "  --max-connections N   simultaneous connections (default 256)\n"
    "  --no-mmap             read the weights into memory (2 MiB pages) instead of mapping the file:\n"
    "                        generation a few % faster, loading slower\n"
    "  --no-prompt-cache     prefill every prompt whole (default: a slot keeps the tokens of its last\n"
    "                        request, and a prompt that begins with them evaluates only the rest)\n"
    "  --guard FILE          Llama Guard 3 model: each user turn is judged first; unsafe requests are\n"
    "                        answered with finish_reason content_filter and the categories\n"
    "  --guard-fail open|closed  a guard failure or unparseable verdict lets through or blocks\n"
    "                        (default closed)\n"
    "  --guard-categories L  the categories that apply, e.g. S1,S9,S14 (default all 14)\n"
    "  --guard-output        also judge each answer before it is sent; an unsafe one is withheld\n"
    "                        (content_filter); streamed answers are then held back until judged\n"
    "  --audit-log FILE      append one JSON line per completion request (time, key, model, tokens,\n"
    "                        guard verdict, status; no text unless --audit-content)\n"
    "  --audit-fail open|closed  when a line cannot be written (disk full): serve on, or refuse\n"
    "                        completions with 503 until lines go through again (default closed)\n"
    "  --cors ORIGINS        let web pages from these origins call the API from a browser: '*' or a\n"
    "                        comma-separated list like https://app.example,http://localhost:3000\n"
    "                        (default: none; API keys still apply)\n"
    "  -v                    log details\n";

/* "*", or origins "scheme://host[:port]" (http or https, no path) separated
 * by commas. */
static bool cors_valid(const char *v)
{
    if (!strcmp(v, "*")) return true;
    for (const char *p = v;;) {
        size_t k = strcspn(p, ",");
        size_t scheme = !strncmp(p, "http://", 7) ? 7 : !strncmp(p, "https://", 8) ? 8 : 0;
        if (!scheme || k == scheme) return false;
        for (size_t i = scheme; i < k; i++)
            if (!isalnum((unsigned char)p[i]) && !strchr("-.:[]", p[i])) return false;
        if (!p[k]) return true;
        p += k + 1;
    }
}

static int parse(srv_config *c, int argc, char **argv)
{
    const char *cmd = "serve";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long *num = NULL, lo = 0, hi = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(serve_help, stdout);
            fputs(trust_help, stdout);
            return -1;
        } else if (!strcmp(a, "-v")) {
            c->verbose = true;
            continue;
        } else if (!strcmp(a, "--audit-content")) {
            c->audit_content = true;
            continue;
        } else if (!strcmp(a, "--guard-output")) {
            c->guard_output = true;
            continue;
        } else if (!strcmp(a, "--no-prompt-cache")) {
            c->no_prompt_cache = true;
            continue;
        } else if (!strcmp(a, "--no-mmap")) {
            c->no_mmap = true;
            continue;
        }
        int t = trust_parse(cmd, &c->trust, argc, argv, &i);
        if (t < 0) return 1;
        if (t) continue;
        if (!(v = cli_value(cmd, argc, argv, &i))) return 1;
        if (!strcmp(a, "-m")) c->model_path = v;
        else if (!strcmp(a, "--host")) c->host = v;
        else if (!strcmp(a, "--alias")) c->alias = v;
        else if (!strcmp(a, "--chat-template")) c->chat_template = v;
        else if (!strcmp(a, "--api-key-file")) c->api_key_file = v;
        else if (!strcmp(a, "--guard")) c->guard_path = v;
        else if (!strcmp(a, "--audit-log")) c->audit_path = v;
        else if (!strcmp(a, "--config")) c->config_path = v;
        else if (!strcmp(a, "--cors")) {
            if (!cors_valid(v))
                return cli_fail(cmd,
                                "--cors: '%s' is not '*' or a comma-separated list of origins like "
                                "https://app.example or http://localhost:3000",
                                v);
            c->cors = v;
        } else if (!strcmp(a, "--guard-fail")) {
            if (strcmp(v, "open") && strcmp(v, "closed"))
                return cli_fail(cmd, "--guard-fail: '%s' is not one of open, closed", v);
            c->guard_fail_open = !strcmp(v, "open");
        } else if (!strcmp(a, "--audit-fail")) {
            if (strcmp(v, "open") && strcmp(v, "closed"))
                return cli_fail(cmd, "--audit-fail: '%s' is not one of open, closed", v);
            c->audit_fail_open = !strcmp(v, "open");
        } else if (!strcmp(a, "--guard-categories")) {
            psi_guard_verdict cats; /* the list reads as a verdict's second line */
            size_t n = strlen(v) + 8;
            char *txt = malloc(n);
            if (!txt) return cli_fail(cmd, "out of memory");
            snprintf(txt, n, "unsafe\n%s", v);
            psi_status rc = psi_guard_parse(txt, strlen(txt), &cats);
            free(txt);
            if (rc != PSI_OK) return cli_fail(cmd, "--guard-categories: '%s' is not a list like S1,S9,S14", v);
            c->guard_mask = cats.categories;
        } else if (!strcmp(a, "--kv-type")) {
            if (!cli_kv_type(cmd, v, &c->kv_type)) return 1;
        } else if (!strcmp(a, "--port"))
            num = &c->port, hi = 65535;
        else if (!strcmp(a, "--parallel")) num = &c->parallel, lo = 1, hi = 256;
        else if (!strcmp(a, "-c")) num = &c->n_ctx, lo = 1, hi = 1L << 20;
        else if (!strcmp(a, "-t")) num = &c->n_threads, lo = 1, hi = 1024;
        else if (!strcmp(a, "--queue")) num = &c->queue_max, lo = 1, hi = 100000;
        else if (!strcmp(a, "--max-body")) num = &c->max_body, lo = 1024, hi = 1L << 30;
        else if (!strcmp(a, "--timeout")) num = &c->timeout_s, lo = 1, hi = 86400;
        else if (!strcmp(a, "--prefill-chunk")) num = &c->prefill_chunk, lo = 1, hi = 65536;
        else if (!strcmp(a, "--max-connections")) num = &c->max_connections, lo = 1, hi = 10000;
        else return cli_fail(cmd, "unknown option '%s' (see psi serve --help)", a);
        if (num && !cli_int(cmd, a, v, lo, hi, num)) return 1;
    }
    if (c->config_path && c->model_path) return cli_fail(cmd, "give -m FILE or --config FILE, not both");
    if (!c->model_path && !c->config_path) return cli_fail(cmd, "no model: give -m FILE or --config FILE");
    if (c->config_path && c->api_key_file)
        return cli_fail(cmd, "--api-key-file and --config exclude each other: put the keys in the config");
    if (c->config_path && c->alias) return cli_fail(cmd, "--alias and --config exclude each other: name models in the config");
    if (c->guard_output && !c->guard_path) return cli_fail(cmd, "--guard-output needs --guard FILE");
    return 0;
}

/* SIGINT/SIGTERM while the models load: nothing is in flight, the loads
 * cannot be cut short, so the process ends at once. */
static void stop_loading(int sig)
{
    static const char msg[] = "psi serve: stopped while loading\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    (void)sig;
    _exit(0); /* a stop asked for, as after loading */
}

/* on: the main thread takes SIGINT/SIGTERM in stop_loading (the others keep
 * them blocked); off: blocked again, for sigwait. */
static void loading(bool on)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on ? stop_loading : SIG_DFL;
    sigemptyset(&sa.sa_mask);
    if (on) {
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    sigset_t two;
    sigemptyset(&two);
    sigaddset(&two, SIGINT);
    sigaddset(&two, SIGTERM);
    pthread_sigmask(on ? SIG_UNBLOCK : SIG_BLOCK, &two, NULL);
    if (!on) {
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
}

/* The audit log, appended and readable by the owner only; NULL (said) on failure. */
static FILE *open_audit(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    FILE *a = fd >= 0 ? fdopen(fd, "a") : NULL;
    if (!a) {
        cli_fail("serve", "--audit-log: %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
    }
    return a;
}

/* SIGHUP: the audit log is opened again by name (after logrotate moved it);
 * lines go on to the old file when the new one cannot be opened. */
static void reopen_audit(srv_front *f)
{
    if (!f->audit) return;
    FILE *a = open_audit(f->cfg.audit_path);
    if (!a) return;
    pthread_mutex_lock(&f->audit_lock);
    FILE *old = f->audit;
    f->audit = a;
    pthread_mutex_unlock(&f->audit_lock);
    fclose(old);
    fprintf(stderr, "psi serve: SIGHUP: audit log %s opened again\n", f->cfg.audit_path);
}

static int load(srv *s)
{
    char err[512];
    psi_model_params mp = psi_model_default_params();
    mp.verbose = s->cfg.verbose;
    mp.use_mmap = !s->cfg.no_mmap;
    /* while the server says "loading": a signature check reads the whole file */
    if (trust_check("serve", s->cfg.model_path, &s->cfg.trust, s->license, sizeof s->license)) return 1;
    if (psi_model_load(s->cfg.model_path, &mp, &s->model, err, sizeof err) != PSI_OK)
        return cli_fail("serve", "%s", err);
    psi_context_params cp = psi_context_default_params();
    long n_ctx = s->cfg.n_ctx, train = psi_model_n_ctx_train(s->model);
    if (!n_ctx) n_ctx = train > 0 && train < 4096 ? train : 4096;
    cp.n_ctx = (int32_t)n_ctx;
    cp.n_threads = (int32_t)s->cfg.n_threads;
    cp.kv_type = s->cfg.kv_type;
    cp.n_seq = (int32_t)s->cfg.parallel;
    if (psi_context_new(s->model, &cp, &s->ctx, err, sizeof err) != PSI_OK) return cli_fail("serve", "%s", err);
    s->n_ctx = psi_context_n_ctx(s->ctx);
    const char *name = s->cfg.chat_template;
    if (name) {
        for (const char *const *t = psi_chat_templates(); *t; t++)
            if (!strcmp(*t, name)) s->tmpl = *t;
        if (!s->tmpl) return cli_fail("serve", "unknown chat template '%s' (known: llama3, llama3.1, llama3.2, llama2, plain)", name);
    } else if (psi_chat_template_detect(s->model, &s->tmpl, err, sizeof err) != PSI_OK) {
        return cli_fail("serve", "%s (choose one with --chat-template)", err);
    }
    s->tmpl_stop = psi_chat_stop_text(s->tmpl);
    fprintf(stderr, "psi serve: %s as '%s'%s; %ld slots of %d tokens; chat template %s\n", psi_model_desc(s->model),
            s->model_id, s->restricted ? " (restricted)" : "", s->cfg.parallel, psi_context_n_ctx(s->ctx), s->tmpl);
    return 0;
}

static int load_guard(srv_front *f)
{
    char err[512];
    psi_model_params mp = psi_model_default_params();
    mp.verbose = f->cfg.verbose;
    mp.use_mmap = !f->cfg.no_mmap;
    if (!f->cfg.guard_path) return 0;
    if (trust_check("serve", f->cfg.guard_path, &f->cfg.trust, NULL, 0)) return 1;
    if (psi_model_load(f->cfg.guard_path, &mp, &f->guard, err, sizeof err) != PSI_OK)
        return cli_fail("serve", "--guard: %s", err);
    return 0;
}

/* -m FILE: one open model, every key may use it. */
static int single_model(srv_front *f)
{
    srv *s;
    if (!(f->models = calloc(1, sizeof *f->models)) || !(s = f->models[0] = calloc(1, sizeof *s)))
        return cli_fail("serve", "out of memory");
    f->n_models = 1;
    s->cfg = f->cfg;
    s->front = f;
    if (hub_is_ref(s->cfg.model_path)) { /* hf:... pulls on first use */
        if (!(s->own_path = hub_model_path("serve", s->cfg.model_path))) return 1;
        s->cfg.model_path = s->own_path;
    }
    const char *base = strrchr(s->cfg.model_path, '/');
    s->model_id = s->cfg.alias ? s->cfg.alias : base ? base + 1 : s->cfg.model_path;
    /* clients name the model in JSON: an id that is not UTF-8 could be neither listed nor answered */
    json_t *id = json_string(s->model_id);
    json_decref(id);
    if (!id || !s->model_id[0])
        return cli_fail("serve", "the model id '%s'%s is %s: give one with --alias", s->model_id,
                        s->cfg.alias ? "" : " (the file's name)", id ? "empty" : "not UTF-8");
    /* a missing file is said before the server starts (access: never blocks, even on a FIFO) */
    if (access(s->cfg.model_path, R_OK)) return cli_fail("serve", "%s: %s", s->cfg.model_path, strerror(errno));
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    srv_front f = {.cfg = {.host = "127.0.0.1", .port = 8080, .parallel = 4, .queue_max = 64, .timeout_s = 60,
                           .max_body = 4 << 20, .prefill_chunk = 256, .max_connections = 256,
                           .kv_type = PSI_TYPE_F16}};
    int rc = parse(&f.cfg, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    if (sodium_init() < 0) return cli_fail("serve", "libsodium failed to start");
    rc = 1;
    if (f.cfg.config_path ? config_load(&f) : single_model(&f) || http_load_keys(&f)) {
        srv_models_free(&f);
        free(f.keys);
        return 1;
    }
    if (f.cfg.audit_path && !(f.audit = open_audit(f.cfg.audit_path))) {
        srv_models_free(&f);
        free(f.keys);
        return 1;
    }

    /* Signals are taken by sigwait below, never by a handler: every thread
     * started from here on inherits the blocked mask. While the models load
     * (which can take minutes) the main thread alone takes them, in
     * stop_loading: nothing is in flight then. */
    sigset_t stop_sigs, old;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, &old);
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&f.lock, NULL);
    pthread_mutex_init(&f.guard_lock, NULL);
    pthread_mutex_init(&f.audit_lock, NULL);
    for (int i = 0; i < f.n_models; i++) {
        srv *s = f.models[i];
        pthread_mutex_init(&s->lock, NULL);
        pthread_mutex_init(&s->tok_lock, NULL);
        pthread_cond_init(&s->work, NULL);
        pthread_cond_init(&s->progress, NULL);
    }

    for (int i = 0; i < f.n_models; i++)
        if (engine_init(f.models[i])) goto done;
    if (http_start(&f)) goto done;
    loading(true);
    if (load_guard(&f)) goto done_loading;
    for (int i = 0; i < f.n_models; i++) {
        int bad = load(f.models[i]);
        loading(false); /* the engine's thread inherits the blocked mask */
        if (bad || engine_start(f.models[i])) goto done;
        if (i + 1 < f.n_models) loading(true);
    }
    pthread_mutex_lock(&f.lock);
    f.ready = true;
    pthread_mutex_unlock(&f.lock);
    fprintf(stderr, "psi serve: ready\n");
    int sig = 0;
    while (sigwait(&stop_sigs, &sig) == 0 && sig == SIGHUP)
        reopen_audit(&f);
    fprintf(stderr, "psi serve: %s: shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = 0;
    goto done;
done_loading:
    loading(false);
done:
    for (int i = 0; i < f.n_models; i++) engine_stop(f.models[i]); /* cancels every request: their connections end */
    http_stop(&f);
    for (int i = 0; i < f.n_models; i++) {
        srv *s = f.models[i];
        engine_free(s);
        psi_context_free(s->ctx);
        psi_model_free(s->model);
        pthread_cond_destroy(&s->work);
        pthread_cond_destroy(&s->progress);
        pthread_mutex_destroy(&s->lock);
        pthread_mutex_destroy(&s->tok_lock);
    }
    psi_model_free(f.guard);
    srv_models_free(&f);
    free(f.keys);
    pthread_mutex_destroy(&f.lock);
    pthread_mutex_destroy(&f.guard_lock);
    pthread_mutex_destroy(&f.audit_lock);
    if (f.audit) fclose(f.audit);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* psi keyhash: the SHA-256 of an API key read on stdin, as --config's
 * "sha256" wants it (trailing white space, e.g. the newline, is not part
 * of the key, as in --api-key-file). */
int cmd_keyhash(int argc, char **argv)
{
    if (argc > 1) {
        if (strcmp(argv[1], "-h") && strcmp(argv[1], "--help"))
            return cli_fail("keyhash", "takes no arguments: the key is read on stdin");
        fputs("usage: printf %s KEY | psi keyhash\n"
              "  prints the SHA-256 of the key (64 hex digits) for psi serve --config's \"sha256\"\n",
              stdout);
        return 0;
    }
    char key[4096];
    size_t n = fread(key, 1, sizeof key, stdin);
    if (n == sizeof key) return cli_fail("keyhash", "the key is longer than %zu bytes", sizeof key - 1);
    while (n && strchr(" \t\r\n", key[n - 1])) n--;
    if (!n) return cli_fail("keyhash", "no key on stdin (printf %%s KEY | psi keyhash)");
    if (memchr(key, '\n', n) || memchr(key, '\r', n) || memchr(key, 0, n))
        return cli_fail("keyhash", "the key spans several lines or holds a NUL: an API key is one line");
    if (sodium_init() < 0) return cli_fail("keyhash", "libsodium failed to start");
    unsigned char h[crypto_hash_sha256_BYTES];
    char hex[2 * sizeof h + 1];
    crypto_hash_sha256(h, (const unsigned char *)key, n);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    sodium_memzero(key, sizeof key);
    printf("%s\n", hex);
    return 0;
}
