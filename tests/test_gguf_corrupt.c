/*
 * test_gguf_corrupt.c — the GGUF reader against hand-made broken files, one
 * for each check the reader makes (the idea of llama.cpp's tests/test-gguf.cpp),
 * and a writer round trip.
 *
 * Every file is built here byte by byte from a small valid base (a dozen kvs
 * of different types, an array of strings, two F32 tensors). Each broken file
 * must be rejected three ways: by gguf_parse in-process with a one-line
 * message, and by `psi inspect` and `psi run` with a non-zero exit status
 * that is not a signal and exactly one line on stderr naming the file.
 * Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
 */
#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "gguf.h"
#include "testutil.h"

#define MAGIC 0x46554747u /* "GGUF" */

/* ------------------------------------------------------------ GGUF pieces */

/* On top of testutil.h's byte builder (tu_put_gguf_key and friends). */

static void put_hdr(tu_buf *b, uint32_t magic, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    tu_put_u32(b, magic);
    tu_put_u32(b, version);
    tu_put_u64(b, n_tensors);
    tu_put_u64(b, n_kv);
}

static void put_kv_u32(tu_buf *b, const char *key, uint32_t v)
{
    tu_put_gguf_key(b, key, GGUF_U32);
    tu_put_u32(b, v);
}

static void put_kv_str(tu_buf *b, const char *key, const char *v)
{
    tu_put_gguf_key(b, key, GGUF_STRING);
    tu_put_gguf_str(b, v);
}

static void put_arr_hdr(tu_buf *b, const char *key, uint32_t elem_type, uint64_t n)
{
    tu_put_gguf_key(b, key, GGUF_ARRAY);
    tu_put_u32(b, elem_type);
    tu_put_u64(b, n);
}

/* ------------------------------------------------------------ the valid base */

#define BASE_NKV 12
#define BASE_NT  2
static const char *const base_tokens[] = {"<unk>", "<s>", "</s>", "hello"};

/* alignment_kv: write general.alignment = 32 as u32 (the base does). */
static void put_base_kvs(tu_buf *b, bool alignment_kv)
{
    put_kv_str(b, "general.architecture", "llama");
    put_kv_str(b, "general.name", "corrupt-base");
    if (alignment_kv) put_kv_u32(b, "general.alignment", 32);
    tu_put_gguf_key(b, "test.u8", GGUF_U8);
    tu_put_u8(b, 7);
    tu_put_gguf_key(b, "test.i16", GGUF_I16);
    tu_put_u16(b, (uint16_t)-3);
    tu_put_gguf_key(b, "test.i32", GGUF_I32);
    tu_put_u32(b, (uint32_t)-100000);
    tu_put_gguf_key(b, "test.f32", GGUF_F32);
    tu_put_f32(b, 0.5f);
    tu_put_gguf_key(b, "test.bool", GGUF_BOOL);
    tu_put_u8(b, 1);
    tu_put_gguf_key(b, "test.u64", GGUF_U64);
    tu_put_u64(b, (uint64_t)1 << 40);
    tu_put_gguf_key(b, "test.f64", GGUF_F64);
    tu_put_f64(b, 2.25);
    put_arr_hdr(b, "tokenizer.ggml.tokens", GGUF_STRING, 4);
    for (int i = 0; i < 4; i++)
        tu_put_gguf_str(b, base_tokens[i]);
    put_arr_hdr(b, "test.arr_i32", GGUF_I32, 3);
    for (int i = 1; i <= 3; i++)
        tu_put_u32(b, (uint32_t)i);
}

static const uint64_t ne_embd[2] = {4, 2}, ne_norm[1] = {4};

static void put_base_tinfos(tu_buf *b)
{
    tu_put_gguf_tinfo(b, "token_embd.weight", 2, ne_embd, PSI_TYPE_F32, 0);
    tu_put_gguf_tinfo(b, "output_norm.weight", 1, ne_norm, PSI_TYPE_F32, 32);
}

/* Padding to 32, then 32 bytes of token_embd and 16 of output_norm. */
static void put_base_data(tu_buf *b)
{
    tu_put_pad(b, 32);
    for (int i = 0; i < 12; i++)
        tu_put_f32(b, (float)i * 0.25f);
}

static void mk_base(tu_buf *b)
{
    put_hdr(b, MAGIC, 3, BASE_NT, BASE_NKV);
    put_base_kvs(b, true);
    put_base_tinfos(b);
    put_base_data(b);
}

/* Byte offsets inside the base file, for the truncation cases. */
static size_t base_kvs_end(void)
{
    tu_buf b = {0};
    put_hdr(&b, MAGIC, 3, BASE_NT, BASE_NKV);
    put_base_kvs(&b, true);
    size_t n = b.len;
    tu_buf_free(&b);
    return n;
}

static size_t base_tinfos_end(void)
{
    tu_buf b = {0};
    put_hdr(&b, MAGIC, 3, BASE_NT, BASE_NKV);
    put_base_kvs(&b, true);
    put_base_tinfos(&b);
    size_t n = b.len;
    tu_buf_free(&b);
    return n;
}

/* Base with one extra kv written by `extra` after the base kvs. */
static void mk_with_kv(tu_buf *b, void (*extra)(tu_buf *))
{
    put_hdr(b, MAGIC, 3, BASE_NT, BASE_NKV + 1);
    put_base_kvs(b, true);
    extra(b);
    put_base_tinfos(b);
    put_base_data(b);
}

/* Base kvs (general.alignment replaced by `align_kv`) and tensors. */
static void mk_with_alignment(tu_buf *b, void (*align_kv)(tu_buf *))
{
    put_hdr(b, MAGIC, 3, BASE_NT, BASE_NKV);
    put_base_kvs(b, false);
    align_kv(b);
    put_base_tinfos(b);
    put_base_data(b);
}

/* Base kvs, token_embd as usual, then `second` as the second tensor info. */
static void mk_with_tensor(tu_buf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                           uint64_t offset)
{
    put_hdr(b, MAGIC, 3, BASE_NT, BASE_NKV);
    put_base_kvs(b, true);
    tu_put_gguf_tinfo(b, "token_embd.weight", 2, ne_embd, PSI_TYPE_F32, 0);
    tu_put_gguf_tinfo(b, name, n_dims, ne, type, offset);
    put_base_data(b);
}

/* ------------------------------------------------------------ broken files */

static void c_empty(tu_buf *b)
{
    (void)b;
}
static void c_7_bytes(tu_buf *b)
{
    tu_put_u32(b, MAGIC);
    tu_put_u8(b, 3);
    tu_put_u8(b, 0);
    tu_put_u8(b, 0);
}
static void c_bad_magic(tu_buf *b)
{
    put_hdr(b, 0x4c4d4747u /* "GGML" */, 3, BASE_NT, BASE_NKV);
    put_base_kvs(b, true);
    put_base_tinfos(b);
    put_base_data(b);
}
static void c_version(tu_buf *b, uint32_t v)
{
    put_hdr(b, MAGIC, v, BASE_NT, BASE_NKV);
    put_base_kvs(b, true);
    put_base_tinfos(b);
    put_base_data(b);
}
static void c_version_1(tu_buf *b)
{
    c_version(b, 1);
}
static void c_version_99(tu_buf *b)
{
    c_version(b, 99);
}
static void c_version_0(tu_buf *b)
{
    c_version(b, 0);
}

static void c_cut(tu_buf *b, size_t at)
{
    mk_base(b);
    if (at < b->len) b->len = at;
}
static void c_cut_12(tu_buf *b)
{
    c_cut(b, 12);
}
static void c_cut_20(tu_buf *b)
{
    c_cut(b, 20);
}
/* The last kv, test.arr_i32, is 48 bytes: u64 key length, 12 key bytes, u32
 * type, u32 element type, u64 count, 3 x i32. Cuts early in the file fail the
 * "count x smallest entry > bytes left" bound instead, so cut late. */
static void c_cut_28(tu_buf *b)
{
    c_cut(b, base_kvs_end() - 48 + 4);
}
static void c_cut_40(tu_buf *b)
{
    c_cut(b, base_kvs_end() - 48 + 8 + 5);
}
static void c_cut_kvs_end_m9(tu_buf *b)
{
    c_cut(b, base_kvs_end() - 9);
} /* inside test.arr_i32 */
/* Tensor 0's info is 57 bytes; cut inside tensor 1's name. */
static void c_cut_kvs_end_p70(tu_buf *b)
{
    c_cut(b, base_kvs_end() + 57 + 8 + 5);
}
static void c_cut_tinfos_end_m3(tu_buf *b)
{
    c_cut(b, base_tinfos_end() - 3);
} /* inside an offset */
static void c_cut_tinfos_end(tu_buf *b)
{
    c_cut(b, base_tinfos_end());
}
static void c_cut_data_m1(tu_buf *b)
{
    mk_base(b);
    b->len--;
}

static void c_huge_kv_count(tu_buf *b)
{
    put_hdr(b, MAGIC, 3, BASE_NT, (uint64_t)1 << 63);
    put_base_kvs(b, true);
    put_base_tinfos(b);
    put_base_data(b);
}
static void c_huge_tensor_count(tu_buf *b)
{
    put_hdr(b, MAGIC, 3, (uint64_t)1 << 62, BASE_NKV);
    put_base_kvs(b, true);
    put_base_tinfos(b);
    put_base_data(b);
}

static void kv_huge_key_len(tu_buf *b)
{
    tu_put_u64(b, (uint64_t)1 << 40);
    tu_put(b, "test.x", 6);
    tu_put_u32(b, GGUF_U32);
    tu_put_u32(b, 1);
}
static void c_huge_key_len(tu_buf *b)
{
    mk_with_kv(b, kv_huge_key_len);
}

static void kv_empty_key(tu_buf *b)
{
    put_kv_u32(b, "", 1);
}
static void c_empty_key(tu_buf *b)
{
    mk_with_kv(b, kv_empty_key);
}

static void kv_huge_str(tu_buf *b)
{
    tu_put_gguf_key(b, "test.str", GGUF_STRING);
    tu_put_u64(b, (uint64_t)1 << 50);
    tu_put(b, "abc", 3);
}
static void c_huge_str(tu_buf *b)
{
    mk_with_kv(b, kv_huge_str);
}

static void kv_huge_str_arr(tu_buf *b)
{
    put_arr_hdr(b, "test.strs", GGUF_STRING, (uint64_t)1 << 61);
    tu_put_gguf_str(b, "a");
}
static void c_huge_str_arr(tu_buf *b)
{
    mk_with_kv(b, kv_huge_str_arr);
}

static void kv_huge_i32_arr(tu_buf *b)
{
    put_arr_hdr(b, "test.ints", GGUF_I32, (uint64_t)1 << 62); /* 2^64 bytes: overflows */
    tu_put_u32(b, 1);
}
static void c_huge_i32_arr(tu_buf *b)
{
    mk_with_kv(b, kv_huge_i32_arr);
}

static void kv_long_u64_arr(tu_buf *b)
{
    put_arr_hdr(b, "test.u64s", GGUF_U64, 1000); /* no overflow, just past the end */
    tu_put_u64(b, 1);
}
static void c_long_u64_arr(tu_buf *b)
{
    mk_with_kv(b, kv_long_u64_arr);
}

static void kv_bad_type(tu_buf *b)
{
    tu_put_gguf_key(b, "test.bad", GGUF_VTYPE_COUNT);
    tu_put_u32(b, 0);
}
static void c_bad_type(tu_buf *b)
{
    mk_with_kv(b, kv_bad_type);
}

static void kv_bad_type_max(tu_buf *b)
{
    tu_put_gguf_key(b, "test.bad", 0xFFFFFFFFu);
    tu_put_u32(b, 0);
}
static void c_bad_type_max(tu_buf *b)
{
    mk_with_kv(b, kv_bad_type_max);
}

static void kv_bad_elem_type(tu_buf *b)
{
    put_arr_hdr(b, "test.arr", GGUF_VTYPE_COUNT, 1);
    tu_put_u32(b, 0);
}
static void c_bad_elem_type(tu_buf *b)
{
    mk_with_kv(b, kv_bad_elem_type);
}

static void kv_nested_arr(tu_buf *b)
{
    put_arr_hdr(b, "test.nested", GGUF_ARRAY, 1);
    tu_put_u32(b, GGUF_U32);
    tu_put_u64(b, 1);
    tu_put_u32(b, 5);
}
static void c_nested_arr(tu_buf *b)
{
    mk_with_kv(b, kv_nested_arr);
}

static void kv_bool_2(tu_buf *b)
{
    tu_put_gguf_key(b, "test.bool2", GGUF_BOOL);
    tu_put_u8(b, 2);
}
static void c_bool_2(tu_buf *b)
{
    mk_with_kv(b, kv_bool_2);
}

static void kv_dup_key(tu_buf *b)
{
    tu_put_gguf_key(b, "test.u8", GGUF_U8);
    tu_put_u8(b, 8);
}
static void c_dup_key(tu_buf *b)
{
    mk_with_kv(b, kv_dup_key);
}

static void c_dup_tensor(tu_buf *b)
{
    mk_with_tensor(b, "token_embd.weight", 1, ne_norm, PSI_TYPE_F32, 32);
}
static void c_empty_tensor_name(tu_buf *b)
{
    mk_with_tensor(b, "", 1, ne_norm, PSI_TYPE_F32, 32);
}
static void c_huge_tensor_name(tu_buf *b)
{
    put_hdr(b, MAGIC, 3, BASE_NT, BASE_NKV);
    put_base_kvs(b, true);
    tu_put_gguf_tinfo(b, "token_embd.weight", 2, ne_embd, PSI_TYPE_F32, 0);
    tu_put_u64(b, (uint64_t)-1);
    tu_put(b, "output_norm.weight", 18);
    tu_put_u32(b, 1);
    tu_put_u64(b, 4);
    tu_put_u32(b, PSI_TYPE_F32);
    tu_put_u64(b, 32);
    put_base_data(b);
}
static void c_ndims_0(tu_buf *b)
{
    mk_with_tensor(b, "output_norm.weight", 0, ne_norm, PSI_TYPE_F32, 32);
}
static void c_ndims_5(tu_buf *b)
{
    static const uint64_t ne[5] = {4, 1, 1, 1, 1};
    mk_with_tensor(b, "output_norm.weight", 5, ne, PSI_TYPE_F32, 32);
}
static void c_dim_0(tu_buf *b)
{
    static const uint64_t ne[2] = {4, 0};
    mk_with_tensor(b, "output_norm.weight", 2, ne, PSI_TYPE_F32, 32);
}
static void c_dim_2p63(tu_buf *b)
{
    static const uint64_t ne[1] = {(uint64_t)1 << 63};
    mk_with_tensor(b, "output_norm.weight", 1, ne, PSI_TYPE_F32, 32);
}
static void c_shape_2p64(tu_buf *b)
{
    static const uint64_t ne[2] = {(uint64_t)1 << 32, (uint64_t)1 << 32};
    mk_with_tensor(b, "output_norm.weight", 2, ne, PSI_TYPE_F32, 32);
}
static void c_shape_2p63(tu_buf *b)
{
    static const uint64_t ne[3] = {(uint64_t)1 << 31, (uint64_t)1 << 16, (uint64_t)1 << 16};
    mk_with_tensor(b, "output_norm.weight", 3, ne, PSI_TYPE_F32, 32);
}
static void c_bytes_2p64(tu_buf *b)
{
    /* 2^62 elements is a valid count, but 2^62 f32 values are 2^64 bytes. */
    static const uint64_t ne[2] = {(uint64_t)1 << 31, (uint64_t)1 << 31};
    mk_with_tensor(b, "output_norm.weight", 2, ne, PSI_TYPE_F32, 32);
}
static void c_type_4(tu_buf *b)
{
    mk_with_tensor(b, "output_norm.weight", 1, ne_norm, 4, 32);
}
static void c_type_1000(tu_buf *b)
{
    mk_with_tensor(b, "output_norm.weight", 1, ne_norm, 1000, 32);
}
static void c_type_max(tu_buf *b)
{
    mk_with_tensor(b, "output_norm.weight", 1, ne_norm, 0xFFFFFFFFu, 32);
}
static void c_q4_0_row_33(tu_buf *b)
{
    static const uint64_t ne[1] = {33};
    mk_with_tensor(b, "output_norm.weight", 1, ne, PSI_TYPE_Q4_0, 32);
}
static void c_offset_unaligned(tu_buf *b)
{
    mk_with_tensor(b, "output_norm.weight", 1, ne_norm, PSI_TYPE_F32, 36);
}
static void c_offset_past_end(tu_buf *b)
{
    mk_with_tensor(b, "output_norm.weight", 1, ne_norm, PSI_TYPE_F32, 4096);
}
static void c_offset_overflow(tu_buf *b)
{
    mk_with_tensor(b, "output_norm.weight", 1, ne_norm, PSI_TYPE_F32, (uint64_t)0 - 32);
}
static void c_size_overflow(tu_buf *b)
{
    /* 2^62 bytes at offset 3 * 2^62: the start fits, the end wraps around 2^64. */
    static const uint64_t ne[1] = {(uint64_t)1 << 60};
    mk_with_tensor(b, "output_norm.weight", 1, ne, PSI_TYPE_F32, (uint64_t)3 << 62);
}

static void al_48(tu_buf *b)
{
    put_kv_u32(b, "general.alignment", 48);
}
static void al_0(tu_buf *b)
{
    put_kv_u32(b, "general.alignment", 0);
}
static void al_i32(tu_buf *b)
{
    tu_put_gguf_key(b, "general.alignment", GGUF_I32);
    tu_put_u32(b, 32);
}
static void al_str(tu_buf *b)
{
    put_kv_str(b, "general.alignment", "32");
}
static void c_align_48(tu_buf *b)
{
    mk_with_alignment(b, al_48);
}
static void c_align_0(tu_buf *b)
{
    mk_with_alignment(b, al_0);
}
static void c_align_i32(tu_buf *b)
{
    mk_with_alignment(b, al_i32);
}
static void c_align_str(tu_buf *b)
{
    mk_with_alignment(b, al_str);
}

typedef struct corrupt_case {
    const char *name; /* also the file name */
    void (*build)(tu_buf *);
    const char *expect; /* a word gguf_parse's message must contain */
} corrupt_case;

static const corrupt_case cases[] = {
    {"empty", c_empty, "magic"},
    {"7_bytes", c_7_bytes, "version"},
    {"bad_magic", c_bad_magic, "magic"},
    {"version_1", c_version_1, "version 1"},
    {"version_99", c_version_99, "version 99"},
    {"version_0", c_version_0, "version 0"},
    {"cut_in_tensor_count", c_cut_12, "tensor count"},
    {"cut_in_kv_count", c_cut_20, "metadata count"},
    {"cut_in_key_length", c_cut_28, "metadata entry 11"},
    {"cut_in_key", c_cut_40, "metadata entry 11"},
    {"cut_in_array", c_cut_kvs_end_m9, "test.arr_i32"},
    {"cut_in_tensor_name", c_cut_kvs_end_p70, "tensor 1"},
    {"cut_in_tensor_offset", c_cut_tinfos_end_m3, "output_norm.weight"},
    {"cut_after_tensor_infos", c_cut_tinfos_end, "past the end"},
    {"cut_in_data", c_cut_data_m1, "output_norm.weight"},
    {"huge_kv_count", c_huge_kv_count, "metadata entries"},
    {"huge_tensor_count", c_huge_tensor_count, "tensors"},
    {"huge_key_length", c_huge_key_len, "metadata entry 12"},
    {"empty_key", c_empty_key, "key length"},
    {"huge_string", c_huge_str, "test.str"},
    {"huge_string_array", c_huge_str_arr, "test.strs"},
    {"huge_i32_array", c_huge_i32_arr, "test.ints"},
    {"long_u64_array", c_long_u64_arr, "test.u64s"},
    {"bad_value_type", c_bad_type, "value type"},
    {"bad_value_type_max", c_bad_type_max, "value type"},
    {"bad_elem_type", c_bad_elem_type, "element type"},
    {"nested_array", c_nested_arr, "element type"},
    {"bool_2", c_bool_2, "test.bool2"},
    {"dup_key", c_dup_key, "test.u8"},
    {"dup_tensor", c_dup_tensor, "token_embd.weight"},
    {"empty_tensor_name", c_empty_tensor_name, "name length"},
    {"huge_tensor_name", c_huge_tensor_name, "tensor 1"},
    {"ndims_0", c_ndims_0, "dimensions"},
    {"ndims_5", c_ndims_5, "dimensions"},
    {"dim_0", c_dim_0, "dimension"},
    {"dim_2p63", c_dim_2p63, "dimension"},
    {"shape_2p64", c_shape_2p64, "overflows"},
    {"shape_2p63", c_shape_2p63, "overflows"},
    {"bytes_2p64", c_bytes_2p64, "overflows"},
    {"type_4", c_type_4, "type"},
    {"type_1000", c_type_1000, "type"},
    {"type_max", c_type_max, "type"},
    {"q4_0_row_33", c_q4_0_row_33, "block size"},
    {"offset_unaligned", c_offset_unaligned, "alignment"},
    {"offset_past_end", c_offset_past_end, "past the end"},
    {"offset_overflow", c_offset_overflow, "past the end"},
    {"size_overflow", c_size_overflow, "output_norm.weight"},
    {"alignment_48", c_align_48, "alignment"},
    {"alignment_0", c_align_0, "alignment"},
    {"alignment_i32", c_align_i32, "alignment"},
    {"alignment_string", c_align_str, "alignment"},
};

static int count_char(const char *s, char c)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == c;
    return n;
}

static bool write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = n == 0 || fwrite(p, 1, n, f) == n;
    return (fclose(f) == 0) && ok;
}

/* A failing psi command: non-zero, not a signal, one stderr line naming path. */
static void check_cli_fails(const char *label, const char *const argv[], const char *path)
{
    char *out = NULL, *err = NULL;
    int rc = tu_run(argv, &out, &err);
    CHECKF(rc > 0 && rc < 128 && rc != 127, "%s: psi %s exited with %d", label, argv[1], rc);
    size_t elen = err ? strlen(err) : 0;
    CHECKF(elen > 0 && count_char(err, '\n') == 1 && err[elen - 1] == '\n',
           "%s: psi %s: stderr is not exactly one line: [%s]", label, argv[1], err ? err : "");
    CHECKF(err && strstr(err, path), "%s: psi %s: stderr does not name the file: [%s]", label, argv[1],
           err ? err : "");
    if (!strcmp(argv[1], "inspect"))
        CHECKF(out && !*out, "%s: psi inspect printed on stdout: [%.200s]", label, out ? out : "");
    free(out);
    free(err);
}

static void test_corrupt(const char *dir)
{
    size_t n = sizeof cases / sizeof cases[0];
    CHECK(n >= 24);
    for (size_t i = 0; i < n; i++) {
        const corrupt_case *c = &cases[i];
        tu_buf b = {0};
        c->build(&b);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.gguf", dir, c->name);
        CHECKF(write_file(path, b.p, b.len), "%s: cannot write %s", c->name, path);

        /* (a) in-process, on an exact-size heap copy so ASan sees overreads. */
        uint8_t *copy = malloc(b.len ? b.len : 1);
        if (b.len) memcpy(copy, b.p, b.len);
        gguf *g = NULL;
        char err[512] = "";
        psi_status rc = gguf_parse(copy, b.len, c->name, &g, err, sizeof err);
        CHECKF(rc == PSI_ERR_FORMAT, "%s: gguf_parse returned %d (%s)", c->name, rc, err);
        CHECKF(g == NULL, "%s: *out set on failure", c->name);
        CHECKF(err[0] && !strchr(err, '\n'), "%s: bad message [%s]", c->name, err);
        CHECKF(strstr(err, c->expect), "%s: message [%s] lacks \"%s\"", c->name, err, c->expect);
        if (g) gguf_close(g);
        free(copy);

        /* gguf_open on the file: same verdict (it adds the size check). */
        g = NULL;
        err[0] = 0;
        rc = gguf_open(path, &g, err, sizeof err);
        CHECKF(rc != PSI_OK && g == NULL, "%s: gguf_open accepted it", c->name);
        CHECKF(err[0] && !strchr(err, '\n') && strstr(err, path), "%s: gguf_open message [%s]", c->name, err);
        if (g) gguf_close(g);

        /* (b) the CLI. */
        const char *inspect[] = {tu_psi(), "inspect", path, NULL};
        check_cli_fails(c->name, inspect, path);
        const char *run[] = {tu_psi(), "run", "-m", path, "-n", "1", "--temp", "0", NULL};
        check_cli_fails(c->name, run, path);
        tu_buf_free(&b);
    }
    printf("%zu corrupt files rejected\n", n);
}

/* ------------------------------------------------------------ the valid base */

static void test_base(const char *dir)
{
    tu_buf b = {0};
    mk_base(&b);
    uint8_t *copy = malloc(b.len);
    memcpy(copy, b.p, b.len);
    gguf *g = NULL;
    char err[512] = "";
    psi_status rc = gguf_parse(copy, b.len, "base", &g, err, sizeof err);
    CHECKF(rc == PSI_OK, "base: %s", err);
    if (rc == PSI_OK) {
        CHECK(g->version == 3);
        CHECK(g->n_kv == BASE_NKV);
        CHECK(g->n_tensors == BASE_NT);
        CHECK(g->alignment == 32);
        CHECK(g->data_offset % 32 == 0 && g->data_offset + 48 == b.len);
        int64_t k = gguf_find_key(g, "tokenizer.ggml.tokens");
        CHECK(k >= 0);
        if (k >= 0) {
            const gguf_kv *kv = &g->kv[k];
            CHECK(kv->type == GGUF_ARRAY && kv->arr_type == GGUF_STRING && kv->n == 4);
            for (int i = 0; i < 4 && kv->n == 4; i++)
                CHECKF(gguf_str_eq(kv->strs[i], base_tokens[i]), "token %d", i);
        }
        uint32_t u = 0;
        CHECK(gguf_get_u32(g, "test.u8", &u, err, sizeof err) == PSI_OK && u == 7);
        CHECK(gguf_get_u32(g, "test.i32", &u, err, sizeof err) == PSI_ERR_FORMAT);
        CHECK(gguf_get_u32(g, "test.u64", &u, err, sizeof err) == PSI_ERR_FORMAT);
        CHECK(gguf_get_u32(g, "no.such.key", &u, err, sizeof err) == PSI_ERR_INVALID_ARG);
        float f = 0;
        CHECK(gguf_get_f32(g, "test.f32", &f, err, sizeof err) == PSI_OK && f == 0.5f);
        CHECK(gguf_get_f32(g, "test.f64", &f, err, sizeof err) == PSI_OK && f == 2.25f);
        bool bo = false;
        CHECK(gguf_get_bool(g, "test.bool", &bo, err, sizeof err) == PSI_OK && bo);
        gguf_str s;
        CHECK(gguf_get_str(g, "general.name", &s, err, sizeof err) == PSI_OK &&
              gguf_str_eq(s, "corrupt-base"));
        const gguf_kv *arr = NULL;
        CHECK(gguf_get_arr(g, "test.arr_i32", GGUF_I32, 3, &arr, err, sizeof err) == PSI_OK);
        CHECK(gguf_get_arr(g, "test.arr_i32", GGUF_I32, 4, &arr, err, sizeof err) == PSI_ERR_FORMAT);
        CHECK(gguf_get_arr(g, "test.arr_i32", GGUF_U32, 0, &arr, err, sizeof err) == PSI_ERR_FORMAT);
        int64_t t = gguf_find_tensor(g, "output_norm.weight");
        CHECK(t == 1);
        if (t == 1) {
            const gguf_tensor *tt = &g->tensors[1];
            CHECK(tt->n_dims == 1 && tt->ne[0] == 4 && tt->ne[1] == 1 && tt->nbytes == 16);
            CHECK((const uint8_t *)tt->data == copy + g->data_offset + 32);
        }
        gguf_close(g);
    }
    free(copy);

    char path[4096];
    snprintf(path, sizeof path, "%s/base.gguf", dir);
    CHECK(write_file(path, b.p, b.len));
    char *out = NULL, *errs = NULL;
    const char *argv[] = {tu_psi(), "inspect", path, NULL};
    int st = tu_run(argv, &out, &errs);
    CHECKF(st == 0, "psi inspect base.gguf exited with %d: %s", st, errs ? errs : "");
    CHECKF(out && strstr(out, "token_embd.weight") && strstr(out, "output_norm.weight"),
           "psi inspect output lacks the tensor names: [%.300s]", out ? out : "");
    free(out);
    free(errs);
    tu_buf_free(&b);
}

/* ------------------------------------------------------------ writer round trip */

typedef struct arr_case {
    const char *key;
    uint32_t type;
    size_t elem;
    const void *data;
    uint64_t n;
} arr_case;

static const uint8_t a_u8[] = {0, 1, 255};
static const int8_t a_i8[] = {-128, 0, 127};
static const uint16_t a_u16[] = {0, 1, 65535};
static const int16_t a_i16[] = {-32768, -1, 32767};
static const uint32_t a_u32[] = {0, 1, 0xFFFFFFFFu};
static const int32_t a_i32[] = {INT32_MIN, -1, INT32_MAX};
static const float a_f32[] = {-1.5f, 0.0f, 3.25e10f};
static const uint8_t a_bool[] = {1, 0, 1};
static const uint64_t a_u64[] = {0, (uint64_t)1 << 40, UINT64_MAX};
static const int64_t a_i64[] = {INT64_MIN, -1, INT64_MAX};
static const double a_f64[] = {-2.5, 1e300, 0.1};

static const arr_case arrs[] = {
    {"arr.u8", GGUF_U8, 1, a_u8, 3},    {"arr.i8", GGUF_I8, 1, a_i8, 3},
    {"arr.u16", GGUF_U16, 2, a_u16, 3}, {"arr.i16", GGUF_I16, 2, a_i16, 3},
    {"arr.u32", GGUF_U32, 4, a_u32, 3}, {"arr.i32", GGUF_I32, 4, a_i32, 3},
    {"arr.f32", GGUF_F32, 4, a_f32, 3}, {"arr.bool", GGUF_BOOL, 1, a_bool, 3},
    {"arr.u64", GGUF_U64, 8, a_u64, 3}, {"arr.i64", GGUF_I64, 8, a_i64, 3},
    {"arr.f64", GGUF_F64, 8, a_f64, 3}, {"arr.empty_u32", GGUF_U32, 4, a_u32, 0},
};

typedef struct tensor_case {
    const char *name;
    uint32_t type;
    uint32_t n_dims;
    uint64_t ne[4];
    uint64_t nbytes;
} tensor_case;

static const tensor_case tensors[] = {
    {"t.f32_2d", PSI_TYPE_F32, 2, {3, 2, 1, 1}, 24},         {"t.f16_1d", PSI_TYPE_F16, 1, {5, 1, 1, 1}, 10},
    {"t.q8_0", PSI_TYPE_Q8_0, 2, {64, 3, 1, 1}, 2 * 34 * 3}, {"t.q4_0", PSI_TYPE_Q4_0, 1, {32, 1, 1, 1}, 18},
    {"t.f32_4d", PSI_TYPE_F32, 4, {2, 1, 3, 2}, 48},
};

static const char *const wstrs[] = {"<unk>", "", "h\xc3\xa9llo", "a b\nc"};

static void test_writer(const char *dir)
{
    char path[4096], err[512] = "";
    snprintf(path, sizeof path, "%s/roundtrip.gguf", dir);
    size_t nt = sizeof tensors / sizeof tensors[0], na = sizeof arrs / sizeof arrs[0];
    uint8_t *tdata[sizeof tensors / sizeof tensors[0]];
    for (size_t i = 0; i < nt; i++) {
        tdata[i] = malloc((size_t)tensors[i].nbytes);
        for (uint64_t j = 0; j < tensors[i].nbytes; j++)
            tdata[i][j] = (uint8_t)(j * 7 + i * 31);
    }

    gguf_writer *w = gguf_writer_new();
    CHECK(w != NULL);
    if (!w) return;
    CHECK(gguf_writer_set_str(w, "general.architecture", "llama") == PSI_OK);
    CHECK(gguf_writer_set_str(w, "str.empty", "") == PSI_OK);
    CHECK(gguf_writer_set_u32(w, "s.u32", 0xFFFFFFFFu) == PSI_OK);
    CHECK(gguf_writer_set_i32(w, "s.i32", -7) == PSI_OK);
    CHECK(gguf_writer_set_f32(w, "s.f32", -0.125f) == PSI_OK);
    CHECK(gguf_writer_set_bool(w, "s.true", true) == PSI_OK);
    CHECK(gguf_writer_set_bool(w, "s.false", false) == PSI_OK);
    /* Setting a key again replaces it, type included. */
    CHECK(gguf_writer_set_u32(w, "s.replaced", 1) == PSI_OK);
    CHECK(gguf_writer_set_str(w, "s.replaced", "now a string") == PSI_OK);
    for (size_t i = 0; i < na; i++)
        CHECKF(gguf_writer_set_arr(w, arrs[i].key, arrs[i].type, arrs[i].data, arrs[i].n) == PSI_OK,
               "set_arr %s", arrs[i].key);
    CHECK(gguf_writer_set_arr_str(w, "arr.str", wstrs, 4) == PSI_OK);
    CHECK(gguf_writer_set_arr_str(w, "arr.str_empty", wstrs, 0) == PSI_OK);
    const uint64_t kv_count = 8 + na + 2;
    /* Arguments the writer must refuse. */
    CHECK(gguf_writer_set_arr(w, "bad", GGUF_STRING, a_u8, 1) == PSI_ERR_INVALID_ARG);
    CHECK(gguf_writer_set_arr(w, "bad", GGUF_ARRAY, a_u8, 1) == PSI_ERR_INVALID_ARG);
    CHECK(gguf_writer_set_arr(w, "bad", 99, a_u8, 1) == PSI_ERR_INVALID_ARG);
    const uint64_t ne_bad0[2] = {4, 0}, ne33[1] = {33};
    CHECK(gguf_writer_add_tensor(w, "bad", PSI_TYPE_F32, 0, ne_bad0, a_u8) == PSI_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "bad", PSI_TYPE_F32, 5, ne_bad0, a_u8) == PSI_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "bad", PSI_TYPE_F32, 2, ne_bad0, a_u8) == PSI_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "bad", PSI_TYPE_Q4_0, 1, ne33, a_u8) == PSI_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "bad", 1000, 1, ne33, a_u8) == PSI_ERR_INVALID_ARG);
    for (size_t i = 0; i < nt; i++)
        CHECKF(gguf_writer_add_tensor(w, tensors[i].name, tensors[i].type, tensors[i].n_dims, tensors[i].ne,
                                      tdata[i]) == PSI_OK,
               "add_tensor %s", tensors[i].name);
    psi_status rc = gguf_writer_write(w, path, err, sizeof err);
    CHECKF(rc == PSI_OK, "write: %s", err);
    /* A path in a missing directory fails with a message, no crash. */
    char bad[4200];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.gguf", dir);
    err[0] = 0;
    CHECK(gguf_writer_write(w, bad, err, sizeof err) == PSI_ERR_IO && err[0]);
    gguf_writer_free(w);
    gguf_writer_free(NULL);

    gguf *g = NULL;
    err[0] = 0;
    rc = gguf_open(path, &g, err, sizeof err);
    CHECKF(rc == PSI_OK, "read back: %s", err);
    if (rc != PSI_OK) goto done;
    CHECK(g->version == 3);
    CHECK(g->alignment == 32 && g->data_offset % 32 == 0);
    CHECKF(g->n_kv == kv_count, "n_kv %" PRIu64 ", expected %" PRIu64, g->n_kv, kv_count);
    CHECK(g->n_tensors == nt);

    gguf_str s;
    CHECK(gguf_get_str(g, "general.architecture", &s, err, sizeof err) == PSI_OK && gguf_str_eq(s, "llama"));
    CHECK(gguf_get_str(g, "str.empty", &s, err, sizeof err) == PSI_OK && s.len == 0);
    CHECK(gguf_get_str(g, "s.replaced", &s, err, sizeof err) == PSI_OK && gguf_str_eq(s, "now a string"));
    uint32_t u = 0;
    CHECK(gguf_get_u32(g, "s.u32", &u, err, sizeof err) == PSI_OK && u == 0xFFFFFFFFu);
    int64_t k = gguf_find_key(g, "s.i32");
    int32_t i32 = 0;
    if (k >= 0) memcpy(&i32, g->kv[k].data, 4);
    CHECK(k >= 0 && g->kv[k].type == GGUF_I32 && i32 == -7);
    float f = 0;
    CHECK(gguf_get_f32(g, "s.f32", &f, err, sizeof err) == PSI_OK && f == -0.125f);
    bool bo = false;
    CHECK(gguf_get_bool(g, "s.true", &bo, err, sizeof err) == PSI_OK && bo);
    CHECK(gguf_get_bool(g, "s.false", &bo, err, sizeof err) == PSI_OK && !bo);
    for (size_t i = 0; i < na; i++) {
        const gguf_kv *kv = NULL;
        rc = gguf_get_arr(g, arrs[i].key, arrs[i].type, 0, &kv, err, sizeof err);
        CHECKF(rc == PSI_OK, "%s: %s", arrs[i].key, err);
        if (rc != PSI_OK) continue;
        CHECKF(kv->n == arrs[i].n, "%s: %" PRIu64 " elements", arrs[i].key, kv->n);
        if (kv->n == arrs[i].n && kv->n)
            CHECKF(!memcmp(kv->data, arrs[i].data, (size_t)arrs[i].n * arrs[i].elem), "%s: values differ",
                   arrs[i].key);
    }
    const gguf_kv *sa = NULL;
    rc = gguf_get_arr(g, "arr.str", GGUF_STRING, 4, &sa, err, sizeof err);
    CHECKF(rc == PSI_OK, "arr.str: %s", err);
    for (int i = 0; rc == PSI_OK && i < 4; i++)
        CHECKF(gguf_str_eq(sa->strs[i], wstrs[i]), "arr.str[%d]", i);
    rc = gguf_get_arr(g, "arr.str_empty", GGUF_STRING, 0, &sa, err, sizeof err);
    CHECK(rc == PSI_OK && sa->n == 0);

    for (size_t i = 0; i < nt; i++) {
        const tensor_case *tc = &tensors[i];
        const gguf_tensor *t = &g->tensors[i];
        CHECKF(gguf_str_eq(t->name, tc->name), "tensor %zu is not %s", i, tc->name);
        CHECKF(gguf_find_tensor(g, tc->name) == (int64_t)i, "find %s", tc->name);
        CHECKF(t->type == tc->type && t->n_dims == tc->n_dims, "%s: type/dims", tc->name);
        for (int d = 0; d < 4; d++)
            CHECKF(t->ne[d] == tc->ne[d], "%s: ne[%d] = %" PRIu64, tc->name, d, t->ne[d]);
        CHECKF(t->nbytes == tc->nbytes, "%s: %" PRIu64 " bytes", tc->name, t->nbytes);
        CHECKF(t->offset % 32 == 0, "%s: offset %" PRIu64, tc->name, t->offset);
        CHECKF(((const uint8_t *)t->data - g->base) % 32 == 0, "%s: data not aligned", tc->name);
        if (t->nbytes == tc->nbytes)
            CHECKF(!memcmp(t->data, tdata[i], (size_t)tc->nbytes), "%s: data differs", tc->name);
    }
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull) {
        gguf_print(g, devnull, 2);
        fclose(devnull);
    }
    gguf_close(g);

    char *out = NULL, *errs = NULL;
    const char *argv[] = {tu_psi(), "inspect", path, "--max-array", "100", NULL};
    int st = tu_run(argv, &out, &errs);
    CHECKF(st == 0, "psi inspect roundtrip.gguf exited with %d: %s", st, errs ? errs : "");
    CHECK(out && strstr(out, "t.q8_0") && strstr(out, "arr.str_empty"));
    free(out);
    free(errs);
done:
    for (size_t i = 0; i < nt; i++)
        free(tdata[i]);
}

/* The writer refuses what its reader would reject, and honours
 * general.alignment; a file with very many entries still parses (duplicate
 * detection is hashed, not pairwise). */
static void test_writer_rules(const char *dir)
{
    gguf_writer *w = gguf_writer_new();
    float data[64] = {0};
    uint64_t ne[1] = {64};
    CHECK(gguf_writer_set_u32(w, "", 1) == PSI_ERR_INVALID_ARG);
    CHECK(gguf_writer_set_str(w, "", "x") == PSI_ERR_INVALID_ARG);
    CHECK(gguf_writer_set_u32(w, "general.alignment", 48) == PSI_ERR_INVALID_ARG);
    CHECK(gguf_writer_set_u32(w, "general.alignment", 0) == PSI_ERR_INVALID_ARG);
    CHECK(gguf_writer_set_str(w, "general.alignment", "64") == PSI_ERR_INVALID_ARG);
    CHECK(gguf_writer_set_u32(w, "general.alignment", 64) == PSI_OK);
    CHECK(gguf_writer_add_tensor(w, "a", PSI_TYPE_F32, 1, ne, data) == PSI_OK);
    CHECK(gguf_writer_add_tensor(w, "a", PSI_TYPE_F32, 1, ne, data) == PSI_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "", PSI_TYPE_F32, 1, ne, data) == PSI_ERR_INVALID_ARG);
    ne[0] = 3;
    CHECK(gguf_writer_add_tensor(w, "b", PSI_TYPE_F32, 1, ne, data) == PSI_OK);
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/align64.gguf", dir);
    CHECK(gguf_writer_write(w, path, err, sizeof err) == PSI_OK);
    gguf_writer_free(w);
    gguf *g = NULL;
    CHECKF(gguf_open(path, &g, err, sizeof err) == PSI_OK, "%s", err);
    if (g) {
        CHECK(g->alignment == 64 && g->data_offset % 64 == 0 && g->n_tensors == 2);
        CHECK(g->tensors[1].offset == 256); /* 64 floats, padded to 64 bytes */
        gguf_close(g);
    }

    enum { MANY = 20000 }; /* the writer checks keys pairwise: keep this quick */
    w = gguf_writer_new();
    char key[64];
    for (int i = 0; i < MANY; i++) {
        snprintf(key, sizeof key, "k.%d", i);
        gguf_writer_set_u32(w, key, (uint32_t)i);
    }
    snprintf(path, sizeof path, "%s/many_kvs.gguf", dir);
    CHECK(gguf_writer_write(w, path, err, sizeof err) == PSI_OK);
    gguf_writer_free(w);
    CHECKF(gguf_open(path, &g, err, sizeof err) == PSI_OK, "%s", err);
    if (g) {
        uint32_t v = 0;
        CHECK(g->n_kv == MANY && gguf_get_u32(g, "k.19999", &v, err, sizeof err) == PSI_OK && v == 19999);
        gguf_close(g);
    }
}

int main(void)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("gguf_corrupt"));
    test_base(dir);
    test_corrupt(dir);
    test_writer(dir);
    test_writer_rules(dir);
    return tu_finish("test_gguf_corrupt");
}
