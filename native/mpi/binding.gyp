{
  "targets": [
    {
      "target_name": "zili_mpi",
      "sources": ["zili_mpi.cc"],
      "cflags_cc!": ["-fno-exceptions", "-O2"],
      "cflags_cc": ["-O2", "-std=c++17", "-pthread", "<!@(mpicxx --showme:compile)"],
      "ldflags": ["-pthread"],
      "libraries": ["<!@(mpicxx --showme:link)", "-ldl"],
      "defines": ["NAPI_VERSION=8", "OMPI_SKIP_MPICXX=1"]
    }
  ]
}
