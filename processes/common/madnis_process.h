/* Built-in processes of madnis_py: the C ABI they export and the helpers they share.
 *
 * A built-in process exports exactly the entry points of MadGraph 5's standalone Fortran
 * output (gfortran conventions: every argument by reference, hidden size_t string lengths
 * appended), so madnis_py.physics.matrix_element loads it through the same cffi loader
 * and batched C++ loop as a user's MadGraph library:
 *
 *   void setparamlog_(const int* flag);             flag 0: do not write param.log
 *   void initialise_(const char* path, size_t len); SLHA param_card, blank-padded char[512]
 *   void smatrixhel_(const int* pdgs, const int* procid, const int* npdg,
 *                    const double* p,               p[npdg][4], (E, px, py, pz) row-major
 *                    const double* alphas, const double* scale2, const int* nhel,
 *                    double* ans);
 *
 * smatrixhel_ returns |M|^2 summed over helicities (nhel = -1) and colours, averaged over
 * initial spins and colours, for the subprocess whose PDG list (incoming first) equals
 * pdgs; procid = -1 accepts any; scale2 = 0 means the couplings follow alphas. When no
 * subprocess matches, ans is left untouched (as MadGraph does; the loader detects it).
 *
 * Extensions (optional, madnis_py looks them up and falls back when absent):
 *
 *   int  madnis_abi_version_(void);                 returns MADNIS_PROCESS_ABI_VERSION
 *   void madnis_amp2_(const int* pdgs, const int* procid, const int* npdg, const double* p,
 *                     const double* alphas, const double* scale2, double* amp2, int* namp2);
 *        per-diagram squared amplitudes |M_i|^2 (no interference) for the channel prior,
 *        *namp2 = number of diagrams written; *namp2 = 0 when no subprocess matches.
 *        The caller's amp2 holds madnis_max_amp2_() entries, MADNIS_MAX_AMP2 without it.
 *   int  madnis_max_amp2_(void);
 *        the most diagrams of any subprocess: the row of amp2 the caller must hold
 *        (madnis_py's MadGraph output exports it; a library without it writes at most
 *        MADNIS_MAX_AMP2 entries).
 *
 * Device extension (a library built with CUDA; madnis_py uses it for CUDA tensors and
 * falls back to the host entry points, with one copy each way per batch, without it):
 *
 *   int madnis_device_abi_version_(void);           returns MADNIS_DEVICE_ABI_VERSION
 *   int madnis_smatrix_device_(const int* pdgs, const int* procid, const int* npdg,
 *                              const double* p,      device (n, npdg, 4), row-major
 *                              const double* alphas, const double* scale2,  device (n,)
 *                              const int64_t* n,     host: the number of events
 *                              double* ans,          device (n,): |M|^2
 *                              double* amp2,         device (n, *namp2) or NULL
 *                              int* namp2,           host in/out: row length of amp2 on
 *                                                    input, the number of diagrams on output
 *                              void* stream);        cudaStream_t the kernels run on
 *        pdgs, procid, npdg, n and namp2 are host pointers, the arrays device pointers;
 *        the call launches and returns (nothing is synchronised or copied). Returns 0,
 *        a negative MADNIS_DEVICE_* code below, or a positive cudaError_t. n = 0 with
 *        amp2 = NULL only reports the number of diagrams.
 */
#define MADNIS_DEVICE_ABI_VERSION 1
#define MADNIS_DEVICE_NO_SUBPROCESS (-1)   /* no subprocess has the PDG list */
#define MADNIS_DEVICE_NOT_INITIALISED (-2) /* initialise_ read no valid param_card */
#define MADNIS_DEVICE_AMP2_SIZE (-3)       /* *namp2 on input is not the diagram count */
#ifndef MADNIS_PROCESS_H
#define MADNIS_PROCESS_H

#include <stddef.h>

#define MADNIS_PROCESS_ABI_VERSION 1
#define MADNIS_MAX_AMP2 64

#ifdef __cplusplus
extern "C" {
#endif

/* ---- SLHA param_card reader (slha.c) ---------------------------------------------- */

typedef struct madnis_slha madnis_slha;

/* Reads an SLHA file; returns NULL and writes a message naming the file and line into
 * err on failure. */
madnis_slha* madnis_slha_read(const char* path, char* err, size_t errlen);
/* Value of BLOCK name (case-insensitive) entry index; returns 1 if found. */
int madnis_slha_get(const madnis_slha* card, const char* block, int index, double* value);
/* Width from the DECAY line of a particle; returns 1 if found. */
int madnis_slha_width(const madnis_slha* card, int pdg, double* width);
void madnis_slha_free(madnis_slha* card);

/* Fortran string argument -> NUL-terminated C path (trailing blanks removed). */
void madnis_fortran_string(const char* s, size_t len, char* out, size_t outlen);

/* ---- Standard Model parameters as MadGraph's default `sm` model derives them -------- */

typedef struct {
    /* inputs: SMINPUTS 1-3, MASS, DECAY, YUKAWA */
    double aEWM1, Gf, aS;
    double MZ, MT, MB, MH, MTA;
    double WZ, WW, WT, WH;
    double ymb, ymt, ymtau;
    /* derived (Gmu scheme) */
    double aEW, MW, sw2, cw, sw, ee, gw, g1, vev;
} madnis_sm_params;

/* Fills the SM parameters from a card (missing entries are an error naming the block and
 * index); returns 0 on success. */
int madnis_sm_from_slha(const madnis_slha* card, madnis_sm_params* sm, char* err,
                        size_t errlen);

/* ---- initialise_ (initialise.c) ---------------------------------------------------- */

/* The start of every built-in's initialise_(path, len): reads the SLHA card named by the
 * blank-padded Fortran string and fills the SM parameters. On failure prints
 * "<process>: <message>" to stderr (madnis_process_error) and returns nonzero. With
 * card_or_null non-NULL the card stays open on success, for the process's own blocks, and
 * the caller frees it (*card_or_null = NULL on failure); with NULL it is freed here. */
int madnis_initialise_sm(const char* path, size_t len, const char* process,
                         madnis_sm_params* sm, madnis_slha** card_or_null);
/* Prints "<process>: <message>" to stderr, as initialise_ reports a bad card. */
void madnis_process_error(const char* process, const char* message);

#ifdef __cplusplus
}
#endif

#endif
