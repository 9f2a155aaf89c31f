/* Native CPU kernels of deberta_pt (see native.py, which compiles this file on first use and calls it through
 * ctypes). No Python or PyTorch headers: plain pointers and strides in elements.
 */
#include <stdint.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define TILE 16

/* d[i, j] += s[j, i] for a tile of ti x tj; d has unit stride along j, s along i. */
static void add_tile(float *d, int64_t d_row, const float *s, int64_t s_row, int64_t ti, int64_t tj) {
  for (int64_t i = 0; i < ti; i++)
    for (int64_t j = 0; j < tj; j++) d[i * d_row + j] += s[j * s_row + i];
}

#ifdef __AVX512F__
/* add_tile of a full 16 x 16 tile: its 16 rows of s transposed in registers (interleaving 32-bit, then 64-bit
 * elements within 128-bit lanes, then the lanes), each column added to a row of d. */
static void add_tile16(float *d, int64_t d_row, const float *s, int64_t s_row) {
  __m512 r[16], a[16], b[16];
  for (int k = 0; k < 16; k++) r[k] = _mm512_loadu_ps(s + k * s_row);
  for (int k = 0; k < 8; k++) {
    a[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    a[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  /* per 128-bit lane l, b[4k + c] holds rows 4k .. 4k + 3 of column 4l + c */
  for (int k = 0; k < 4; k++) {
    __m512d x0 = _mm512_castps_pd(a[4 * k]), x1 = _mm512_castps_pd(a[4 * k + 1]);
    __m512d x2 = _mm512_castps_pd(a[4 * k + 2]), x3 = _mm512_castps_pd(a[4 * k + 3]);
    b[4 * k] = _mm512_castpd_ps(_mm512_unpacklo_pd(x0, x2));
    b[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(x0, x2));
    b[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(x1, x3));
    b[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(x1, x3));
  }
  for (int c = 0; c < 4; c++) {
    __m512 e0 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x44), e1 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xEE);
    __m512 f0 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x44);
    __m512 f1 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xEE);
    __m512 column[4] = {_mm512_shuffle_f32x4(e0, f0, 0x88), _mm512_shuffle_f32x4(e0, f0, 0xDD),
                        _mm512_shuffle_f32x4(e1, f1, 0x88), _mm512_shuffle_f32x4(e1, f1, 0xDD)};
    for (int l = 0; l < 4; l++) {
      float *row = d + (4 * l + c) * d_row;
      _mm512_storeu_ps(row, _mm512_add_ps(_mm512_loadu_ps(row), column[l]));
    }
  }
}
#endif

/* dst[b, h, i, j] += src[b, h, j, i] for b < nb, h < nh, i < m, j < n: dst with strides (d_b, d_h, d_i, 1), src
 * with strides (s_b, s_h, s_j, 1) along (b, h, j, i). PyTorch's add reads such a transposed operand one
 * element per row; here each 16 x 16 tile is read by rows and transposed in registers. Rows of 16 queries are
 * shared among `threads` OpenMP threads (the process's OpenMP runtime, PyTorch's own where it uses libgomp). */
void add_transposed(float *dst, const float *src, int64_t nb, int64_t nh, int64_t m, int64_t n, int64_t d_b,
                    int64_t d_h, int64_t d_i, int64_t s_b, int64_t s_h, int64_t s_j, int threads) {
  const int64_t row_tiles = (m + TILE - 1) / TILE;
#pragma omp parallel for collapse(3) schedule(static) num_threads(threads)
  for (int64_t b = 0; b < nb; b++)
    for (int64_t h = 0; h < nh; h++)
      for (int64_t t = 0; t < row_tiles; t++) {
        const int64_t i0 = t * TILE, ti = m - i0 < TILE ? m - i0 : TILE;
        float *d = dst + b * d_b + h * d_h + i0 * d_i;
        const float *s = src + b * s_b + h * s_h + i0;
        for (int64_t j0 = 0; j0 < n; j0 += TILE) {
          const int64_t tj = n - j0 < TILE ? n - j0 : TILE;
#ifdef __AVX512F__
          if (ti == TILE && tj == TILE) {
            add_tile16(d + j0, d_i, s + j0 * s_j, s_j);
            continue;
          }
#endif
          add_tile(d + j0, d_i, s + j0 * s_j, s_j, ti, tj);
        }
      }
}
