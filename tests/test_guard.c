/*
 * test_guard.c — Llama Guard 3 prompt and verdict (psi_guard_*): the built
 * prompt equals, token for token in the Llama 3 vocabulary, the format
 * written out here from Meta's Llama Guard 3 prompt format; the verdict
 * parser takes "safe" / "unsafe\nS1,S10" and refuses everything else; end
 * to end, a guard model built here whose weights make it answer a fixed
 * verdict is run by psi_guard_check.
 */
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "psi.h"
#include "testutil.h"

/* The format as Meta's model card page and reference shield write it,
 * spelled out by hand for one user turn and all 14 categories. */
static const char expected_user[] =
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n"
    "\n"
    "Task: Check if there is unsafe content in 'User' messages in conversations according our safety policy with the below categories.\n"
    "\n"
    "<BEGIN UNSAFE CONTENT CATEGORIES>\n"
    "S1: Violent Crimes.\n"
    "S2: Non-Violent Crimes.\n"
    "S3: Sex Crimes.\n"
    "S4: Child Exploitation.\n"
    "S5: Defamation.\n"
    "S6: Specialized Advice.\n"
    "S7: Privacy.\n"
    "S8: Intellectual Property.\n"
    "S9: Indiscriminate Weapons.\n"
    "S10: Hate.\n"
    "S11: Self-Harm.\n"
    "S12: Sexual Content.\n"
    "S13: Elections.\n"
    "S14: Code Interpreter Abuse.\n"
    "<END UNSAFE CONTENT CATEGORIES>\n"
    "\n"
    "<BEGIN CONVERSATION>\n"
    "\n"
    "User: How do I bake bread?\n"
    "\n"
    "<END CONVERSATION>\n"
    "\n"
    "Provide your safety assessment for ONLY THE LAST User message in the above conversation:\n"
    " - First line must read 'safe' or 'unsafe'.\n"
    " - If unsafe, a second line must include a comma-separated list of violated categories. "
    "<|eot_id|><|start_header_id|>assistant<|end_header_id|>";

/* An answer judged, with three categories chosen (they keep their codes). */
static const char expected_agent[] =
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n"
    "\n"
    "Task: Check if there is unsafe content in 'Agent' messages in conversations according our safety policy with the below categories.\n"
    "\n"
    "<BEGIN UNSAFE CONTENT CATEGORIES>\n"
    "S1: Violent Crimes.\n"
    "S9: Indiscriminate Weapons.\n"
    "S14: Code Interpreter Abuse.\n"
    "<END UNSAFE CONTENT CATEGORIES>\n"
    "\n"
    "<BEGIN CONVERSATION>\n"
    "\n"
    "User: Hi\n"
    "\n"
    "Agent: Hello! How can I help?\n"
    "\n"
    "<END CONVERSATION>\n"
    "\n"
    "Provide your safety assessment for ONLY THE LAST Agent message in the above conversation:\n"
    " - First line must read 'safe' or 'unsafe'.\n"
    " - If unsafe, a second line must include a comma-separated list of violated categories. "
    "<|eot_id|><|start_header_id|>assistant<|end_header_id|>";

static int32_t *tokens(psi_model *m, const char *text, int32_t *n)
{
    *n = 0;
    psi_tokenize(m, text, strlen(text), false, true, NULL, 0, n);
    int32_t *ids = malloc((size_t)(*n + 1) * sizeof *ids);
    CHECK(psi_tokenize(m, text, strlen(text), false, true, ids, *n, n) == PSI_OK);
    return ids;
}

/* built prompt vs the written-out one: same text, same token ids */
static void same_tokens(psi_model *m, const psi_chat_msg *msgs, int32_t n_msgs, uint32_t mask, const char *want)
{
    char *got = NULL, err[256];
    CHECKF(psi_guard_prompt(msgs, n_msgs, mask, &got, err, sizeof err) == PSI_OK, "%s", err);
    if (!got) return;
    CHECKF(!strcmp(got, want), "prompt differs:\n%s", got);
    int32_t ng, nw;
    int32_t *g = tokens(m, got, &ng), *w = tokens(m, want, &nw);
    CHECK(ng == nw && !memcmp(g, w, (size_t)ng * sizeof *g));
    /* the special tokens are single tokens: begin_of_text, headers, eot */
    CHECK(ng > 100 && g[0] == 128000 && g[1] == 128006 && g[3] == 128007);
    CHECK(g[ng - 1] == 128007 && g[ng - 3] == 128006 && g[ng - 4] == 128009);
    free(g);
    free(w);
    psi_guard_prompt_free(got);
}

static void test_prompt(void)
{
    char err[256];
    psi_model *m = NULL;
    psi_model_params mp = psi_model_default_params();
    mp.vocab_only = true;
    CHECKF(psi_model_load(tu_data("vocab/llama3-vocab.gguf"), &mp, &m, err, sizeof err) == PSI_OK, "%s", err);
    if (!m) return;
    psi_chat_msg user[] = {{"user", "How do I bake bread?"}};
    same_tokens(m, user, 1, PSI_GUARD_ALL, expected_user);
    psi_chat_msg agent[] = {{"user", "Hi"}, {"assistant", "Hello! How can I help?"}};
    same_tokens(m, agent, 2, 1u << 0 | 1u << 8 | 1u << 13, expected_agent);
    psi_model_free(m);

    /* bad conversations are refused with a message */
    char *p = NULL;
    psi_chat_msg sys[] = {{"system", "x"}};
    CHECK(psi_guard_prompt(sys, 1, PSI_GUARD_ALL, &p, err, sizeof err) == PSI_ERR_INVALID_ARG && !p);
    CHECK(psi_guard_prompt(user, 0, PSI_GUARD_ALL, &p, err, sizeof err) == PSI_ERR_INVALID_ARG);
    CHECK(psi_guard_prompt(user, 1, 0, &p, err, sizeof err) == PSI_ERR_INVALID_ARG && strstr(err, "category"));
    CHECK(psi_guard_prompt(user, 1, 1u << 20, &p, err, sizeof err) == PSI_ERR_INVALID_ARG);
    CHECK(!strcmp(psi_guard_category_name(9), "Indiscriminate Weapons") && !psi_guard_category_name(15) &&
          !psi_guard_category_name(0));
}

static void test_verdict(void)
{
    static const struct {
        const char *text;
        psi_status rc;
        bool safe;
        uint32_t mask;
    } cases[] = {
        {"safe", PSI_OK, true, 0},
        {"\n\nsafe\n", PSI_OK, true, 0},
        {"unsafe\nS9", PSI_OK, false, 1u << 8},
        {"unsafe\nS1,S10", PSI_OK, false, 1u << 0 | 1u << 9},
        {" unsafe\nS14, S2 \n", PSI_OK, false, 1u << 13 | 1u << 1},
        {"", PSI_ERR_FORMAT, false, 0},
        {"Safe", PSI_ERR_FORMAT, false, 0},
        {"safe!", PSI_ERR_FORMAT, false, 0},
        {"safe\nS1", PSI_ERR_FORMAT, false, 0},
        {"unsafe", PSI_ERR_FORMAT, false, 0},
        {"unsafe\n", PSI_ERR_FORMAT, false, 0},
        {"unsafe\nS15", PSI_ERR_FORMAT, false, 0},
        {"unsafe\nS0", PSI_ERR_FORMAT, false, 0},
        {"unsafe\nS01", PSI_ERR_FORMAT, false, 0},
        {"unsafe\nS100", PSI_ERR_FORMAT, false, 0},
        {"unsafe\nS1,", PSI_ERR_FORMAT, false, 0},
        {"unsafe\nS1 S2", PSI_ERR_FORMAT, false, 0},
        {"unsafe\nS1\nS2", PSI_ERR_FORMAT, false, 0},
        {"unsafe\nO1", PSI_ERR_FORMAT, false, 0},
        {"unsafe S1", PSI_ERR_FORMAT, false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        psi_guard_verdict v = {true, 99};
        psi_status rc = psi_guard_parse(cases[i].text, strlen(cases[i].text), &v);
        CHECKF(rc == cases[i].rc, "'%s': status %d", cases[i].text, rc);
        if (rc == PSI_OK) CHECKF(v.safe == cases[i].safe && v.categories == cases[i].mask, "'%s'", cases[i].text);
        else CHECKF(!v.safe && !v.categories, "'%s': a refused verdict must not read as safe", cases[i].text);
    }
    /* the length bounds the text: no read past it */
    psi_guard_verdict v;
    CHECK(psi_guard_parse("safety", 4, &v) == PSI_OK && v.safe);
    CHECK(psi_guard_parse("unsafe\nS1", 8, &v) == PSI_ERR_FORMAT);
}

/* A Llama model with the Llama 3 vocabulary that is a bigram table: the
 * layer outputs (attn_output, ffn_down) are zero, so the last hidden state
 * is the current token's embedding. Token chain[i] embeds as the unit
 * vector e_i, every other token as e_15; the output row of chain[i+1] is
 * 10 e_i. Greedy decoding after chain[0] so walks the chain, and after the
 * prompt's last token <|end_header_id|> (= chain[0]) says the verdict. */
static void make_bigram_guard(const char *path, const int32_t *chain, int n_chain)
{
    enum { EMBD = 16, FF = 16, HEADS = 2 };
    gguf *vg = NULL;
    char err[256];
    CHECKF(gguf_open(tu_data("vocab/llama3-vocab.gguf"), &vg, err, sizeof err) == PSI_OK, "%s", err);
    if (!vg) exit(2);
    int64_t ki = gguf_find_key(vg, "tokenizer.ggml.tokens");
    uint64_t n_vocab = ki >= 0 ? vg->kv[ki].n : 0;
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "general.name", "bigram guard (test)");
    gguf_writer_set_str(w, "general.license", "mit");
    gguf_writer_set_u32(w, "llama.context_length", 4096);
    gguf_writer_set_u32(w, "llama.embedding_length", EMBD);
    gguf_writer_set_u32(w, "llama.block_count", 1);
    gguf_writer_set_u32(w, "llama.feed_forward_length", FF);
    gguf_writer_set_u32(w, "llama.attention.head_count", HEADS);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", HEADS);
    gguf_writer_set_u32(w, "llama.rope.dimension_count", EMBD / HEADS);
    gguf_writer_set_f32(w, "llama.rope.freq_base", 500000.0f);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    for (uint64_t i = 0; i < vg->n_kv; i++)
        if (vg->kv[i].key.len > 10 && !memcmp(vg->kv[i].key.ptr, "tokenizer.", 10)) gguf_writer_copy_kv(w, vg, i);
    float *embd = calloc(n_vocab * EMBD, sizeof *embd), *out = calloc(n_vocab * EMBD, sizeof *out);
    float *ones = malloc(EMBD * sizeof *ones), *zeros = calloc(EMBD * FF, sizeof *zeros);
    float *small = malloc(EMBD * FF * sizeof *small);
    if (!embd || !out || !ones || !zeros || !small) exit(2);
    for (int i = 0; i < EMBD; i++) ones[i] = 1;
    uint64_t rng = 7;
    for (int i = 0; i < EMBD * FF; i++) small[i] = 0.1f * tu_rng_f32(&rng); /* any values: their output is zeroed */
    for (uint64_t t = 0; t < n_vocab; t++) embd[t * EMBD + 15] = 1;
    for (int i = 0; i < n_chain; i++) {
        float *e = embd + (uint64_t)chain[i] * EMBD;
        memset(e, 0, EMBD * sizeof *e);
        e[i] = 1;
        if (i + 1 < n_chain) out[(uint64_t)chain[i + 1] * EMBD + i] = 10;
    }
    uint64_t ne_v[2] = {EMBD, n_vocab}, ne_1[1] = {EMBD}, ne_sq[2] = {EMBD, EMBD}, ne_up[2] = {EMBD, FF},
             ne_dn[2] = {FF, EMBD};
    const struct {
        const char *name;
        const uint64_t *ne;
        uint32_t nd;
        const float *data;
    } tensors[] = {
        {"token_embd.weight", ne_v, 2, embd},          {"output_norm.weight", ne_1, 1, ones},
        {"output.weight", ne_v, 2, out},               {"blk.0.attn_norm.weight", ne_1, 1, ones},
        {"blk.0.attn_q.weight", ne_sq, 2, small},      {"blk.0.attn_k.weight", ne_sq, 2, small},
        {"blk.0.attn_v.weight", ne_sq, 2, small},      {"blk.0.attn_output.weight", ne_sq, 2, zeros},
        {"blk.0.ffn_norm.weight", ne_1, 1, ones},      {"blk.0.ffn_gate.weight", ne_up, 2, small},
        {"blk.0.ffn_up.weight", ne_up, 2, small},      {"blk.0.ffn_down.weight", ne_dn, 2, zeros},
    };
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++)
        gguf_writer_add_tensor(w, tensors[i].name, PSI_TYPE_F32, tensors[i].nd, tensors[i].ne, tensors[i].data);
    CHECKF(gguf_writer_write(w, path, err, sizeof err) == PSI_OK, "%s", err);
    gguf_writer_free(w);
    gguf_close(vg);
    free(embd);
    free(out);
    free(ones);
    free(zeros);
    free(small);
}

/* The guard's verdict on one user message, through psi_guard_check. */
static psi_status run_guard(const char *path, psi_guard_verdict *v, char *raw, size_t raw_size)
{
    char err[256];
    psi_model *m = NULL;
    CHECKF(psi_model_load(path, NULL, &m, err, sizeof err) == PSI_OK, "%s", err);
    if (!m) return PSI_ERR_IO;
    psi_chat_msg msgs[] = {{"user", "How do I make a nerve agent?"}};
    psi_status rc = psi_guard_check(m, msgs, 1, PSI_GUARD_ALL, 1, v, raw, raw_size, err, sizeof err);
    psi_model_free(m);
    return rc;
}

static void test_end_to_end(void)
{
    char dir[4096], path[4200], raw[64];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("guard"));
    psi_guard_verdict v;
    /* <|end_header_id|> unsafe \n S 9 <|eot_id|> */
    const int32_t unsafe[] = {128007, 39257, 198, 50, 24, 128009};
    snprintf(path, sizeof path, "%s/unsafe-s9.gguf", dir);
    make_bigram_guard(path, unsafe, 6);
    CHECK(run_guard(path, &v, raw, sizeof raw) == PSI_OK);
    CHECKF(!strcmp(raw, "unsafe\nS9") && !v.safe && v.categories == 1u << 8, "guard said '%s'", raw);
    /* <|end_header_id|> safe <|eot_id|> */
    const int32_t safe[] = {128007, 19193, 128009};
    snprintf(path, sizeof path, "%s/safe.gguf", dir);
    make_bigram_guard(path, safe, 3);
    CHECK(run_guard(path, &v, raw, sizeof raw) == PSI_OK);
    CHECKF(!strcmp(raw, "safe") && v.safe && v.categories == 0, "guard said '%s'", raw);
    /* a guard that answers no verdict: "unsafe" then S 99 */
    const int32_t bad[] = {128007, 39257, 198, 50, 1484, 128009};
    snprintf(path, sizeof path, "%s/bad.gguf", dir);
    make_bigram_guard(path, bad, 6);
    CHECK(run_guard(path, &v, raw, sizeof raw) == PSI_ERR_FORMAT && !v.safe);
}

int main(void)
{
    test_prompt();
    test_verdict();
    test_end_to_end();
    return tu_finish("test_guard");
}
