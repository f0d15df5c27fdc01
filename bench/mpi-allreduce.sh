#!/usr/bin/env bash
# All-reduce bandwidth, zili's Communicator vs a plain C Open MPI program, in one run: for each rank
# count, in turn the C program (bench/mpi_allreduce.c) with one MPI_Allreduce for the whole buffer
# ("c-mpi"), the C program in 16 MiB chunks as zili does ("c-mpi/16M"), and `zili bench allreduce`,
# `rounds` times, same message size. Results go in bench/RESULTS.md.
#   usage: bench/mpi-allreduce.sh [MiB=64] [ranks="2 4"] [rounds=3] [iterations=10]
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-64}
RANKS=${2:-"2 4"}
ROUNDS=${3:-3}
ITERS=${4:-10}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mpicc -O2 -o "$out/mpi_allreduce" bench/mpi_allreduce.c
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none)
echo "# $(date -u +%F) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for np in $RANKS; do
  for r in $(seq "$ROUNDS"); do
    "${MPIRUN[@]}" -np "$np" "$out/mpi_allreduce" "$MIB" "$ITERS" 2
    "${MPIRUN[@]}" -np "$np" "$out/mpi_allreduce" "$MIB" "$ITERS" 2 16
    "${MPIRUN[@]}" -np "$np" node bin/zili bench allreduce --mib "$MIB" --iterations "$ITERS" --warmup 2
  done
done | tee "$out/lines"
bench/mpi-allreduce-summary.awk "$out/lines"
