#pragma once

#include <napi.h>

namespace stenosis::binding {

// Adds prepareBase and augmentBatch to the addon's exports.
void RegisterPreprocessing(Napi::Env env, Napi::Object exports);

}  // namespace stenosis::binding
