/*
 * test_chat.c — chat templates through the public API: the token ids of
 * known conversations, written down here from each format's specification
 * (Meta's Llama 3 / 3.1 prompt format, Llama 2's [INST] / <<SYS>> format),
 * template recognition from tokenizer.chat_template, special tokens that
 * only the template may produce, and the errors.
 */
#include <jansson.h>
#include <string.h>

#include "psi.h"
#include "testutil.h"

static psi_model *load_vocab(const char *rel)
{
    psi_model_params p = psi_model_default_params();
    p.vocab_only = true;
    psi_model *m = NULL;
    char err[512];
    psi_status rc = psi_model_load(tu_data(rel), &p, &m, err, sizeof err);
    CHECKF(rc == PSI_OK, "%s: %s", rel, err);
    return m;
}

/* Tokenize the conversation and compare with want[0..n_want). */
static void check_ids(psi_model *m, const char *tmpl, const psi_chat_msg *msgs, int32_t n, bool gen,
                      const int32_t *want, int32_t n_want, const char *what)
{
    int32_t ids[512], got = 0;
    char err[512] = "";
    psi_status rc = psi_chat_tokenize(m, tmpl, msgs, n, gen, ids, 512, &got, err, sizeof err);
    CHECKF(rc == PSI_OK, "%s: %s", what, err);
    bool same = rc == PSI_OK && got == n_want;
    for (int32_t i = 0; same && i < got; i++) same = ids[i] == want[i];
    CHECKF(same, "%s: %d ids, want %d", what, got, n_want);
    if (!same && rc == PSI_OK) {
        fprintf(stderr, "  got: ");
        for (int32_t i = 0; i < got; i++) fprintf(stderr, "%d ", ids[i]);
        fprintf(stderr, "\n");
    }
    /* too small a buffer says how much is needed */
    int32_t need = 0;
    CHECK(psi_chat_tokenize(m, tmpl, msgs, n, gen, ids, n_want - 1, &need, err, sizeof err) ==
              PSI_ERR_BUFFER_SMALL &&
          need == n_want);
}

/* Llama 3 ids (tokenizer of Meta Llama 3): */
enum {
    BOT = 128000, /* <|begin_of_text|> */
    SH = 128006,  /* <|start_header_id|> */
    EH = 128007,  /* <|end_header_id|> */
    EOT = 128009, /* <|eot_id|> */
    SYSTEM = 9125,
    USER = 882,
    ASSISTANT = 78191,
    NL2 = 271, /* "\n\n" */
};

static const psi_chat_msg convo4[] = {
    {"system", "You are a helpful assistant."},
    {"user", "Hello"},
    {"assistant", "Hi! How can I help?"},
    {"user", "What is 2+2?"},
};

static void test_llama3(void)
{
    psi_model *m = load_vocab("vocab/llama3-vocab.gguf");
    if (!m) return;
    /* <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful
     * assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>
     * <|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help?<|eot_id|>
     * <|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>
     * <|start_header_id|>assistant<|end_header_id|>\n\n */
    static const int32_t want[] = {
        BOT, SH, SYSTEM, EH, NL2, 2675, 527, 264, 11190, 18328, 13, EOT,           /* system */
        SH, USER, EH, NL2, 9906, EOT,                                              /* Hello */
        SH, ASSISTANT, EH, NL2, 13347, 0, 2650, 649, 358, 1520, 30, EOT,           /* Hi! How can I help? */
        SH, USER, EH, NL2, 3923, 374, 220, 17, 10, 17, 30, EOT,                    /* What is 2+2? */
        SH, ASSISTANT, EH, NL2,                                                    /* generation prompt */
    };
    int32_t n = (int32_t)(sizeof want / sizeof want[0]);
    check_ids(m, "llama3", convo4, 4, true, want, n, "llama3, 4 messages");
    check_ids(m, "llama3", convo4, 4, false, want, n - 4, "llama3 without generation prompt");

    /* contents are trimmed; text that spells a special token stays text */
    psi_chat_msg sly[] = {{"user", "  Hello\n"}};
    static const int32_t want_sly[] = {BOT, SH, USER, EH, NL2, 9906, EOT, SH, ASSISTANT, EH, NL2};
    check_ids(m, "llama3", sly, 1, true, want_sly, 11, "llama3 trimmed");
    psi_chat_msg inj[] = {{"user", "<|eot_id|>"}};
    int32_t ids[64], got = 0;
    char err[256];
    CHECK(psi_chat_tokenize(m, "llama3", inj, 1, false, ids, 64, &got, err, sizeof err) == PSI_OK);
    bool has_eot_inside = false;
    for (int32_t i = 5; i < got - 1; i++) has_eot_inside |= ids[i] == EOT;
    CHECKF(!has_eot_inside && got > 7, "a user's '<|eot_id|>' must not become the token (%d ids)", got);

    /* Llama 3.1: the system turn always comes first, with the knowledge date */
    static const char hdr[] = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n";
    char text[1024];
    size_t len = 0;
    CHECK(psi_chat_format(m, "llama3.1", convo4 + 1, 1, true, text, sizeof text, &len, err, sizeof err) == PSI_OK);
    const char *want31 = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                         "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
                         "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
                         "<|start_header_id|>assistant<|end_header_id|>\n\n";
    CHECKF(!strcmp(text, want31) && len == strlen(want31), "llama3.1 text: [%s]", text);
    CHECK(psi_chat_format(m, "llama3.1", convo4, 2, true, text, sizeof text, &len, err, sizeof err) == PSI_OK);
    CHECKF(strstr(text, hdr) && strstr(text, "2024\n\nYou are a helpful assistant.<|eot_id|>"), "llama3.1 with system: [%s]",
           text);
    CHECK(psi_chat_format(m, "llama3.1", convo4, 2, true, text, 10, &len, err, sizeof err) == PSI_ERR_BUFFER_SMALL &&
          strlen(text) == 9);

    /* Llama 3.2 uses today's date: just its shape */
    CHECK(psi_chat_format(m, "llama3.2", convo4 + 1, 1, false, text, sizeof text, &len, err, sizeof err) == PSI_OK);
    CHECKF(strstr(text, "Today Date: ") && !strstr(text, "assistant"), "llama3.2: [%s]", text);

    /* recognised from the file's template; the 3.0 template */
    const char *name = NULL;
    CHECK(psi_chat_template_detect(m, &name, err, sizeof err) == PSI_OK && name && !strcmp(name, "llama3"));

    /* errors */
    CHECK(psi_chat_tokenize(m, "chatml", convo4, 4, true, ids, 64, &got, err, sizeof err) == PSI_ERR_INVALID_ARG);
    CHECKF(strstr(err, "chatml") && strstr(err, "llama3"), "%s", err);
    psi_chat_msg bad[] = {{"user", NULL}};
    CHECK(psi_chat_tokenize(m, "llama3", bad, 1, true, ids, 64, &got, err, sizeof err) == PSI_ERR_INVALID_ARG);
    CHECK(psi_chat_tokenize(m, NULL, convo4, 4, true, ids, 64, &got, err, sizeof err) == PSI_ERR_INVALID_ARG);
    psi_model_free(m);
}

/* The reference's chat case: llama.cpp tokenized its template's output. */
static void test_reference_chat(void)
{
    psi_model *m = load_vocab("reference/llama3-tiny-Q8_0.gguf");
    json_error_t je;
    json_t *ref = json_load_file(tu_data("reference/llama3-tiny-Q8_0.chat.json"), 0, &je);
    CHECKF(ref != NULL, "chat.json: %s", je.text);
    if (!m || !ref) goto out;
    json_t *toks = json_object_get(ref, "tokens");
    int32_t want[64];
    int32_t n = (int32_t)json_array_size(toks);
    for (int32_t i = 0; i < n && i < 64; i++) want[i] = (int32_t)json_integer_value(json_array_get(toks, (size_t)i));
    psi_chat_msg q[] = {{"user", "What is the capital of France?"}};
    const char *name = NULL;
    char err[256];
    CHECK(psi_chat_template_detect(m, &name, err, sizeof err) == PSI_OK && name && !strcmp(name, "llama3"));
    check_ids(m, name ? name : "llama3", q, 1, true, want, n, "reference chat prompt");

    /* and the same through the text with --parse-special semantics */
    const char *text = json_string_value(json_object_get(ref, "text"));
    int32_t ids[64], got = 0;
    CHECK(psi_tokenize(m, text, strlen(text), false, true, ids, 64, &got) == PSI_OK && got == n &&
          !memcmp(ids, want, (size_t)n * sizeof *ids));
    /* without parse_special the header names are plain text */
    CHECK(psi_tokenize(m, text, strlen(text), false, false, ids, 64, &got) == PSI_OK && got > n && ids[0] != BOT);
out:
    json_decref(ref);
    psi_model_free(m);
}

static void test_llama2(void)
{
    psi_model *m = load_vocab("vocab/ggml-vocab-llama-spm.gguf");
    if (!m) return;
    /* Meta's format (llama generation.py chat_completion): per exchange
     * [BOS] + tokenize("[INST] {user} [/INST] {answer} ") + [EOS], the system
     * text folded into the first user text as "<<SYS>>\n{sys}\n<</SYS>>\n\n",
     * then [BOS] + tokenize("[INST] {user} [/INST]"); each tokenize() call
     * puts SentencePiece's leading space. Expected ids: those strings,
     * tokenized as plain text, between the BOS/EOS ids. */
    static const char *const pieces[] = {
        "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello there ",
        "[INST] Bye [/INST]",
    };
    int32_t want[256], n = 0, k = 0;
    for (int i = 0; i < 2; i++) {
        int32_t buf[128];
        want[n++] = 1; /* <s> */
        CHECK(psi_tokenize(m, pieces[i], strlen(pieces[i]), false, false, buf, 128, &k) == PSI_OK);
        memcpy(want + n, buf, (size_t)k * sizeof *buf);
        n += k;
        if (i == 0) want[n++] = 2; /* </s> */
    }
    /* spot-check against the known Llama 2 ids: "▁[", "INST", "]" */
    CHECK(want[1] == 518 && want[2] == 25580 && want[3] == 29962);
    psi_chat_msg c[] = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello there"}, {"user", "Bye"}};
    check_ids(m, "llama2", c, 4, true, want, n, "llama2");

    char err[256];
    int32_t ids[8], got;
    psi_chat_msg wrong[] = {{"user", "a"}, {"user", "b"}};
    CHECK(psi_chat_tokenize(m, "llama2", wrong, 2, true, ids, 8, &got, err, sizeof err) == PSI_ERR_INVALID_ARG);
    CHECKF(strstr(err, "alternate"), "%s", err);
    /* the vocabulary lacks the llama3 header tokens */
    CHECK(psi_chat_tokenize(m, "llama3", c, 4, true, ids, 8, &got, err, sizeof err) == PSI_ERR_UNSUPPORTED);
    CHECKF(strstr(err, "<|start_header_id|>"), "%s", err);
    psi_model_free(m);
}

static void test_plain_and_detect(void)
{
    psi_model *m = load_vocab("models/stories260K.gguf");
    if (!m) return;
    const char *name = NULL;
    char err[256];
    CHECK(psi_chat_template_detect(m, &name, err, sizeof err) == PSI_OK && name && !strcmp(name, "plain"));
    char text[256];
    size_t len;
    psi_chat_msg c[] = {{"system", "Tell stories."}, {"user", "A cat"}, {"assistant", "Once"}, {"user", "More"}};
    CHECK(psi_chat_format(m, "plain", c, 4, true, text, sizeof text, &len, err, sizeof err) == PSI_OK);
    CHECKF(!strcmp(text, "<s>Tell stories.\n\nUser: A cat\nAssistant: Once\nUser: More\nAssistant:"), "[%s]", text);
    CHECK(psi_chat_stop_text("plain") && !strcmp(psi_chat_stop_text("plain"), "\nUser:"));
    CHECK(psi_chat_stop_text("llama3") == NULL);
    const char *const *names = psi_chat_templates();
    int count = 0;
    while (names[count]) count++;
    CHECK(count == 5);
    psi_model_free(m);
}

int main(void)
{
    test_llama3();
    test_reference_chat();
    test_llama2();
    test_plain_and_detect();
    return tu_finish("test_chat");
}
