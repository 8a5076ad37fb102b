// madnis_py shim for Sherpa 3 through its MEProcess API (AddOns/Python/MEProcess.H, in
// libMEProcess, which Sherpa builds only with -DSHERPA_ENABLE_PYTHON=ON): exports the ABI
// of MadGraph's standalone Fortran output (setparamlog_, initialise_, smatrixhel_; see
// processes/common/madnis_process.h), so madnis_py.physics.MatrixElement.from_sherpa loads a
// Sherpa run like any other library. Sherpa evaluates one point per call; the batching is
// the loader's C++ loop over events. docs/sherpa.md has the facts behind this file
// (checked with Sherpa 3.0.3).
//
// Built by madnis_py.physics.shims.build_sherpa: $(Sherpa-config --cppflags), then
// $(Sherpa-config --ldflags) (-lSherpaMain and LHAPDF only) plus -lMEProcess and every
// library of the CMake target SHERPA::All, with --no-as-needed (Sherpa's libraries record
// no dependencies on each other) and --no-undefined, and an rpath to Sherpa's libdir.
//
// initialise_ receives the directory of a Sherpa run card (Sherpa.yaml) instead of a
// param_card: Sherpa reads its parameters and processes from there ("INIT_ONLY: 2": no
// integration). Sherpa runs in that directory during its initialisation (it writes Process/
// there) and logs into <dir>/sherpa.log ("LOG_FILE: sherpa.log", and stdout itself is
// redirected there while Sherpa initialises), never onto stdout. Errors (Sherpa's
// exceptions) are kept for madnis_sherpa_error_(), which the loader reads after
// initialise_ and after a NaN. Sherpa ends the process itself on some run-card errors
// (exit(), or a crash): on_exit then says so on stderr.
//
// smatrixhel_: the first call with a PDG list (MadGraph's order, incoming first) looks for a
// partonic process of the run card with the same incoming and outgoing particles (incoming
// in the given order, else swapped; outgoing in any order) and builds an MEProcess for it,
// with the momenta permuted into Sherpa's order; a list without such a process leaves the
// answer untouched, as MadGraph's dispatcher does. The answer is MEProcess::CSMatrixElement
// (Comix: summed explicitly over all colour assignments; Amegic sums colours itself), with
// Comix's double initial-state swap factor divided out: MadGraph's convention, summed over
// final and averaged over initial helicities and colours, 1/n! for identical final-state
// particles included (tests/physics/test_shims.py, to 1e-10). alpha_s is Sherpa's own (the
// run card's scale and ALPHAS(MZ)): the alphas and scale2 arguments are ignored.
//
// Sherpa keeps its state in process-wide globals (ATOOLS::rpa, msg, the settings, the
// particle table): one Sherpa per process. A second initialise_ in a process that already
// runs Sherpa (another MatrixElement, even from another copy of this library) refuses with
// an error instead of corrupting the first. Sherpa is not thread-safe: the loader serialises
// all calls with one lock. Sherpa's signal handlers (SIGINT, SIGSEGV, SIGTERM, ...) and its
// std::terminate handler, installed by its constructor, are replaced by the previous ones
// when initialise_ returns, so Ctrl-C still reaches Python.
#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "ATOOLS/Math/Vector.H"
#include "ATOOLS/Org/Exception.H"
#include "ATOOLS/Org/Message.H"
#include "ATOOLS/Org/Run_Parameter.H"
#include "ATOOLS/Phys/Flavour.H"
#include "AddOns/Python/MEProcess.H"
#include "PHASIC++/Main/Process_Integrator.H"
#include "PHASIC++/Process/Process_Base.H"
#include "SHERPA/Initialization/Initialization_Handler.H"
#include "SHERPA/Main/Sherpa.H"
#include "SHERPA/PerturbativePhysics/Matrix_Element_Handler.H"
#if __has_include("LHAPDF/LHAPDF.h")
#include "LHAPDF/LHAPDF.h"
#define MADNIS_SHERPA_LHAPDF 1
#endif

namespace {

// One evaluator per PDG list asked for: the MEProcess (nullptr: the run card has no such
// process) and, for each of Sherpa's legs, the index of its momentum in the caller's list.
struct Evaluator {
    MEProcess* process = nullptr;
    std::vector<int> order;  // empty: the run card has no such process
    std::string error;       // the process exists, but Sherpa failed to set it up
};

SHERPA::Sherpa* generator = nullptr;
bool ready = false;  // initialise_ succeeded
// What Sherpa is doing for us while it may call exit() (it does on some run-card errors,
// e.g. the initial state in another order than its own), for the message of on_exit.
std::string phase;
std::string log_path;
bool exit_hook = false;
std::map<std::vector<int>, Evaluator> evaluators;
std::string last_error;
ATOOLS::Vec4D_Vector momenta;

const int kSignals[] = {SIGSEGV, SIGINT, SIGPIPE, SIGBUS, SIGFPE,
                        SIGABRT, SIGTERM, SIGXCPU, SIGUSR1};
constexpr int kNSignals = sizeof(kSignals) / sizeof(kSignals[0]);

// Saves what Sherpa's constructor overwrites (signal handlers, std::terminate handler, the
// working directory, stdout) and puts it back when it goes out of scope.
class ProcessStateGuard {
  public:
    ProcessStateGuard(const std::string& run_dir, const std::string& log) {
        for (int i = 0; i < kNSignals; ++i) sigaction(kSignals[i], nullptr, &actions_[i]);
        terminate_ = std::get_terminate();
        char buf[4096];
        if (getcwd(buf, sizeof buf) != nullptr) cwd_ = buf;
        std::cout.flush();
        std::fflush(stdout);
        saved_stdout_ = dup(1);
        const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            close(fd);
        }
        if (chdir(run_dir.c_str()) != 0) failed_chdir_ = true;
    }
    ~ProcessStateGuard() {
        std::cout.flush();
        std::fflush(stdout);
        if (saved_stdout_ >= 0) {
            dup2(saved_stdout_, 1);
            close(saved_stdout_);
        }
        if (!cwd_.empty() && chdir(cwd_.c_str()) != 0) {
            // nothing sensible left to do; the caller's paths are absolute
        }
        std::set_terminate(terminate_);
        for (int i = 0; i < kNSignals; ++i) sigaction(kSignals[i], &actions_[i], nullptr);
    }
    bool failed_chdir() const { return failed_chdir_; }
    ProcessStateGuard(const ProcessStateGuard&) = delete;
    ProcessStateGuard& operator=(const ProcessStateGuard&) = delete;

  private:
    struct sigaction actions_[kNSignals];
    std::terminate_handler terminate_ = nullptr;
    std::string cwd_;
    int saved_stdout_ = -1;
    bool failed_chdir_ = false;
};

std::string describe(const std::vector<int>& pdgs) {
    std::ostringstream out;
    for (std::size_t i = 0; i < pdgs.size(); ++i) out << (i ? " " : "") << pdgs[i];
    return out.str();
}

// The order of a partonic process of the run card that has the particles of `pdgs`
// (incoming first): for each of Sherpa's legs, the index into pdgs. Empty if none.
std::vector<int> match(const std::vector<int>& pdgs, const ATOOLS::Flavour_Vector& flavs,
                       std::size_t nin) {
    const std::size_t n = pdgs.size();
    if (nin != 2 || flavs.size() != n) return {};
    std::vector<int> sherpa(n);
    for (std::size_t i = 0; i < n; ++i) {
        if (flavs[i].Size() != 1) return {};  // a container (93, 90): not a partonic process
        sherpa[i] = int(static_cast<long int>(flavs[i]));
    }
    std::vector<int> order(n, -1);
    if (sherpa[0] == pdgs[0] && sherpa[1] == pdgs[1]) {
        order[0] = 0;
        order[1] = 1;
    } else if (sherpa[0] == pdgs[1] && sherpa[1] == pdgs[0]) {
        order[0] = 1;
        order[1] = 0;
    } else {
        return {};
    }
    std::vector<bool> used(n, false);
    for (std::size_t i = 2; i < n; ++i) {
        for (std::size_t j = 2; j < n; ++j) {
            if (!used[j] && pdgs[j] == sherpa[i]) {
                used[j] = true;
                order[i] = int(j);
                break;
            }
        }
        if (order[i] < 0) return {};
    }
    return order;
}

void make_evaluator(const std::vector<int>& pdgs, Evaluator& ev) {
    SHERPA::Matrix_Element_Handler* handler =
        generator->GetInitHandler()->GetMatrixElementHandler();
    const PHASIC::Process_Base* found = nullptr;
    for (const auto* pmap : handler->ProcMaps()) {
        const auto lo = pmap->find(ATOOLS::nlo_type::lo);
        if (lo == pmap->end()) continue;
        for (const auto& named : *lo->second) {
            std::vector<int> order = match(pdgs, named.second->Flavours(),
                                           named.second->NIn());
            // prefer the process with the incoming particles in the caller's order
            if (!order.empty() && (found == nullptr || order[0] == 0)) {
                found = named.second;
                ev.order = std::move(order);
                if (ev.order[0] == 0) break;
            }
        }
        if (found != nullptr && ev.order[0] == 0) break;
    }
    if (found == nullptr) return;
    auto* process = new MEProcess(generator);
    const ATOOLS::Flavour_Vector& flavs = found->Flavours();
    for (std::size_t i = 0; i < flavs.size(); ++i) {
        const int id = int(static_cast<long int>(flavs[i]));
        if (i < found->NIn())
            process->AddInFlav(id);
        else
            process->AddOutFlav(id);
    }
    process->Initialize();
    ev.process = process;
}

void record(const std::string& what) { last_error = what; }

// Sherpa ends the whole process with exit() on some errors (Matrix_Element_Handler::
// CheckInitialStateOrdering, its Terminator_Object_Handler, ...), which no caller can catch:
// say so on stderr, with the end of Sherpa's log, whose buffer exit() would not flush.
void on_exit() {
    if (phase.empty()) return;
    if (ATOOLS::msg != nullptr) {
        ATOOLS::msg->Out().flush();
        ATOOLS::msg->Error().flush();
    }
    std::fflush(stdout);
    std::fprintf(stderr, "\nmadnis_py: Sherpa ended the process (exit) while %s; its log is %s",
                 phase.c_str(), log_path.c_str());
    std::FILE* log = std::fopen(log_path.c_str(), "r");
    if (log != nullptr) {
        std::string tail;
        char buf[4096];
        std::size_t got;
        while ((got = std::fread(buf, 1, sizeof buf, log)) > 0) {
            tail.append(buf, got);
            if (tail.size() > 8192) tail.erase(0, tail.size() - 2048);
        }
        std::fclose(log);
        if (tail.size() > 2048) tail.erase(0, tail.size() - 2048);
        std::fprintf(stderr, ", which ends with:\n%s\n", tail.c_str());
    } else {
        std::fprintf(stderr, "\n");
    }
    std::fflush(stderr);
}

// Marks what Sherpa is doing until the end of the scope.
struct Phase {
    explicit Phase(const std::string& what) {
        phase = what;
        if (!exit_hook) exit_hook = std::atexit(on_exit) == 0;
    }
    ~Phase() { phase.clear(); }
};

// An ATOOLS::Exception as one line of text, without the terminal's colour codes.
std::string text(const ATOOLS::Exception& err) {
    std::ostringstream out;
    out << err;
    std::string raw = out.str(), plain;
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '\033') {
            while (i < raw.size() && raw[i] != 'm') ++i;
        } else {
            plain += raw[i] == '\n' ? ' ' : raw[i];
        }
    }
    return plain;
}

}  // namespace

extern "C" {

// The 8-argument smatrixhel_ ABI of madnis_py (the loader checks for this symbol).
int madnis_abi_version_(void) { return 1; }

// The error of the last initialise_ or smatrixhel_ ("" if none), for the loader.
const char* madnis_sherpa_error_(void) { return last_error.c_str(); }

void setparamlog_(const int*) {}

void initialise_(const char* path, std::size_t len) {
    std::string dir(path, len);
    const std::size_t end = dir.find_last_not_of(' ');
    dir.erase(end == std::string::npos ? 0 : end + 1);
    last_error.clear();
    if (generator != nullptr || ATOOLS::rpa != nullptr) {
        record("Sherpa is already running in this process (it keeps its state in "
               "process-wide globals: one Sherpa run per process); open the run " + dir +
               " in another process");
        return;
    }
    const std::string log = dir + "/sherpa.log";
    log_path = log;
    ProcessStateGuard guard(dir, log);
    Phase doing("initialising the run " + dir);
    if (guard.failed_chdir()) {
        record("cannot change into the Sherpa run directory " + dir);
        return;
    }
    // Sherpa 3 takes settings as YAML on the command line; they override the run card.
    static std::string args[] = {"Sherpa", "INIT_ONLY: 2", "LOG_FILE: sherpa.log"};
    static char* argv[] = {&args[0][0], &args[1][0], &args[2][0]};
    try {
        generator = new SHERPA::Sherpa(3, argv);
        if (generator->InitializeTheRun())
            ready = true;
        else
            record("Sherpa could not initialise the run in " + dir + " (see " + log + ")");
    } catch (const ATOOLS::Exception& err) {
        record("Sherpa failed to initialise the run in " + dir + ": " + text(err) +
               " (see " + log + ")");
    } catch (const std::exception& err) {
        record("Sherpa failed to initialise the run in " + dir + ": " + err.what() +
               " (see " + log + ")");
    } catch (...) {
        record("Sherpa failed to initialise the run in " + dir + " (see " + log + ")");
    }
#ifdef MADNIS_SHERPA_LHAPDF
    // LHAPDF prints its citation onto stdout when the process ends, unless its verbosity is
    // 0; Sherpa sets it to 0 only in its destructor, which never runs here.
    LHAPDF::setVerbosity(0);
#endif
}

void smatrixhel_(const int* pdgs, const int* procid, const int* npdg, const double* p,
                 const double* /*alphas*/, const double* /*scale2*/, const int* /*nhel*/,
                 double* ans) {
    if (!ready || *procid > 1 || *npdg < 3) return;
    const std::vector<int> key(pdgs, pdgs + *npdg);
    auto it = evaluators.find(key);
    if (it == evaluators.end()) {
        Evaluator ev;
        Phase doing("setting up the process " + describe(key));
        try {
            make_evaluator(key, ev);
        } catch (const ATOOLS::Exception& err) {
            ev.error = text(err);
        } catch (const std::exception& err) {
            ev.error = err.what();
        }
        if (ev.process == nullptr && !ev.order.empty() && ev.error.empty())
            ev.error = "MEProcess found no process";
        it = evaluators.emplace(key, std::move(ev)).first;
    }
    const Evaluator& ev = it->second;
    if (!ev.error.empty()) {
        record("Sherpa: no matrix element for " + describe(key) + ": " + ev.error);
        *ans = std::numeric_limits<double>::quiet_NaN();
        return;
    }
    if (ev.process == nullptr) return;  // no such process in the run card
    momenta.resize(ev.order.size());
    for (std::size_t i = 0; i < ev.order.size(); ++i) {
        const double* q = p + 4 * ev.order[i];
        momenta[i] = ATOOLS::Vec4D(q[0], q[1], q[2], q[3]);
    }
    try {
        ev.process->SetMomenta(momenta);
        // With a colour integrator (Comix), CSMatrixElement sums MatrixElement() over all
        // colour assignments, each of which already carries the initial-state swap factor
        // ISSymFac (2 for identical incoming partons from identical hadron beams, g g, u u),
        // and multiplies by ISSymFac once more: divide that out (MEProcess.C, Sherpa 3.0.3).
        double value = ev.process->CSMatrixElement();
        // (MEProcess::HasColorIntegrator is declared but not defined: ask the integrator.)
        const PHASIC::Process_Base* proc = ev.process->GetProc();
        if (proc->Integrator()->ColorIntegrator() != nullptr) value /= proc->ISSymFac();
        *ans = value;
    } catch (const ATOOLS::Exception& err) {
        record("Sherpa failed on " + describe(key) + ": " + text(err));
        *ans = std::numeric_limits<double>::quiet_NaN();
    } catch (const std::exception& err) {
        record(std::string("Sherpa failed on ") + describe(key) + ": " + err.what());
        *ans = std::numeric_limits<double>::quiet_NaN();
    }
}

}  // extern "C"
