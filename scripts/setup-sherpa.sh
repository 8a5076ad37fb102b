#!/usr/bin/env bash
# Build Sherpa 3 (with Comix, Amegic and the MEProcess library that madnis_py's Sherpa shim
# needs) from its PyPI source distribution, outside the repository, against an installed
# LHAPDF 6. Facts and pitfalls: docs/sherpa.md. Not run by CI (it takes 40+ minutes on two
# cores and downloads the source).
#
# usage: scripts/setup-sherpa.sh PREFIX [LHAPDF_PREFIX]
#   PREFIX          where Sherpa is installed (PREFIX/bin/Sherpa-config afterwards)
#   LHAPDF_PREFIX   an LHAPDF >= 6.4 installation (its bin/lhapdf-config); default: the
#                   environment variable LHAPDF_PREFIX, else the prefix of lhapdf-config on
#                   PATH
# environment:
#   SHERPA_VERSION  the sherpa-mc release on PyPI (default 3.0.3b2)
#   WORKDIR         where the source is unpacked and built (default /tmp/sherpa-setup)
#   JOBS            parallel make jobs (default: the number of cores)
#
# System packages (Debian names): cmake g++ gfortran make libzip-dev libsqlite3-dev swig
# python3-dev (swig and python3-dev: MEProcess is only built with Sherpa's Python interface).
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || "$1" == -h || "$1" == --help ]]; then
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
prefix=$(realpath -m "$1")
lhapdf=${2:-${LHAPDF_PREFIX:-}}
if [[ -z "$lhapdf" ]]; then
    if ! command -v lhapdf-config >/dev/null; then
        echo "setup-sherpa: no LHAPDF given and no lhapdf-config on PATH" >&2
        exit 1
    fi
    lhapdf=$(lhapdf-config --prefix)
fi
if [[ ! -x "$lhapdf/bin/lhapdf-config" ]]; then
    echo "setup-sherpa: $lhapdf/bin/lhapdf-config not found (is $lhapdf an LHAPDF prefix?)" >&2
    exit 1
fi
version=${SHERPA_VERSION:-3.0.3b2}
workdir=${WORKDIR:-/tmp/sherpa-setup}
jobs=${JOBS:-$(nproc)}
python=$(command -v python3)
for tool in cmake make g++ gfortran swig curl "$python"; do
    command -v "$tool" >/dev/null || { echo "setup-sherpa: $tool not found" >&2; exit 1; }
done

mkdir -p "$workdir"
cd "$workdir"
src="$workdir/sherpa_mc-$version"
if [[ ! -d "$src" ]]; then
    # `pip download --no-binary :all: sherpa-mc` fetches the sdist but then fails: it
    # prepares the metadata with the package's build backend (scikit-build-core + swig from
    # PyPI). Take the sdist's address from PyPI's simple index instead.
    url=$(curl -fsSL "https://pypi.org/simple/sherpa-mc/" \
          | grep -o "https://[^\"#]*sherpa_mc-$version\.tar\.gz" | head -n 1)
    if [[ -z "$url" ]]; then
        echo "setup-sherpa: no sdist sherpa_mc-$version.tar.gz on PyPI" >&2
        exit 1
    fi
    curl -fsSL -o "sherpa_mc-$version.tar.gz" "$url"
    tar xzf "sherpa_mc-$version.tar.gz"
fi

# Everything that would download (internal LHAPDF and libzip, OpenLoops, Recola, ...) off;
# Comix, Amegic and the internal PDFs are always built. SHERPA_ENABLE_PYTHON builds the
# SWIG module and, with it, libMEProcess and its header (AddOns/Python/MEProcess.H).
cmake -S "$src" -B "$workdir/build" -Wno-dev \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$prefix" \
    -DSHERPA_ENABLE_LHAPDF=ON -DLHAPDF_DIR="$lhapdf" \
    -DSHERPA_ENABLE_INSTALL_LHAPDF=OFF -DSHERPA_ENABLE_INSTALL_LIBZIP=OFF \
    -DSHERPA_ENABLE_PYTHON=ON -DPython_EXECUTABLE="$python" \
    -DSHERPA_ENABLE_EXAMPLES=OFF -DSHERPA_ENABLE_MPI=OFF -DSHERPA_ENABLE_HEPMC3=OFF \
    -DSHERPA_ENABLE_RIVET=OFF -DSHERPA_ENABLE_ROOT=OFF -DSHERPA_ENABLE_OPENLOOPS=OFF \
    -DSHERPA_ENABLE_RECOLA=OFF -DSHERPA_ENABLE_UFO=OFF -DSHERPA_ENABLE_BINRELOC=OFF
nice -n 19 make -C "$workdir/build" -j "$jobs" install

for file in bin/Sherpa-config lib/SHERPA-MC/libMEProcess.so \
            include/SHERPA-MC/AddOns/Python/MEProcess.H; do
    if [[ ! -e "$prefix/$file" ]]; then
        echo "setup-sherpa: $prefix/$file is missing after the installation" >&2
        exit 1
    fi
done
echo "Sherpa $("$prefix/bin/Sherpa-config" --version) installed in $prefix"
echo "use it: export PATH=$prefix/bin:\$PATH  (or MADNIS_PY_SHERPA_PREFIX=$prefix)"
