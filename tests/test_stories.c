/*
 * test_stories.c — end to end on a real trained model: stories260K, against
 * llama2.c run.c's greedy ids, text and logits (models/stories260K-reference.txt),
 * through the psi program (run --json, logits), on llama.cpp's GGUF and on
 * psi's own conversion of the llama2.c checkpoint.
 */
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "testutil.h"

#define MAX_IDS 80

typedef struct ref_case {
    char prompt[256];
    int prompt_ids[MAX_IDS], n_prompt;
    int ids[MAX_IDS], n_ids; /* token fed at pos 0..63 + final sampled one */
    char text[1024];         /* run.c stdout between the markers */
} ref_case;

static int parse_ids(const char *s, int *out)
{
    int n = 0;
    char *end;
    for (;;) {
        long v = strtol(s, &end, 10);
        if (end == s || n >= MAX_IDS) break;
        out[n++] = (int)v;
        s = end;
    }
    return n;
}

static int load_reference(ref_case *cases)
{
    char *txt = tu_read_file(tu_data("models/stories260K-reference.txt"), NULL);
    if (!txt) return 0;
    int n = 0;
    char *p = txt;
    while (n < 3 && (p = strstr(p, "prompt = '"))) {
        ref_case *c = &cases[n];
        p += strlen("prompt = '");
        char *q = strchr(p, '\'');
        snprintf(c->prompt, sizeof c->prompt, "%.*s", (int)(q - p), p);
        p = strstr(q, "prompt token ids :") + strlen("prompt token ids :");
        c->n_prompt = parse_ids(p, c->prompt_ids);
        p = strstr(p, "(pos 0..63 + final):") + strlen("(pos 0..63 + final):");
        c->n_ids = parse_ids(p, c->ids);
        p = strstr(p, "<<<\n") + 4;
        q = strstr(p, ">>>");
        snprintf(c->text, sizeof c->text, "%.*s", (int)(q - p), p);
        p = q;
        n++;
    }
    free(txt);
    return n;
}

/* run.c prints the prompt, then the generated pieces, then '\n'. */
static void check_generation(const char *model, const ref_case *c, int idx)
{
    int n_gen = 64 - c->n_prompt + 1;
    char n_arg[16];
    snprintf(n_arg, sizeof n_arg, "%d", n_gen);
    const char *argv[] = {tu_psi(), "run", "-m", model, "-p", c->prompt, "-n", n_arg, "--temp", "0",
                          "--json", "-t", "2", NULL};
    char *out = NULL, *err = NULL;
    int st = tu_run(argv, &out, &err);
    CHECKF(st == 0, "case %d: psi run exit %d: %s", idx, st, err);
    json_error_t je;
    json_t *root = json_loads(out ? out : "", 0, &je);
    CHECKF(root != NULL, "case %d: output is not JSON: %s", idx, out);
    if (root) {
        json_t *pt = json_object_get(root, "prompt_tokens"), *tk = json_object_get(root, "tokens");
        CHECKF(json_array_size(pt) == (size_t)c->n_prompt, "case %d: %zu prompt tokens, want %d", idx,
               json_array_size(pt), c->n_prompt);
        for (int i = 0; i < c->n_prompt && i < (int)json_array_size(pt); i++)
            CHECKF(json_integer_value(json_array_get(pt, (size_t)i)) == c->prompt_ids[i],
                   "case %d: prompt id %d", idx, i);
        CHECKF(json_array_size(tk) == (size_t)n_gen, "case %d: %zu tokens generated, want %d", idx,
               json_array_size(tk), n_gen);
        int mismatches = 0;
        for (int i = 0; i < n_gen && i < (int)json_array_size(tk); i++)
            if (json_integer_value(json_array_get(tk, (size_t)i)) != c->ids[c->n_prompt + i]) mismatches++;
        CHECKF(mismatches == 0, "case %d: %d generated ids differ from run.c", idx, mismatches);
        /* expected text: run.c's output minus the echoed prompt and the final '\n' */
        const char *want = c->text;
        size_t plen = strlen(c->prompt);
        if (plen && !strncmp(want, c->prompt, plen)) want += plen;
        size_t wlen = strlen(want);
        if (wlen && want[wlen - 1] == '\n') wlen--;
        const char *got = json_string_value(json_object_get(root, "text"));
        CHECKF(got && strlen(got) == wlen && !strncmp(got, want, wlen), "case %d: text\n got: [%s]\nwant: [%.*s]",
               idx, got ? got : "(null)", (int)wlen, want);
        json_decref(root);
    }
    free(out);
    free(err);
}

static void check_logits(const char *model, const ref_case *c, int idx, const char *tmp)
{
    char ids[1024] = "", path[4096], ref_path[64];
    size_t len = 0;
    for (int i = 0; i < 64; i++) len += (size_t)snprintf(ids + len, sizeof ids - len, "%d ", c->ids[i]);
    snprintf(path, sizeof path, "%s/logits%d.f32", tmp, idx + 1);
    const char *argv[] = {tu_psi(), "logits", "-m", model, "--tokens", ids, "-o", path, "--kv-type", "f32", NULL};
    char *err = NULL;
    int st = tu_run(argv, NULL, &err);
    CHECKF(st == 0, "case %d: psi logits exit %d: %s", idx, st, err);
    free(err);
    snprintf(ref_path, sizeof ref_path, "models/stories260K-logits/logits%d.f32", idx + 1);
    size_t n_got = 0, n_ref = 0;
    char *got = tu_read_file(path, &n_got), *ref = tu_read_file(tu_data(ref_path), &n_ref);
    CHECKF(got && ref && n_got == n_ref && n_ref == 64 * 512 * 4, "case %d: logits sizes %zu vs %zu", idx, n_got,
           n_ref);
    if (got && ref && n_got == n_ref) {
        float maxd = 0;
        for (size_t i = 0; i < n_ref / 4; i++) {
            float a, b;
            memcpy(&a, got + 4 * i, 4);
            memcpy(&b, ref + 4 * i, 4);
            float d = fabsf(a - b);
            if (!(d <= maxd)) maxd = d; /* NaN propagates */
        }
        printf("stories260K %s case %d: max |logit - run.c| = %.3g over 64 positions\n",
               strstr(model, "psi-") ? "(psi convert)" : "(llama.cpp gguf)", idx + 1, maxd);
        CHECKF(maxd <= 1e-4f, "case %d: max abs logit difference %g > 1e-4", idx, maxd);
    }
    free(got);
    free(ref);
}

int main(void)
{
    ref_case cases[3];
    memset(cases, 0, sizeof cases);
    int n = load_reference(cases);
    CHECKF(n == 3, "parsed %d reference cases from stories260K-reference.txt", n);
    const char *tmp = tu_tmpdir("stories");

    /* psi's own llama2.c conversion */
    char converted[4096];
    snprintf(converted, sizeof converted, "%s/psi-stories260K.gguf", tmp);
    const char *argv[] = {tu_psi(), "convert", "--from", "llama2c", tu_data("models/stories260K.bin"),
                          tu_data("models/tok512.bin"), "-o", converted, NULL};
    char *err = NULL;
    int st = tu_run(argv, NULL, &err);
    CHECKF(st == 0, "psi convert exit %d: %s", st, err);
    free(err);

    char original[4096];
    snprintf(original, sizeof original, "%s", tu_data("models/stories260K.gguf"));
    const char *models[2] = {original, converted};
    for (int m = 0; m < 2; m++)
        for (int i = 0; i < n; i++) {
            check_generation(models[m], &cases[i], i);
            check_logits(models[m], &cases[i], i, tmp);
        }
    return tu_finish("test_stories");
}
