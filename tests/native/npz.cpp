// pyruntime native tests: the .npz reader (npz.h). A zip's local file headers are walked in order: signature
// PK\3\4, then method, sizes and the name; numpy.savez stores each array uncompressed (method 0), so the
// entry's data is an .npy file: magic \x93NUMPY, version, header length, a Python dict literal with
// 'descr', 'fortran_order' and 'shape', then the elements.
#include "npz.h"

#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace pyrt_test {
namespace {

uint32_t le(const uint8_t* p, int n) {
  uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

[[noreturn]] void bad(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

// The value after 'key': in the header dict, up to the next top-level ',' or '}' (a tuple kept whole).
std::string dict_value(const std::string& header, const std::string& key) {
  const size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) return {};
  size_t i = header.find(':', k) + 1;
  while (i < header.size() && header[i] == ' ') ++i;
  size_t j = i;
  int depth = 0;
  for (; j < header.size(); ++j) {
    if (header[j] == '(') ++depth;
    if (header[j] == ')') --depth;
    if (depth == 0 && (header[j] == ',' || header[j] == '}')) break;
  }
  return header.substr(i, j - i);
}

NpyArray parse_npy(const std::string& path, const std::string& name, const uint8_t* p, size_t n) {
  const std::string where = path + " [" + name + "]";
  if (n < 10 || std::memcmp(p, "\x93NUMPY", 6) != 0) bad(where, "not an .npy entry");
  const int major = p[6];
  size_t hlen, off;
  if (major == 1) hlen = le(p + 8, 2), off = 10;
  else hlen = le(p + 8, 4), off = 12;
  if (off + hlen > n) bad(where, "truncated header");
  const std::string header(reinterpret_cast<const char*>(p + off), hlen);
  NpyArray a;
  a.descr = dict_value(header, "descr");
  if (a.descr.size() >= 2) a.descr = a.descr.substr(1, a.descr.size() - 2);  // strip quotes
  if (dict_value(header, "fortran_order") != "False") bad(where, "Fortran order is not read");
  const std::string shape = dict_value(header, "shape");
  for (size_t i = 0; i < shape.size();) {
    if (shape[i] >= '0' && shape[i] <= '9') {
      size_t j = i;
      while (j < shape.size() && shape[j] >= '0' && shape[j] <= '9') ++j;
      a.shape.push_back(std::stoul(shape.substr(i, j - i)));
      i = j;
    } else {
      ++i;
    }
  }
  size_t item = 0;
  if (a.descr == "<f4" || a.descr == "<i4") item = 4;
  else if (a.descr == "<f8") item = 8;
  else if (a.descr == "|i1" || a.descr == "|u1") item = 1;
  else bad(where, "dtype " + a.descr + " is not read");
  const size_t bytes = a.numel() * item;
  if (off + hlen + bytes > n) bad(where, "truncated data");
  a.bytes.assign(p + off + hlen, p + off + hlen + bytes);
  return a;
}

}  // namespace

size_t NpyArray::numel() const {
  size_t n = 1;
  for (size_t d : shape) n *= d;
  return n;
}

std::vector<float> NpyArray::as_f32() const {
  std::vector<float> out(numel());
  for (size_t i = 0; i < out.size(); ++i) {
    if (descr == "<f4") std::memcpy(&out[i], bytes.data() + 4 * i, 4);
    else if (descr == "<f8") {
      double d;
      std::memcpy(&d, bytes.data() + 8 * i, 8);
      out[i] = static_cast<float>(d);
    } else if (descr == "<i4") {
      int32_t v;
      std::memcpy(&v, bytes.data() + 4 * i, 4);
      out[i] = static_cast<float>(v);
    } else {
      out[i] = static_cast<float>(static_cast<int8_t>(bytes[i]));
    }
  }
  return out;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw std::runtime_error(path + ": cannot open");
  std::vector<uint8_t> out;
  uint8_t buf[65536];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) out.insert(out.end(), buf, buf + got);
  std::fclose(f);
  return out;
}

std::map<std::string, NpyArray> read_npz(const std::string& path) {
  const std::vector<uint8_t> z = read_file(path);
  std::map<std::string, NpyArray> out;
  size_t at = 0;
  while (at + 30 <= z.size() && le(&z[at], 4) == 0x04034b50) {
    const uint8_t* h = &z[at];
    const uint32_t flags = le(h + 6, 2), method = le(h + 8, 2);
    uint64_t size = le(h + 18, 4);
    const uint32_t name_len = le(h + 26, 2), extra_len = le(h + 28, 2);
    if (at + 30 + name_len + extra_len > z.size()) bad(path, "truncated entry header");
    std::string name(reinterpret_cast<const char*>(h + 30), name_len);
    const uint8_t* extra = h + 30 + name_len;
    if (size == 0xffffffffu) {  // zip64: the sizes are in the extra field (id 1: size, then compressed size)
      for (size_t e = 0; e + 4 <= extra_len;) {
        const uint32_t id = le(extra + e, 2), len = le(extra + e + 2, 2);
        if (id == 1 && len >= 16) size = uint64_t(le(extra + e + 4, 4)) | uint64_t(le(extra + e + 8, 4)) << 32;
        e += 4 + len;
      }
    }
    if (method != 0) bad(path, "entry " + name + " is compressed (write it with numpy.savez, not savez_compressed)");
    if (flags & 8) bad(path, "entry " + name + " has a data descriptor (sizes after the data): not read");
    const size_t data = at + 30 + name_len + extra_len;
    if (data + size > z.size()) bad(path, "entry " + name + " is truncated");
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
    out.emplace(name, parse_npy(path, name, &z[data], size));
    at = data + size;
  }
  if (out.empty()) bad(path, "no arrays (not an .npz?)");
  return out;
}

}  // namespace pyrt_test
