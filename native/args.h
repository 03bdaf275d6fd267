// Argument checks shared by every native function. JavaScript hands the addon
// strings that can come from image content (PAX xattr names, entry names), so
// the native side re-checks them instead of trusting the caller:
//  - a string or Buffer with an embedded NUL is refused (c_str() would cut it
//    silently and the syscall would act on another name, as Node's fs refuses);
//  - numbers must be integers in the C type's range (a NaN or 2^32 would wrap
//    to 0 and turn a device 2^32/0 into the overlay whiteout 0/0).
#pragma once
#include <cmath>
#include <cstdint>
#include <napi.h>
#include <string>

namespace tsgraph {

// Argument i as bytes: a string (UTF-8) or a Buffer (raw bytes, for file names
// that are not UTF-8). Throws TypeError on any other type or a NUL byte.
inline std::string BytesArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Env env = info.Env();
  std::string out;
  if (i < info.Length() && info[i].IsString()) {
    out = info[i].As<Napi::String>().Utf8Value();
  } else if (i < info.Length() && info[i].IsBuffer()) {
    Napi::Buffer<char> b = info[i].As<Napi::Buffer<char>>();
    out.assign(b.Data(), b.Length());
  } else {
    throw Napi::TypeError::New(env, std::string(what) + " must be a string or Buffer");
  }
  if (out.find('\0') != std::string::npos) throw Napi::TypeError::New(env, std::string(what) + " must not contain NUL bytes");
  return out;
}

// Argument i as an integer in [lo, hi]; TypeError/RangeError otherwise.
inline double IntArg(const Napi::CallbackInfo& info, size_t i, const char* what, double lo, double hi) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsNumber()) throw Napi::TypeError::New(env, std::string(what) + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v) || std::floor(v) != v || v < lo || v > hi) {
    throw Napi::RangeError::New(env, std::string(what) + " is out of range");
  }
  return v;
}

inline uint32_t U32Arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return static_cast<uint32_t>(IntArg(info, i, what, 0, 4294967295.0));
}

inline int32_t I32Arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return static_cast<int32_t>(IntArg(info, i, what, -2147483648.0, 2147483647.0));
}

}  // namespace tsgraph
