// madnis_py shim for MadGraph 5 `output standalone_cpp`: exports the ABI of the
// standalone *Fortran* output (setparamlog_, initialise_, smatrixhel_; see
// processes/common/madnis_process.h), so madnis_py.physics.MatrixElement loads a
// CPPProcess like any other library and its C++ loop over events drives it.
//
// Built by madnis_py.physics.shims.build_standalone_cpp(P_dir, pdgs), which compiles this
// file together with the P* directory's CPPProcess.cc and the output's src/*.cc:
//
//   g++ -O2 -fPIC -shared -std=c++11 -I<P dir> -I<output>/src \
//       -DMADNIS_MODEL_PARAMETERS=Parameters_sm -DMADNIS_PDGS="-11,11,-13,13" \
//       standalone_cpp.cc <P dir>/CPPProcess.cc <output>/src/*.cc -o libme.so
//
// (-O2, not -Ofast: fast-math objects switch on flush-to-zero for the whole process.)
// One P* directory is one subprocess here: the PDG list it answers is fixed at build time
// (MADNIS_PDGS, incoming first); any other list leaves ans untouched, which the loader
// reports. alpha_s is set per event on the model's parameter singleton before sigmaKin,
// which recomputes the alpha_s-dependent couplings.
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "CPPProcess.h"

#ifndef MADNIS_MODEL_PARAMETERS
#define MADNIS_MODEL_PARAMETERS Parameters_sm
#endif
#ifndef MADNIS_PDGS
#error "define MADNIS_PDGS as the comma-separated PDG list of this P* directory"
#endif

#define MADNIS_STR2(x) #x
#define MADNIS_STR(x) MADNIS_STR2(x)
#include MADNIS_STR(MADNIS_MODEL_PARAMETERS.h)

namespace {
CPPProcess process;
bool initialised = false;
const int kPdgs[] = {MADNIS_PDGS};
const int kNpdg = sizeof(kPdgs) / sizeof(kPdgs[0]);
}  // namespace

extern "C" {

// The 8-argument smatrixhel_ ABI of madnis_py (the loader checks for this symbol).
int madnis_abi_version_(void) { return 1; }

void setparamlog_(const int*) {}  // standalone_cpp writes no param.log

void initialise_(const char* path, std::size_t len) {
    std::string card(path, len);
    const std::size_t end = card.find_last_not_of(' ');
    card.erase(end == std::string::npos ? 0 : end + 1);
    process.initProc(card);
    initialised = true;
}

void smatrixhel_(const int* pdgs, const int* procid, const int* npdg, const double* p,
                 const double* alphas, const double* /*scale2*/, const int* /*nhel*/,
                 double* ans) {
    if (!initialised || *npdg != kNpdg || *npdg != CPPProcess::nexternal ||
        (*procid > 1))
        return;
    for (int i = 0; i < kNpdg; ++i)
        if (pdgs[i] != kPdgs[i]) return;
    std::vector<double*> momenta(kNpdg);
    std::vector<double> copy(p, p + 4 * kNpdg);
    for (int i = 0; i < kNpdg; ++i) momenta[i] = &copy[4 * i];
    MADNIS_MODEL_PARAMETERS* pars = MADNIS_MODEL_PARAMETERS::getInstance();
    pars->aS = *alphas;
    process.setMomenta(momenta);
    process.sigmaKin();
    *ans = process.getMatrixElements()[0];
}

}  // extern "C"
