/*
 * dispatch.c — CPU detection (cpuid, and xgetbv for whether the OS saves
 * the AVX / AVX-512 register state) and the per-level kernel tables; see
 * kernels.h. The tables are built once and read-only afterwards.
 */
#include "kernels.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define PSI_X86 1
#endif
#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

typedef struct cpu_caps {
    bool avx2;     /* AVX2 + FMA + F16C, OS saves YMM */
    bool avx512;   /* F + BW + VL + VNNI, OS saves ZMM and opmask */
    bool amx;      /* + AMX-TILE and AMX-INT8, tile data granted by the OS */
} cpu_caps;

#ifdef PSI_X86
static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* Linux hands the 8 KiB of tile registers only to a process that asks
 * (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA, kernel 5.16+);
 * once granted, it holds for every thread. */
static bool amx_granted(void)
{
#if defined(__x86_64__) && defined(__linux__) && defined(SYS_arch_prctl)
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
#else
    return false;
#endif
}
#endif

static cpu_caps detect(void)
{
    cpu_caps c = {false, false, false};
#ifdef PSI_X86
    unsigned a, b, cx, d;
    if (!__get_cpuid(1, &a, &b, &cx, &d)) return c;
    bool osxsave = cx & (1u << 27), avx = cx & (1u << 28), fma = cx & (1u << 12), f16c = cx & (1u << 29);
    if (!osxsave || !avx) return c;
    uint64_t xcr0 = xgetbv0();
    bool ymm_os = (xcr0 & 0x6) == 0x6;      /* SSE and AVX state */
    bool zmm_os = (xcr0 & 0xe6) == 0xe6;    /* + opmask, ZMM_Hi256, Hi16_ZMM */
    unsigned max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 7) return c;
    __cpuid_count(7, 0, a, b, cx, d);
    bool avx2 = b & (1u << 5);
    bool f = b & (1u << 16), bw = b & (1u << 30), vl = b & (1u << 31), vnni = cx & (1u << 11);
    c.avx2 = ymm_os && avx2 && fma && f16c;
    c.avx512 = c.avx2 && zmm_os && f && bw && vl && vnni;
    bool tile = d & (1u << 24), int8 = d & (1u << 25), tile_os = (xcr0 & 0x60000) == 0x60000;
    c.amx = c.avx512 && tile && int8 && tile_os; /* and granted: init() asks, when amx may be used */
#endif
    return c;
}

#ifdef PSI_DISPATCH_EMU
void kernels_fill_avx512_emu(kernels *k); /* x86_avx512.c built with SIMDe */
void kernels_fill_amx_emu(kernels *k);    /* x86_amx.c with the tile instructions in C */
#endif

static kernels tables[KERN_LEVELS];
static bool supported[KERN_LEVELS];
static const kernels *chosen;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static const char *const level_names[KERN_LEVELS] = {"generic", "avx2", "avx512", "amx"};

const char *kernels_level_name(kern_level level)
{
    return (unsigned)level < KERN_LEVELS ? level_names[level] : NULL;
}

static void fill_generic(kernels *k)
{
    for (uint32_t i = 0; i < KERN_TYPES; i++) {
        const type_traits *tt = type_get(i);
        if (!tt) continue;
        k->t[i].vec_dot = tt->can_compute ? tt->vec_dot : NULL;
        k->t[i].from_float = tt->from_float;
    }
}

/* The level PSI_CPU names; -1 when it is unset or names none. */
static int env_level(void)
{
    const char *e = getenv("PSI_CPU");
    for (int l = 0; e && l < KERN_LEVELS; l++)
        if (!strcmp(e, level_names[l])) return l;
    return -1;
}

static kern_level parse_env(kern_level best)
{
    const char *e = getenv("PSI_CPU");
    if (!e || !*e) return best;
    const int l = env_level();
    if (l < 0) {
        fprintf(stderr, "psi: warning: PSI_CPU=%s is not one of generic, avx2, avx512, amx; ignored\n", e);
        return best;
    }
    if (l <= (int)best) return (kern_level)l;
    fprintf(stderr, "psi: warning: PSI_CPU=%s: this CPU cannot run it; using %s\n", e, level_names[best]);
    return best;
}

static void init(void)
{
    cpu_caps c = detect();
    for (int l = 0; l < KERN_LEVELS; l++) {
        tables[l].level = (kern_level)l;
        tables[l].name = level_names[l];
        fill_generic(&tables[l]);
        kernels_fill_generic(&tables[l]);
    }
    supported[KERN_GENERIC] = true;
#ifdef PSI_X86
    supported[KERN_AVX2] = c.avx2;
    supported[KERN_AVX512] = c.avx512;
    /* Granting tile data enlarges the process's signal frames (8 KiB more),
     * so psi asks only when amx may be used: not when PSI_CPU names
     * another path. */
    const int asked = env_level();
    supported[KERN_AMX] = c.amx && (asked < 0 || asked == KERN_AMX) && amx_granted();
    /* the fill functions are compiled for their instruction set too (the
     * compiler may use it even to store pointers): call them only where
     * the CPU runs it */
    if (c.avx2) {
        kernels_fill_avx2(&tables[KERN_AVX2]);
        kernels_fill_avx2_attn(&tables[KERN_AVX2]);
    }
    for (int l = KERN_AVX512; l <= KERN_AMX; l++) { /* amx: the avx512 table and its tiles */
        if (!supported[l]) continue;
        kernels_fill_avx2(&tables[l]);
        kernels_fill_avx2_attn(&tables[l]);
        kernels_fill_avx512(&tables[l]);
        if (l == KERN_AMX) kernels_fill_amx(&tables[l]);
    }
#ifdef PSI_DISPATCH_EMU
    /* The test build's psi_emu (tests/CMakeLists.txt): on a CPU with AVX2
     * but not AVX-512 or AMX, those levels run x86_avx512.c under SIMDe
     * and x86_amx.c's tiles in C, named avx512e and amxe (`-v`), so the
     * end-to-end tests can take these kernels through whole models. */
    for (int l = KERN_AVX512; c.avx2 && l <= KERN_AMX; l++) {
        if (supported[l]) continue;
        supported[l] = true;
        kernels_fill_avx2(&tables[l]);
        kernels_fill_avx2_attn(&tables[l]);
        if (c.avx512)
            kernels_fill_avx512(&tables[l]);
        else
            kernels_fill_avx512_emu(&tables[l]);
        if (l == KERN_AMX) kernels_fill_amx_emu(&tables[l]);
        tables[l].name = l == KERN_AMX ? "amxe" : "avx512e";
    }
#endif
#else
    (void)c;
#endif
    kern_level best = KERN_GENERIC;
    for (int l = 0; l < KERN_LEVELS; l++)
        if (supported[l]) best = (kern_level)l;
    chosen = &tables[parse_env(best)];
}

const kernels *kernels_get(void)
{
    pthread_once(&once, init);
    return chosen;
}

const kernels *kernels_for(kern_level level)
{
    pthread_once(&once, init);
    return (unsigned)level < KERN_LEVELS && supported[level] ? &tables[level] : NULL;
}

const kern_type *kernels_type(const kernels *k, uint32_t type)
{
    static const kern_type none = {0};
    return type < KERN_TYPES ? &k->t[type] : &none;
}
