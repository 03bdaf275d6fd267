// Idmapped mounts (native/idmap.cc), shared with mount-api.cc: overlay takes
// its layers from one idmapped detached clone of the driver's home.
#pragma once
#include <napi.h>
#include <string>

namespace tsgraph {

// A detached clone of the mount tree at `path` (open_tree OPEN_TREE_CLONE,
// AT_RECURSIVE when `recursive`), idmapped to the user namespace `usernsFd`
// and given the MOUNT_ATTR_* bits `attrs` (mount_setattr). Returns the mount
// fd (O_CLOEXEC; the caller closes it). Throws an errno-shaped Error.
int OpenIdmappedTree(const Napi::Env& env, const std::string& path, int usernsFd, unsigned attrs, bool recursive);

// Throws (EINVAL, with a message) unless `fd` refers to a user namespace.
void RequireUsernsFd(const Napi::Env& env, int fd, const std::string& what);

// `rel` (relative, no "..", no empty or "." components, no NUL) opened
// O_PATH|O_DIRECTORY beneath the directory fd `base` with openat2
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV:
// the result is a directory on the very mount `base` stands for.
int OpenDirBeneath(const Napi::Env& env, int base, const std::string& rel, const std::string& what);

}  // namespace tsgraph
