/*
 * tokenizer.h — the vocabulary of a model and its tokenizers.
 *
 * Loaded from a GGUF file's tokenizer.ggml.* metadata. Two kinds:
 *  - "llama": SentencePiece BPE (Llama 1/2, TinyLlama, llama2.c models).
 *    Encoding follows SentencePiece's BPE model as llama.cpp implements it
 *    (space prefix, ' ' -> U+2581, score-ordered merges, byte fallback);
 *    see tokenizer_spm.c.
 *  - "gpt2": byte-level BPE (Llama 3): tokenizer.ggml.pre must be
 *    "llama-bpe" to tokenize (any other or a missing pre is an error at
 *    tokenize time); Llama 3 regex pre-tokenizer (PCRE2), GPT-2 byte
 *    mapping, ranked merges from tokenizer.ggml.merges; see tokenizer_bpe.c.
 *    Invalid UTF-8 in the text is replaced by U+FFFD before encoding.
 *
 * Special tokens written in text ("<s>", "<|eot_id|>") are recognised as
 * llama.cpp does: CONTROL and UNKNOWN tokens only when parse_special is
 * asked for, USER_DEFINED tokens (added tokens) always; at each position
 * the longest such token wins. The text between them is tokenized piece by
 * piece; for SentencePiece each piece that starts the text or follows a
 * special token gets the dummy-prefix space.
 *
 * Not here: chat templates (chat.c), streaming detokenization (detok.c).
 *
 * A vocab owns copies of every token text: it does not borrow from the GGUF
 * mapping and may outlive the gguf handle it was loaded from.
 */
#ifndef PSI_TOKENIZER_H
#define PSI_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "psi.h"

/* tokenizer.ggml.token_type values (llama.cpp's llama_token_type). */
enum vocab_ttype {
    VOCAB_TT_UNDEFINED = 0,
    VOCAB_TT_NORMAL = 1,
    VOCAB_TT_UNKNOWN = 2,
    VOCAB_TT_CONTROL = 3,
    VOCAB_TT_USER_DEFINED = 4,
    VOCAB_TT_UNUSED = 5,
    VOCAB_TT_BYTE = 6,
};

struct bpe_state; /* tokenizer_bpe.c */

enum vocab_kind {
    VOCAB_SPM = 1, /* tokenizer.ggml.model = "llama" */
    VOCAB_BPE = 2, /* tokenizer.ggml.model = "gpt2" */
};

#define VOCAB_MAX_EOG 8

typedef struct vocab_token {
    const char *text; /* copy, NUL-terminated; may itself hold NUL bytes: use len */
    uint32_t len;
    float score;  /* SPM merge priority (log probability); 0 when absent */
    uint8_t type; /* enum vocab_ttype */
} vocab_token;

typedef struct vocab {
    int kind; /* enum vocab_kind */
    int32_t n_tokens;
    vocab_token *tokens;        /* [n_tokens] */
    char *text_pool;            /* every token text, NUL-separated; tokens[i].text points here */
    int32_t bos, eos, unk;      /* -1 when the vocabulary has none */
    bool add_bos;               /* tokenizer.ggml.add_bos_token */
    bool add_space_prefix;      /* tokenizer.ggml.add_space_prefix (SPM) */
    bool spm_word_split;        /* SPM: no token has U+2581 after another character, so
                                 * no merge crosses a word start and words encode alone */
    int32_t byte_tok[256];      /* SPM: id of "<0xXX>" for each byte, -1 when missing */
    int32_t eog[VOCAB_MAX_EOG]; /* end-of-generation ids (eos first) */
    int n_eog;
    /* token text -> id: open addressing, linear probing, -1 = empty slot */
    int32_t *hash;
    uint32_t hash_mask; /* capacity - 1 (capacity a power of two) */
    struct bpe_state *bpe; /* gpt2: pre-tokenizer and merges (tokenizer_bpe.c); else NULL */
    /* tokens that may be written in text (CONTROL, USER_DEFINED, UNKNOWN; not
     * empty): special[special_start[b] .. special_start[b+1]) begin with byte
     * b, longest first; special_pair marks the first two bytes of any */
    int32_t *special;
    int32_t special_start[257];
    uint8_t special_pair[65536 / 8];
} vocab;

/* Load from GGUF metadata:
 *   tokenizer.ggml.model       "llama" or "gpt2" (required)
 *   tokenizer.ggml.tokens      array of strings (required, at least one)
 *   tokenizer.ggml.scores      array of f32, required for "llama", optional for "gpt2"
 *   tokenizer.ggml.token_type  array of i32/u32 (optional: all NORMAL; for "llama"
 *                              texts "<0xXX>" are then taken as byte tokens)
 *   tokenizer.ggml.{bos,eos,unknown}_token_id  (optional; 0xFFFFFFFF or -1 = none;
 *                              "llama" defaults 1, 2, 0 when the vocab is that large)
 *   tokenizer.ggml.{eot,eom}_token_id  (optional, added to the end-of-generation set)
 *   tokenizer.ggml.add_bos_token     (default: true for "llama"; for "gpt2" true
 *                              when tokenizer.ggml.pre is "llama-bpe", else false)
 *   tokenizer.ggml.add_space_prefix  (default true for "llama", false for "gpt2")
 *   tokenizer.ggml.merges      array of strings "left right" (gpt2; optional at
 *                              load, required to tokenize)
 *   tokenizer.ggml.pre         (gpt2) pre-tokenizer name; only "llama-bpe" tokenizes
 * Every array length must equal the number of tokens and every id must be in
 * range. On failure *out is NULL and err holds one line naming the file and
 * the key. The caller frees the vocab with vocab_free. */
psi_status vocab_load(vocab **out, const gguf *g, char *err, size_t err_size);
void vocab_free(vocab *v);

int32_t vocab_n_tokens(const vocab *v);
int32_t vocab_bos(const vocab *v); /* -1 when none */
int32_t vocab_eos(const vocab *v); /* -1 when none */
int32_t vocab_unk(const vocab *v); /* -1 when none */
/* Whether a prompt should start with BOS (tokenizer.ggml.add_bos_token and a
 * BOS token exists). */
bool vocab_add_bos(const vocab *v);
/* True for EOS, the optional eot/eom ids, and for "gpt2" vocabularies also
 * the tokens named <|eot_id|>, <|eom_id|> and <|end_of_text|>. */
bool vocab_is_eog(const vocab *v, int32_t tok);

/* Token text as stored in the file (e.g. "▁Hello", "<0x0A>", "ĠWorld"),
 * borrowed from the vocab; NULL for an invalid id. *len (optional) gets
 * its length. */
const char *vocab_token_text(const vocab *v, int32_t tok, size_t *len);
int vocab_token_type(const vocab *v, int32_t tok); /* enum vocab_ttype; -1 invalid */
/* Id of the token whose text is exactly text[0..len), or -1. */
int32_t vocab_find(const vocab *v, const char *text, size_t len);

/* Tokenize text[0..len). With parse_special, the text of CONTROL and
 * UNKNOWN tokens becomes those tokens; USER_DEFINED ones always do. Writes at most max_tokens ids to tokens (which may be NULL when
 * max_tokens is 0) and stores the number of ids the text needs in
 * *n_tokens. Returns PSI_ERR_BUFFER_SMALL when max_tokens was too small,
 * PSI_ERR_UNSUPPORTED for "gpt2" vocabularies whose tokenizer.ggml.pre is
 * missing or not "llama-bpe", PSI_ERR_FORMAT for "gpt2" without merges,
 * PSI_ERR_NO_MEMORY, or PSI_ERR_INVALID_ARG (text longer than INT32_MAX-16
 * bytes); err gets a one-line message. Empty text gives [BOS] with add_bos
 * (and BOS exists), else nothing. */
psi_status vocab_tokenize(const vocab *v, const char *text, size_t len, bool add_bos, bool parse_special,
                          int32_t *tokens, int32_t max_tokens, int32_t *n_tokens, char *err, size_t err_size);

/* A prompt made of parts: a token (id >= 0) or text (id < 0), as chat
 * templates build it. Text parts are never searched for special tokens;
 * consecutive text parts are tokenized as one piece of text. Same output
 * contract as vocab_tokenize (no BOS is added: put it in a part). */
typedef struct vocab_part {
    int32_t id;
    const char *text;
    size_t len;
} vocab_part;
psi_status vocab_tokenize_parts(const vocab *v, const vocab_part *parts, size_t n_parts, int32_t *tokens,
                                int32_t max_tokens, int32_t *n_tokens, char *err, size_t err_size);

/* Text of one token as it appears in output (psi_token_to_piece):
 *  - SPM: normal tokens with every U+2581 turned into ' '; byte tokens
 *    "<0xXX>" give that one byte; user-defined tokens their text as is;
 *    control and unused tokens ""; the unknown token gives its text (e.g.
 *    "<unk>", as llama2.c's run.c prints it) so that lost input stays
 *    visible. When prev is BOS or -1 (start of text) and the vocab adds a
 *    space prefix, one leading ' ' of the piece is dropped (SentencePiece
 *    decoding; run.c does the same after BOS).
 *  - gpt2: each character of the text mapped back through GPT-2's
 *    bytes_to_unicode table to its byte (characters outside the table are
 *    copied as UTF-8); control tokens ""; no space stripping.
 * Writes up to buf_size bytes (not NUL-terminated; buf may be NULL when
 * buf_size is 0) and returns the piece length, which is larger than
 * buf_size when the piece was cut, or -1 for an invalid token. */
int32_t vocab_token_to_piece(const vocab *v, int32_t prev, int32_t token, char *buf, size_t buf_size);

/* ---- internal to the tokenizer files */
/* SentencePiece encoding (tokenizer_spm.c). Calls emit for each id. */
typedef struct spm_out {
    int32_t *tokens;
    int32_t max_tokens;
    int32_t n; /* ids produced so far (may exceed max_tokens) */
} spm_out;
/* prefix: put the dummy-prefix space in front (when the vocab asks for it). */
psi_status spm_tokenize(const vocab *v, const char *text, size_t len, bool prefix, spm_out *o, char *err,
                        size_t err_size);
/* Byte-level BPE (tokenizer_bpe.c): bpe_load sets v->bpe (also on failure,
 * for bpe_free to release); bpe_tokenize appends ids to o. */
psi_status bpe_load(vocab *v, const gguf *g, char *err, size_t err_size);
void bpe_free(struct bpe_state *b);
psi_status bpe_tokenize(const vocab *v, const char *text, size_t len, spm_out *o, char *err, size_t err_size);

#endif
