#!/usr/bin/env bash
# Build KenLM's lmplz, build_binary and query from source into the git-ignored .kenlm/, the
# anchor that benchmarks/ngram.py and tests/models/test_kenlm_anchor.py measure elman against.
#
#   bash benchmarks/kenlm.sh [SOURCE]
#
# SOURCE: a git repository of kpu/kenlm (a URL or a local clone; default: the search tool's
# mirror at /work/.mirror/kpu+kenlm/repo when present, else https://github.com/kpu/kenlm).
# Needs cmake, a C++ compiler and Boost, zlib, bz2 and lzma headers; on Debian:
#   apt-get install cmake g++ libboost-program-options-dev libboost-system-dev \
#       libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev
# The binaries land in .kenlm/bin; .kenlm/COMMIT names the KenLM commit they were built from.
set -euo pipefail
cd "$(dirname "$0")/.."
MIRROR=/work/.mirror/kpu+kenlm/repo
SOURCE="${1:-$([ -d "$MIRROR" ] && echo "$MIRROR" || echo https://github.com/kpu/kenlm)}"
JOBS="${JOBS:-$(nproc)}"
rm -rf .kenlm/src .kenlm/build
mkdir -p .kenlm/bin
git clone -q "$SOURCE" .kenlm/src
git -C .kenlm/src rev-parse HEAD > .kenlm/COMMIT
cmake -S .kenlm/src -B .kenlm/build -DCMAKE_BUILD_TYPE=Release -DKENLM_MAX_ORDER=6 \
    -DBUILD_TESTING=OFF -DENABLE_PYTHON=OFF > .kenlm/cmake.log
cmake --build .kenlm/build --target lmplz build_binary query -j "$JOBS" > .kenlm/build.log
cp .kenlm/build/bin/lmplz .kenlm/build/bin/build_binary .kenlm/build/bin/query .kenlm/bin/
echo "KenLM $(cut -c1-12 .kenlm/COMMIT): $(ls .kenlm/bin | tr '\n' ' ')in .kenlm/bin"
