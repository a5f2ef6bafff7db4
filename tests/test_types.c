/*
 * test_types.c — tensor types: the traits table, fp16/bf16 conversions,
 * dequantizers on hand-built blocks, the activation and weight quantizers
 * (rounding, sign handling), dot products against a double-precision
 * reference, and the weight quantizers against llama.cpp's own files.
 * Expected values are worked out here from the format, never taken from the
 * code under test.
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "gguf.h"
#include <jansson.h>
#include <sodium.h>

#include "testutil.h"
#include "types.h"
#include "util.h"

static float f32_of_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* xorshift64*: deterministic data for the randomized checks. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_u64(void) { return tu_rng_u64(&rng_state); }
static float rng_f32(void) { return tu_rng_f32(&rng_state); }

/* ------------------------------------------------------------ traits table */

static void test_table(void)
{
    static const struct { uint32_t id; const char *name; uint32_t blck, size; } want[] = {
        {0, "F32", 1, 4},        {1, "F16", 1, 2},       {2, "Q4_0", 32, 18},  {3, "Q4_1", 32, 20},
        {6, "Q5_0", 32, 22},     {7, "Q5_1", 32, 24},    {8, "Q8_0", 32, 34},  {9, "Q8_1", 32, 36},
        {10, "Q2_K", 256, 84},   {11, "Q3_K", 256, 110}, {12, "Q4_K", 256, 144},
        {13, "Q5_K", 256, 176},  {14, "Q6_K", 256, 210}, {15, "Q8_K", 256, 292},
        {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74}, {18, "IQ3_XXS", 256, 98},
        {19, "IQ1_S", 256, 50},  {20, "IQ4_NL", 32, 18}, {21, "IQ3_S", 256, 110},
        {22, "IQ2_S", 256, 82},  {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},  {25, "I16", 1, 2},
        {26, "I32", 1, 4},       {27, "I64", 1, 8},      {28, "F64", 1, 8},    {29, "IQ1_M", 256, 56},
        {30, "BF16", 1, 2},      {34, "TQ1_0", 256, 54}, {35, "TQ2_0", 256, 66},
        {39, "MXFP4", 32, 17},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const type_traits *t = type_get(want[i].id);
        CHECKF(t != NULL, "type %" PRIu32, want[i].id);
        if (!t) continue;
        CHECKF(!strcmp(t->name, want[i].name), "type %" PRIu32 ": name %s", want[i].id, t->name);
        CHECKF(t->blck_size == want[i].blck && t->type_size == want[i].size,
               "%s: %" PRIu32 "/%" PRIu32, t->name, t->blck_size, t->type_size);
    }
    /* Block structs match the sizes in the table. */
    CHECK(sizeof(block_q4_0) == 18 && sizeof(block_q8_0) == 34);
    CHECK(sizeof(block_q6_K) == 210 && sizeof(block_q8_K) == 292);
    CHECK(sizeof(block_q4_1) == 20 && sizeof(block_q5_0) == 22 && sizeof(block_q5_1) == 24);
    CHECK(sizeof(block_q8_1) == 36 && sizeof(block_q4_K) == 144 && sizeof(block_q5_K) == 176);

    static const uint32_t unknown[] = {4, 5, 31, 32, 33, 36, 37, 38, 41, 64, 1000, UINT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        CHECKF(type_get(unknown[i]) == NULL, "type %" PRIu32 " should be unknown", unknown[i]);

    /* Exactly these are computable, and everything they need is there. */
    for (uint32_t id = 0; id < 256; id++) {
        const type_traits *t = type_get(id);
        if (!t) continue;
        CHECKF(t->blck_size > 0 && t->type_size > 0 && t->name[0], "type %" PRIu32, id);
        bool want_compute = id == PSI_TYPE_F32 || id == PSI_TYPE_F16 || id == PSI_TYPE_BF16 ||
                            id == PSI_TYPE_Q8_0 || id == PSI_TYPE_Q4_0 || id == PSI_TYPE_Q4_1 ||
                            id == PSI_TYPE_Q5_0 || id == PSI_TYPE_Q5_1 || id == PSI_TYPE_Q4_K ||
                            id == PSI_TYPE_Q5_K || id == PSI_TYPE_Q6_K;
        CHECKF(t->can_compute == want_compute, "%s: can_compute %d", t->name, t->can_compute);
        if (!t->can_compute) {
            CHECKF(t->vec_dot == NULL, "%s has a vec_dot", t->name);
            continue;
        }
        CHECKF(t->to_float && t->vec_dot, "%s", t->name);
        const type_traits *dt = type_get(t->vec_dot_type);
        CHECKF(dt && dt->to_float && (t->vec_dot_type == PSI_TYPE_F32 || dt->from_float), "%s", t->name);
    }
    CHECK(type_get(PSI_TYPE_F32)->vec_dot_type == PSI_TYPE_F32);
    CHECK(type_get(PSI_TYPE_F16)->vec_dot_type == PSI_TYPE_F32);
    CHECK(type_get(PSI_TYPE_BF16)->vec_dot_type == PSI_TYPE_BF16);
    CHECK(type_get(PSI_TYPE_Q8_0)->vec_dot_type == PSI_TYPE_Q8_0);
    CHECK(type_get(PSI_TYPE_Q4_0)->vec_dot_type == PSI_TYPE_Q8_0);
    CHECK(type_get(PSI_TYPE_Q6_K)->vec_dot_type == PSI_TYPE_Q8_K);
    /* llama.cpp's vec_dot_type on x86 */
    CHECK(type_get(PSI_TYPE_Q4_1)->vec_dot_type == PSI_TYPE_Q8_1);
    CHECK(type_get(PSI_TYPE_Q5_0)->vec_dot_type == PSI_TYPE_Q8_0);
    CHECK(type_get(PSI_TYPE_Q5_1)->vec_dot_type == PSI_TYPE_Q8_1);
    CHECK(type_get(PSI_TYPE_Q4_K)->vec_dot_type == PSI_TYPE_Q8_K);
    CHECK(type_get(PSI_TYPE_Q5_K)->vec_dot_type == PSI_TYPE_Q8_K);
    CHECK(type_get(PSI_TYPE_Q8_K)->from_float && type_get(PSI_TYPE_Q8_K)->to_float);
    CHECK(type_get(PSI_TYPE_Q8_1)->from_float && type_get(PSI_TYPE_Q8_1)->to_float);
    /* the weight types' from_float are the reference weight quantizers */
    CHECK(type_get(PSI_TYPE_Q4_K)->from_float == quantize_row_q4_K_ref);
    CHECK(type_get(PSI_TYPE_Q5_K)->from_float == quantize_row_q5_K_ref);
    CHECK(type_get(PSI_TYPE_Q6_K)->from_float == quantize_row_q6_K_ref);
    CHECK(type_get(PSI_TYPE_Q4_1)->from_float == quantize_row_q4_1_ref);
    CHECK(type_get(PSI_TYPE_Q5_0)->from_float == quantize_row_q5_0_ref);
    CHECK(type_get(PSI_TYPE_Q5_1)->from_float == quantize_row_q5_1_ref);
    CHECK(!strcmp(psi_type_name(PSI_TYPE_Q6_K), "Q6_K") && psi_type_name(4) == NULL);
}

static void test_row_size(void)
{
    CHECK(type_row_size(PSI_TYPE_F32, 10) == 40);
    CHECK(type_row_size(PSI_TYPE_F16, 7) == 14);
    CHECK(type_row_size(PSI_TYPE_BF16, 4096) == 8192);
    CHECK(type_row_size(PSI_TYPE_Q4_0, 32) == 18);
    CHECK(type_row_size(PSI_TYPE_Q4_0, 4096) == 128 * 18);
    CHECK(type_row_size(PSI_TYPE_Q8_0, 64) == 68);
    CHECK(type_row_size(PSI_TYPE_Q6_K, 512) == 420);
    CHECK(type_row_size(PSI_TYPE_Q8_K, 256) == 292);
    CHECK(type_row_size(PSI_TYPE_Q4_0, 0) == 0);
    CHECK(type_row_size(PSI_TYPE_Q4_0, 48) == 0);   /* not a multiple of 32 */
    CHECK(type_row_size(PSI_TYPE_Q6_K, 128) == 0);  /* not a multiple of 256 */
    CHECK(type_row_size(PSI_TYPE_Q4_1, 64) == 40 && type_row_size(PSI_TYPE_Q5_0, 64) == 44);
    CHECK(type_row_size(PSI_TYPE_Q5_1, 96) == 72 && type_row_size(PSI_TYPE_Q8_1, 32) == 36);
    CHECK(type_row_size(PSI_TYPE_Q4_K, 512) == 288 && type_row_size(PSI_TYPE_Q5_K, 256) == 176);
    /* odd sizes are refused */
    CHECK(type_row_size(PSI_TYPE_Q4_1, 16) == 0 && type_row_size(PSI_TYPE_Q5_0, 33) == 0);
    CHECK(type_row_size(PSI_TYPE_Q5_1, 48) == 0 && type_row_size(PSI_TYPE_Q8_1, 31) == 0);
    CHECK(type_row_size(PSI_TYPE_Q4_K, 128) == 0 && type_row_size(PSI_TYPE_Q5_K, 384) == 0);
    CHECK(type_row_size(PSI_TYPE_Q4_0, -32) == 0);
    CHECK(type_row_size(PSI_TYPE_F32, -1) == 0);
    CHECK(type_row_size(PSI_TYPE_F32, INT64_MIN) == 0);
    CHECK(type_row_size(4, 32) == 0);
    CHECK(type_row_size(UINT32_MAX, 32) == 0);
    /* Overflow of size_t. */
    CHECK(type_row_size(28 /* f64 */, INT64_MAX) == 0);
    CHECK(type_row_size(PSI_TYPE_F32, INT64_MAX) == 0);
    CHECK(type_row_size(PSI_TYPE_Q8_K, INT64_MAX / 256 * 256) == (size_t)(INT64_MAX / 256) * 292);
    CHECK(type_row_size(PSI_TYPE_F32, (int64_t)1 << 40) == (size_t)4 << 40);
    CHECK(type_row_size(PSI_TYPE_Q4_0, INT64_MAX / 32 * 32) == (size_t)(INT64_MAX / 32) * 18);
    CHECK(type_row_size(24 /* i8 */, INT64_MAX) == (size_t)INT64_MAX);
}

/* ------------------------------------------------------- fp16 / bf16 */

static void test_fp16(void)
{
    /* half → float: exact values. */
    CHECK(fp16_to_f32(0x0000) == 0.0f && !signbit(fp16_to_f32(0x0000)));
    CHECK(fp16_to_f32(0x8000) == 0.0f && signbit(fp16_to_f32(0x8000)));
    CHECK(fp16_to_f32(0x3c00) == 1.0f);
    CHECK(fp16_to_f32(0xc000) == -2.0f);
    CHECK(fp16_to_f32(0x3555) == 0.25f + 341 * 0x1p-12f);   /* 0.333251953125 */
    CHECK(fp16_to_f32(0x0001) == 0x1p-24f);                  /* smallest subnormal */
    CHECK(fp16_to_f32(0x8001) == -0x1p-24f);
    CHECK(fp16_to_f32(0x03ff) == 1023 * 0x1p-24f);            /* largest subnormal */
    CHECK(fp16_to_f32(0x0200) == 0x1p-15f);
    CHECK(fp16_to_f32(0x0400) == 0x1p-14f);                   /* smallest normal */
    CHECK(fp16_to_f32(0x7bff) == 65504.0f);
    CHECK(isinf(fp16_to_f32(0x7c00)) && fp16_to_f32(0x7c00) > 0);
    CHECK(isinf(fp16_to_f32(0xfc00)) && fp16_to_f32(0xfc00) < 0);
    CHECK(isnan(fp16_to_f32(0x7e00)) && isnan(fp16_to_f32(0x7c01)) && isnan(fp16_to_f32(0xfe00)));

    /* float → half: rounding to nearest even. */
    CHECK(f32_to_fp16(1.0f) == 0x3c00);
    CHECK(f32_to_fp16(-0.0f) == 0x8000);
    CHECK(f32_to_fp16(1.0f + 0x1p-11f) == 0x3c00);       /* tie → even (down) */
    CHECK(f32_to_fp16(1.0f + 3 * 0x1p-11f) == 0x3c02);   /* tie → even (up) */
    CHECK(f32_to_fp16(1.0f + 0x1p-11f + 0x1p-20f) == 0x3c01);
    CHECK(f32_to_fp16(1.0f + 0x1p-11f - 0x1p-20f) == 0x3c00);
    CHECK(f32_to_fp16(65504.0f) == 0x7bff);
    CHECK(f32_to_fp16(65519.0f) == 0x7bff);              /* below the midpoint to 65536 */
    CHECK(f32_to_fp16(65520.0f) == 0x7c00);              /* tie → even = inf */
    CHECK(f32_to_fp16(1e6f) == 0x7c00 && f32_to_fp16(-1e6f) == 0xfc00);
    CHECK(f32_to_fp16(INFINITY) == 0x7c00 && f32_to_fp16(-INFINITY) == 0xfc00);
    uint16_t hn = f32_to_fp16(NAN);
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x03ff) != 0);
    hn = f32_to_fp16(f32_of_bits(0x7f800001)); /* signalling NaN with a low payload stays NaN */
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x03ff) != 0);
    /* Subnormal results. */
    CHECK(f32_to_fp16(0x1p-24f) == 0x0001);
    CHECK(f32_to_fp16(0x1p-25f) == 0x0000);              /* tie between 0 and 1 → 0 */
    CHECK(f32_to_fp16(0x1.8p-25f) == 0x0001);
    CHECK(f32_to_fp16(0x1p-25f + 0x1p-40f) == 0x0001);
    CHECK(f32_to_fp16(3 * 0x1p-25f) == 0x0002);          /* 1.5 ulp: tie → 2 */
    CHECK(f32_to_fp16(5 * 0x1p-25f) == 0x0002);          /* 2.5 ulp: tie → 2 */
    CHECK(f32_to_fp16(-0x1p-24f) == 0x8001);
    CHECK(f32_to_fp16(0x1p-26f) == 0x0000 && f32_to_fp16(1e-30f) == 0x0000);
    CHECK(f32_to_fp16(FLT_TRUE_MIN) == 0x0000);
    CHECK(f32_to_fp16(0x1p-14f - 0x1p-25f) == 0x0400);   /* tie at the subnormal/normal edge */
    CHECK(f32_to_fp16(0x1p-14f - 0x1p-24f) == 0x03ff);
    CHECK(f32_to_fp16(0x1p-14f) == 0x0400);

    /* Every half survives half → float → half. */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = fp16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        if (f32_to_fp16(f) != h) bad++;
    }
    CHECKF(bad == 0, "%d halves do not round-trip", bad);
    /* Midpoints between neighbouring positive halves round to the even one. */
    bad = 0;
    for (uint32_t h = 0; h < 0x7bff; h++) {
        double mid = ((double)fp16_to_f32((uint16_t)h) + fp16_to_f32((uint16_t)(h + 1))) / 2;
        uint16_t want = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        if (f32_to_fp16((float)mid) != want) bad++;
    }
    CHECKF(bad == 0, "%d midpoints round wrongly", bad);
}

static void test_bf16(void)
{
    CHECK(bf16_to_f32(0x3f80) == 1.0f);
    CHECK(bf16_to_f32(0xc040) == -3.0f);
    CHECK(bf16_to_f32(0x0001) == 0x1p-133f); /* subnormal */
    CHECK(bf16_to_f32(0x8000) == 0.0f && signbit(bf16_to_f32(0x8000)));
    CHECK(isinf(bf16_to_f32(0x7f80)) && isnan(bf16_to_f32(0x7fc0)));

    CHECK(f32_to_bf16(1.0f) == 0x3f80);
    CHECK(f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);          /* tie → even (down) */
    CHECK(f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82);      /* tie → even (up) */
    CHECK(f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81);
    CHECK(f32_to_bf16(-1.0f - 0x1p-8f) == 0xbf80);
    CHECK(f32_to_bf16(0x1p-130f) == 0x0008);               /* subnormal kept */
    CHECK(f32_to_bf16(f32_of_bits(0x00008000)) == 0x0000); /* subnormal tie → even */
    CHECK(f32_to_bf16(f32_of_bits(0x00018000)) == 0x0002);
    CHECK(f32_to_bf16(INFINITY) == 0x7f80 && f32_to_bf16(-INFINITY) == 0xff80);
    CHECK(f32_to_bf16(FLT_MAX) == 0x7f80);                 /* rounds up to inf */
    CHECK(f32_to_bf16(f32_of_bits(0x7f7f7fff)) == 0x7f7f);
    uint16_t b = f32_to_bf16(NAN);
    CHECK((b & 0x7f80) == 0x7f80 && (b & 0x7f) != 0);
    b = f32_to_bf16(f32_of_bits(0x7f800001)); /* NaN whose payload is all in the low half */
    CHECK((b & 0x7f80) == 0x7f80 && (b & 0x7f) != 0);
    b = f32_to_bf16(f32_of_bits(0xffffffff));
    CHECK((b & 0x7f80) == 0x7f80 && (b & 0x7f) != 0);

    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = bf16_to_f32((uint16_t)h);
        if (!isnan(f) && f32_to_bf16(f) != h) bad++;
    }
    CHECKF(bad == 0, "%d bf16 values do not round-trip", bad);
}

/* ------------------------------------------------------------ dequantizers */

static void test_dequant_plain(void)
{
    float out[4];
    const float f[3] = {1.5f, -2.0f, 0x1p-126f};
    type_get(PSI_TYPE_F32)->to_float(f, out, 3);
    CHECK(out[0] == 1.5f && out[1] == -2.0f && out[2] == 0x1p-126f);

    const uint16_t h[4] = {0x3c00, 0xc100, 0x0001, 0x7bff};
    type_get(PSI_TYPE_F16)->to_float(h, out, 4);
    CHECK(out[0] == 1.0f && out[1] == -2.5f && out[2] == 0x1p-24f && out[3] == 65504.0f);

    /* The F16 row converter gives util's fp16_to_f32 bit for bit, for every
     * half (subnormals, inf and NaN payloads included). */
    static uint16_t all[65536];
    static float conv[65536];
    for (uint32_t i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    type_get(PSI_TYPE_F16)->to_float(all, conv, 65536);
    int bad = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        float want = fp16_to_f32((uint16_t)i);
        bad += memcmp(&conv[i], &want, sizeof want) != 0;
    }
    CHECKF(bad == 0, "%d halves convert differently", bad);

    const uint16_t bf[4] = {0x3f80, 0xc020, 0x4049, 0x0000};
    type_get(PSI_TYPE_BF16)->to_float(bf, out, 4);
    CHECK(out[0] == 1.0f && out[1] == -2.5f && out[2] == 3.140625f && out[3] == 0.0f);
}

static void test_dequant_q4_0(void)
{
    block_q4_0 b[2];
    b[0].d = 0x3800; /* 0.5 */
    for (int j = 0; j < 16; j++) b[0].qs[j] = (uint8_t)(j | ((15 - j) << 4));
    b[1].d = 0xbc00; /* -1.0 */
    memset(b[1].qs, 0x80, sizeof b[1].qs); /* low nibble 0 → -8, high nibble 8 → 0 */
    float y[64];
    type_get(PSI_TYPE_Q4_0)->to_float(b, y, 64);
    /* Literal spot values. */
    CHECK(y[0] == -4.0f && y[8] == 0.0f && y[15] == 3.5f);
    CHECK(y[16] == 3.5f && y[23] == 0.0f && y[31] == -4.0f);
    int bad = 0;
    for (int j = 0; j < 16; j++) {
        if (y[j] != (float)(j - 8) * 0.5f) bad++;
        if (y[16 + j] != (float)(7 - j) * 0.5f) bad++;
        if (y[32 + j] != 8.0f) bad++;
        if (y[48 + j] != 0.0f) bad++;
    }
    CHECK(bad == 0);
}

static void test_dequant_q8_0(void)
{
    block_q8_0 b;
    b.d = 0x3400; /* 0.25 */
    for (int j = 0; j < 32; j++) b.qs[j] = (int8_t)(j - 16);
    b.qs[30] = -128;
    b.qs[31] = 127;
    float y[32];
    type_get(PSI_TYPE_Q8_0)->to_float(&b, y, 32);
    CHECK(y[0] == -4.0f && y[16] == 0.0f && y[17] == 0.25f);
    CHECK(y[30] == -32.0f && y[31] == 31.75f);
    int bad = 0;
    for (int j = 0; j < 30; j++) bad += y[j] != (float)(j - 16) / 4;
    CHECK(bad == 0);
}

/* Value v of a Q6_K block, read straight from the layout description in
 * ggml-common.h: 128-value halves; in a half, value 32·g + l takes ql byte
 * l + 32·(g odd) (low nibble for g < 2, high for g ≥ 2) and bits 2g..2g+1 of
 * qh byte l; scale index v / 16. */
static float q6_K_value(const block_q6_K *b, int v)
{
    int half = v / 128, r = v % 128, g = r / 32, l = r % 32;
    uint8_t lo = b->ql[64 * half + l + 32 * (g % 2)];
    int low4 = g < 2 ? (lo & 15) : (lo >> 4);
    int high2 = (b->qh[32 * half + l] >> (2 * g)) & 3;
    int q = (low4 | (high2 << 4)) - 32;
    return fp16_to_f32(b->d) * (float)b->scales[v / 16] * (float)q;
}

static void test_dequant_q6_K(void)
{
    block_q6_K b;
    memset(&b, 0, sizeof b);
    b.d = 0x3c00; /* 1.0 */
    for (int s = 0; s < 16; s++) b.scales[s] = 1;
    b.scales[2] = 2;
    b.scales[4] = 3;
    b.scales[6] = -4;
    b.ql[0] = 0x5A;  /* value 0: low nibble 0xA, value 64: high nibble 5 */
    b.ql[32] = 0x3C; /* value 32: 0xC, value 96: 3 */
    b.qh[0] = 0xE4;  /* 11 10 01 00: high bits 0 (v0), 1 (v32), 2 (v64), 3 (v96) */
    float y[256];
    type_get(PSI_TYPE_Q6_K)->to_float(&b, y, 256);
    CHECK(y[0] == -22.0f);         /* (0x0A | 0<<4) - 32 = -22, scale 1 */
    CHECK(y[32] == -8.0f);         /* (0x0C | 1<<4) - 32 = -4, scale 2 */
    CHECK(y[64] == 15.0f);         /* (0x05 | 2<<4) - 32 = 5, scale 3 */
    CHECK(y[96] == -76.0f);        /* (0x03 | 3<<4) - 32 = 19, scale -4 */
    CHECK(y[1] == -32.0f);         /* all-zero bits: -32 · scale 1 */
    CHECK(y[40] == -64.0f);        /* -32 · scale 2 */
    CHECK(y[48] == -32.0f);        /* scale index 3 */
    CHECK(y[100] == 128.0f);       /* -32 · -4 */
    CHECK(y[255] == -32.0f);

    /* Random blocks against the independent reading above. */
    block_q6_K r[2];
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < sizeof r[k].ql; i++) r[k].ql[i] = (uint8_t)rng_u64();
        for (size_t i = 0; i < sizeof r[k].qh; i++) r[k].qh[i] = (uint8_t)rng_u64();
        for (size_t i = 0; i < 16; i++) r[k].scales[i] = (int8_t)rng_u64();
        r[k].d = f32_to_fp16(0.01f * (float)(k + 1));
    }
    float z[512];
    type_get(PSI_TYPE_Q6_K)->to_float(r, z, 512);
    int bad = 0;
    for (int v = 0; v < 512; v++) bad += z[v] != q6_K_value(&r[v / 256], v % 256);
    CHECKF(bad == 0, "%d Q6_K values differ", bad);
}

/* Quant v (0..31) of a Q5_0/Q5_1 block read from the layout in
 * ggml-common.h: low 4 bits in qs[v % 16] (low nibble for v < 16), fifth
 * bit at bit v of qh read as a little-endian u32. */
static int q5_quant(const uint8_t qh[4], const uint8_t qs[16], int v)
{
    int low = v < 16 ? qs[v] & 15 : qs[v - 16] >> 4;
    int high = (qh[v / 8] >> (v % 8)) & 1;
    return low | high << 4;
}

static void test_dequant_legacy(void)
{
    float y[64];
    block_q4_1 a;
    a.d = 0x3800; /* 0.5 */
    a.m = 0xbc00; /* -1 */
    for (int j = 0; j < 16; j++) a.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    type_get(PSI_TYPE_Q4_1)->to_float(&a, y, 32);
    CHECK(y[0] == -1.0f && y[15] == 6.5f && y[16] == 6.5f && y[31] == -1.0f && y[3] == 0.5f);

    block_q5_0 b;
    memset(&b, 0, sizeof b);
    b.d = 0x3c00;
    b.qh[0] = 0x01; /* quant 0 */
    b.qh[2] = 0x01; /* quant 16 */
    b.qh[3] = 0x80; /* quant 31 */
    b.qs[0] = 0x3f; /* quant 0 low 15, quant 16 low 3 */
    b.qs[15] = 0x20; /* quant 31 low 2 */
    type_get(PSI_TYPE_Q5_0)->to_float(&b, y, 32);
    CHECK(y[0] == 15.0f && y[16] == 3.0f && y[31] == 2.0f && y[1] == -16.0f && y[15] == -16.0f);

    block_q5_1 c;
    c.d = 0x3400; /* 0.25 */
    c.m = 0x3800; /* 0.5 */
    memcpy(c.qh, b.qh, 4);
    memcpy(c.qs, b.qs, 16);
    type_get(PSI_TYPE_Q5_1)->to_float(&c, y, 32);
    CHECK(y[0] == 8.25f && y[16] == 5.25f && y[31] == 5.0f && y[1] == 0.5f);

    /* Random blocks against the independent reading. */
    block_q5_0 rb[2];
    block_q5_1 rc[2];
    block_q4_1 ra[2];
    for (int k = 0; k < 2; k++) {
        for (int j = 0; j < 16; j++) {
            rb[k].qs[j] = rc[k].qs[j] = ra[k].qs[j] = (uint8_t)rng_u64();
        }
        for (int j = 0; j < 4; j++) rb[k].qh[j] = rc[k].qh[j] = (uint8_t)rng_u64();
        rb[k].d = rc[k].d = ra[k].d = f32_to_fp16(0.01f * (float)(k + 1));
        rc[k].m = ra[k].m = f32_to_fp16(-0.3f * (float)(k + 1));
    }
    int bad = 0;
    type_get(PSI_TYPE_Q5_0)->to_float(rb, y, 64);
    for (int v = 0; v < 64; v++)
        bad += y[v] != (float)(q5_quant(rb[v / 32].qh, rb[v / 32].qs, v % 32) - 16) * fp16_to_f32(rb[v / 32].d);
    type_get(PSI_TYPE_Q5_1)->to_float(rc, y, 64);
    for (int v = 0; v < 64; v++)
        bad += y[v] != (float)q5_quant(rc[v / 32].qh, rc[v / 32].qs, v % 32) * fp16_to_f32(rc[v / 32].d) +
                           fp16_to_f32(rc[v / 32].m);
    type_get(PSI_TYPE_Q4_1)->to_float(ra, y, 64);
    for (int v = 0; v < 64; v++) {
        const block_q4_1 *p = &ra[v / 32];
        int j = v % 32, q = j < 16 ? p->qs[j] & 15 : p->qs[j - 16] >> 4;
        bad += y[v] != (float)q * fp16_to_f32(p->d) + fp16_to_f32(p->m);
    }
    CHECKF(bad == 0, "%d values differ", bad);

    /* Q8_1 stores d and d·Σq */
    block_q8_1 e;
    memset(&e, 0, sizeof e);
    e.d = 0x3400; /* 0.25 */
    e.s = 0x7bff; /* not read by to_float */
    e.qs[0] = -128;
    e.qs[31] = 127;
    type_get(PSI_TYPE_Q8_1)->to_float(&e, y, 32);
    CHECK(y[0] == -32.0f && y[31] == 31.75f && y[5] == 0.0f);
}

/* The 6-bit scale and min of sub-block j of a Q4_K/Q5_K block, from the
 * layout in ggml-common.h: 12 bytes hold 8 scales and 8 mins; bytes 0-3 and
 * 4-7 carry scales 0-3 and mins 0-3 in their low 6 bits and, in their top 2
 * bits, bits 4-5 of scales 4-7 and mins 4-7, whose low 4 bits are the low
 * and high nibbles of bytes 8-11. */
static void k_scale_min(const uint8_t s[12], int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] % 64;
        *m = s[4 + j] % 64;
    } else {
        *sc = s[8 + j - 4] % 16 + 16 * (s[j - 4] / 64);
        *m = s[8 + j - 4] / 16 + 16 * (s[j] / 64);
    }
}

/* The inverse, to build blocks by hand. */
static void k_pack(const int sc[8], const int m[8], uint8_t s[12])
{
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] + 64 * (sc[j + 4] / 16));
        s[4 + j] = (uint8_t)(m[j] + 64 * (m[j + 4] / 16));
        s[8 + j] = (uint8_t)(sc[j + 4] % 16 + 16 * (m[j + 4] % 16));
    }
}

/* Value v of a Q4_K (qh NULL) or Q5_K block: values 64c..64c+31 are the low
 * nibbles of qs[32c..32c+31], the next 32 the high nibbles; the fifth bit of
 * value 64c + 32h + l is bit 2c + h of qh[l]. */
static float k_value(uint16_t d, uint16_t dmin, const uint8_t s[12], const uint8_t *qs, const uint8_t *qh, int v)
{
    int c = v / 64, h = (v % 64) / 32, l = v % 32, sc, m;
    int q = h ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 15;
    if (qh) q += 16 * ((qh[l] >> (2 * c + h)) & 1);
    k_scale_min(s, v / 32, &sc, &m);
    return fp16_to_f32(d) * (float)sc * (float)q - fp16_to_f32(dmin) * (float)m;
}

static void test_dequant_kquants(void)
{
    static const int sc[8] = {1, 2, 3, 4, 17, 33, 50, 63}, mn[8] = {0, 5, 10, 63, 16, 32, 47, 1};
    uint8_t s[12];
    k_pack(sc, mn, s);
    for (int j = 0; j < 8; j++) {
        int a, b;
        k_scale_min(s, j, &a, &b);
        CHECKF(a == sc[j] && b == mn[j], "sub-block %d", j);
    }
    block_q4_K a;
    a.d = 0x3c00;    /* 1 */
    a.dmin = 0x3800; /* 0.5 */
    memcpy(a.scales, s, 12);
    for (int i = 0; i < 128; i++) a.qs[i] = (uint8_t)(i * 7 + 3);
    float y[512];
    type_get(PSI_TYPE_Q4_K)->to_float(&a, y, 256);
    CHECK(y[0] == 3.0f);      /* sc 1 · low nibble of qs[0] (3) - 0.5 · 0 */
    CHECK(y[32] == -2.5f);    /* sc 2 · high nibble of qs[0] (0) - 0.5 · 5 */
    CHECK(y[133] == 94.0f);   /* sc 17 · low nibble of qs[69] (0xE6 → 6) - 0.5 · 16 */
    CHECK(y[255] == 440.5f);  /* sc 63 · high nibble of qs[127] (0x7C → 7) - 0.5 · 1 */

    block_q5_K b;
    b.d = a.d;
    b.dmin = a.dmin;
    memcpy(b.scales, s, 12);
    memcpy(b.qs, a.qs, 128);
    for (int l = 0; l < 32; l++) b.qh[l] = (uint8_t)(l * 37 + 11);
    type_get(PSI_TYPE_Q5_K)->to_float(&b, y, 256);
    CHECK(y[0] == 19.0f);     /* bit 0 of qh[0] (0x0B) set: 3 + 16 */
    CHECK(y[32] == 29.5f);    /* bit 1 of qh[0] set: 2 · 16 - 2.5 */
    CHECK(y[133] == 94.0f);   /* bit 4 of qh[5] (0xC4) clear */
    CHECK(y[255] == 1448.5f); /* bit 7 of qh[31] (0x86) set: 63 · 23 - 0.5 */

    /* Random blocks against the independent reading. */
    block_q4_K r4[2];
    block_q5_K r5[2];
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 12; i++) r4[k].scales[i] = r5[k].scales[i] = (uint8_t)rng_u64();
        for (int i = 0; i < 128; i++) r4[k].qs[i] = r5[k].qs[i] = (uint8_t)rng_u64();
        for (int i = 0; i < 32; i++) r5[k].qh[i] = (uint8_t)rng_u64();
        r4[k].d = r5[k].d = f32_to_fp16(0.003f * (float)(k + 1));
        r4[k].dmin = r5[k].dmin = f32_to_fp16(0.001f * (float)(k + 2));
    }
    int bad = 0;
    type_get(PSI_TYPE_Q4_K)->to_float(r4, y, 512);
    for (int v = 0; v < 512; v++) {
        const block_q4_K *p = &r4[v / 256];
        bad += y[v] != k_value(p->d, p->dmin, p->scales, p->qs, NULL, v % 256);
    }
    type_get(PSI_TYPE_Q5_K)->to_float(r5, y, 512);
    for (int v = 0; v < 512; v++) {
        const block_q5_K *p = &r5[v / 256];
        bad += y[v] != k_value(p->d, p->dmin, p->scales, p->qs, p->qh, v % 256);
    }
    CHECKF(bad == 0, "%d K-quant values differ", bad);
}

static void test_dequant_q8_K(void)
{
    block_q8_K b;
    memset(&b, 0, sizeof b);
    b.d = -0.5f;
    for (int j = 0; j < 256; j++) b.qs[j] = (int8_t)(j - 128);
    float y[256];
    type_get(PSI_TYPE_Q8_K)->to_float(&b, y, 256);
    CHECK(y[0] == 64.0f && y[128] == 0.0f && y[129] == -0.5f && y[255] == -63.5f);
}

/* ------------------------------------------------------------ quantizers */

static void test_q8_0_quantizers(void)
{
    /* amax = 127 makes d = 1 and both 127/amax and 1/d exactly 1, so x·id
     * is x and the halves are real ties. */
    float x[32] = {127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 1.5f, 3.5f, -126.5f, 0.49f, 100.0f};
    block_q8_0 act, ref;
    type_get(PSI_TYPE_Q8_0)->from_float(x, &act, 32);
    quantize_row_q8_0_ref(x, &ref, 32);
    CHECK(act.d == 0x3c00 && ref.d == 0x3c00);
    /* Activations: half to even. */
    CHECK(act.qs[0] == 127 && act.qs[1] == 2 && act.qs[2] == -2 && act.qs[3] == 0);
    CHECK(act.qs[4] == 0 && act.qs[5] == 2 && act.qs[6] == 4 && act.qs[7] == -126);
    CHECK(act.qs[8] == 0 && act.qs[9] == 100 && act.qs[31] == 0);
    /* Weights (roundf): half away from zero. */
    CHECK(ref.qs[0] == 127 && ref.qs[1] == 3 && ref.qs[2] == -3 && ref.qs[3] == 1);
    CHECK(ref.qs[4] == -1 && ref.qs[5] == 2 && ref.qs[6] == 4 && ref.qs[7] == -127);
    CHECK(ref.qs[8] == 0 && ref.qs[9] == 100 && ref.qs[31] == 0);

    /* Largest magnitude negative: d stays positive. */
    float xn[32] = {0};
    xn[5] = -127.0f;
    xn[6] = 63.5f;
    type_get(PSI_TYPE_Q8_0)->from_float(xn, &act, 32);
    quantize_row_q8_0_ref(xn, &ref, 32);
    CHECK(act.d == 0x3c00 && act.qs[5] == -127 && act.qs[6] == 64);
    CHECK(ref.d == 0x3c00 && ref.qs[5] == -127 && ref.qs[6] == 64);

    /* All zero: d = 0, q = 0. */
    float z[64] = {0};
    block_q8_0 zb[2];
    memset(zb, 0x55, sizeof zb);
    type_get(PSI_TYPE_Q8_0)->from_float(z, zb, 64);
    CHECK(zb[0].d == 0 && zb[1].d == 0 && zb[0].qs[0] == 0 && zb[1].qs[31] == 0);
    memset(zb, 0x55, sizeof zb);
    quantize_row_q8_0_ref(z, zb, 64);
    CHECK(zb[0].d == 0 && zb[1].d == 0 && zb[0].qs[7] == 0 && zb[1].qs[31] == 0);

    /* Random data: d is fp16(amax/127) and every value is within d/2 (plus
     * the fp16 rounding of d) of its quantized value. */
    enum { N = 32 * 64 };
    static float r[N], back[N];
    static block_q8_0 rb[N / 32];
    for (int i = 0; i < N; i++) r[i] = rng_f32() * (float)(1 + i / 32);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0) type_get(PSI_TYPE_Q8_0)->from_float(r, rb, N);
        else quantize_row_q8_0_ref(r, rb, N);
        type_get(PSI_TYPE_Q8_0)->to_float(rb, back, N);
        int bad = 0;
        for (int b = 0; b < N / 32; b++) {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(r[32 * b + j]));
            if (rb[b].d != f32_to_fp16(amax / 127)) bad++;
            for (int j = 0; j < 32; j++)
                if (fabsf(back[32 * b + j] - r[32 * b + j]) > 0.51f * amax / 127 + amax * 0x1p-11f) bad++;
        }
        CHECKF(bad == 0, "pass %d: %d values", pass, bad);
    }
}

static void test_q4_0_quantizer(void)
{
    /* max = -8 (at 0) → d = -8 / -8 = 1, id = 1; quant = trunc(x + 8.5)
     * clipped at 15: halves round up. */
    float x[96] = {-8.0f, 7.0f, 0.5f, -0.5f, -1.5f, 2.5f, 7.9f, -7.9f};
    x[16] = 3.0f;
    x[17] = -8.0f; /* same magnitude as x[0], comes later: not the max */
    /* Block 1: tie in magnitude, the first (positive) one wins: d = 4/-8. */
    x[32] = 4.0f;
    x[33] = -4.0f;
    x[34] = 1.0f;
    x[48] = 0.25f; /* 0.25·-2 + 8.5 = 8 */
    x[49] = -0.25f; /* 9 */
    /* Block 2: all zero: d = 0/-8 = -0, stored as fp16 -0. */
    block_q4_0 b[3];
    quantize_row_q4_0_ref(x, b, 96);
    CHECK(b[0].d == 0x3c00);
    CHECK(b[0].qs[0] == (0 | 11 << 4));  /* -8 → 0; 3 → 11 */
    CHECK(b[0].qs[1] == (15 | 0 << 4));  /* 7 → 15; -8 → 0 */
    CHECK(b[0].qs[2] == (9 | 8 << 4));   /* 0.5 → 9 (half up) */
    CHECK(b[0].qs[3] == 0x88);           /* -0.5 → 8 (half up) */
    CHECK(b[0].qs[4] == (7 | 8 << 4));   /* -1.5 → 7 */
    CHECK(b[0].qs[5] == (11 | 8 << 4));  /* 2.5 → 11 */
    CHECK(b[0].qs[6] == (15 | 8 << 4));  /* 7.9 → 16 → clipped 15 */
    CHECK(b[0].qs[7] == (0 | 8 << 4));   /* -7.9 → 0.6 → 0 */
    CHECK(b[0].qs[15] == 0x88);
    CHECK(b[1].d == 0xb800); /* -0.5 */
    CHECK(b[1].qs[0] == (0 | 8 << 4));   /* 4 → 0.5 → 0; 0.25 → 8 */
    CHECK(b[1].qs[1] == (15 | 9 << 4));  /* -4 → 16.5 → 15 */
    CHECK(b[1].qs[2] == (6 | 8 << 4));   /* 1 → -2 + 8.5 = 6.5 → 6 */
    CHECK(b[2].d == 0x8000);
    CHECK(b[2].qs[0] == 0x88 && b[2].qs[15] == 0x88);

    /* The traits' from_float of Q4_0 is this quantizer. */
    block_q4_0 c[3];
    type_get(PSI_TYPE_Q4_0)->from_float(x, c, 96);
    CHECK(!memcmp(b, c, sizeof b));
}

static void test_q8_K_quantizer(void)
{
    float x[512] = {0};
    /* Block 0: m = -127 (negative) → iscale = 1, d = 1: q = x, halves to even. */
    x[0] = -127.0f;
    x[1] = 2.5f;
    x[2] = 3.5f;
    x[3] = -2.5f;
    x[4] = 126.5f;
    x[5] = -126.5f;
    x[16] = 0.5f;
    x[17] = 1.5f;
    /* Block 1: -2 then 2: the first (negative) is m → iscale = 63.5. */
    float *y = x + 256;
    y[10] = -2.0f;
    y[20] = 2.0f;
    y[1] = 1.0f;   /* 63.5 → 64 */
    y[2] = -1.0f;  /* -63.5 → -64 */
    y[3] = 0.5f;   /* 31.75 → 32 */
    y[4] = 0.25f;  /* 15.875 → 16 */
    block_q8_K b[2];
    memset(b, 0x55, sizeof b);
    type_get(PSI_TYPE_Q8_K)->from_float(x, b, 512);
    CHECK(b[0].d == 1.0f);
    CHECK(b[0].qs[0] == -127 && b[0].qs[1] == 2 && b[0].qs[2] == 4 && b[0].qs[3] == -2);
    CHECK(b[0].qs[4] == 126 && b[0].qs[5] == -126 && b[0].qs[6] == 0);
    CHECK(b[0].qs[16] == 0 && b[0].qs[17] == 2);
    CHECK(b[0].bsums[0] == -127 + 2 + 4 - 2 + 126 - 126);
    CHECK(b[0].bsums[1] == 2 && b[0].bsums[15] == 0);
    CHECK(b[1].d == 1.0f / 63.5f && b[1].d > 0);
    CHECK(b[1].qs[10] == -127 && b[1].qs[20] == 127);
    CHECK(b[1].qs[1] == 64 && b[1].qs[2] == -64 && b[1].qs[3] == 32 && b[1].qs[4] == 16);
    CHECK(b[1].bsums[0] == 64 - 64 + 32 + 16 - 127 && b[1].bsums[1] == 127);

    /* Largest magnitude positive (and first on a tie): d < 0, m → -127. */
    float p[256] = {0};
    p[0] = 2.0f;
    p[1] = -2.0f;
    p[2] = 1.0f;
    type_get(PSI_TYPE_Q8_K)->from_float(p, b, 256);
    CHECK(b[0].d == -1.0f / 63.5f);
    CHECK(b[0].qs[0] == -127 && b[0].qs[1] == 127 && b[0].qs[2] == -64);
    CHECK(b[0].bsums[0] == -64);
    float back[256];
    type_get(PSI_TYPE_Q8_K)->to_float(b, back, 256);
    CHECK(fabsf(back[0] - 2.0f) < 1e-6f && fabsf(back[1] + 2.0f) < 1e-6f);

    /* All zero → d = 0, quants and sums 0. */
    float z[256] = {0};
    memset(b, 0x55, sizeof b);
    type_get(PSI_TYPE_Q8_K)->from_float(z, b, 256);
    int nz = 0;
    for (int j = 0; j < 256; j++) nz += b[0].qs[j] != 0;
    for (int j = 0; j < 16; j++) nz += b[0].bsums[j] != 0;
    CHECK(b[0].d == 0.0f && nz == 0);

    /* Random: |x - d·q| ≤ |d|/2, and bsums are the group sums. */
    enum { N = 256 * 8 };
    static float r[N], rb[N];
    static block_q8_K kb[N / 256];
    for (int i = 0; i < N; i++) r[i] = rng_f32() * 3.0f;
    type_get(PSI_TYPE_Q8_K)->from_float(r, kb, N);
    type_get(PSI_TYPE_Q8_K)->to_float(kb, rb, N);
    int bad = 0;
    for (int i = 0; i < N; i++)
        if (fabsf(rb[i] - r[i]) > fabsf(kb[i / 256].d) * 0.5001f) bad++;
    for (int k = 0; k < N / 256; k++)
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += kb[k].qs[16 * g + j];
            bad += kb[k].bsums[g] != s;
        }
    CHECKF(bad == 0, "%d", bad);
}

static void test_q8_1_quantizer(void)
{
    /* amax = 127: d = 1, x·127/amax = x; halves to even. */
    float x[64] = {127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 1.5f, 3.5f, -126.5f};
    x[31] = 10.0f;
    for (int j = 32; j < 64; j++) x[j] = 1.0f; /* amax 1: every quant 127 */
    block_q8_1 b[2];
    type_get(PSI_TYPE_Q8_1)->from_float(x, b, 64);
    CHECK(b[0].d == 0x3c00);
    CHECK(b[0].qs[0] == 127 && b[0].qs[1] == 2 && b[0].qs[2] == -2 && b[0].qs[3] == 0 && b[0].qs[4] == 0);
    CHECK(b[0].qs[5] == 2 && b[0].qs[6] == 4 && b[0].qs[7] == -126 && b[0].qs[31] == 10 && b[0].qs[8] == 0);
    CHECK(b[0].s == f32_to_fp16(127 + 2 - 2 + 2 + 4 - 126 + 10)); /* d = 1 */
    CHECK(b[1].d == f32_to_fp16(1.0f / 127.0f));
    int n127 = 0;
    for (int j = 0; j < 32; j++) n127 += b[1].qs[j] == 127;
    CHECK(n127 == 32);
    /* s is the f32 d (before fp16 rounding) times Σq */
    CHECK(b[1].s == f32_to_fp16(1.0f / 127.0f * 4064.0f));
    float z[32] = {0};
    memset(b, 0x55, sizeof b);
    type_get(PSI_TYPE_Q8_1)->from_float(z, b, 32);
    CHECK(b[0].d == 0 && b[0].s == 0 && b[0].qs[0] == 0 && b[0].qs[31] == 0);
}

/* Weight quantizers of the legacy 32-blocks, on values whose results can be
 * worked out by hand (d = 1, so x/d is x and the halves are real ties). */
static void test_legacy_quantizers(void)
{
    /* Q4_1: min 0, max 15 → d = 1, m = 0; q = trunc(x + 0.5), halves up. */
    float x[32] = {0.0f, 15.0f, 7.5f, 7.49f, 3.0f, 0.5f, 14.6f};
    block_q4_1 a;
    quantize_row_q4_1_ref(x, &a, 32);
    CHECK(a.d == 0x3c00 && a.m == 0x0000);
    CHECK(a.qs[0] == 0x00 && a.qs[1] == 0x0f && a.qs[2] == 0x08 && a.qs[3] == 0x07);
    CHECK(a.qs[4] == 0x03 && a.qs[5] == 0x01 && a.qs[6] == 0x0f && a.qs[15] == 0x00);
    /* min -2, max 13 → d = 1, m = -2: x = 1 → q 3 in the high nibble of qs[0] */
    float xm[32] = {-2.0f, 13.0f};
    for (int j = 2; j < 32; j++) xm[j] = 1.0f;
    quantize_row_q4_1_ref(xm, &a, 32);
    CHECK(a.d == 0x3c00 && a.m == 0xc000);
    CHECK(a.qs[0] == (0 | 3 << 4) && a.qs[1] == (15 | 3 << 4) && a.qs[2] == 0x33);

    /* Q5_0: m = -16 → d = 1; q = trunc(x + 16.5) capped at 31. */
    float y[32] = {-16.0f, 15.5f, 0.5f, -0.5f, 3.0f, -3.0f, 15.0f};
    y[16] = 1.0f;
    y[31] = 15.4f;
    block_q5_0 b;
    quantize_row_q5_0_ref(y, &b, 32);
    int q[32];
    for (int v = 0; v < 32; v++) q[v] = q5_quant(b.qh, b.qs, v);
    CHECK(b.d == 0x3c00);
    CHECK(q[0] == 0 && q[1] == 31 && q[2] == 17 && q[3] == 16 && q[4] == 19 && q[5] == 13);
    CHECK(q[6] == 31 && q[16] == 17 && q[31] == 31 && q[7] == 16);

    /* Q5_1: min 0, max 31 → d = 1; x + 0.5 truncated. */
    float w[32] = {0.0f, 31.0f, 30.5f, 16.0f, 15.49f, 0.5f};
    block_q5_1 c;
    quantize_row_q5_1_ref(w, &c, 32);
    for (int v = 0; v < 32; v++) q[v] = q5_quant(c.qh, c.qs, v);
    CHECK(c.d == 0x3c00 && c.m == 0);
    CHECK(q[0] == 0 && q[1] == 31 && q[2] == 31 && q[3] == 16 && q[4] == 15 && q[5] == 1 && q[31] == 0);

    /* All-equal blocks: d = 0, every value is m (Q4_1/Q5_1) or 0 (Q5_0). */
    float e[32];
    for (int j = 0; j < 32; j++) e[j] = 0.75f;
    float back[32];
    quantize_row_q4_1_ref(e, &a, 32);
    type_get(PSI_TYPE_Q4_1)->to_float(&a, back, 32);
    CHECK(a.d == 0 && back[0] == 0.75f && back[31] == 0.75f);
    quantize_row_q5_1_ref(e, &c, 32);
    type_get(PSI_TYPE_Q5_1)->to_float(&c, back, 32);
    CHECK(c.d == 0 && back[0] == 0.75f && back[31] == 0.75f);
    memset(e, 0, sizeof e);
    quantize_row_q5_0_ref(e, &b, 32);
    type_get(PSI_TYPE_Q5_0)->to_float(&b, back, 32);
    CHECK(back[0] == 0.0f && back[31] == 0.0f);
}

/* Every weight quantizer on random rows: the dequantized row stays within
 * a type-specific error of the input (NMSE), all-zero blocks come back as
 * zeros, and quantizing is deterministic. */
static void test_weight_quantizers_roundtrip(void)
{
    static const struct { uint32_t type; double nmse; } cases[] = {
        {PSI_TYPE_Q4_0, 8e-3}, {PSI_TYPE_Q4_1, 7e-3}, {PSI_TYPE_Q5_0, 2e-3},   {PSI_TYPE_Q5_1, 2e-3},
        {PSI_TYPE_Q8_0, 3e-5}, {PSI_TYPE_Q4_K, 5e-3}, {PSI_TYPE_Q5_K, 1.5e-3}, {PSI_TYPE_Q6_K, 4e-4},
    };
    enum { N = 256 * 8 };
    static float x[N], back[N];
    static uint8_t q[N * 2], q2[N * 2];
    for (int i = 0; i < N; i++) x[i] = rng_f32() * (float)(1 + i / 256) * 0.02f;
    for (int i = 256; i < 512; i++) x[i] = 0.0f; /* one all-zero super-block */
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const uint32_t t = cases[c].type;
        from_float_fn qf = t == PSI_TYPE_Q8_0 ? quantize_row_q8_0_ref : type_get(t)->from_float;
        memset(q, 0xA5, sizeof q);
        qf(x, q, N);
        memset(q2, 0x5A, sizeof q2);
        qf(x, q2, N);
        CHECKF(!memcmp(q, q2, type_row_size(t, N)), "%s: not deterministic", type_get(t)->name);
        type_get(t)->to_float(q, back, N);
        double se = 0, sx = 0;
        int zero_bad = 0;
        for (int i = 0; i < N; i++) {
            if (i >= 256 && i < 512) {
                zero_bad += back[i] != 0.0f;
                continue;
            }
            se += ((double)back[i] - x[i]) * ((double)back[i] - x[i]);
            sx += (double)x[i] * x[i];
        }
        printf("test_types: %-5s weight quantizer round trip NMSE %.3g\n", type_get(t)->name, se / sx);
        CHECKF(se / sx <= cases[c].nmse, "%s: NMSE %g", type_get(t)->name, se / sx);
        CHECKF(zero_bad == 0, "%s: %d zero inputs came back non-zero", type_get(t)->name, zero_bad);
    }
}

/* ------------------------------------------------------------ dot products */

static void test_dot_exact(void)
{
    float out = -1.0f;
    const float a[3] = {1, 2, 3}, b[3] = {4, 5, 6};
    type_get(PSI_TYPE_F32)->vec_dot(3, &out, a, b);
    CHECK(out == 32.0f);
    const float a11[11] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, b11[11] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    type_get(PSI_TYPE_F32)->vec_dot(11, &out, a11, b11);
    CHECK(out == 66.0f);
    type_get(PSI_TYPE_F32)->vec_dot(0, &out, a, b);
    CHECK(out == 0.0f);

    const uint16_t h[3] = {0x3c00, 0x3800, 0xc000}; /* 1, 0.5, -2 */
    const float hx[3] = {2, 4, 1};
    type_get(PSI_TYPE_F16)->vec_dot(3, &out, h, hx);
    CHECK(out == 2.0f);

    const uint16_t bw[3] = {0x3f80, 0x3f00, 0xc000}; /* 1, 0.5, -2 */
    const uint16_t bx[3] = {0x4000, 0x4080, 0x3f80}; /* 2, 4, 1 */
    type_get(PSI_TYPE_BF16)->vec_dot(3, &out, bw, bx);
    CHECK(out == 2.0f);

    block_q8_0 w8[2], x8[2];
    w8[0].d = 0x3c00; /* 1 */
    x8[0].d = 0x4000; /* 2 */
    w8[1].d = 0x3800; /* 0.5 */
    x8[1].d = 0xbc00; /* -1 */
    for (int j = 0; j < 32; j++) {
        w8[0].qs[j] = 1;
        x8[0].qs[j] = 3;
        w8[1].qs[j] = (int8_t)(j - 16);
        x8[1].qs[j] = 127;
    }
    type_get(PSI_TYPE_Q8_0)->vec_dot(32, &out, w8, x8);
    CHECK(out == 192.0f);
    type_get(PSI_TYPE_Q8_0)->vec_dot(64, &out, w8, x8);
    /* block 1: 0.5 · -1 · 127 · Σ(j-16) = -0.5 · 127 · -16 = 1016 */
    CHECK(out == 192.0f + 1016.0f);

    block_q4_0 w4;
    w4.d = 0x3800;                /* 0.5 */
    memset(w4.qs, 0x9F, 16);      /* low nibble 15 → 7, high 9 → 1 */
    block_q8_0 xq;
    xq.d = 0x3c00;
    for (int j = 0; j < 32; j++) xq.qs[j] = (int8_t)(j - 16);
    type_get(PSI_TYPE_Q4_0)->vec_dot(32, &out, &w4, &xq);
    /* 7·Σ_{j<16}(j-16) + 1·Σ_{j<16} j = 7·(-136) + 120 = -832; · 0.5 */
    CHECK(out == -416.0f);

    block_q6_K w6;
    memset(&w6, 0, sizeof w6); /* every quant -32 */
    w6.d = 0x3c00;
    for (int s = 0; s < 16; s++) w6.scales[s] = 1;
    w6.scales[3] = 2;
    block_q8_K x6;
    memset(&x6, 0, sizeof x6);
    x6.d = 0.5f;
    memset(x6.qs, 1, sizeof x6.qs);
    type_get(PSI_TYPE_Q6_K)->vec_dot(256, &out, &w6, &x6);
    /* (15·1 + 2) · 16 · (-32) · 1 · 0.5 */
    CHECK(out == -4352.0f);

    /* Q4_1 · Q8_1: nibbles 1 (low) and 2 (high), d 0.5, m -1 → values -0.5
     * and 0; activations all 1 (d 1, s = 32): 16 · -0.5 = -8 */
    block_q4_1 w41;
    w41.d = 0x3800;
    w41.m = 0xbc00;
    memset(w41.qs, 0x21, 16);
    block_q8_1 x81;
    x81.d = 0x3c00;
    x81.s = 0x5000; /* 32 */
    memset(x81.qs, 1, 32);
    type_get(PSI_TYPE_Q4_1)->vec_dot(32, &out, &w41, &x81);
    CHECK(out == -8.0f);

    /* Q5_0 · Q8_0: quants 0 → 31 (15), 16 → 19 (3), 31 → 18 (2), the rest
     * 0 (-16), d 1; activations all 1: 15 + 3 + 2 - 29·16 = -444 */
    block_q5_0 w50;
    memset(&w50, 0, sizeof w50);
    w50.d = 0x3c00;
    w50.qh[0] = 0x01;
    w50.qh[2] = 0x01;
    w50.qh[3] = 0x80;
    w50.qs[0] = 0x3f;
    w50.qs[15] = 0x20;
    block_q8_0 x80;
    x80.d = 0x3c00;
    memset(x80.qs, 1, 32);
    type_get(PSI_TYPE_Q5_0)->vec_dot(32, &out, &w50, &x80);
    CHECK(out == -444.0f);

    /* Q5_1 · Q8_1, the same quants with d 0.25, m 0.5:
     * 0.25 · (31 + 19 + 18) + 0.5 · 32 = 33 */
    block_q5_1 w51;
    w51.d = 0x3400;
    w51.m = 0x3800;
    memcpy(w51.qh, w50.qh, 4);
    memcpy(w51.qs, w50.qs, 16);
    type_get(PSI_TYPE_Q5_1)->vec_dot(32, &out, &w51, &x81);
    CHECK(out == 33.0f);

    /* Q4_K / Q5_K · Q8_K against the dequantized block (values are halves
     * below 2^12, so every sum is exact): activations 1 with d 0.5 */
    static const int sc[8] = {1, 2, 3, 4, 17, 33, 50, 63}, mn[8] = {0, 5, 10, 63, 16, 32, 47, 1};
    block_q4_K w4k;
    block_q5_K w5k;
    w4k.d = w5k.d = 0x3c00;
    w4k.dmin = w5k.dmin = 0x3800;
    k_pack(sc, mn, w4k.scales);
    memcpy(w5k.scales, w4k.scales, 12);
    for (int i = 0; i < 128; i++) w4k.qs[i] = w5k.qs[i] = (uint8_t)(i * 7 + 3);
    for (int l = 0; l < 32; l++) w5k.qh[l] = (uint8_t)(l * 37 + 11);
    block_q8_K xk;
    xk.d = 0.5f;
    memset(xk.qs, 1, sizeof xk.qs);
    for (int g = 0; g < 16; g++) xk.bsums[g] = 16;
    float wv[256], want4 = 0, want5 = 0;
    type_get(PSI_TYPE_Q4_K)->to_float(&w4k, wv, 256);
    for (int v = 0; v < 256; v++) want4 += wv[v] * 0.5f;
    type_get(PSI_TYPE_Q5_K)->to_float(&w5k, wv, 256);
    for (int v = 0; v < 256; v++) want5 += wv[v] * 0.5f;
    type_get(PSI_TYPE_Q4_K)->vec_dot(256, &out, &w4k, &xk);
    CHECKF(out == want4, "Q4_K: %g, want %g", (double)out, (double)want4);
    type_get(PSI_TYPE_Q5_K)->vec_dot(256, &out, &w5k, &xk);
    CHECKF(out == want5, "Q5_K: %g, want %g", (double)out, (double)want5);
}

/* Builds n weights of type t from random data. */
static void make_weights(uint32_t t, const float *w, void *dst, int64_t n)
{
    if (t == PSI_TYPE_Q8_0) {
        quantize_row_q8_0_ref(w, dst, n);
    } else if (t == PSI_TYPE_Q6_K) {
        block_q6_K *b = dst;
        for (int64_t i = 0; i < n / 256; i++) {
            for (size_t k = 0; k < sizeof b[i].ql; k++) b[i].ql[k] = (uint8_t)rng_u64();
            for (size_t k = 0; k < sizeof b[i].qh; k++) b[i].qh[k] = (uint8_t)rng_u64();
            for (size_t k = 0; k < 16; k++) b[i].scales[k] = (int8_t)rng_u64();
            b[i].d = f32_to_fp16(1e-3f * (1.0f + 4.0f * fabsf(rng_f32())));
        }
    } else {
        type_get(t)->from_float(w, dst, n);
    }
}

static void test_dot_consistency(void)
{
    static const uint32_t types[] = {PSI_TYPE_F32,  PSI_TYPE_F16,  PSI_TYPE_BF16, PSI_TYPE_Q8_0,
                                      PSI_TYPE_Q4_0, PSI_TYPE_Q4_1, PSI_TYPE_Q5_0, PSI_TYPE_Q5_1,
                                      PSI_TYPE_Q4_K, PSI_TYPE_Q5_K, PSI_TYPE_Q6_K};
    static const int64_t sizes[] = {1, 7, 32, 256, 1024, 4096, 11008};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const type_traits *t = type_get(types[ti]);
        const type_traits *dt = type_get(t->vec_dot_type);
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            int64_t n = sizes[si];
            if (n % t->blck_size || n % dt->blck_size) continue;
            float *w = mem_alloc((size_t)n * sizeof(float));
            float *x = mem_alloc((size_t)n * sizeof(float));
            float *wf = mem_alloc((size_t)n * sizeof(float));
            float *xf = mem_alloc((size_t)n * sizeof(float));
            void *wq = mem_alloc(type_row_size(types[ti], n));
            void *xq = mem_alloc(type_row_size(t->vec_dot_type, n));
            CHECK(w && x && wf && xf && wq && xq);
            if (!(w && x && wf && xf && wq && xq)) return;
            for (int trial = 0; trial < 3; trial++) {
                for (int64_t i = 0; i < n; i++) {
                    w[i] = rng_f32() * (trial == 2 ? 100.0f : 0.1f);
                    x[i] = rng_f32() * (trial == 1 ? 0.001f : 3.0f);
                }
                if (trial == 2) x[n / 2] = 40.0f; /* an outlier activation */
                make_weights(types[ti], w, wq, n);
                if (t->vec_dot_type == PSI_TYPE_F32) memcpy(xq, x, (size_t)n * sizeof(float));
                else dt->from_float(x, xq, n);
                t->to_float(wq, wf, n);
                dt->to_float(xq, xf, n);
                double ref = 0, mag = 0;
                for (int64_t i = 0; i < n; i++) {
                    ref += (double)wf[i] * xf[i];
                    mag += fabs((double)wf[i] * xf[i]);
                }
                if (t->vec_dot_type == PSI_TYPE_Q8_1) {
                    /* Q4_1/Q5_1 · Q8_1 use the block's s = fp16(d·Σq) for
                     * Σx, not the dequantized x: Σ(w - m)·x + m·s per block.
                     * m is the second fp16 of both weight blocks. */
                    ref = mag = 0;
                    const block_q8_1 *xb = xq;
                    for (int64_t b = 0; b < n / 32; b++) {
                        const float m = fp16_to_f32(rd_u16((const uint8_t *)wq + b * t->type_size + 2));
                        for (int64_t i = 32 * b; i < 32 * b + 32; i++) {
                            ref += ((double)wf[i] - m) * xf[i];
                            mag += fabs(((double)wf[i] - m) * xf[i]) + fabs((double)m * xf[i]);
                        }
                        ref += (double)m * fp16_to_f32(xb[b].s);
                    }
                }
                float got = NAN;
                t->vec_dot(n, &got, wq, xq);
                double err = fabs((double)got - ref);
                CHECKF(err <= 1e-5 * mag + 1e-30, "%s n=%" PRId64 " trial %d: got %.9g want %.9g (|ab| %.3g)",
                       t->name, n, trial, (double)got, ref, mag);
                /* The converted activations stay close to the f32 ones. */
                if (t->vec_dot_type != PSI_TYPE_F32) {
                    double xe = 0, xm = 0;
                    for (int64_t i = 0; i < n; i++) {
                        xe = fmax(xe, fabs((double)xf[i] - x[i]));
                        xm = fmax(xm, fabs((double)x[i]));
                    }
                    CHECKF(xe <= xm / 100, "%s activations: max error %g of %g", dt->name, xe, xm);
                }
            }
            mem_free(w);
            mem_free(x);
            mem_free(wf);
            mem_free(xf);
            mem_free(wq);
            mem_free(xq);
        }
    }
}

/* ---------------------------------------- against llama.cpp's own files */

/* The "sha256" recorded for tensor `name` of file `file` in the JSON. */
static bool find_digest(json_t *root, const char *file, const char *name, char out[65])
{
    json_t *t = json_object_get(json_object_get(json_object_get(root, "files"), file), name);
    const char *h = json_string_value(json_object_get(t, "sha256"));
    if (!h || strlen(h) != 64) return false;
    memcpy(out, h, 65);
    return true;
}

static void sha256_hex(const void *data, size_t n, char out[65])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, data, n);
    sodium_bin2hex(out, 65, h, sizeof h);
}

/* Quantizing llama2-tiny-F32.gguf with the reference quantizers gives the
 * exact bytes of llama.cpp's llama-quantize (SHA-256s in the JSON). Q6_K
 * tensors of llama.cpp's files dequantize close to the F32 originals. */
static void test_against_llama_cpp(void)
{
    char err[512];
    gguf *src = NULL, *q4 = NULL;
    json_t *json = json_load_file(tu_data("reference/llama2-tiny-quantized-tensors.json"), 0, NULL);
    CHECK(sodium_init() >= 0);
    if (!json || gguf_open(tu_data("reference/llama2-tiny-F32.gguf"), &src, err, sizeof err) ||
        gguf_open(tu_data("reference/llama2-tiny-Q4_0.gguf"), &q4, err, sizeof err)) {
        printf("test_types: reference files not found under %s, skipping llama.cpp checks\n", tu_data_dir());
        json_decref(json);
        gguf_close(src);
        return;
    }
    int matched = 0, q6 = 0;
    for (uint64_t i = 0; i < src->n_tensors; i++) {
        const gguf_tensor *t = &src->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (t->n_dims < 2) continue; /* 1-D tensors stay F32 */
        int64_t n = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) n *= (int64_t)t->ne[d];
        float *f = mem_alloc((size_t)n * sizeof(float));
        void *q = mem_alloc(type_row_size(PSI_TYPE_Q8_0, n) + type_row_size(PSI_TYPE_Q4_0, n));
        CHECK(f && q && type_get(t->type)->to_float);
        if (!f || !q) break;
        type_get(t->type)->to_float(t->data, f, n);

        static const struct { const char *file; uint32_t type; } cases[] = {
            {"llama2-tiny-Q8_0.gguf", PSI_TYPE_Q8_0}, {"llama2-tiny-Q4_0.gguf", PSI_TYPE_Q4_0}};
        for (int c = 0; c < 2; c++) {
            char want[65], got[65];
            if (!find_digest(json, cases[c].file, name, want)) continue;
            int64_t k = gguf_find_tensor(q4, name);
            if (cases[c].type == PSI_TYPE_Q4_0 && (k < 0 || q4->tensors[k].type != PSI_TYPE_Q4_0))
                continue; /* that tensor is Q6_K in the Q4_0 file */
            if (cases[c].type == PSI_TYPE_Q8_0) quantize_row_q8_0_ref(f, q, n);
            else quantize_row_q4_0_ref(f, q, n);
            sha256_hex(q, type_row_size(cases[c].type, n), got);
            CHECKF(!strcmp(got, want), "%s %s: quantized bytes differ from llama.cpp's", cases[c].file, name);
            matched++;
        }

        int64_t k = gguf_find_tensor(q4, name);
        if (k >= 0 && q4->tensors[k].type == PSI_TYPE_Q6_K) {
            float *g = mem_alloc((size_t)n * sizeof(float));
            CHECK(g != NULL);
            if (g) {
                type_get(PSI_TYPE_Q6_K)->to_float(q4->tensors[k].data, g, n);
                double num = 0, den = 0;
                for (int64_t j = 0; j < n; j++) {
                    num += ((double)g[j] - f[j]) * ((double)g[j] - f[j]);
                    den += (double)f[j] * f[j];
                }
                CHECKF(num <= 1e-3 * den, "%s: Q6_K NMSE %g", name, num / den);
                q6++;
                /* and quantize_row_q6_K_ref makes exactly those bytes */
                void *mine = mem_alloc(q4->tensors[k].nbytes);
                CHECK(mine != NULL);
                if (mine) {
                    quantize_row_q6_K_ref(f, mine, n);
                    CHECKF(!memcmp(mine, q4->tensors[k].data, q4->tensors[k].nbytes),
                           "%s: Q6_K bytes differ from llama.cpp's", name);
                }
                mem_free(mine);
            }
            mem_free(g);
        }
        mem_free(f);
        mem_free(q);
    }
    CHECKF(matched >= 40, "only %d tensors compared", matched);
    CHECKF(q6 >= 1, "no Q6_K tensor checked");
    gguf_close(src);
    gguf_close(q4);
    json_decref(json);
}

/* llama.cpp's Q4_K_M file of the same model: each Q4_K and Q6_K tensor is
 * what quantize_row_q4_K_ref / quantize_row_q6_K_ref make of the F32
 * original, byte for byte. */
static void test_kquants_against_llama_cpp(void)
{
    char err[512];
    gguf *src = NULL, *km = NULL;
    if (gguf_open(tu_data("reference/llama2-tiny-F32.gguf"), &src, err, sizeof err) ||
        gguf_open(tu_data("reference/llama2-tiny-Q4_K_M.gguf"), &km, err, sizeof err)) {
        printf("test_types: reference files not found under %s, skipping K-quant checks\n", tu_data_dir());
        gguf_close(src);
        return;
    }
    int same[2] = {0}, seen[2] = {0};
    for (uint64_t i = 0; i < km->n_tensors; i++) {
        const gguf_tensor *t = &km->tensors[i];
        int c = t->type == PSI_TYPE_Q4_K ? 0 : t->type == PSI_TYPE_Q6_K ? 1 : -1;
        if (c < 0) continue;
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        int64_t k = gguf_find_tensor(src, name);
        CHECKF(k >= 0, "%s missing from the F32 file", name);
        if (k < 0) continue;
        const gguf_tensor *o = &src->tensors[k];
        int64_t n = (int64_t)(o->ne[0] * o->ne[1]);
        float *f = mem_alloc((size_t)n * sizeof(float));
        void *q = mem_alloc(t->nbytes);
        CHECK(f && q && type_row_size(t->type, n) == t->nbytes);
        if (f && q && type_row_size(t->type, n) == t->nbytes) {
            type_get(o->type)->to_float(o->data, f, n);
            if (c == 0) quantize_row_q4_K_ref(f, q, n);
            else quantize_row_q6_K_ref(f, q, n);
            bool eq = !memcmp(q, t->data, t->nbytes);
            CHECKF(eq, "%s (%s): bytes differ from llama.cpp's", name, type_get(t->type)->name);
            same[c] += eq;
            seen[c]++;
        }
        mem_free(f);
        mem_free(q);
    }
    printf("test_types: llama.cpp's Q4_K_M file: Q4_K %d/%d, Q6_K %d/%d tensors reproduced byte for byte\n",
           same[0], seen[0], same[1], seen[1]);
    CHECK(seen[0] >= 10 && seen[1] >= 1);
    gguf_close(src);
    gguf_close(km);
}

int main(void)
{
    test_table();
    test_row_size();
    test_fp16();
    test_bf16();
    test_dequant_plain();
    test_dequant_q4_0();
    test_dequant_q8_0();
    test_dequant_q6_K();
    test_dequant_q8_K();
    test_dequant_legacy();
    test_dequant_kquants();
    test_q8_0_quantizers();
    test_q4_0_quantizer();
    test_q8_K_quantizer();
    test_q8_1_quantizer();
    test_legacy_quantizers();
    test_weight_quantizers_roundtrip();
    test_dot_exact();
    test_dot_consistency();
    test_against_llama_cpp();
    test_kquants_against_llama_cpp();
    return tu_finish("test_types");
}
