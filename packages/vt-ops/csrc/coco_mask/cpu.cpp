// Ports of pycocotools' maskApi.c (same integer types and operation order).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include "coco_mask/coco_mask.h"

namespace vt_ops {
namespace coco {

size_t rle_string_length(const char* s, size_t len) {
  size_t m = 0;
  for (size_t p = 0; p < len && s[p]; ++p) m += ((s[p] - 48) & 0x20) == 0;
  return m;
}

void rle_from_string(const char* s, size_t len, uint32_t* out) {
  size_t p = 0, m = 0;
  while (p < len && s[p]) {
    int64_t x = 0;
    int k = 0, c;
    do {
      if (p >= len || !s[p]) throw std::invalid_argument("truncated compressed RLE string");
      c = s[p++] - 48;
      x |= static_cast<int64_t>(c & 0x1f) << (5 * k);
      ++k;
    } while ((c & 0x20) && k < 12);
    if (c & 0x20) throw std::invalid_argument("malformed compressed RLE string");
    if (c & 0x10) x |= -(int64_t(1) << (5 * k));  // sign extension
    if (m > 2) x += static_cast<int64_t>(out[m - 2]);
    out[m++] = static_cast<uint32_t>(x);
  }
}

void rle_to_string(const uint32_t* cnts, int64_t m, std::string& out) {
  for (int64_t i = 0; i < m; ++i) {
    int64_t x = static_cast<int64_t>(cnts[i]);
    if (i > 2) x -= static_cast<int64_t>(cnts[i - 2]);
    bool more = true;
    while (more) {
      char c = static_cast<char>(x & 0x1f);
      x >>= 5;
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      c += 48;
      out.push_back(c);
    }
  }
}

void rle_from_polygon(const double* xy, int64_t k, int64_t h, int64_t w,
                      std::vector<uint32_t>& out) {
  const double scale = 5;
  if (k <= 0) {  // no vertices: an empty mask (maskApi would read out of bounds)
    out.push_back(static_cast<uint32_t>(h * w));
    return;
  }
  std::vector<int> x(k + 1), y(k + 1);
  for (int64_t j = 0; j < k; ++j) x[j] = static_cast<int>(scale * xy[j * 2 + 0] + .5);
  x[k] = x[0];
  for (int64_t j = 0; j < k; ++j) y[j] = static_cast<int>(scale * xy[j * 2 + 1] + .5);
  y[k] = y[0];
  int64_t m = 0;
  for (int64_t j = 0; j < k; ++j)
    m += std::max(std::abs(x[j] - x[j + 1]), std::abs(y[j] - y[j + 1])) + 1;
  std::vector<int> u(m), v(m);
  m = 0;
  for (int64_t j = 0; j < k; ++j) {
    int xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1], t;
    const int dx = std::abs(xe - xs), dy = std::abs(ys - ye);
    const bool flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      std::swap(xs, xe);
      std::swap(ys, ye);
    }
    const double s = dx >= dy ? static_cast<double>(ye - ys) / dx : static_cast<double>(xe - xs) / dy;
    if (dx >= dy) {
      for (int d = 0; d <= dx; ++d) {
        t = flip ? dx - d : d;
        u[m] = t + xs;
        v[m] = static_cast<int>(ys + s * t + .5);
        ++m;
      }
    } else {
      for (int d = 0; d <= dy; ++d) {
        t = flip ? dy - d : d;
        v[m] = t + ys;
        u[m] = static_cast<int>(xs + s * t + .5);
        ++m;
      }
    }
  }
  // points along the y-boundary, downsampled
  const int64_t npts = m;
  std::vector<uint32_t> a;
  a.reserve(npts + 1);
  for (int64_t j = 1; j < npts; ++j) {
    if (u[j] == u[j - 1]) continue;
    double xd = static_cast<double>(u[j] < u[j - 1] ? u[j] : u[j] - 1);
    xd = (xd + .5) / scale - .5;
    if (std::floor(xd) != xd || xd < 0 || xd > static_cast<double>(w - 1)) continue;
    double yd = static_cast<double>(v[j] < v[j - 1] ? v[j] : v[j - 1]);
    yd = (yd + .5) / scale - .5;
    if (yd < 0)
      yd = 0;
    else if (yd > static_cast<double>(h))
      yd = static_cast<double>(h);
    yd = std::ceil(yd);
    a.push_back(static_cast<uint32_t>(static_cast<int>(xd) * static_cast<int>(h) +
                                      static_cast<int>(yd)));
  }
  a.push_back(static_cast<uint32_t>(h * w));
  std::sort(a.begin(), a.end());
  uint32_t p = 0;
  for (auto& value : a) {
    const uint32_t t = value;
    value -= p;
    p = t;
  }
  size_t j = 0;
  out.push_back(a[j++]);
  while (j < a.size()) {
    if (a[j] > 0) {
      out.push_back(a[j++]);
    } else {
      ++j;
      if (j < a.size()) out.back() += a[j++];
    }
  }
}

void rle_from_bbox(const double* bb, int64_t h, int64_t w, std::vector<uint32_t>& out) {
  const double xs = bb[0], xe = xs + bb[2];
  const double ys = bb[1], ye = ys + bb[3];
  const double xy[8] = {xs, ys, xs, ye, xe, ye, xe, ys};
  rle_from_polygon(xy, 4, h, w, out);
}

void rle_merge(const RleView* rles, int64_t n, bool intersect, std::vector<uint32_t>& out,
               int64_t& h_out, int64_t& w_out) {
  if (n == 0) {
    h_out = w_out = 0;
    return;
  }
  int64_t h = rles[0].h, w = rles[0].w;
  if (n == 1) {
    out.insert(out.end(), rles[0].cnts, rles[0].cnts + rles[0].m);
    h_out = h;
    w_out = w;
    return;
  }
  std::vector<uint32_t> cnts(rles[0].cnts, rles[0].cnts + rles[0].m), next;
  for (int64_t i = 1; i < n; ++i) {
    const RleView& B = rles[i];
    if (B.h != h || B.w != w) {
      h = w = 0;
      cnts.clear();
      break;
    }
    const std::vector<uint32_t> A = std::move(cnts);
    cnts.clear();
    // maskApi reads cnts[0] of both inputs; an RLE without counts reads as an empty run.
    uint32_t ca = A.empty() ? 0 : A[0], cb = B.m ? B.cnts[0] : 0, c, cc = 0, ct = 1;
    bool v = false, va = false, vb = false, vp;
    size_t a = 1, b = 1;
    while (ct > 0) {
      c = std::min(ca, cb);
      cc += c;
      ct = 0;
      ca -= c;
      if (!ca && a < A.size()) {
        ca = A[a++];
        va = !va;
      }
      ct += ca;
      cb -= c;
      if (!cb && static_cast<int64_t>(b) < B.m) {
        cb = B.cnts[b++];
        vb = !vb;
      }
      ct += cb;
      vp = v;
      v = intersect ? (va && vb) : (va || vb);
      if (v != vp || ct == 0) {
        cnts.push_back(cc);
        cc = 0;
      }
    }
  }
  out.insert(out.end(), cnts.begin(), cnts.end());
  h_out = h;
  w_out = w;
}

void rle_encode(const uint8_t* mask, int64_t h, int64_t w, std::vector<uint32_t>& out) {
  const int64_t area = h * w;
  uint32_t c = 0;
  uint8_t p = 0;
  for (int64_t j = 0; j < area; ++j) {
    if (mask[j] != p) {
      out.push_back(c);
      c = 0;
      p = mask[j];
    }
    ++c;
  }
  out.push_back(c);
}

bool rle_decode(const RleView& r, uint8_t* mask) {
  const int64_t size = r.h * r.w;
  int64_t pos = 0;
  uint8_t v = 0;
  for (int64_t j = 0; j < r.m; ++j) {
    const int64_t c = r.cnts[j];
    if (pos + c > size) return false;
    std::fill(mask + pos, mask + pos + c, v);
    pos += c;
    v = !v;
  }
  std::fill(mask + pos, mask + size, uint8_t(0));
  return true;
}

uint32_t rle_area(const RleView& r) {
  uint32_t a = 0;
  for (int64_t j = 1; j < r.m; j += 2) a += r.cnts[j];
  return a;
}

void rle_to_bbox(const RleView& r, double* bb) {
  const uint32_t h = static_cast<uint32_t>(r.h), w = static_cast<uint32_t>(r.w);
  const int64_t m = (r.m / 2) * 2;
  uint32_t xs = w, ys = h, xe = 0, ye = 0, cc = 0;
  if (m == 0) {
    bb[0] = bb[1] = bb[2] = bb[3] = 0;
    return;
  }
  for (int64_t j = 0; j < m; ++j) {
    const uint32_t start = cc;
    cc += r.cnts[j];
    if (j % 2 == 0 || r.cnts[j] == 0) continue;  // background or empty foreground run
    const uint32_t x_start = start / h, y_start = start - x_start * h;
    const uint32_t x_end = (cc - 1) / h, y_end = (cc - 1) - x_end * h;
    xs = std::min(xs, x_start);
    xe = std::max(xe, x_end);
    if (x_start < x_end) {  // the run crosses columns
      ys = 0;
      ye = h - 1;
    } else {
      ys = std::min(ys, y_start);
      ye = std::max(ye, y_end);
    }
  }
  bb[0] = xs;
  bb[2] = static_cast<uint32_t>(xe - xs + 1);
  bb[1] = ys;
  bb[3] = static_cast<uint32_t>(ye - ys + 1);
}

double rle_iou_pair(const RleView& dt, const RleView& gt, const double* dt_box,
                    const double* gt_box, bool crowd) {
  if (!(coco_box_iou_pair(dt_box, gt_box, crowd) > 0)) return 0;
  if (dt.h != gt.h || dt.w != gt.w) return -1;
  uint32_t ca = dt.cnts[0], cb = gt.cnts[0], c, ct = 1, i = 0, u = 0;
  bool va = false, vb = false;
  int64_t a = 1, b = 1;
  while (ct > 0) {
    c = std::min(ca, cb);
    if (va || vb) {
      u += c;
      if (va && vb) i += c;
    }
    ct = 0;
    ca -= c;
    if (!ca && a < dt.m) {
      ca = dt.cnts[a++];
      va = !va;
    }
    ct += ca;
    cb -= c;
    if (!cb && b < gt.m) {
      cb = gt.cnts[b++];
      vb = !vb;
    }
    ct += cb;
  }
  if (i == 0)
    u = 1;
  else if (crowd)
    u = rle_area(dt);
  return static_cast<double>(i) / static_cast<double>(u);
}

}  // namespace coco
}  // namespace vt_ops
