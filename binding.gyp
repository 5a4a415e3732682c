# Alternative node-gyp build of the addon (the primary build is cmake-js over CMakeLists.txt).
# Same sources as CMake's stenosis_core + stenosis_addon: native/core/*.cc and native/binding/*.cc.
# libtorch is located by scripts/libtorch-config.js, in the same order as cmake/FindLibtorch.cmake.
# Output: build/Release/stenosis.node (node-gyp always builds into build/, the folder cmake-js uses too).
{
  "variables": {
    "torch_cuda%": "<!(node scripts/libtorch-config.js cuda)",
  },
  "targets": [
    {
      "target_name": "stenosis",
      "sources": [
        "<!@(node -e \"const fs=require('fs');for(const d of ['native/core','native/binding'])for(const f of fs.readdirSync(d).sort())if(f.endsWith('.cc'))console.log(d+'/'+f)\")",
      ],
      "include_dirs": [
        "native",
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node scripts/libtorch-config.js include)",
      ],
      # node's common.gypi defines _GLIBCXX_USE_CXX11_ABI=1; the libtorch's own setting comes from "cflags" below.
      "defines!": ["_GLIBCXX_USE_CXX11_ABI=1", "_GLIBCXX_USE_CXX11_ABI=0"],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "NAPI_CPP_EXCEPTIONS",
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": [
        "<!(node scripts/libtorch-config.js std)",
        "-fexceptions",
        "-frtti",
        "<!@(node scripts/libtorch-config.js cflags)",
      ],
      "configurations": {
        "Release": {
          "cflags!": ["-O3"],
          "cflags": ["-O2"],
        },
      },
      "libraries": ["<!@(node scripts/libtorch-config.js libs)"],
      "conditions": [
        ["torch_cuda==1", {"defines": ["STENOSIS_WITH_CUDA=1"]}],
      ],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "GCC_ENABLE_CPP_RTTI": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
      },
    },
  ],
}
