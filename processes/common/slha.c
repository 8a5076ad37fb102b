/* SLHA param_card reader shared by the built-in processes (see madnis_process.h).
 *
 * Reads the subset of SLHA 1 that MadGraph's param_card.dat uses:
 *
 *   BLOCK name [Q= scale] [# comment]     block names are case-insensitive
 *     i value [# comment]                 entries with one integer index
 *     i j value                           several indices (CKM-like); only single-index
 *     value                               and index-less entries are reachable through
 *                                         madnis_slha_get, the others are kept for checks
 *   DECAY pdg width [# comment]           followed by branching-ratio lines, ignored
 *
 * Everything after '#' is a comment. Fortran exponents (1.0d+02) are accepted. A number
 * that does not parse (MadGraph's "DECAY 23 Auto" included), or a non-comment line before
 * the first BLOCK or DECAY, is an error naming the file and the line. When an entry is
 * repeated, the last one wins. No global state: every card is its own heap object, so separate cards
 * may be read from several threads at once. Numbers go through strtod, which follows
 * LC_NUMERIC; Python leaves that at "C".
 */
#include "madnis_process.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLHA_NAME_MAX 64
#define SLHA_MAX_INDICES 4
#define SLHA_LINE_MAX 4096

typedef struct {
    char block[SLHA_NAME_MAX]; /* lower case */
    int nidx;
    int idx[SLHA_MAX_INDICES];
    double value;
} slha_entry;

typedef struct {
    int pdg;
    double width;
} slha_decay;

struct madnis_slha {
    slha_entry* entries;
    size_t n_entries, cap_entries;
    slha_decay* decays;
    size_t n_decays, cap_decays;
};

/* "path:line: what", or "path: what" for problems that are not on a line. */
static void set_error(char* err, size_t errlen, const char* path, long line, const char* what) {
    if (err == NULL || errlen == 0) return;
    if (line > 0)
        snprintf(err, errlen, "%s:%ld: %s", path, line, what);
    else
        snprintf(err, errlen, "%s: %s", path, what);
}

static int lower_equal(const char* a, const char* b) {
    for (; *a && *b; ++a, ++b)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

/* Splits s in place at blanks; returns the number of tokens (at most max). */
static int split(char* s, char** tok, int max) {
    int n = 0;
    char* p = s;
    while (*p) {
        while (*p && isspace((unsigned char)*p)) ++p;
        if (!*p) break;
        if (n == max) return max + 1;
        tok[n++] = p;
        while (*p && !isspace((unsigned char)*p)) ++p;
        if (*p) *p++ = '\0';
    }
    return n;
}

static int parse_double(char* s, double* out) {
    char buf[128];
    size_t len = strlen(s);
    if (len == 0 || len >= sizeof buf) return 0;
    for (size_t i = 0; i <= len; ++i) buf[i] = (s[i] == 'd' || s[i] == 'D') ? 'e' : s[i];
    char* end = NULL;
    errno = 0;
    double v = strtod(buf, &end);
    if (end == buf || *end != '\0' || errno == ERANGE || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

static int parse_int(const char* s, int* out) {
    char* end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE || v < -2147483647L || v > 2147483647L)
        return 0;
    *out = (int)v;
    return 1;
}

static int push_entry(madnis_slha* card, const slha_entry* e) {
    if (card->n_entries == card->cap_entries) {
        size_t cap = card->cap_entries ? 2 * card->cap_entries : 64;
        slha_entry* p = realloc(card->entries, cap * sizeof *p);
        if (p == NULL) return 0;
        card->entries = p;
        card->cap_entries = cap;
    }
    card->entries[card->n_entries++] = *e;
    return 1;
}

static int push_decay(madnis_slha* card, int pdg, double width) {
    for (size_t i = 0; i < card->n_decays; ++i)
        if (card->decays[i].pdg == pdg) {
            card->decays[i].width = width; /* a later line wins, as for block entries */
            return 1;
        }
    if (card->n_decays == card->cap_decays) {
        size_t cap = card->cap_decays ? 2 * card->cap_decays : 32;
        slha_decay* p = realloc(card->decays, cap * sizeof *p);
        if (p == NULL) return 0;
        card->decays = p;
        card->cap_decays = cap;
    }
    card->decays[card->n_decays].pdg = pdg;
    card->decays[card->n_decays].width = width;
    ++card->n_decays;
    return 1;
}

madnis_slha* madnis_slha_read(const char* path, char* err, size_t errlen) {
    if (err != NULL && errlen > 0) err[0] = '\0';
    if (path == NULL || path[0] == '\0') {
        set_error(err, errlen, "param_card", 0, "empty path");
        return NULL;
    }
    FILE* fh = fopen(path, "r");
    if (fh == NULL) {
        char what[256];
        snprintf(what, sizeof what, "cannot open the param_card (%s)", strerror(errno));
        set_error(err, errlen, path, 0, what);
        return NULL;
    }
    madnis_slha* card = calloc(1, sizeof *card);
    if (card == NULL) {
        fclose(fh);
        set_error(err, errlen, path, 0, "out of memory");
        return NULL;
    }

    char line[SLHA_LINE_MAX];
    char block[SLHA_NAME_MAX] = "";
    int in_block = 0; /* 1 inside BLOCK, 2 inside a DECAY's branching ratios, 0 before any */
    long lineno = 0;
    char what[256];

    while (fgets(line, sizeof line, fh) != NULL) {
        ++lineno;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n' && !feof(fh)) {
            set_error(err, errlen, path, lineno, "line too long");
            goto fail;
        }
        char* hash = strchr(line, '#');
        if (hash != NULL) *hash = '\0';
        char* tok[SLHA_MAX_INDICES + 4];
        int n = split(line, tok, SLHA_MAX_INDICES + 3);
        if (n == 0) continue;

        if (lower_equal(tok[0], "block")) {
            if (n < 2) {
                set_error(err, errlen, path, lineno, "BLOCK without a name");
                goto fail;
            }
            if (strlen(tok[1]) >= SLHA_NAME_MAX) {
                set_error(err, errlen, path, lineno, "block name too long");
                goto fail;
            }
            size_t i = 0;
            for (; tok[1][i]; ++i) block[i] = (char)tolower((unsigned char)tok[1][i]);
            block[i] = '\0';
            in_block = 1; /* "Q= scale" and anything else after the name is ignored */
            continue;
        }
        if (lower_equal(tok[0], "decay")) {
            int pdg;
            double width;
            if (n < 3) {
                set_error(err, errlen, path, lineno,
                          "DECAY line needs a PDG id and a width");
                goto fail;
            }
            if (!parse_int(tok[1], &pdg)) {
                snprintf(what, sizeof what, "DECAY: PDG id '%s' is not an integer", tok[1]);
                set_error(err, errlen, path, lineno, what);
                goto fail;
            }
            if (!parse_double(tok[2], &width)) {
                snprintf(what, sizeof what,
                         "DECAY %d: width '%s' is not a number (an 'Auto' width must be "
                         "computed first)", pdg, tok[2]);
                set_error(err, errlen, path, lineno, what);
                goto fail;
            }
            if (!push_decay(card, pdg, width)) {
                set_error(err, errlen, path, lineno, "out of memory");
                goto fail;
            }
            in_block = 2;
            continue;
        }
        if (in_block == 2) continue; /* branching ratios: not needed at tree level here */
        if (in_block == 0) {
            snprintf(what, sizeof what, "'%s' outside any BLOCK or DECAY", tok[0]);
            set_error(err, errlen, path, lineno, what);
            goto fail;
        }
        if (n > SLHA_MAX_INDICES + 1) {
            snprintf(what, sizeof what, "BLOCK %s: more than %d indices", block,
                     SLHA_MAX_INDICES);
            set_error(err, errlen, path, lineno, what);
            goto fail;
        }
        slha_entry e;
        memcpy(e.block, block, sizeof e.block);
        e.nidx = n - 1;
        for (int k = 0; k < n - 1; ++k) {
            if (!parse_int(tok[k], &e.idx[k])) {
                snprintf(what, sizeof what, "BLOCK %s: index '%s' is not an integer", block,
                         tok[k]);
                set_error(err, errlen, path, lineno, what);
                goto fail;
            }
        }
        if (!parse_double(tok[n - 1], &e.value)) {
            snprintf(what, sizeof what, "BLOCK %s: value '%s' is not a number", block,
                     tok[n - 1]);
            set_error(err, errlen, path, lineno, what);
            goto fail;
        }
        if (!push_entry(card, &e)) {
            set_error(err, errlen, path, lineno, "out of memory");
            goto fail;
        }
    }
    if (ferror(fh)) {
        set_error(err, errlen, path, lineno, "read error");
        goto fail;
    }
    fclose(fh);
    return card;

fail:
    fclose(fh);
    madnis_slha_free(card);
    return NULL;
}

int madnis_slha_get(const madnis_slha* card, const char* block, int index, double* value) {
    if (card == NULL || block == NULL) return 0;
    /* the last occurrence wins, as when MadGraph re-reads a repeated entry */
    for (size_t i = card->n_entries; i-- > 0;) {
        const slha_entry* e = &card->entries[i];
        if (e->nidx == 1 && e->idx[0] == index && lower_equal(e->block, block)) {
            if (value != NULL) *value = e->value;
            return 1;
        }
    }
    return 0;
}

int madnis_slha_width(const madnis_slha* card, int pdg, double* width) {
    if (card == NULL) return 0;
    for (size_t i = 0; i < card->n_decays; ++i)
        if (card->decays[i].pdg == pdg) {
            if (width != NULL) *width = card->decays[i].width;
            return 1;
        }
    return 0;
}

void madnis_slha_free(madnis_slha* card) {
    if (card == NULL) return;
    free(card->entries);
    free(card->decays);
    free(card);
}

void madnis_fortran_string(const char* s, size_t len, char* out, size_t outlen) {
    if (out == NULL || outlen == 0) return;
    size_t n = 0;
    if (s != NULL) {
        while (n < len && s[n] != '\0') ++n; /* a C caller may pass a NUL-terminated string */
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) --n;
    }
    if (n > outlen - 1) n = outlen - 1;
    if (n > 0) memcpy(out, s, n);
    out[n] = '\0';
}
