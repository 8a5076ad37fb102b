/* What every built-in shares: the card reading its initialise_ starts with, and the two
 * ABI entry points that are the same for all of them (see madnis_process.h). */
#include "madnis_process.h"

#include <stdio.h>

int madnis_initialise_sm(const char* path, size_t len, const char* process,
                         madnis_sm_params* sm, madnis_slha** card_or_null) {
    char file[1024], err[1024];
    if (card_or_null != NULL) *card_or_null = NULL;
    madnis_fortran_string(path, len, file, sizeof file);
    madnis_slha* card = madnis_slha_read(file, err, sizeof err);
    if (card == NULL || madnis_sm_from_slha(card, sm, err, sizeof err) != 0) {
        madnis_process_error(process, err);
        madnis_slha_free(card);
        return 1;
    }
    if (card_or_null != NULL)
        *card_or_null = card;
    else
        madnis_slha_free(card);
    return 0;
}

void madnis_process_error(const char* process, const char* message) {
    fprintf(stderr, "%s: %s\n", process, message);
}

/* MadGraph writes param.log when the flag is set; the built-ins never do. */
void setparamlog_(const int* flag) { (void)flag; }

int madnis_abi_version_(void) { return MADNIS_PROCESS_ABI_VERSION; }
