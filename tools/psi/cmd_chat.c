/*
 * cmd_chat.c — `psi chat`: an interactive conversation in the terminal.
 *
 * Each turn the whole conversation is put through the chat template; only
 * the tokens after the longest prefix already in the KV cache are
 * evaluated, so history costs nothing to keep. The answer streams out
 * through the detokenizer (whole UTF-8 characters only). Ctrl-C stops the
 * answer being written, not the program (at the input prompt it quits,
 * like Ctrl-D). When the conversation no longer fits the context, psi
 * says so and keeps the history as it was; nothing is dropped silently.
 * Prompts ("> ") are shown only when stdin is a terminal; answers go to
 * stdout, one per turn followed by a newline; notes go to stderr.
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "gen.h"

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static const char *chat_help =
    "usage: psi chat -m FILE [options]\n"
    "  -m FILE              GGUF model (a chat / instruct model)\n"
    "  --system TEXT        system message\n"
    "  --chat-template NAME llama3, llama3.1, llama3.2, llama2 or plain\n"
    "                       (default: recognised from the model's tokenizer.chat_template)\n"
    "  -n N                 at most N tokens per answer (default: until the model ends its turn)\n"
    "  --temp T  --top-k K  --top-p P  --min-p P  --seed S   sampling, as for psi run\n"
    "  -c N                 context size in tokens (default: the model's, at most 4096)\n"
    "  -t N                 threads   --kv-type f16|f32|q8_0  --no-mmap (as psi run)  -v  log details\n"
    "In the chat: /reset clears the conversation, /exit (or Ctrl-D) quits, /help shows this.\n"
    "Ctrl-C stops the answer being written. A line ending in '\\' continues; one beginning\n"
    "with // sends text that begins with /.\n";

typedef struct convo {
    psi_chat_msg *msgs;
    char **owned; /* [n] the malloc'd text of each message (NULL for --system) */
    int32_t n, cap;
} convo;

static bool convo_push(convo *c, const char *role, char *content, bool own)
{
    if (c->n == c->cap) {
        int32_t cap = c->cap ? c->cap * 2 : 16;
        psi_chat_msg *m = realloc(c->msgs, (size_t)cap * sizeof *m);
        if (m) c->msgs = m;
        char **o = realloc(c->owned, (size_t)cap * sizeof *o);
        if (o) c->owned = o;
        if (!m || !o) return false;
        c->cap = cap;
    }
    c->msgs[c->n] = (psi_chat_msg){role, content};
    c->owned[c->n] = own ? content : NULL;
    c->n++;
    return true;
}

static void convo_pop_to(convo *c, int32_t n)
{
    while (c->n > n) free(c->owned[--c->n]);
}

/* One line of input (continued while it ends in '\'), without the newline.
 * NULL at end of input or on Ctrl-C. */
static char *read_input(bool tty, size_t *out_len)
{
    size_t len = 0;
    char *text = NULL;
    for (;;) {
        if (tty) {
            fputs(len ? ". " : "> ", stdout);
            fflush(stdout);
        }
        char *line = NULL;
        size_t cap = 0;
        errno = 0;
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0 || interrupted) {
            free(line);
            *out_len = len;
            if (len && !interrupted) return text; /* last line without newline */
            free(text);
            return NULL;
        }
        if (n > 0 && line[n - 1] == '\n') line[--n] = 0;
        if (n > 0 && line[n - 1] == '\r') line[--n] = 0;
        bool more = n > 0 && line[n - 1] == '\\';
        if (more) line[--n] = '\n';
        char *t = realloc(text, len + (size_t)n + 1);
        if (!t) {
            free(line);
            free(text);
            return NULL;
        }
        text = t;
        memcpy(text + len, line, (size_t)n + 1);
        len += (size_t)n;
        free(line);
        if (!more) {
            *out_len = len;
            return text;
        }
    }
}

/* A line that is a command: '/' and a word of letters, alone or before a
 * blank ("/etc/hosts is…" and "/ 2" are text). Returns the word's length. */
static size_t command_word(const char *line)
{
    if (line[0] != '/') return 0;
    size_t k = 1;
    while (isalpha((unsigned char)line[k]))
        k++;
    return k > 1 && (!line[k] || isspace((unsigned char)line[k])) ? k : 0;
}

typedef struct chat {
    opts *o;
    session s;
    psi_sampler *smp;
    const char *tmpl;
    const char *stop_text;
    int32_t *kv;    /* [n_ctx] tokens in the KV cache, in order */
    int32_t n_kv;
    int32_t *toks;  /* scratch: the conversation's tokens */
    int32_t toks_cap;
    int32_t n_sys;  /* messages kept by /reset */
    convo c;
} chat;

/* The conversation's tokens into ch->toks; count in *n. */
static bool chat_tokens(chat *ch, int32_t *n)
{
    char err[512];
    for (;;) {
        psi_status rc = psi_chat_tokenize(ch->s.model, ch->tmpl, ch->c.msgs, ch->c.n, true, ch->toks,
                                          ch->toks_cap, n, err, sizeof err);
        if (rc == PSI_OK) return true;
        if (rc != PSI_ERR_BUFFER_SMALL) {
            cli_fail("chat", "%s", err);
            return false;
        }
        int32_t *t = realloc(ch->toks, (size_t)*n * sizeof *t);
        if (t) ch->toks = t;
        if (!t) {
            cli_fail("chat", "out of memory");
            return false;
        }
        ch->toks_cap = *n;
    }
}

/* How much of the answer may be shown while the stop text might still be
 * forming at its end. */
static size_t safe_len(const char *s, size_t n, const char *stop)
{
    if (!stop) return n;
    size_t m = strlen(stop);
    for (size_t k = m - 1; k > 0; k--)
        if (n >= k && !memcmp(s + n - k, stop, k)) return n - k;
    return n;
}

typedef enum { ANSWER_OK, ANSWER_SKIPPED, ANSWER_FAILED } answer_rc;

/* Evaluate the new part of the conversation and stream the answer; the
 * answer text (malloc'd) is left in *out. */
static answer_rc answer(chat *ch, char **out)
{
    *out = NULL;
    int32_t n;
    if (!chat_tokens(ch, &n)) return ANSWER_FAILED;
    int32_t n_ctx = psi_context_n_ctx(ch->s.ctx);
    if (n >= n_ctx) {
        fprintf(stderr,
                "psi chat: context full: the conversation needs %d tokens and the context holds %d; "
                "/reset starts over (or restart with a larger -c)\n",
                n, n_ctx);
        return ANSWER_SKIPPED;
    }
    int32_t p = 0;
    while (p < ch->n_kv && p < n && ch->kv[p] == ch->toks[p]) p++;
    if (p == n) p--; /* the last token must be evaluated again for its logits */
    psi_context_truncate(ch->s.ctx, p);
    double t0 = gen_now_ms();
    if (gen_prefill("chat", ch->s.ctx, ch->toks + p, n - p) != PSI_OK) {
        cli_fail("chat", "%s", psi_context_errmsg(ch->s.ctx));
        ch->n_kv = 0;
        psi_context_truncate(ch->s.ctx, 0);
        return ANSWER_FAILED;
    }
    memcpy(ch->kv, ch->toks, (size_t)n * sizeof *ch->kv);
    ch->n_kv = n;
    double t1 = gen_now_ms();

    psi_detok *d = NULL;
    if (psi_detok_new(ch->s.model, -1, &d) != PSI_OK) {
        cli_fail("chat", "out of memory");
        return ANSWER_FAILED;
    }
    char *text = NULL;
    size_t len = 0, shown = 0;
    int32_t n_gen = 0, n_vocab = psi_model_n_vocab(ch->s.model);
    const char *why = NULL;
    answer_rc rc = ANSWER_OK;
    for (;;) {
        if (interrupted) {
            why = "[stopped]";
            break;
        }
        if (ch->o->n_predict >= 0 && n_gen >= ch->o->n_predict) break;
        int32_t tok = psi_sampler_sample(ch->smp, psi_context_logits(ch->s.ctx, -1), n_vocab);
        if (!ch->o->ignore_eos && psi_token_is_eog(ch->s.model, tok)) break;
        const char *piece;
        size_t k;
        bool last = false;
        if (psi_detok_push(d, tok, &piece, &k) != PSI_OK) {
            rc = ANSWER_FAILED;
            cli_fail("chat", "cannot decode token %d", tok);
            break;
        }
        n_gen++;
        char *t = realloc(text, len + k + 1);
        if (!t) {
            rc = ANSWER_FAILED;
            cli_fail("chat", "out of memory");
            break;
        }
        text = t;
        memcpy(text + len, piece, k);
        len += k;
        text[len] = 0;
        char *stop = ch->stop_text ? strstr(text, ch->stop_text) : NULL;
        if (stop) {
            len = (size_t)(stop - text);
            text[len] = 0;
            last = true;
        }
        size_t ok = last ? len : safe_len(text, len, ch->stop_text);
        if (ok > shown) {
            fwrite(text + shown, 1, ok - shown, stdout);
            fflush(stdout);
            shown = ok;
        }
        if (last) break;
        if (ch->n_kv >= n_ctx) {
            why = "[context full: the answer was cut; /reset starts over]";
            break;
        }
        if (psi_context_decode(ch->s.ctx, &tok, 1, false) != PSI_OK) {
            rc = ANSWER_FAILED;
            cli_fail("chat", "%s", psi_context_errmsg(ch->s.ctx));
            break;
        }
        ch->kv[ch->n_kv++] = tok;
    }
    const char *tail;
    size_t k;
    if (psi_detok_flush(d, &tail, &k) == PSI_OK && k && rc == ANSWER_OK) {
        char *t = realloc(text, len + k + 1);
        if (t) {
            text = t;
            memcpy(text + len, tail, k);
            len += k;
            text[len] = 0;
        }
    }
    if (len > shown) fwrite(text + shown, 1, len - shown, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    psi_detok_free(d);
    if (why) fprintf(stderr, "%s\n", why);
    if (ch->o->verbose) {
        double t2 = gen_now_ms();
        fprintf(stderr, "psi chat: %d new prompt tokens in %.1f ms, %d tokens in %.1f ms (%.1f tok/s), %d of %d context tokens used\n",
                n - p, t1 - t0, n_gen, t2 - t1, t2 > t1 ? n_gen * 1e3 / (t2 - t1) : 0.0, ch->n_kv, n_ctx);
    }
    if (rc != ANSWER_OK) {
        free(text);
        return rc;
    }
    *out = text ? text : calloc(1, 1);
    return *out ? ANSWER_OK : ANSWER_FAILED;
}

static bool pick_template(chat *ch)
{
    const char *name = ch->o->chat_template;
    if (name) {
        for (const char *const *t = psi_chat_templates(); *t; t++)
            if (!strcmp(*t, name)) {
                ch->tmpl = *t;
                return true;
            }
        cli_fail("chat", "unknown chat template '%s' (known: llama3, llama3.1, llama3.2, llama2, plain)", name);
        return false;
    }
    char err[512];
    if (psi_chat_template_detect(ch->s.model, &ch->tmpl, err, sizeof err) != PSI_OK) {
        cli_fail("chat", "%s", err);
        return false;
    }
    if (!psi_model_meta_str(ch->s.model, "tokenizer.chat_template"))
        fprintf(stderr, "psi chat: the model has no chat template; using 'plain' (see --chat-template)\n");
    return true;
}

/* The template's own tokens exist in this vocabulary (tried on an empty
 * conversation, before the user types anything). */
static bool template_fits(chat *ch)
{
    char err[512];
    int32_t n;
    psi_status rc = psi_chat_tokenize(ch->s.model, ch->tmpl, NULL, 0, true, NULL, 0, &n, err, sizeof err);
    if (rc == PSI_OK || rc == PSI_ERR_BUFFER_SMALL) return true;
    cli_fail("chat", "%s", err);
    return false;
}

int cmd_chat(int argc, char **argv)
{
    opts o = {.cmd = "chat", .n_predict = -1, .temp = 0.8, .top_k = 40, .top_p = 0.95, .min_p = 0.05,
              .kv_type = PSI_TYPE_F16};
    int prc = gen_parse_opts(&o, argc, argv, chat_help);
    if (prc) return prc < 0 ? 0 : prc;
    if (o.prompt || o.prompt_file || o.tokens) return cli_fail(o.cmd, "the chat reads its messages from stdin (no -p, -f or --tokens)");
    if (!o.seed_set) o.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

    chat ch = {.o = &o};
    int rc = gen_session_open(&ch.s, &o, true, 0);
    if (rc) goto done;
    rc = 1;
    if (!pick_template(&ch) || !template_fits(&ch)) goto done;
    if (!(ch.kv = malloc((size_t)psi_context_n_ctx(ch.s.ctx) * sizeof *ch.kv))) {
        cli_fail(o.cmd, "out of memory");
        goto done;
    }
    if (!(ch.smp = gen_sampler(&o))) goto done;
    ch.stop_text = psi_chat_stop_text(ch.tmpl);
    if (o.system && !convo_push(&ch.c, "system", (char *)o.system, false)) {
        cli_fail(o.cmd, "out of memory");
        goto done;
    }
    ch.n_sys = ch.c.n;
    bool tty = isatty(STDIN_FILENO);
    if (tty || o.verbose)
        fprintf(stderr,
                "psi chat: %s; template %s; context %d tokens. /reset clears the conversation, /exit or "
                "Ctrl-D quits, Ctrl-C stops an answer.\n",
                psi_model_desc(ch.s.model), ch.tmpl, psi_context_n_ctx(ch.s.ctx));

    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: Ctrl-C at the prompt ends the read */
    sigaction(SIGINT, &sa, &old);

    rc = 0;
    for (;;) {
        interrupted = 0;
        size_t line_len = 0;
        char *line = read_input(tty, &line_len);
        if (!line) {
            if (tty) fputc('\n', stdout);
            break;
        }
        if (!line[0] || strlen(line) != line_len) { /* empty, or a NUL byte (text would be cut there) */
            if (line_len) fprintf(stderr, "psi chat: the message holds a NUL byte; not sent\n");
            free(line);
            continue;
        }
        size_t cw = command_word(line);
        if (line[0] == '/' && line[1] == '/') {
            memmove(line, line + 1, line_len); /* "//x" sends "/x" */
        } else if (cw) {
            size_t end = line_len;
            while (end > cw && isspace((unsigned char)line[end - 1]))
                end--;
            const bool arg = end > cw; /* "/exit " is /exit */
            line[cw] = 0;              /* the command word alone */
            const bool quit = !strcmp(line, "/exit") || !strcmp(line, "/quit");
            const bool reset = !strcmp(line, "/reset"), help = !strcmp(line, "/help");
            if (arg && (quit || reset || help)) {
                fprintf(stderr, "psi chat: %s takes no argument\n", line);
            } else if (quit) {
                free(line);
                break;
            } else if (reset) {
                convo_pop_to(&ch.c, ch.n_sys);
                ch.n_kv = 0;
                psi_context_truncate(ch.s.ctx, 0);
                fprintf(stderr, "psi chat: conversation cleared\n");
            } else if (help) {
                fputs(chat_help, stderr);
            } else {
                fprintf(stderr,
                        "psi chat: unknown command '%.40s' (/help lists them; start a line with // to send "
                        "text that begins with /)\n",
                        line);
            }
            free(line);
            continue;
        }
        int32_t before = ch.c.n;
        if (!convo_push(&ch.c, "user", line, true)) {
            free(line);
            rc = cli_fail(o.cmd, "out of memory");
            break;
        }
        char *reply;
        answer_rc ar = answer(&ch, &reply);
        if (ar == ANSWER_FAILED) {
            rc = 1;
            break;
        }
        if (ar == ANSWER_SKIPPED) {
            convo_pop_to(&ch.c, before);
            continue;
        }
        if (!convo_push(&ch.c, "assistant", reply, true)) {
            free(reply);
            rc = cli_fail(o.cmd, "out of memory");
            break;
        }
    }
    sigaction(SIGINT, &old, NULL);
done:
    convo_pop_to(&ch.c, 0);
    free(ch.c.msgs);
    free(ch.c.owned);
    free(ch.kv);
    free(ch.toks);
    psi_sampler_free(ch.smp);
    gen_session_free(&ch.s);
    return rc;
}
