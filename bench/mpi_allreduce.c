/* The plain Open MPI baseline for `zili bench allreduce`: MPI_Allreduce (sum, in place) of a float
 * buffer, one call for the whole buffer as a C user would write it (or, with a chunk size, one call
 * per chunk as zili's communicator does), timed with MPI_Wtime after a barrier. Prints the median and
 * best of the timed iterations on rank 0 in the same format as zili's benchmark. Build and run with
 * bench/mpi-allreduce.sh.
 *   usage: mpi_allreduce [MiB=64] [iterations=10] [warmup=2] [chunk MiB=0: whole buffer]
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  double mib = argc > 1 ? atof(argv[1]) : 64;
  int iters = argc > 2 ? atoi(argv[2]) : 10, warmup = argc > 3 ? atoi(argv[3]) : 2;
  double chunkMib = argc > 4 ? atof(argv[4]) : 0;
  long n = (long)(mib * 1024 * 1024 / sizeof(float));
  long chunk = chunkMib > 0 ? (long)(chunkMib * 1024 * 1024 / sizeof(float)) : n;
  float* buf = malloc(n * sizeof(float));
  for (long i = 0; i < n; i++) buf[i] = (float)((rank + i) % 7);
  double* t = malloc(iters * sizeof(double));
  for (int it = -warmup; it < iters; it++) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (long a = 0; a < n; a += chunk)
      MPI_Allreduce(MPI_IN_PLACE, buf + a, (int)(n - a < chunk ? n - a : chunk), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double dt = MPI_Wtime() - t0, slowest;
    MPI_Allreduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (it >= 0) t[it] = slowest;
  }
  qsort(t, iters, sizeof(double), cmp);
  if (rank == 0) {
    double bytes = (double)n * sizeof(float), med = t[iters / 2];
    char label[32] = "c-mpi";
    if (chunk < n) snprintf(label, sizeof label, "c-mpi/%gM", chunkMib);
    printf("%-9s allreduce f32 %.0f MiB ranks %d: median %.1f ms, best %.1f ms, algbw %.2f GB/s, busbw %.2f GB/s\n", label, mib, size, med * 1e3,
           t[0] * 1e3, bytes / med / 1e9, bytes / med / 1e9 * 2.0 * (size - 1) / size);
  }
  free(t);
  free(buf);
  MPI_Finalize();
  return 0;
}
