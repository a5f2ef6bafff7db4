/*
 * fuzz_scratch.h — a scratch folder for the fuzz targets whose parsers read
 * files: made once per run under /tmp, each input written into it by name.
 * Included by one .c file each, so the definitions are static.
 */
#ifndef PSI_FUZZ_SCRATCH_H
#define PSI_FUZZ_SCRATCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];

/* Make the folder on the first call; true then (the caller's set-up). */
static int scratch_first(const char *target)
{
    if (dir[0]) return 0;
    snprintf(dir, sizeof dir, "/tmp/%s.XXXXXX", target);
    if (!mkdtemp(dir)) abort();
    return 1;
}

static void put(const char *name, const uint8_t *data, size_t size)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) abort();
    fwrite(data, 1, size, f);
    fclose(f);
}

#endif
