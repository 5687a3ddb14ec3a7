{
  "targets": [
    {
      "target_name": "wasmap_host",
      "sources": ["src/wasmap_host.c", "src/io.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
