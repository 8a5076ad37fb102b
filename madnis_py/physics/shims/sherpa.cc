// madnis_py shim for Sherpa (3.x) through its MEProcess API: exports the ABI of MadGraph's
// standalone Fortran output (setparamlog_, initialise_, smatrixhel_; see
// processes/common/madnis_process.h), so madnis_py.physics.MatrixElement loads a Sherpa
// process like any other library. Sherpa evaluates one point per call; the batching is
// the loader's C++ loop over events.
//
// Built by madnis_py.physics.shims.build_sherpa(run_card_dir), which compiles against an
// installed Sherpa (`Sherpa-config --incdir --libs`):
//
//   g++ -O2 -fPIC -shared -std=c++17 $(Sherpa-config --cppflags) sherpa.cc \
//       $(Sherpa-config --ldflags) -o libme_sherpa.so
//
// initialise_ receives the directory of a Sherpa run card (Sherpa.yaml) describing one
// process, instead of a param_card: Sherpa reads its parameters from there. alpha_s is
// Sherpa's own (the run card's), so the alphas argument is ignored.
#include <cstddef>
#include <string>
#include <vector>

#include "ATOOLS/Math/Vector.H"
#include "SHERPA/Main/Sherpa.H"
#include "SHERPA/Tools/MEProcess.H"

namespace {
SHERPA::Sherpa* generator = nullptr;
SHERPA::MEProcess* process = nullptr;
std::vector<int> flavours;
}  // namespace

extern "C" {

// The 8-argument smatrixhel_ ABI of madnis_py (the loader checks for this symbol).
int madnis_abi_version_(void) { return 1; }

void setparamlog_(const int*) {}

void initialise_(const char* path, std::size_t len) {
    std::string dir(path, len);
    const std::size_t end = dir.find_last_not_of(' ');
    dir.erase(end == std::string::npos ? 0 : end + 1);
    std::string arg0 = "madnis_py", arg1 = "-p", arg2 = dir, arg3 = "INIT_ONLY=2";
    char* argv[] = {&arg0[0], &arg1[0], &arg2[0], &arg3[0]};
    generator = new SHERPA::Sherpa(4, argv);
    generator->InitializeTheRun();
    process = new SHERPA::MEProcess(generator);
    process->Initialize();
    flavours.clear();
    for (const auto& fl : process->GetFlavours()) flavours.push_back(int(fl.Kfcode()) *
                                                                     (fl.IsAnti() ? -1 : 1));
}

void smatrixhel_(const int* pdgs, const int* procid, const int* npdg, const double* p,
                 const double* /*alphas*/, const double* /*scale2*/, const int* /*nhel*/,
                 double* ans) {
    if (process == nullptr || *procid > 1 || *npdg != int(flavours.size())) return;
    for (int i = 0; i < *npdg; ++i)
        if (pdgs[i] != flavours[i]) return;
    ATOOLS::Vec4D_Vector momenta(*npdg);
    for (int i = 0; i < *npdg; ++i)
        momenta[i] = ATOOLS::Vec4D(p[4 * i], p[4 * i + 1], p[4 * i + 2], p[4 * i + 3]);
    process->SetMomenta(momenta);
    *ans = process->CSMatrixElement();
}

}  // extern "C"
