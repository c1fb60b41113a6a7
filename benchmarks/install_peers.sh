#!/usr/bin/env bash
# Install the peer tools the benchmarks compare against, from Debian's packages:
#   ncbi-blast+ (makeblastdb, blastn) and vsearch (--sintax, --cluster_size).
# Idempotent: does nothing when both are already on PATH. Needs root (or sudo).
set -euo pipefail
if command -v blastn >/dev/null && command -v makeblastdb >/dev/null && command -v vsearch >/dev/null; then
  echo "peers present: $(blastn -version | head -1); $(vsearch --version 2>&1 | head -1)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends ncbi-blast+ vsearch
echo "installed: $(blastn -version | head -1); $(vsearch --version 2>&1 | head -1)"
