{
  "targets": [
    {
      "target_name": "wasmap_host",
      "sources": ["src/wasmap_host.c", "src/io.c", "src/fdpass.c", "src/fence.c", "src/xdp.c", "src/udp.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "cflags!": ["-O3"],
      "defines": ["NAPI_VERSION=8"],
      # Bind every symbol at load time: an unresolved one then fails require() (which
      # loadHost reports) instead of killing the process the first time it is called.
      "ldflags": ["-Wl,-z,now"]
    }
  ]
}
