/*
 * psi.h — the whole public API of libpsi.
 *
 * psi loads Llama-family models from GGUF files and runs them on the CPU.
 * Everything a program (the psi CLI, the server, tests, embedders) may use is
 * declared here; nothing else is API.
 *
 * Conventions
 *  - Functions return psi_status; PSI_OK (0) is success. psi_status_str()
 *    names a code. Handles keep the message of their last error
 *    (psi_model_errmsg, psi_context_errmsg). Functions that create a handle
 *    take an optional (err, err_size) buffer that receives the message when
 *    creation fails.
 *  - The library never exits, aborts or asserts on bad input.
 *  - psi_x_free(NULL) is a no-op. Ownership of returned memory is stated per
 *    function; "borrowed" pointers stay valid until the owning handle is freed
 *    or the next call that says it invalidates them.
 *  - A handle is not thread-safe; different handles may be used from
 *    different threads (a psi_model may be shared by several contexts).
 */
#ifndef PSI_H
#define PSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PSI_VERSION_MAJOR 0
#define PSI_VERSION_MINOR 1
#define PSI_VERSION_PATCH 0

typedef enum psi_status {
    PSI_OK = 0,
    PSI_ERR_INVALID_ARG,  /* a caller-supplied argument is out of range */
    PSI_ERR_IO,           /* open/read/write/mmap failed */
    PSI_ERR_FORMAT,       /* the file is not valid (GGUF, llama2.c, …) */
    PSI_ERR_UNSUPPORTED,  /* valid, but psi cannot run it (arch, tensor type) */
    PSI_ERR_NO_MEMORY,    /* an allocation failed */
    PSI_ERR_CONTEXT_FULL, /* the KV cache has no room for the batch */
    PSI_ERR_BUFFER_SMALL, /* an output buffer is too small */
    PSI_ERR_DENIED,       /* a licence, signature or access check said no */
} psi_status;

/* Static string naming a status code ("invalid argument", …). Never NULL. */
const char *psi_status_str(psi_status rc);

/* Library version as "MAJOR.MINOR.PATCH". Static string. */
const char *psi_version(void);

/* CPUs this process may use (at least 1): the online cores, fewer under an
 * affinity mask (taskset, cpusets) or a cgroup CPU quota (docker --cpus). */
int psi_cpu_count(void);

/* The CPU kernel path in use: "generic", "avx2" or "avx512" (chosen once
 * from the CPU, or forced by PSI_CPU). The SIMD paths differ from the
 * generic one only by the order of float additions. Static string. */
const char *psi_cpu_kernels(void);

/* ---------------------------------------------------------------- tensor types
 * Values are ggml's type ids, as stored in GGUF files. */
typedef enum psi_type {
    PSI_TYPE_F32 = 0,
    PSI_TYPE_F16 = 1,
    PSI_TYPE_Q4_0 = 2,
    PSI_TYPE_Q4_1 = 3,
    PSI_TYPE_Q5_0 = 6,
    PSI_TYPE_Q5_1 = 7,
    PSI_TYPE_Q8_0 = 8,
    PSI_TYPE_Q8_1 = 9,
    PSI_TYPE_Q2_K = 10,
    PSI_TYPE_Q3_K = 11,
    PSI_TYPE_Q4_K = 12,
    PSI_TYPE_Q5_K = 13,
    PSI_TYPE_Q6_K = 14,
    PSI_TYPE_Q8_K = 15,
    PSI_TYPE_BF16 = 30,
} psi_type;

/* Name of a tensor type ("Q4_0"), or NULL when the id is unknown. */
const char *psi_type_name(uint32_t type);

/* ------------------------------------------------------------------ GGUF files
 * A read-only view of a GGUF file, for tools that show or check files.
 * psi_model_load does not need it. */
typedef struct psi_gguf psi_gguf;

/* Open and validate a GGUF file (v2 or v3). On failure *out is NULL and
 * err (if not NULL) receives a one-line message naming the file, the field
 * and what is wrong. The caller frees the handle with psi_gguf_free. */
psi_status psi_gguf_open(const char *path, psi_gguf **out, char *err, size_t err_size);
void psi_gguf_free(psi_gguf *g);

/* Print the header, metadata (arrays longer than max_array elements are
 * abbreviated) and tensor table (name, type, shape, offset) to f. */
void psi_gguf_print(const psi_gguf *g, FILE *f, int max_array);

/* ---------------------------------------------------------------------- model */
typedef struct psi_model psi_model;

typedef struct psi_model_params {
    /* true (default): weights are borrowed from a private mapping of the file (pages shared with
     * the page cache; matrices repacked for the kernels become the process's own copies).
     * false: the file is read into the process's own memory, in 2 MiB pages where the kernel's
     * transparent huge pages allow: generation a few % faster (fewer TLB misses), loading slower,
     * and the model safe from the file being changed or truncated while in use. A file larger
     * than the memory the process may use is mapped anyway (said with verbose). */
    bool use_mmap;
    bool verbose;    /* print load information to stderr (default false) */
    bool vocab_only; /* load only the tokenizer (no tensors needed; no contexts) */
} psi_model_params;

psi_model_params psi_model_default_params(void);

/* Load a model from a GGUF file. On failure *out is NULL and err receives the
 * message. The caller frees the model with psi_model_free, after every
 * context made from it. */
psi_status psi_model_load(const char *path, const psi_model_params *params, psi_model **out,
                          char *err, size_t err_size);
void psi_model_free(psi_model *m);

/* Message of the last error on this model (empty string if none). Borrowed. */
const char *psi_model_errmsg(const psi_model *m);

int32_t psi_model_n_vocab(const psi_model *m);
int32_t psi_model_n_ctx_train(const psi_model *m);
int32_t psi_model_n_embd(const psi_model *m);
int32_t psi_model_n_layer(const psi_model *m);
/* Short description, e.g. "llama 256d 3L 8H/8KV ff768 vocab32000 Q4_0". Borrowed. */
const char *psi_model_desc(const psi_model *m);
/* String metadata value for key, or NULL when absent or not a string. Borrowed. */
const char *psi_model_meta_str(const psi_model *m, const char *key);
/* Integer metadata value for key (any GGUF integer type that fits an
 * int64, or a bool) in *out; false when absent or of another type. */
bool psi_model_meta_int(const psi_model *m, const char *key, int64_t *out);
/* Number of weights (elements of every tensor in the file). */
uint64_t psi_model_n_params(const psi_model *m);
/* Bytes of tensor data in the file (the weights a forward pass streams). */
uint64_t psi_model_size(const psi_model *m);

/* ------------------------------------------------------------------ tokenizer */
int32_t psi_token_bos(const psi_model *m); /* -1 when the vocabulary has none */
int32_t psi_token_eos(const psi_model *m);
/* Whether text prompts should start with BOS (tokenizer.ggml.add_bos_token). */
bool psi_model_add_bos(const psi_model *m);
/* True when generation should stop at this token (EOS and the like). */
bool psi_token_is_eog(const psi_model *m, int32_t token);

/* Tokenize text[0..len). Writes at most max_tokens ids to tokens and stores
 * the number of ids the text needs in *n_tokens. Returns
 * PSI_ERR_BUFFER_SMALL when max_tokens was too small (call again with
 * *n_tokens room). add_bos prepends the BOS token. With parse_special,
 * control tokens spelled in the text ("<|eot_id|>", "<s>") become those
 * tokens; without it they are tokenized as plain text (user-defined added
 * tokens are always recognised, as llama.cpp does). Invalid UTF-8 is
 * tokenized byte by byte (SentencePiece byte fallback) or replaced by
 * U+FFFD (Llama 3 BPE); NUL bytes are ordinary bytes. The error message
 * goes to psi_model_errmsg. */
psi_status psi_tokenize(const psi_model *m, const char *text, size_t len, bool add_bos, bool parse_special,
                        int32_t *tokens, int32_t max_tokens, int32_t *n_tokens);

/* Text of one token as it appears in output: byte tokens give their byte,
 * the SentencePiece space mark becomes ' ', control tokens give "".
 * When prev is BOS (or -1: start of text) a leading space is dropped, as
 * SentencePiece decoding does. Writes up to buf_size bytes (not
 * NUL-terminated) and returns the piece length, or -1 for an invalid token;
 * a return larger than buf_size means the piece was cut. */
int32_t psi_token_to_piece(const psi_model *m, int32_t prev, int32_t token, char *buf,
                           size_t buf_size);

/* Detokenize ids into buf (NUL-terminated when buf_size > 0): the text the
 * streaming detokenizer below gives for these ids, starting a text (prev
 * -1), flushed at the end. Stores the full length (without NUL) in *len;
 * returns PSI_ERR_BUFFER_SMALL if it did not fit, PSI_ERR_INVALID_ARG for
 * an id out of range. */
psi_status psi_detokenize(const psi_model *m, const int32_t *tokens, int32_t n_tokens,
                          char *buf, size_t buf_size, size_t *len);

/* Streaming detokenizer: push ids one at a time, get back text that is
 * always valid UTF-8. A character whose bytes span several tokens (byte
 * fallback, split BPE bytes) is held until complete; bytes that cannot form
 * a character become U+FFFD (one per maximal invalid subpart); a character
 * still incomplete at the end becomes U+FFFD on flush. SentencePiece's
 * leading space is dropped after BOS or at the start of text (prev = -1).
 * One detokenizer per stream; it borrows the model. */
typedef struct psi_detok psi_detok;
/* prev: the token before the first one pushed (-1: start of text). */
psi_status psi_detok_new(const psi_model *m, int32_t prev, psi_detok **out);
void psi_detok_free(psi_detok *d);
/* Add one token. *text and *len get the bytes now ready (possibly none),
 * borrowed until the next call on d. PSI_ERR_INVALID_ARG for a bad id. */
psi_status psi_detok_push(psi_detok *d, int32_t token, const char **text, size_t *len);
/* End of stream: returns what is still held (as U+FFFD) and resets. */
psi_status psi_detok_flush(psi_detok *d, const char **text, size_t *len);
/* Bytes held back waiting for the rest of a character (0..3). */
size_t psi_detok_pending(const psi_detok *d);

/* s[0..n) as valid UTF-8 into out (size > 0 bytes; NUL-terminated): every
 * byte that does not begin a valid character becomes U+FFFD (3 bytes), so
 * all of it fits in 3n + 1 bytes; when out is smaller the text is cut
 * between characters. Returns the length written (without the NUL). For
 * text from files, clients or a model that goes where only UTF-8 is taken
 * (JSON). */
size_t psi_utf8_sanitize(const char *s, size_t n, char *out, size_t size);

/* ---------------------------------------------------------------------- chat */
/* One message of a conversation. role: "system", "user", "assistant" (the
 * llama3 templates also accept other roles, e.g. "ipython"). */
typedef struct psi_chat_msg {
    const char *role;
    const char *content;
} psi_chat_msg;

/* Names of the chat templates psi knows, NULL-terminated: "llama3",
 * "llama3.1", "llama3.2", "llama2", "plain". docs/chat.md describes each. */
const char *const *psi_chat_templates(void);

/* Which known template the model's tokenizer.chat_template is. A model
 * without one gets "plain"; a template psi does not recognise gives
 * PSI_ERR_UNSUPPORTED and a message in err (it is never guessed). */
psi_status psi_chat_template_detect(const psi_model *m, const char **name, char *err, size_t err_size);

/* The token ids of a conversation in template tmpl, ending with the
 * assistant's header when add_generation_prompt. Special tokens come only
 * from the template: message text is never parsed for them. Output as
 * psi_tokenize (PSI_ERR_BUFFER_SMALL with *n_tokens = the count needed);
 * PSI_ERR_INVALID_ARG for an unknown template or a conversation the
 * template cannot express (llama2: roles must alternate). */
psi_status psi_chat_tokenize(const psi_model *m, const char *tmpl, const psi_chat_msg *msgs, int32_t n_msgs,
                             bool add_generation_prompt, int32_t *tokens, int32_t max_tokens, int32_t *n_tokens,
                             char *err, size_t err_size);
/* The same conversation as text, special tokens spelled out (for display
 * and logs). NUL-terminated when buf_size > 0; *len = full length. */
psi_status psi_chat_format(const psi_model *m, const char *tmpl, const psi_chat_msg *msgs, int32_t n_msgs,
                           bool add_generation_prompt, char *buf, size_t buf_size, size_t *len, char *err,
                           size_t err_size);
/* Text that ends an answer in this template besides end-of-generation
 * tokens ("\nUser:" for plain), or NULL. Static string. */
const char *psi_chat_stop_text(const char *tmpl);

/* -------------------------------------------------------------------- context */
typedef struct psi_context psi_context;

typedef struct psi_context_params {
    int32_t n_ctx;     /* KV cache length in tokens, per sequence; 0 = the model's training context */
    int32_t n_threads; /* 0 = psi_cpu_count() */
    psi_type kv_type;  /* PSI_TYPE_F16 (default), PSI_TYPE_F32 or PSI_TYPE_Q8_0 (head size a
                        * multiple of 32); others: PSI_ERR_UNSUPPORTED */
    int32_t n_seq;     /* independent sequences sharing the context (default 1): each has
                        * its own n_ctx-token region of the KV cache; see psi_context_decode_batch */
} psi_context_params;

psi_context_params psi_context_default_params(void);

/* Create an evaluation context (KV cache, scratch, thread pool) for model.
 * On failure *out is NULL and err receives the message. */
psi_status psi_context_new(psi_model *model, const psi_context_params *params,
                           psi_context **out, char *err, size_t err_size);
void psi_context_free(psi_context *ctx);
const char *psi_context_errmsg(const psi_context *ctx);
int32_t psi_context_n_ctx(const psi_context *ctx);
/* Tokens already in the KV cache (the position of the next token). */
int32_t psi_context_n_past(const psi_context *ctx);
/* Forget everything from position n_past on (0 clears the context). */
psi_status psi_context_truncate(psi_context *ctx, int32_t n_past);

/* Evaluate n_tokens ids in one batch, at positions n_past … n_past+n_tokens-1,
 * appending them to the KV cache. With all_logits the logits of every batch
 * position are kept, else only those of the last. Returns
 * PSI_ERR_CONTEXT_FULL (and changes nothing) when the batch does not fit. */
psi_status psi_context_decode(psi_context *ctx, const int32_t *tokens, int32_t n_tokens,
                              bool all_logits);

/* Logits [n_vocab] of batch position i of the last decode (i = -1: the last
 * position). NULL when position i has no logits. Borrowed until the next decode. */
const float *psi_context_logits(const psi_context *ctx, int32_t i);

/* Several sequences at once (continuous batching). The functions above act
 * on sequence 0; these name the sequence. */
typedef struct psi_batch_token {
    int32_t token;
    int32_t seq;  /* 0 .. n_seq-1 */
    bool logits;  /* keep this token's logits (psi_context_batch_logits) */
} psi_batch_token;

int32_t psi_context_n_seq(const psi_context *ctx);
int32_t psi_context_seq_n_past(const psi_context *ctx, int32_t seq);
/* Forget sequence seq from position n_past on (0 empties it). The first
 * n_past positions are kept: feeding the rest of a prompt that begins with
 * their tokens gives that whole prompt's logits (a prompt cache). */
psi_status psi_context_seq_truncate(psi_context *ctx, int32_t seq, int32_t n_past);
/* Evaluate the tokens of several sequences in one forward pass (the weights
 * are read once for the whole batch). Each sequence's tokens are appended
 * in batch order at that sequence's positions; tokens of different
 * sequences never attend to each other. The result for each sequence is
 * the same as decoding its tokens alone. PSI_ERR_CONTEXT_FULL (nothing
 * changed) when some sequence would pass n_ctx; PSI_ERR_INVALID_ARG for a
 * bad token or sequence id. Any batch size (evaluated in slices). */
psi_status psi_context_decode_batch(psi_context *ctx, const psi_batch_token *batch, int32_t n);
/* Logits [n_vocab] of batch entry i of the last psi_context_decode_batch,
 * NULL unless that entry asked for logits. Borrowed until the next decode. */
const float *psi_context_batch_logits(const psi_context *ctx, int32_t i);

/* -------------------------------------------------------------------- sampler
 * Chain: penalties → top-k → top-p → min-p → temperature → draw.
 * temperature <= 0 is greedy (argmax, lowest id on ties, after the
 * penalties) and ignores the other settings. */
typedef struct psi_sampler psi_sampler;

typedef struct psi_sampler_params {
    float temperature; /* default 0.8 */
    int32_t top_k;     /* default 40; <= 0 disables */
    float top_p;       /* default 0.95; >= 1 disables */
    float min_p;       /* default 0.05; <= 0 disables */
    uint64_t seed;     /* default 0xC0FFEE; same seed and inputs give the same draws */
    /* OpenAI's penalties over the tokens passed to psi_sampler_accept:
     * logit[t] -= count[t] * frequency_penalty + (count[t] > 0) * presence_penalty.
     * Default 0 (off). */
    float presence_penalty;
    float frequency_penalty;
} psi_sampler_params;

psi_sampler_params psi_sampler_default_params(void);
psi_status psi_sampler_new(const psi_sampler_params *params, psi_sampler **out);
void psi_sampler_free(psi_sampler *s);
/* Pick a token from logits[0..n_vocab). Returns -1 on invalid arguments, or
 * when a logit bias is set and its copy of the logits cannot be allocated. */
int32_t psi_sampler_sample(psi_sampler *s, const float *logits, int32_t n_vocab);
/* Count token as generated, for the penalties (a no-op when both are 0).
 * PSI_ERR_NO_MEMORY when the history cannot grow (nothing counted). */
psi_status psi_sampler_accept(psi_sampler *s, int32_t token);
/* OpenAI's logit_bias: bias[i] is added to the logit of token ids[i] at
 * every draw (greedy too), after the penalties; -100 all but forbids a
 * token, +100 all but forces it. Replaces an earlier list; n = 0 clears it.
 * The lists are copied. PSI_ERR_INVALID_ARG for a negative id or a bias
 * that is not finite (ids past the vocabulary are skipped when sampling). */
psi_status psi_sampler_set_logit_bias(psi_sampler *s, const int32_t *ids, const float *bias, int32_t n);

typedef struct psi_token_logprob {
    int32_t token;
    float logprob; /* natural log of the token's probability */
} psi_token_logprob;

/* Log-softmax of logits[0..n_vocab) at token (temperature 1, no
 * penalties: the model's own distribution) into *logprob, and the n_top
 * most likely tokens (most likely first, lower id first on ties) into
 * top[0..n_top). n_top may be 0 (top unused). PSI_ERR_INVALID_ARG for a
 * token out of range or n_top outside 0..n_vocab. */
psi_status psi_logprobs(const float *logits, int32_t n_vocab, int32_t token, float *logprob,
                        psi_token_logprob *top, int32_t n_top);

/* ----------------------------------------------------------------- conversion */
/* Convert a llama2.c checkpoint (model .bin + tokenizer .bin, as written by
 * llama2.c's export.py legacy format / run.c) to a GGUF file (F32 tensors).
 * The output is written to a temporary file (out_path with ".tmp"
 * appended) and renamed into place;
 * PSI_ERR_INVALID_ARG when out_path names one of the inputs. */
psi_status psi_convert_llama2c(const char *model_path, const char *tokenizer_path,
                               const char *out_path, char *err, size_t err_size);

/* ------------------------------------------------------------------ quantize
 * File types: llama.cpp's llama_ftype values, as stored in
 * general.file_type. A file type names a default tensor type and, for the
 * quantized ones, llama.cpp's per-tensor choices around it (output matrix
 * Q6_K, more bits for some attn_v/ffn_down layers in the _M mixes, fallbacks
 * for row lengths the type cannot hold). */
typedef enum psi_ftype {
    PSI_FTYPE_F32 = 0, /* psi_convert_hf only; psi_quantize rejects it */
    PSI_FTYPE_F16 = 1,
    PSI_FTYPE_Q4_0 = 2,
    PSI_FTYPE_Q4_1 = 3,
    PSI_FTYPE_Q8_0 = 7,
    PSI_FTYPE_Q5_0 = 8,
    PSI_FTYPE_Q5_1 = 9,
    PSI_FTYPE_Q4_K_S = 14,
    PSI_FTYPE_Q4_K_M = 15,
    PSI_FTYPE_Q5_K_S = 16,
    PSI_FTYPE_Q5_K_M = 17,
    PSI_FTYPE_Q6_K = 18,
    PSI_FTYPE_BF16 = 32,
} psi_ftype;

/* Called on the calling thread after each tensor, in the input file's
 * order, with the weights done so far and in all (both counted in values),
 * the tensor's name (borrowed for the call) and the type it was written in. */
typedef void (*psi_progress_fn)(void *user, const char *tensor, psi_type type, uint64_t done,
                                uint64_t total);

typedef struct psi_quantize_params {
    psi_ftype ftype;          /* default PSI_FTYPE_Q8_0 */
    int32_t n_threads;        /* threads quantizing rows; 0 = psi_cpu_count() */
    psi_progress_fn progress; /* may be NULL (default) */
    void *progress_user;
    bool allow_requantize; /* convert tensors that are already quantized; default false */
} psi_quantize_params;

psi_quantize_params psi_quantize_default_params(void);

/* Rewrite a GGUF model with its weight matrices in the tensor types that
 * llama.cpp's llama-quantize (no importance matrix) picks for
 * params->ftype, with the same bytes; 1-D tensors (norms, rope_freqs) and
 * all metadata are kept, general.file_type and
 * general.quantization_version are set. params NULL means the defaults.
 * Unknown ftype values, or out_path naming the input file:
 * PSI_ERR_INVALID_ARG; a tensor whose rows the chosen type cannot hold and
 * that has no fallback, or (without allow_requantize) a quantized tensor
 * that would change type: PSI_ERR_UNSUPPORTED, as llama-quantize. The
 * converted tensors are held in memory until the file is written, to a
 * temporary file (out_path with ".tmp" appended) renamed into place; a
 * device or a pipe at out_path is written in place. */
psi_status psi_quantize(const char *in_path, const char *out_path, const psi_quantize_params *params,
                        char *err, size_t err_size);


/* ---------------------------------------------------------------- trust
 * Licences and provenance of model files (docs/trust.md). The library only
 * reports and records; refusing to run is the application's decision. */

typedef enum psi_license_need {
    PSI_LICENSE_OPEN,    /* known open licence (apache-2.0, mit, ...) */
    PSI_LICENSE_ACCEPT,  /* known licence that must be accepted (Llama community licences) */
    PSI_LICENSE_UNKNOWN, /* missing or not in psi's table: the caller's policy decides */
} psi_license_need;

typedef struct psi_license_info {
    char id[64];    /* general.license ("" when absent) */
    char name[128]; /* general.license.name ("" when absent) */
    char link[256]; /* general.license.link ("" when absent) */
    char model[128];/* general.name */
    char org[128];  /* general.organization */
    psi_license_need need;
    const char *terms; /* static summary of the use restrictions and attribution duty, or NULL */
} psi_license_info;

/* Read a GGUF file's licence metadata and classify it. Long values are
 * cut to fit the fields. */
psi_status psi_license_read(const char *path, psi_license_info *out, char *err, size_t err_size);

/* The acceptance store: $XDG_CONFIG_HOME/psi/licenses.json, or
 * $HOME/.config/psi/licenses.json. PSI_ERR_BUFFER_SMALL / PSI_ERR_INVALID_ARG
 * (no HOME) otherwise. */
psi_status psi_license_store_path(char *buf, size_t size);

/* *yes = whether the store records acceptance of li->id for this file's
 * SHA-256 (a record whose device, inode, size and mtime still match the
 * file is trusted without hashing again). A store that exists but cannot
 * be parsed is PSI_ERR_FORMAT, never read as empty. */
psi_status psi_license_is_accepted(const char *store, const char *model_path, const psi_license_info *li,
                                   bool *yes, char *err, size_t err_size);

/* Record acceptance (SHA-256 of the file, licence id, UTC time) in the
 * store, written to a temporary file and renamed into place, mode 0600. */
psi_status psi_license_accept(const char *store, const char *model_path, const psi_license_info *li,
                              char *err, size_t err_size);

/* Called while a file is hashed, about every 64 MiB and at the end. */
typedef void (*psi_hash_progress_fn)(void *user, uint64_t done, uint64_t total);

/* Streamed SHA-256 of a file; *size receives its length. progress may be NULL. */
psi_status psi_file_sha256(const char *path, uint8_t digest[32], uint64_t *size, psi_hash_progress_fn progress,
                           void *user, char *err, size_t err_size);

/* Write NAME.key (ed25519 secret key, mode 0600; refuses to overwrite)
 * and NAME.pub. */
psi_status psi_keygen(const char *name, char *err, size_t err_size);

/* Sign path's SHA-256 and size with the secret key file into path.sig
 * (detached ed25519; format in docs/trust.md). */
psi_status psi_sign_file(const char *key_path, const char *path, psi_hash_progress_fn progress, void *user,
                         char *err, size_t err_size);

/* PSI_OK only when path.sig holds a valid signature by the public key in
 * pub_path over the file's current SHA-256 and size; PSI_ERR_DENIED for a
 * missing, altered or foreign signature (err says which). */
psi_status psi_verify_file(const char *pub_path, const char *path, psi_hash_progress_fn progress, void *user,
                           char *err, size_t err_size);

/* The verified-file cache: $XDG_CACHE_HOME/psi/verified.json, or
 * $HOME/.cache/psi/verified.json. */
psi_status psi_verify_cache_path(char *buf, size_t size);

/* psi_verify_file, skipped when cache_path (may be NULL) records a
 * successful check of the same path with the same public key while the
 * file and its .sig had the identity they have now (device, inode, size,
 * mtime and ctime); *cached says so. A good result is recorded; a missing
 * or unreadable cache only costs a full check. */
psi_status psi_verify_file_cached(const char *pub_path, const char *path, const char *cache_path, bool *cached,
                                  char *err, size_t err_size);


/* Llama Guard 3 (docs/trust.md): the classifier prompt and its verdict.
 * Hazard categories are numbered as Llama Guard 3 numbers them, S1
 * (Violent Crimes) to S14 (Code Interpreter Abuse); a mask has bit n-1
 * for Sn. */
#define PSI_GUARD_N_CATEGORIES 14
#define PSI_GUARD_ALL ((1u << PSI_GUARD_N_CATEGORIES) - 1)

/* "Violent Crimes" for 1, ... ; NULL outside 1..14. Static. */
const char *psi_guard_category_name(int code);

/* The Llama Guard 3 prompt (special tokens written out, for
 * psi_tokenize with parse_special) judging the last message of msgs
 * (roles "user" / "assistant"; a last user message is judged as 'User',
 * a last assistant message as 'Agent'), listing the categories in mask.
 * *out is freed with psi_guard_prompt_free. */
psi_status psi_guard_prompt(const psi_chat_msg *msgs, int32_t n_msgs, uint32_t category_mask, char **out, char *err,
                            size_t err_size);
void psi_guard_prompt_free(char *prompt);

typedef struct psi_guard_verdict {
    bool safe;
    uint32_t categories; /* mask of the violated categories when !safe */
} psi_guard_verdict;

/* Parse a guard's answer: "safe", or "unsafe" and a line of S-codes
 * separated by commas; white space around it is ignored. Anything else
 * (an unknown code, extra text) is PSI_ERR_FORMAT. */
psi_status psi_guard_parse(const char *text, size_t len, psi_guard_verdict *out);

/* Run a Llama Guard 3 model (loaded with psi_model_load) on the
 * conversation: build the prompt, decode greedily (at most 16 tokens, in a
 * context of its own, n_threads as psi_context_params) and parse the
 * answer, which is also copied into raw (NUL-terminated, cut to raw_size).
 * PSI_ERR_FORMAT when the answer is no verdict (err says what it was). */
psi_status psi_guard_check(psi_model *guard, const psi_chat_msg *msgs, int32_t n_msgs, uint32_t category_mask,
                           int32_t n_threads, psi_guard_verdict *out, char *raw, size_t raw_size, char *err,
                           size_t err_size);
/* Convert a Hugging Face Llama checkpoint directory (config.json, single or
 * sharded *.safetensors in F32/F16/BF16, tokenizer.json,
 * tokenizer_config.json, optional generation_config.json) to a GGUF file as
 * llama.cpp's convert_hf_to_gguf.py writes it for arch llama. ftype
 * PSI_FTYPE_F32 (default) writes F32 weights; any other value is applied
 * with psi_quantize to the F32 conversion (n_threads and progress passed
 * on), written first to out_path with ".f32.tmp" appended. progress is
 * called after each tensor read (type F32), then by psi_quantize. The weights are held in memory as F32 until
 * written. params NULL means the defaults. PSI_ERR_UNSUPPORTED for other architectures, tokenizers or RoPE
 * scalings; PSI_ERR_IO for missing files; PSI_ERR_INVALID_ARG when out_path names one of the files read. */
typedef struct psi_convert_hf_params {
    psi_ftype ftype;          /* default PSI_FTYPE_F32 */
    int32_t n_threads;        /* for psi_quantize; 0 = psi_cpu_count() */
    psi_progress_fn progress; /* may be NULL (default) */
    void *progress_user;
} psi_convert_hf_params;

psi_convert_hf_params psi_convert_hf_default_params(void);
psi_status psi_convert_hf(const char *dir, const char *out_path, const psi_convert_hf_params *params, char *err,
                          size_t err_size);

#ifdef __cplusplus
}
#endif
#endif /* PSI_H */
