/*
 * test_convert_hf.c — `psi convert --from hf` on the Hugging Face
 * checkpoints in $PSI_TEST_DATA/reference/hf (single file and sharded)
 * against llama.cpp's answers (llama3-micro.reference.json): last-position
 * logits within 2e-3·max|ref|, llama.cpp's top-1 at every prompt position,
 * its 32-token greedy continuation; the vocabulary and token types equal
 * llama.cpp's own Llama 3 vocab GGUF; `psi inspect` shows the chat template
 * and special ids; the safetensors parser on hand-made corrupt headers;
 * clear errors for missing files and other architectures.
 */
#include <jansson.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "safetensors.h"

#include "testutil.h"

static json_t *ref;

static int convert(const char *dir, const char *out, const char *type, char **err)
{
    const char *argv[] = {tu_psi(), "convert", "--from", "hf", dir, "-o", out, type ? "--type" : NULL, type, NULL};
    return tu_run(argv, NULL, err);
}

/* logits and greedy ids of `model` against the reference */
static void check_model(const char *label, const char *model)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.logits.f32", tu_tmpdir("convert_hf"), label);
    json_t *tokens = json_object_get(ref, "tokens");
    size_t n_tok = json_array_size(tokens);
    char *ids = tu_ids_arg(tokens);
    const char *argv[] = {tu_psi(), "logits", "-m", model, "--tokens", ids, "-o", path, "--kv-type", "f32", NULL};
    char *err = NULL;
    int st = tu_run(argv, NULL, &err);
    CHECKF(st == 0, "%s: psi logits exit %d: %s", label, st, err);
    free(err);
    size_t nb = 0, nr = 0;
    float *got = (float *)tu_read_file(path, &nb);
    float *want = (float *)tu_read_file(tu_data("reference/hf/llama3-micro.last-logits.f32"), &nr);
    size_t V = nr / 4;
    CHECKF(got && want && nb == n_tok * nr, "%s: logits file has %zu bytes, want %zu", label, nb, n_tok * nr);
    if (got && want && nb == n_tok * nr) {
        const float *last = got + (n_tok - 1) * V;
        double maxd = 0, maxref = 0;
        for (size_t i = 0; i < V; i++) {
            double d = fabs((double)last[i] - want[i]);
            if (!(d <= maxd)) maxd = d;
            if (fabs(want[i]) > maxref) maxref = fabs(want[i]);
        }
        int top1 = 0;
        json_t *top10 = json_object_get(ref, "top10_per_position");
        for (size_t p = 0; p < n_tok; p++) {
            const float *row = got + p * V;
            size_t best = 0;
            for (size_t i = 1; i < V; i++)
                if (row[i] > row[best]) best = i;
            long long r1 = json_integer_value(json_array_get(json_array_get(json_array_get(top10, p), 0), 0));
            top1 += (long long)best == r1;
            CHECKF((long long)best == r1, "%s: position %zu: argmax %zu, llama.cpp top-1 %lld", label, p, best, r1);
        }
        printf("%-8s last-position max|d| %.3g = %.2e x max|ref| %.3g; top-1 equal at %d/%zu positions\n", label,
               maxd, maxd / maxref, maxref, top1, n_tok);
        CHECKF(maxd <= 2e-3 * maxref, "%s: max|d| %g > 2e-3 x %g", label, maxd, maxref);
    }
    free(got);
    free(want);
    const char *argv2[] = {tu_psi(), "run", "-m", model, "--tokens", ids, "-n", "32", "--temp", "0",
                           "--ignore-eos", "--json", "--kv-type", "f32", NULL};
    char *out = NULL;
    err = NULL;
    st = tu_run(argv2, &out, &err);
    CHECKF(st == 0, "%s: psi run exit %d: %s", label, st, err);
    json_error_t je;
    json_t *res = json_loads(out ? out : "", 0, &je);
    json_t *gen = json_object_get(res, "tokens"), *greedy = json_object_get(ref, "greedy_32");
    size_t same = 0;
    while (same < json_array_size(gen) && same < json_array_size(greedy) &&
           json_integer_value(json_array_get(gen, same)) == json_integer_value(json_array_get(greedy, same)))
        same++;
    printf("%-8s greedy: %zu/32 ids equal llama.cpp's\n", label, same);
    CHECKF(same == 32 && json_array_size(gen) == 32, "%s: greedy continuation differs at step %zu", label, same);
    json_decref(res);
    free(out);
    free(err);
    free(ids);
}

/* tokens and token types equal llama.cpp's conversion of the same tokenizer */
static void check_vocab(const char *model)
{
    char err[512];
    gguf *a = NULL, *b = NULL;
    CHECK(gguf_open(model, &a, err, sizeof err) == PSI_OK);
    CHECK(gguf_open(tu_data("vocab/llama3-vocab.gguf"), &b, err, sizeof err) == PSI_OK);
    if (!a || !b) goto out;
    static const char *const keys[] = {"tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                                       "tokenizer.ggml.pre", "tokenizer.ggml.model", "tokenizer.ggml.bos_token_id"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        int64_t ia = gguf_find_key(a, keys[k]), ib = gguf_find_key(b, keys[k]);
        CHECKF(ia >= 0 && ib >= 0, "%s missing", keys[k]);
        if (ia < 0 || ib < 0) continue;
        const gguf_kv *x = &a->kv[ia], *y = &b->kv[ib];
        bool same = x->type == y->type && x->arr_type == y->arr_type && x->n == y->n;
        for (uint64_t i = 0; same && i < x->n; i++) {
            if (x->strs) same = x->strs[i].len == y->strs[i].len && !memcmp(x->strs[i].ptr, y->strs[i].ptr, x->strs[i].len);
        }
        if (same && !x->strs) same = !memcmp(x->data, y->data, x->type == GGUF_ARRAY ? x->n * 4 : 4);
        CHECKF(same, "%s differs from llama.cpp's llama3-vocab.gguf", keys[k]);
    }
out:
    gguf_close(a);
    gguf_close(b);
}

static void check_inspect(const char *model)
{
    const char *argv[] = {tu_psi(), "inspect", model, NULL};
    char *out = NULL;
    CHECK(tu_run(argv, &out, NULL) == 0);
    CHECKF(out && strstr(out, "tokenizer.chat_template = \"{% set loop_messages = messages %}"),
           "inspect shows no chat template");
    CHECKF(out && strstr(out, "tokenizer.ggml.bos_token_id (u32) = 128000"), "bos id (<|begin_of_text|>)");
    CHECKF(out && strstr(out, "tokenizer.ggml.eos_token_id (u32) = 128001"), "eos id (<|end_of_text|>)");
    CHECKF(out && strstr(out, "rope_freqs.weight"), "rope_freqs from the llama3 scaling");
    free(out);
}

static void link_into(const char *dir, const char *src_dir, const char *file)
{
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/%s", src_dir, file);
    snprintf(b, sizeof b, "%s/%s", dir, file);
    unlink(b);
    CHECKF(symlink(a, b) == 0, "symlink %s", b);
}

/* dir made and holding the single checkpoint's files but `except`, which
 * the case writes itself */
static void link_all_but(const char *dir, const char *single, const char *except)
{
    static const char *const files[] = {"config.json", "tokenizer.json", "tokenizer_config.json",
                                        "model.safetensors"};
    mkdir(dir, 0755);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (strcmp(files[i], except)) link_into(dir, single, files[i]);
}

/* ---- safetensors parser on hand-made files */
static psi_status parse(const char *header, const void *payload, size_t n_payload, char *err, size_t n)
{
    tu_buf b = {0};
    tu_put_u64(&b, strlen(header));
    tu_put(&b, header, strlen(header));
    if (n_payload) tu_put(&b, payload, n_payload);
    st_file *f = NULL;
    psi_status rc = st_parse(b.p, b.len, "t.safetensors", &f, err, n);
    CHECK((rc == PSI_OK) == (f != NULL));
    st_close(f);
    tu_buf_free(&b);
    return rc;
}

static void test_corrupt(void)
{
    float data[6] = {1, 2, 3, 4, 5, 6};
    char err[512];
    CHECK(parse("{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}",
                data, 24, err, sizeof err) == PSI_OK);
    static const char *const bad[] = {
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,28]}}",       /* past the end */
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}",       /* shape/bytes mismatch */
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,4]}}",        /* end < begin */
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2,3],\"data_offsets\":[0,24]}}",      /* negative dim */
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,24]}}", /* overflow */
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,6],\"data_offsets\":[0,24]}}", /* 5 dims */
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[6]}}",                                 /* no offsets */
        "{\"w\":{\"dtype\":\"F32\",\"shape\":\"6\",\"data_offsets\":[0,24]}}",       /* shape not array */
        "{\"w\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[0,24]}}",         /* unsupported dtype */
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]},\"w\":{}}", /* duplicate key */
        "[1,2,3]",                                                                    /* not an object */
        "{\"w\":",                                                                    /* truncated JSON */
        "{\"w\":7}",                                                                  /* entry not an object */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        psi_status rc = parse(bad[i], data, 24, err, sizeof err);
        CHECKF(rc != PSI_OK && err[0] && !strchr(err, '\n'), "corrupt header %zu accepted or no message", i);
    }
    /* header length beyond the file, and a file too short for the length */
    uint8_t raw[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, '{', '}'};
    st_file *f = NULL;
    CHECK(st_parse(raw, sizeof raw, "t", &f, err, sizeof err) == PSI_ERR_FORMAT && !f);
    CHECK(st_parse(raw, 5, "t", &f, err, sizeof err) == PSI_ERR_FORMAT && !f);
}

static void test_errors(const char *single)
{
    const char *tmp = tu_tmpdir("convert_hf");
    char dir[4096], out[4096], cfg[4096];
    char *err = NULL;
    snprintf(out, sizeof out, "%s/bad.gguf", tmp);
    snprintf(dir, sizeof dir, "%s/empty", tmp);
    mkdir(dir, 0755);
    CHECK(convert(dir, out, NULL, &err) == 1 && err && strstr(err, "config.json: missing"));
    free(err);
    /* another architecture */
    snprintf(dir, sizeof dir, "%s/mistralish", tmp);
    link_all_but(dir, single, "config.json");
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    FILE *fp = fopen(cfg, "w");
    fputs("{\"model_type\": \"gpt_neox\", \"hidden_size\": 64}", fp);
    fclose(fp);
    err = NULL;
    CHECK(convert(dir, out, NULL, &err) == 1 && err && strstr(err, "model_type 'gpt_neox' is not supported"));
    free(err);
    /* Llama 3.2's tokenizer says "add BOS" with a TemplateProcessing
     * post-processor instead of tokenizer_config.json's add_bos_token */
    snprintf(dir, sizeof dir, "%s/template", tmp);
    link_all_but(dir, single, "tokenizer.json");
    char src[4096], dst[4096];
    snprintf(src, sizeof src, "%s/tokenizer.json", single);
    snprintf(dst, sizeof dst, "%s/tokenizer.json", dir);
    json_error_t je;
    json_t *tok = json_load_file(src, 0, &je);
    json_t *pp = json_loads("{\"type\": \"Sequence\", \"processors\": [{\"type\": \"ByteLevel\"}, {\"type\": "
                            "\"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<|begin_of_text|>\", "
                            "\"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}]}]}", 0, &je);
    CHECK(tok && pp && json_object_set_new(tok, "post_processor", pp) == 0 && json_dump_file(tok, dst, 0) == 0);
    json_decref(tok);
    snprintf(out, sizeof out, "%s/template.gguf", tmp);
    err = NULL;
    CHECKF(convert(dir, out, NULL, &err) == 0, "template: %s", err);
    free(err);
    gguf *g = NULL;
    bool add_bos = false;
    char e[256];
    CHECK(gguf_open(out, &g, e, sizeof e) == PSI_OK && gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, e,
                                                                         sizeof e) == PSI_OK && add_bos);
    CHECK(g && gguf_find_key(g, "tokenizer.ggml.add_eos_token") < 0);
    gguf_close(g);
    /* newer tokenizers give each merge as ["a", "b"]: the same vocabulary (a
     * merge's copy read past the end of its first string until session 15;
     * make test-asan checks this case) */
    snprintf(dir, sizeof dir, "%s/array_merges", tmp);
    link_all_but(dir, single, "tokenizer.json");
    snprintf(dst, sizeof dst, "%s/tokenizer.json", dir);
    tok = json_load_file(src, 0, &je);
    json_t *merges = json_object_get(json_object_get(tok, "model"), "merges"), *mv;
    size_t mi;
    json_array_foreach(merges, mi, mv) {
        const char *m = json_string_value(mv), *sp = m ? strchr(m, ' ') : NULL;
        if (!sp) continue;
        json_t *pair = json_pack("[s#s]", m, (int)(sp - m), sp + 1);
        json_array_set_new(merges, mi, pair);
    }
    CHECK(tok && json_array_size(merges) > 0 && json_is_array(json_array_get(merges, 0)) &&
          json_dump_file(tok, dst, 0) == 0);
    json_decref(tok);
    snprintf(out, sizeof out, "%s/array_merges.gguf", tmp);
    err = NULL;
    CHECKF(convert(dir, out, NULL, &err) == 0, "array merges: %s", err);
    free(err);
    check_vocab(out);

    /* hidden_size 2 with 4 heads and no head_dim: head_dim came out 0 and a
     * crafted checkpoint (q_proj a vector, as a zero row count reads) made
     * the Q row permutation divide by zero (SIGFPE); now a one-line error */
    snprintf(dir, sizeof dir, "%s/zero_head_dim", tmp);
    mkdir(dir, 0755);
    link_into(dir, single, "tokenizer.json");
    link_into(dir, single, "tokenizer_config.json");
    snprintf(src, sizeof src, "%s/config.json", single);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    json_t *cj = json_load_file(src, 0, &je);
    CHECK(cj && json_object_del(cj, "head_dim") == 0 && json_object_del(cj, "rope_scaling") == 0);
    json_object_set_new(cj, "hidden_size", json_integer(2));
    json_object_set_new(cj, "num_key_value_heads", json_integer(4));
    json_object_set_new(cj, "intermediate_size", json_integer(2));
    json_object_set_new(cj, "num_hidden_layers", json_integer(1));
    CHECK(json_dump_file(cj, cfg, 0) == 0);
    json_decref(cj);
    {
        static const char hdr[] = "{\"model.embed_tokens.weight\": {\"dtype\": \"F32\", \"shape\": [128256, 2], "
                                  "\"data_offsets\": [0, 1026048]}, \"model.norm.weight\": {\"dtype\": \"F32\", "
                                  "\"shape\": [2], \"data_offsets\": [1026048, 1026056]}, "
                                  "\"model.layers.0.input_layernorm.weight\": {\"dtype\": \"F32\", \"shape\": [2], "
                                  "\"data_offsets\": [1026056, 1026064]}, \"model.layers.0.self_attn.q_proj.weight\": "
                                  "{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [1026064, 1026072]}}";
        snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
        FILE *sf = fopen(dst, "wb");
        uint64_t hl = sizeof hdr - 1;
        CHECK(sf && fwrite(&hl, 8, 1, sf) == 1 && fwrite(hdr, 1, hl, sf) == hl);
        for (int k = 0; sf && k < 1026072; k++) fputc(0, sf);
        if (sf) fclose(sf);
    }
    snprintf(out, sizeof out, "%s/bad.gguf", tmp);
    err = NULL;
    CHECKF(convert(dir, out, NULL, &err) == 1 && err && strstr(err, "'head_dim' is missing") &&
               strchr(err, '\n') == err + strlen(err) - 1, /* one line */
           "zero head_dim: %s", err ? err : "");
    free(err);
    CHECK(access(out, F_OK) != 0);
    err = NULL;
    CHECK(convert(single, out, "q9_9", &err) == 1 && err && strstr(err, "not supported"));
    free(err);
    CHECK(access(out, F_OK) != 0);

    /* -o naming a file the checkpoint is read from: refused, the file kept
     * (config.json a copy here, model.safetensors a link to the fixture) */
    snprintf(dir, sizeof dir, "%s/out_is_input", tmp);
    link_all_but(dir, single, "config.json");
    snprintf(src, sizeof src, "%s/config.json", single);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    size_t n0 = 0, n1 = 0;
    char *before = tu_read_file(src, &n0);
    FILE *cf = fopen(cfg, "wb");
    CHECK(before && cf && fwrite(before, 1, n0, cf) == n0);
    if (cf) fclose(cf);
    static const char *const inputs[] = {"config.json", "tokenizer.json", "model.safetensors"};
    for (int i = 0; i < 3; i++) {
        snprintf(out, sizeof out, "%s/%s", dir, inputs[i]);
        err = NULL;
        CHECKF(convert(dir, out, i == 2 ? "q8_0" : NULL, &err) == 1 && err &&
                   strstr(err, "would replace the input"),
               "-o %s: %s", inputs[i], err ? err : "");
        free(err);
    }
    char *after = tu_read_file(cfg, &n1);
    CHECK(after && n0 == n1 && !memcmp(before, after, n0));
    free(before);
    free(after);
    char lnk[4096];
    snprintf(out, sizeof out, "%s/model.safetensors", dir);
    ssize_t ln = readlink(out, lnk, sizeof lnk - 1);
    CHECK(ln > 0); /* still the link to the fixture */
}

int main(void)
{
    json_error_t je;
    ref = json_load_file(tu_data("reference/hf/llama3-micro.reference.json"), 0, &je);
    CHECKF(ref != NULL, "reference json: %s", je.text);
    if (!ref) return tu_finish("test_convert_hf");
    const char *tmp = tu_tmpdir("convert_hf");
    char single[4096], sharded[4096], out[4096], out2[4096], out3[4096];
    snprintf(single, sizeof single, "%s", tu_data("reference/hf/llama3-micro-hf"));
    /* the sharded checkpoint, with the tokenizer files of the single one */
    snprintf(sharded, sizeof sharded, "%s/sharded", tmp);
    mkdir(sharded, 0755);
    const char *shard_src = tu_data("reference/hf/llama3-micro-hf-sharded");
    static const char *const shard_files[] = {"config.json", "generation_config.json", "model.safetensors.index.json",
                                              "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    for (size_t i = 0; i < 5; i++) link_into(sharded, shard_src, shard_files[i]);
    link_into(sharded, single, "tokenizer.json");
    link_into(sharded, single, "tokenizer_config.json");

    snprintf(out, sizeof out, "%s/single.gguf", tmp);
    snprintf(out2, sizeof out2, "%s/sharded.gguf", tmp);
    snprintf(out3, sizeof out3, "%s/single-q8_0.gguf", tmp);
    char *err = NULL;
    int st = convert(single, out, "f32", &err);
    CHECKF(st == 0, "convert single: %s", err);
    free(err);
    err = NULL;
    st = convert(sharded, out2, NULL, &err);
    CHECKF(st == 0, "convert sharded: %s", err);
    free(err);
    check_model("single", out);
    check_model("sharded", out2);
    check_vocab(out);
    check_inspect(out);
    /* same weights: every tensor of the two files byte for byte equal */
    gguf *ga = NULL, *gb = NULL;
    char e[512];
    CHECK(gguf_open(out, &ga, e, sizeof e) == PSI_OK && gguf_open(out2, &gb, e, sizeof e) == PSI_OK);
    if (ga && gb) {
        CHECK(ga->n_tensors == gb->n_tensors && ga->n_tensors == 21);
        for (uint64_t i = 0; i < ga->n_tensors && ga->n_tensors == gb->n_tensors; i++)
            CHECKF(ga->tensors[i].nbytes == gb->tensors[i].nbytes &&
                       !memcmp(ga->tensors[i].data, gb->tensors[i].data, ga->tensors[i].nbytes),
                   "tensor %llu differs between the single and sharded conversions", (unsigned long long)i);
    }
    gguf_close(ga);
    gguf_close(gb);
    /* --type f16: the BF16 checkpoint's values are exact in F16, so the
     * reference holds as tightly as for F32 */
    char out4[4096], out5[4096];
    snprintf(out4, sizeof out4, "%s/single-f16.gguf", tmp);
    snprintf(out5, sizeof out5, "%s/single-bf16.gguf", tmp);
    err = NULL;
    st = convert(single, out4, "f16", &err);
    CHECKF(st == 0, "convert --type f16: %s", err);
    free(err);
    check_model("f16", out4);
    /* --type bf16 keeps the checkpoint's BF16 bits: token_embd byte for byte */
    err = NULL;
    st = convert(single, out5, "bf16", &err);
    CHECKF(st == 0, "convert --type bf16: %s", err);
    free(err);
    {
        gguf *gg = NULL;
        st_file *sf = NULL;
        char sp[4096];
        snprintf(sp, sizeof sp, "%s/model.safetensors", single);
        CHECK(gguf_open(out5, &gg, e, sizeof e) == PSI_OK && st_open(sp, &sf, e, sizeof e) == PSI_OK);
        if (gg && sf) {
            int64_t ti = gguf_find_tensor(gg, "token_embd.weight");
            const st_tensor *src = st_find(sf, "model.embed_tokens.weight");
            CHECK(ti >= 0 && src && gg->tensors[ti].type == PSI_TYPE_BF16 && src->type == PSI_TYPE_BF16 &&
                  gg->tensors[ti].nbytes == src->n_elems * 2 &&
                  !memcmp(gg->tensors[ti].data, src->data, src->n_elems * 2));
        }
        gguf_close(gg);
        st_close(sf);
    }
    /* a quantized --type goes through psi quantize */
    err = NULL;
    st = convert(single, out3, "q8_0", &err);
    CHECKF(st == 0, "convert --type q8_0: %s", err);
    free(err);
    gguf *g = NULL;
    uint32_t ft = 0;
    CHECK(gguf_open(out3, &g, e, sizeof e) == PSI_OK && gguf_get_u32(g, "general.file_type", &ft, e, sizeof e) == PSI_OK &&
          ft == 7);
    gguf_close(g);
    test_corrupt();
    test_errors(single);
    json_decref(ref);
    return tu_finish("test_convert_hf");
}
