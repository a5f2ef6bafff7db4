/*
 * api.c — small public entry points: status strings, version, CPU count,
 * type names, the read-only GGUF view and the tokenizer wrappers.
 */
#define _GNU_SOURCE /* sched_getaffinity */
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "model.h"
#include "util.h"

const char *psi_status_str(psi_status rc)
{
    switch (rc) {
    case PSI_OK: return "ok";
    case PSI_ERR_INVALID_ARG: return "invalid argument";
    case PSI_ERR_IO: return "I/O error";
    case PSI_ERR_FORMAT: return "invalid file format";
    case PSI_ERR_UNSUPPORTED: return "unsupported";
    case PSI_ERR_NO_MEMORY: return "out of memory";
    case PSI_ERR_CONTEXT_FULL: return "context full";
    case PSI_ERR_BUFFER_SMALL: return "buffer too small";
    case PSI_ERR_DENIED: return "denied";
    }
    return "unknown status";
}

#define PSI_STR2(x) #x
#define PSI_STR(x) PSI_STR2(x)
const char *psi_version(void)
{
    return PSI_STR(PSI_VERSION_MAJOR) "." PSI_STR(PSI_VERSION_MINOR) "." PSI_STR(PSI_VERSION_PATCH);
}

const char *psi_cpu_kernels(void) { return kernels_get()->name; }

int psi_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set; /* taskset, cpusets */
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0 && CPU_COUNT(&set) < n)
        n = CPU_COUNT(&set);
    int quota = cpu_quota(); /* docker --cpus */
    if (quota > 0 && quota < n) n = quota;
    return n > 0 ? (int)n : 1;
}

const char *psi_type_name(uint32_t type)
{
    const type_traits *tt = type_get(type);
    return tt ? tt->name : NULL;
}

/* The public GGUF handle is the internal reader. */
struct psi_gguf {
    gguf *g;
};

psi_status psi_gguf_open(const char *path, psi_gguf **out, char *err, size_t err_size)
{
    if (!out || !path) return PSI_ERR_INVALID_ARG;
    *out = NULL;
    psi_gguf *h = mem_calloc(1, sizeof *h);
    if (!h) return PSI_ERR_NO_MEMORY;
    psi_status rc = gguf_open(path, &h->g, err, err_size);
    if (rc) {
        mem_free(h);
        return rc;
    }
    *out = h;
    return PSI_OK;
}

void psi_gguf_free(psi_gguf *g)
{
    if (!g) return;
    gguf_close(g->g);
    mem_free(g);
}

void psi_gguf_print(const psi_gguf *g, FILE *f, int max_array)
{
    if (g && f) gguf_print(g->g, f, max_array);
}

int32_t psi_token_bos(const psi_model *m)
{
    return m ? vocab_bos(m->vocab) : -1;
}
int32_t psi_token_eos(const psi_model *m)
{
    return m ? vocab_eos(m->vocab) : -1;
}
bool psi_model_add_bos(const psi_model *m)
{
    return m && vocab_add_bos(m->vocab);
}
bool psi_token_is_eog(const psi_model *m, int32_t token)
{
    return m && vocab_is_eog(m->vocab, token);
}

psi_status psi_tokenize(const psi_model *m, const char *text, size_t len, bool add_bos, bool parse_special,
                        int32_t *tokens, int32_t max_tokens, int32_t *n_tokens)
{
    if (!m || (!text && len) || !n_tokens || max_tokens < 0 || (!tokens && max_tokens))
        return PSI_ERR_INVALID_ARG;
    /* the handle is const for callers; the message buffer is the model's own */
    char *err = ((psi_model *)m)->errmsg;
    return vocab_tokenize(m->vocab, text ? text : "", len, add_bos, parse_special, tokens, max_tokens, n_tokens, err,
                          PSI_ERRMSG_SIZE);
}

int32_t psi_token_to_piece(const psi_model *m, int32_t prev, int32_t token, char *buf, size_t buf_size)
{
    if (!m || (!buf && buf_size)) return -1;
    return vocab_token_to_piece(m->vocab, prev, token, buf, buf_size);
}

psi_status psi_detokenize(const psi_model *m, const int32_t *tokens, int32_t n_tokens, char *buf,
                          size_t buf_size, size_t *len)
{
    if (len) *len = 0;
    if (!m || (!tokens && n_tokens) || n_tokens < 0 || (!buf && buf_size)) return PSI_ERR_INVALID_ARG;
    psi_detok *d;
    psi_status rc = psi_detok_new(m, -1, &d);
    if (rc != PSI_OK) return rc;
    size_t total = 0;
    for (int32_t i = 0; i <= n_tokens && rc == PSI_OK; i++) {
        const char *t;
        size_t n;
        rc = i < n_tokens ? psi_detok_push(d, tokens[i], &t, &n) : psi_detok_flush(d, &t, &n);
        if (rc != PSI_OK) break;
        if (total < buf_size) memcpy(buf + total, t, n < buf_size - total ? n : buf_size - total);
        total += n;
    }
    psi_detok_free(d);
    if (rc != PSI_OK) return rc;
    if (len) *len = total;
    if (buf_size) buf[total < buf_size ? total : buf_size - 1] = 0;
    return total < buf_size ? PSI_OK : PSI_ERR_BUFFER_SMALL;
}
