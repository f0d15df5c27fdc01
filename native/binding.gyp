{
  "targets": [
    {
      "target_name": "zili_native",
      "sources": ["addon.cc", "gemm.cc", "kernels.cc", "attention.cc", "peak.cc"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-O2", "-O3"],
      "cflags!": ["-fno-exceptions", "-O2"],
      "cflags_cc": ["-O3", "-march=native", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math", "-fopenmp", "-fexceptions", "-Wno-unused-function"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-lopenblas", "-ldnnl", "-lgomp"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
