/*
 * bench_tokenizer.c — tokenization and detokenization throughput (MB/s) of
 * the SentencePiece (Llama 2) and Llama 3 BPE tokenizers on a few MB of
 * mixed text: English prose, source code, numbers, and a share of other
 * scripts and emoji. The text is generated from a fixed seed, so runs
 * compare. Each figure is the median of -r runs (default 5).
 *
 *   bench_tokenizer [-r RUNS] [-s MB] [VOCAB.gguf ...]
 * Default vocabularies: $PSI_TEST_DATA/vocab/ggml-vocab-llama-spm.gguf and
 * llama3-vocab.gguf (PSI_TEST_DATA defaults to ../shared/data).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"

#include "psi.h"

static uint64_t rng = 42;

static uint32_t rnd(uint32_t n)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) % n);
}

static const char *const prose[] = {
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "he", "I", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
    "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there", "been",
    "if", "more", "when", "will", "would", "who", "so", "no", "model", "runtime", "memory", "token",
    "language", "however,", "because", "between", "through", "government", "information", "don't",
    "it's", "Meanwhile,", "example.", "(see", "below)", "\"quoted\"", "well-known", "e.g.", "U.S.",
};
static const char *const code[] = {
    "int", "main(void)", "{", "}", "return", "0;", "if", "(x", "==", "NULL)", "for", "(size_t", "i",
    "=", "0;", "i++)", "->", "self.", "def", "__init__(self,", "import", "numpy", "as", "np", "//",
    "#include", "<stdio.h>", "const", "char", "*s", "0x7f", "std::vector<int>", "fn", "let", "mut",
};
static const uint32_t scripts[][2] = {
    {0x4e00, 0x9fff}, {0x0400, 0x04ff}, {0x3040, 0x30ff}, {0xac00, 0xd7a3}, {0x0600, 0x06ff}, {0x1f300, 0x1f5ff},
};

static size_t put_cp(char *b, uint32_t cp)
{
    if (cp < 0x800) {
        b[0] = (char)(0xc0 | cp >> 6);
        b[1] = (char)(0x80 | (cp & 63));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (char)(0xe0 | cp >> 12);
        b[1] = (char)(0x80 | (cp >> 6 & 63));
        b[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    b[0] = (char)(0xf0 | cp >> 18);
    b[1] = (char)(0x80 | (cp >> 12 & 63));
    b[2] = (char)(0x80 | (cp >> 6 & 63));
    b[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* ~70% prose, 15% code, 5% numbers, 10% other scripts, in paragraphs */
static char *make_text(size_t size)
{
    char *t = malloc(size + 256);
    if (!t) return NULL;
    size_t n = 0;
    while (n < size) {
        uint32_t r = rnd(100);
        if (r < 70) {
            const char *w = prose[rnd(sizeof prose / sizeof *prose)];
            n += (size_t)sprintf(t + n, "%s ", w);
        } else if (r < 85) {
            const char *w = code[rnd(sizeof code / sizeof *code)];
            n += (size_t)sprintf(t + n, "%s%s", w, rnd(4) ? " " : "\n    ");
        } else if (r < 90) {
            n += (size_t)sprintf(t + n, "%u ", rnd(100000));
        } else {
            const uint32_t *s = scripts[rnd(6)];
            for (uint32_t k = 1 + rnd(6); k > 0; k--) n += put_cp(t + n, s[0] + rnd(s[1] - s[0] + 1));
            t[n++] = ' ';
        }
        if (rnd(60) == 0) n += (size_t)sprintf(t + n, "\n\n");
    }
    t[n] = 0;
    return t;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int bench(const char *path, const char *text, size_t len, int runs)
{
    psi_model_params mp = psi_model_default_params();
    mp.vocab_only = true;
    psi_model *m = NULL;
    char err[512];
    if (psi_model_load(path, &mp, &m, err, sizeof err) != PSI_OK) {
        fprintf(stderr, "bench_tokenizer: %s\n", err);
        return 1;
    }
    int32_t n = 0;
    psi_tokenize(m, text, len, false, false, NULL, 0, &n);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    char *back = malloc(len * 2 + 16);
    double tt[64], td[64];
    size_t back_len = 0;
    for (int r = 0; r < runs && ids && back; r++) {
        double t0 = now_s();
        if (psi_tokenize(m, text, len, false, false, ids, n, &n) != PSI_OK) {
            fprintf(stderr, "bench_tokenizer: %s: %s\n", path, psi_model_errmsg(m));
            break;
        }
        double t1 = now_s();
        psi_detokenize(m, ids, n, back, len * 2 + 16, &back_len);
        double t2 = now_s();
        tt[r] = t1 - t0;
        td[r] = t2 - t1;
    }
    double mt = median(tt, runs), md = median(td, runs);
    printf("%-28s %7.2f MB/s tokenize (%5.2f Mtok/s, %.2f bytes/token)   %7.2f MB/s detokenize   round trip %s\n",
           psi_model_meta_str(m, "general.name") ? psi_model_meta_str(m, "general.name") : path,
           (double)len / mt / 1e6, (double)n / mt / 1e6, (double)len / (double)n, (double)len / md / 1e6,
           back_len == len && !memcmp(back, text, len) ? "exact" : "DIFFERS");
    free(ids);
    free(back);
    psi_model_free(m);
    return 0;
}

int main(int argc, char **argv)
{
    int runs = 5;
    double mb = 4;
    int first = 1;
    for (; first < argc && argv[first][0] == '-'; first += 2) {
        if (first + 1 >= argc) break;
        if (!strcmp(argv[first], "-r")) runs = atoi(argv[first + 1]);
        else if (!strcmp(argv[first], "-s")) mb = atof(argv[first + 1]);
    }
    if (runs < 1 || runs > 64 || mb <= 0 || mb > 1024) {
        fprintf(stderr, "usage: bench_tokenizer [-r RUNS (1..64)] [-s MB] [VOCAB.gguf ...]\n");
        return 2;
    }
    size_t len = (size_t)(mb * 1e6);
    char *text = make_text(len);
    if (!text) return 1;
    len = strlen(text);
    printf("tokenizer throughput: %.2f MB of mixed text (prose, code, numbers, 10%% other scripts), median of %d runs, 1 thread\n",
           (double)len / 1e6, runs);
    int rc = 0;
    if (first < argc) {
        for (int i = first; i < argc; i++) rc |= bench(argv[i], text, len, runs);
    } else {
        const char *data = getenv("PSI_TEST_DATA");
        char path[4096];
        snprintf(path, sizeof path, "%s/vocab/ggml-vocab-llama-spm.gguf", data ? data : "../shared/data");
        rc |= bench(path, text, len, runs);
        snprintf(path, sizeof path, "%s/vocab/llama3-vocab.gguf", data ? data : "../shared/data");
        rc |= bench(path, text, len, runs);
    }
    free(text);
    return rc;
}
