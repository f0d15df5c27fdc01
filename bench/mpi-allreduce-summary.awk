#!/usr/bin/awk -f
# Summary of bench/mpi-allreduce.sh's lines: per program and rank count, the median over rounds of
# each run's median time, its bandwidth, and zili's bandwidth relative to each C variant.
/ allreduce f32 / {
  prog = $1; mib = $4; np = $7; sub(":", "", np); ms = $9
  key = prog " " np
  n[key]++; t[key, n[key]] = ms; size[np] = mib
  if (!(np in seen)) { seen[np] = 1; order[++nr] = np }
  if (!(prog in pseen)) { pseen[prog] = 1; progs[++np_] = prog }
}
function median(key,    i, j, a, m, tmp) {
  m = n[key]
  for (i = 1; i <= m; i++) a[i] = t[key, i]
  for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { tmp = a[i]; a[i] = a[j]; a[j] = tmp }
  return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
END {
  print ""
  print "| ranks | program | runs | median ms | algbw GB/s | zili / this |"
  print "|---|---|---|---|---|---|"
  for (r = 1; r <= nr; r++) {
    np = order[r]; z = median("zili " np)
    for (p = 1; p <= np_; p++) {
      key = progs[p] " " np
      if (!(key in n)) continue
      med = median(key)
      printf "| %s | %s | %d | %.1f | %.3f | %.2fx |\n", np, progs[p], n[key], med, size[np] * 1048576 / (med / 1000) / 1e9, med / z
    }
  }
}
