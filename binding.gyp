{
  "targets": [
    {
      "target_name": "tsgraph_native",
      "sources": ["native/binding.cc", "native/lock.cc", "native/mount-api.cc", "native/mount-classic.cc", "native/fs-ops.cc", "native/btrfs.cc", "native/at-ops.cc", "native/signal-watchdog.cc", "native/apply-batch.cc", "native/idmap.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"]
    }
  ]
}
