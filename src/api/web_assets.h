// The browser app's files (web/, bundled by esbuild at build time), compiled into the
// binary by web/build.mjs, which generates web_assets.cc in the build directory: one file
// to install, no network at run time.
#pragma once

#include <cstddef>
#include <string_view>

namespace dormouse::api {

struct WebAsset {
  std::string_view path;  // "/", "/assets/app.js", ...
  std::string_view content_type;
  std::string_view body;
};

// Every asset; the generated file defines them.
extern const WebAsset kWebAssets[];
extern const size_t kWebAssetCount;

}  // namespace dormouse::api
