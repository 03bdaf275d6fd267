// Argument checks shared by every native function. JavaScript hands the addon
// strings that can come from image content (PAX xattr names, entry names), so
// the native side re-checks them instead of trusting the caller:
//  - a string or Buffer with an embedded NUL is refused (c_str() would cut it
//    silently and the syscall would act on another name, as Node's fs refuses);
//  - numbers must be integers in the C type's range (a NaN or 2^32 would wrap
//    to 0 and turn a device 2^32/0 into the overlay whiteout 0/0).
// Errors carry Node's own codes (ERR_INVALID_ARG_TYPE / _VALUE,
// ERR_OUT_OF_RANGE) so src/ can tell a refused argument from a failed syscall.
#pragma once
#include <cmath>
#include <cstdint>
#include <napi.h>
#include <string>

namespace tsgraph {

inline Napi::Error ArgError(Napi::Error e, const char* code) {
  e.Set("code", Napi::String::New(e.Env(), code));
  return e;
}

inline Napi::Error ArgTypeError(const Napi::Env& env, const std::string& message) {
  return ArgError(Napi::TypeError::New(env, message), "ERR_INVALID_ARG_TYPE");
}

// A value as bytes: a string (UTF-8) or a Buffer (raw bytes, for file names
// that are not UTF-8). Throws TypeError on any other type or a NUL byte.
inline std::string BytesValue(const Napi::Env& env, const Napi::Value& v, const std::string& what) {
  std::string out;
  if (v.IsString()) {
    out = v.As<Napi::String>().Utf8Value();
  } else if (v.IsBuffer()) {
    Napi::Buffer<char> b = v.As<Napi::Buffer<char>>();
    out.assign(b.Data(), b.Length());
  } else {
    throw ArgTypeError(env, what + " must be a string or Buffer");
  }
  if (out.find('\0') != std::string::npos) {
    throw ArgError(Napi::TypeError::New(env, what + " must not contain NUL bytes"), "ERR_INVALID_ARG_VALUE");
  }
  return out;
}

// Argument i as bytes (see BytesValue).
inline std::string BytesArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length()) throw ArgTypeError(info.Env(), std::string(what) + " must be a string or Buffer");
  return BytesValue(info.Env(), info[i], what);
}

// Argument i as bytes, or absent (null/undefined) → false and `out` untouched.
inline bool OptBytesArg(const Napi::CallbackInfo& info, size_t i, const char* what, std::string& out) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return false;
  out = BytesValue(info.Env(), info[i], what);
  return true;
}

// Argument i as an integer in [lo, hi]; TypeError/RangeError otherwise.
inline double IntArg(const Napi::CallbackInfo& info, size_t i, const char* what, double lo, double hi) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsNumber()) throw ArgTypeError(env, std::string(what) + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v) || std::floor(v) != v || v < lo || v > hi) {
    throw ArgError(Napi::RangeError::New(env, std::string(what) + " is out of range"), "ERR_OUT_OF_RANGE");
  }
  return v;
}

inline uint32_t U32Arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return static_cast<uint32_t>(IntArg(info, i, what, 0, 4294967295.0));
}

inline int32_t I32Arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return static_cast<int32_t>(IntArg(info, i, what, -2147483648.0, 2147483647.0));
}

// A file descriptor: 0 … INT32_MAX (a negative one would mean AT_FDCWD or "none").
inline int FdArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return static_cast<int>(IntArg(info, i, what, 0, 2147483647.0));
}

// Flags: an unsigned integer with no bits outside `allowed`.
inline uint32_t FlagsArg(const Napi::CallbackInfo& info, size_t i, const char* what, uint32_t allowed) {
  uint32_t v = U32Arg(info, i, what);
  if (v & ~allowed) throw ArgError(Napi::RangeError::New(info.Env(), std::string(what) + " has unknown bits set"), "ERR_OUT_OF_RANGE");
  return v;
}

inline bool BoolArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsBoolean()) throw ArgTypeError(info.Env(), std::string(what) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

}  // namespace tsgraph
