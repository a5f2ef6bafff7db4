/*
 * chat.c — chat templates: a conversation (role, content messages) turned
 * into the token sequence a chat model was trained on.
 *
 * psi does not run Jinja. It recognises the templates that Llama models
 * ship in tokenizer.chat_template and reproduces each one's output in C:
 *  - llama3    Meta Llama 3 Instruct: <|begin_of_text|>, then per message
 *              <|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|>
 *              (content trimmed); the generation prompt is the assistant
 *              header.
 *  - llama3.1  Llama 3.1 Instruct (no tools): like llama3, but a system turn
 *              always comes first, holding "Cutting Knowledge Date:
 *              December 2023\nToday Date: 26 Jul 2024\n\n" and then the
 *              system message, if any.
 *  - llama3.2  Llama 3.2 Instruct: as llama3.1 with today's date
 *              ("%d %b %Y", what the template's strftime_now gives).
 *  - llama2    Llama 2 chat: <s>[INST] <<SYS>>\nSYSTEM\n<</SYS>>\n\nUSER [/INST]
 *              ANSWER </s><s>[INST] USER [/INST] ... (content stripped; roles
 *              must alternate user/assistant after an optional system).
 *  - plain     no special tokens: the system message as a first paragraph,
 *              then "User: ...\n" / "Assistant: ...\n" lines; the generation
 *              prompt is "Assistant:". For models without a template.
 * Special tokens come from the template only: message text is tokenized as
 * plain text, so a user who types "<|eot_id|>" cannot end a turn (unlike
 * rendering the template to a string and parsing specials in it).
 * Trimming strips ASCII whitespace (Jinja's trim also strips other Unicode
 * spaces; the difference only shows with such spaces at a message's ends).
 */
#include <stdio.h>
#include <time.h>

#include "model.h"
#include "tokenizer.h"
#include "util.h"

enum chat_kind { CHAT_LLAMA3, CHAT_LLAMA31, CHAT_LLAMA32, CHAT_LLAMA2, CHAT_PLAIN };

static const char *const chat_names[] = {"llama3", "llama3.1", "llama3.2", "llama2", "plain", NULL};

const char *const *psi_chat_templates(void) { return chat_names; }

static int chat_kind_of(const char *name)
{
    for (int i = 0; name && chat_names[i]; i++)
        if (!strcmp(name, chat_names[i])) return i;
    return -1;
}

psi_status psi_chat_template_detect(const psi_model *m, const char **name, char *err, size_t err_size)
{
    if (!m || !name) return PSI_ERR_INVALID_ARG;
    *name = NULL;
    const char *t = psi_model_meta_str(m, "tokenizer.chat_template");
    if (!t) {
        *name = "plain";
        return PSI_OK;
    }
    if (strstr(t, "<|start_header_id|>") && strstr(t, "<|end_header_id|>")) {
        if (!strstr(t, "Cutting Knowledge Date")) *name = "llama3";
        else *name = strstr(t, "strftime_now") ? "llama3.2" : "llama3.1";
        return PSI_OK;
    }
    if (strstr(t, "[INST]") && strstr(t, "<<SYS>>")) {
        *name = "llama2";
        return PSI_OK;
    }
    size_t n = strcspn(t, "\n");
    err_setf(err, err_size,
             "the model's chat template is not one psi knows (it begins '%.*s'); choose one with "
             "--chat-template (llama3, llama3.1, llama3.2, llama2, plain)",
             (int)(n > 60 ? 60 : n), t);
    return PSI_ERR_UNSUPPORTED;
}

/* ---------------------------------------------------------------- building */

typedef struct builder {
    const vocab *v;
    vocab_part *p;
    size_t n, cap;
    psi_status rc;
    char *err;
    size_t err_size;
} builder;

static void add_part(builder *b, int32_t id, const char *text, size_t len)
{
    if (b->rc != PSI_OK) return;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 32, bytes;
        vocab_part *p = size_mul_ovf(cap, sizeof *p, &bytes) ? NULL : mem_realloc(b->p, bytes);
        if (!p) {
            b->rc = PSI_ERR_NO_MEMORY;
            err_setf(b->err, b->err_size, "chat: out of memory");
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    b->p[b->n++] = (vocab_part){id, text, len};
}

static void add_text(builder *b, const char *s) { add_part(b, -1, s, strlen(s)); }

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* s without leading (left) and/or trailing (right) whitespace */
static void add_trim(builder *b, const char *s, bool left, bool right)
{
    size_t n = strlen(s), i = 0;
    while (left && i < n && is_space(s[i])) i++;
    while (right && n > i && is_space(s[n - 1])) n--;
    add_part(b, -1, s + i, n - i);
}

static void add_trimmed(builder *b, const char *s) { add_trim(b, s, true, true); }

/* A special token of the template, looked up by its text. */
static void add_special(builder *b, const char *text)
{
    if (b->rc != PSI_OK) return;
    int32_t id = vocab_find(b->v, text, strlen(text));
    if (id < 0) {
        b->rc = PSI_ERR_UNSUPPORTED;
        err_setf(b->err, b->err_size, "chat: the template needs the token %s, which the vocabulary lacks", text);
        return;
    }
    add_part(b, id, NULL, 0);
}

static void add_id(builder *b, int32_t id, const char *what)
{
    if (b->rc != PSI_OK) return;
    if (id < 0) {
        b->rc = PSI_ERR_UNSUPPORTED;
        err_setf(b->err, b->err_size, "chat: the template needs a %s token, which the vocabulary lacks", what);
        return;
    }
    add_part(b, id, NULL, 0);
}

static void fail(builder *b, const char *msg)
{
    if (b->rc != PSI_OK) return;
    b->rc = PSI_ERR_INVALID_ARG;
    err_setf(b->err, b->err_size, "chat: %s", msg);
}

static void llama3_turn(builder *b, const char *role, const char *content)
{
    add_special(b, "<|start_header_id|>");
    add_text(b, role);
    add_special(b, "<|end_header_id|>");
    add_text(b, "\n\n");
    add_trimmed(b, content);
    add_special(b, "<|eot_id|>");
}

static void build_llama3(builder *b, int kind, const psi_chat_msg *msgs, int32_t n, bool gen, const char *date)
{
    int32_t i = 0;
    if (kind == CHAT_LLAMA3) {
        if (n > 0) add_id(b, b->v->bos, "BOS");
    } else {
        add_id(b, b->v->bos, "BOS");
        add_special(b, "<|start_header_id|>");
        add_text(b, "system");
        add_special(b, "<|end_header_id|>");
        add_text(b, "\n\nCutting Knowledge Date: December 2023\nToday Date: ");
        add_text(b, date);
        add_text(b, "\n\n");
        if (n > 0 && !strcmp(msgs[0].role, "system")) add_trimmed(b, msgs[i++].content);
        add_special(b, "<|eot_id|>");
    }
    for (; i < n; i++)
        llama3_turn(b, msgs[i].role, msgs[i].content);
    if (gen) {
        add_special(b, "<|start_header_id|>");
        add_text(b, "assistant");
        add_special(b, "<|end_header_id|>");
        add_text(b, "\n\n");
    }
}

static void build_llama2(builder *b, const psi_chat_msg *msgs, int32_t n, bool gen)
{
    int32_t i = 0;
    const char *sys = NULL;
    if (n > 0 && !strcmp(msgs[0].role, "system")) sys = msgs[i++].content;
    for (int32_t k = 0; i < n; i++, k++) {
        const char *want = k % 2 == 0 ? "user" : "assistant";
        if (strcmp(msgs[i].role, want)) {
            fail(b, "the llama2 template needs the roles to alternate user/assistant/user/... "
                    "(after an optional first system message)");
            return;
        }
        if (k % 2 == 0) {
            add_id(b, b->v->bos, "BOS");
            add_text(b, "[INST] ");
            if (k == 0 && sys) {
                /* Meta strips "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + user as one string */
                add_text(b, "<<SYS>>\n");
                add_trim(b, sys, true, false);
                add_text(b, "\n<</SYS>>\n\n");
                add_trim(b, msgs[i].content, false, true);
            } else {
                add_trimmed(b, msgs[i].content);
            }
            add_text(b, " [/INST]");
        } else {
            add_text(b, " ");
            add_trimmed(b, msgs[i].content);
            add_text(b, " ");
            add_id(b, b->v->eos, "EOS");
        }
    }
    (void)gen; /* the generation prompt is the [/INST] already written */
}

static void build_plain(builder *b, const psi_chat_msg *msgs, int32_t n, bool gen)
{
    if (vocab_add_bos(b->v)) add_id(b, b->v->bos, "BOS");
    for (int32_t i = 0; i < n; i++) {
        const char *r = msgs[i].role;
        if (!strcmp(r, "system")) {
            add_trimmed(b, msgs[i].content);
            add_text(b, "\n\n");
            continue;
        }
        add_text(b, !strcmp(r, "user") ? "User: " : !strcmp(r, "assistant") ? "Assistant: " : r);
        if (strcmp(r, "user") && strcmp(r, "assistant")) add_text(b, ": ");
        add_trimmed(b, msgs[i].content);
        add_text(b, "\n");
    }
    if (gen) add_text(b, "Assistant:");
}

static psi_status build(builder *b, const psi_model *m, const char *tmpl, const psi_chat_msg *msgs, int32_t n,
                        bool gen, char *date, size_t date_size)
{
    if (!m || (!msgs && n) || n < 0) {
        err_setf(b->err, b->err_size, "chat: invalid argument");
        return PSI_ERR_INVALID_ARG;
    }
    int kind = chat_kind_of(tmpl);
    if (kind < 0) {
        err_setf(b->err, b->err_size,
                 "chat: unknown template '%s' (known: llama3, llama3.1, llama3.2, llama2, plain)",
                 tmpl ? tmpl : "(null)");
        return PSI_ERR_INVALID_ARG;
    }
    for (int32_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content || !msgs[i].role[0]) {
            err_setf(b->err, b->err_size, "chat: message %d has no role or no content", (int)i);
            return PSI_ERR_INVALID_ARG;
        }
    b->v = m->vocab;
    snprintf(date, date_size, "26 Jul 2024");
    if (kind == CHAT_LLAMA32) {
        time_t now = time(NULL);
        struct tm tm;
        if (localtime_r(&now, &tm)) strftime(date, date_size, "%d %b %Y", &tm);
    }
    switch (kind) {
    case CHAT_LLAMA2: build_llama2(b, msgs, n, gen); break;
    case CHAT_PLAIN: build_plain(b, msgs, n, gen); break;
    default: build_llama3(b, kind, msgs, n, gen, date); break;
    }
    return b->rc;
}

psi_status psi_chat_tokenize(const psi_model *m, const char *tmpl, const psi_chat_msg *msgs, int32_t n_msgs,
                             bool add_generation_prompt, int32_t *tokens, int32_t max_tokens, int32_t *n_tokens,
                             char *err, size_t err_size)
{
    if (n_tokens) *n_tokens = 0;
    builder b = {.err = err, .err_size = err_size};
    char date[32];
    psi_status rc = build(&b, m, tmpl, msgs, n_msgs, add_generation_prompt, date, sizeof date);
    if (rc == PSI_OK)
        rc = vocab_tokenize_parts(m->vocab, b.p, b.n, tokens, max_tokens, n_tokens, err, err_size);
    mem_free(b.p);
    return rc;
}

psi_status psi_chat_format(const psi_model *m, const char *tmpl, const psi_chat_msg *msgs, int32_t n_msgs,
                           bool add_generation_prompt, char *buf, size_t buf_size, size_t *len, char *err,
                           size_t err_size)
{
    if (len) *len = 0;
    if (!buf && buf_size) return PSI_ERR_INVALID_ARG;
    builder b = {.err = err, .err_size = err_size};
    char date[32];
    psi_status rc = build(&b, m, tmpl, msgs, n_msgs, add_generation_prompt, date, sizeof date);
    size_t total = 0;
    for (size_t i = 0; rc == PSI_OK && i < b.n; i++) {
        size_t n = b.p[i].len;
        const char *s = b.p[i].id >= 0 ? vocab_token_text(m->vocab, b.p[i].id, &n) : b.p[i].text;
        if (total < buf_size) memcpy(buf + total, s, n < buf_size - total ? n : buf_size - total);
        total += n;
    }
    mem_free(b.p);
    if (rc != PSI_OK) return rc;
    if (len) *len = total;
    if (buf_size) buf[total < buf_size ? total : buf_size - 1] = 0;
    return total < buf_size ? PSI_OK : PSI_ERR_BUFFER_SMALL;
}

const char *psi_chat_stop_text(const char *tmpl)
{
    return chat_kind_of(tmpl) == CHAT_PLAIN ? "\nUser:" : NULL;
}
