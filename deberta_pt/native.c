/* Native CPU kernels of deberta_pt (see native.py, which compiles this file on first use and calls it through
 * ctypes). No Python or PyTorch headers: plain pointers and strides in elements.
 */
#include <stdint.h>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

/* Tiles of TILE x TILE, transposed in registers by add_full_tile where the CPU has the instructions for it. The
 * parallel loop runs over tiles of rows of dst (queries) on AVX-512 and over tiles of its columns (keys) on AVX2,
 * where reading 8 rows of src from start to end took 3.5 instead of 4.8 ms per block (AMD EPYC, 2 x 512). */
#if defined(__AVX512F__)
#define TILE 16
#define ROWS_OUTER 1
#define add_full_tile add_tile16
#elif defined(__AVX2__)
#define TILE 8
#define ROWS_OUTER 0
#define add_full_tile add_tile8
#else
#define TILE 16
#define ROWS_OUTER 1
#endif

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
#elif defined(__AVX2__)
/* add_tile of a full 8 x 8 tile: interleaving 32-bit elements, then pairs of them, within 128-bit lanes, then
 * combining the lanes. */
static void add_tile8(float *d, int64_t d_row, const float *s, int64_t s_row) {
  __m256 r[8], a[8], b[8];
  for (int k = 0; k < 8; k++) r[k] = _mm256_loadu_ps(s + k * s_row);
  for (int k = 0; k < 4; k++) {
    a[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    a[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  /* per 128-bit lane l, b[4k + c] holds rows 4k .. 4k + 3 of column 4l + c */
  for (int k = 0; k < 2; k++) {
    b[4 * k] = _mm256_shuffle_ps(a[4 * k], a[4 * k + 2], 0x44);
    b[4 * k + 1] = _mm256_shuffle_ps(a[4 * k], a[4 * k + 2], 0xEE);
    b[4 * k + 2] = _mm256_shuffle_ps(a[4 * k + 1], a[4 * k + 3], 0x44);
    b[4 * k + 3] = _mm256_shuffle_ps(a[4 * k + 1], a[4 * k + 3], 0xEE);
  }
  for (int c = 0; c < 4; c++) {
    float *low = d + c * d_row, *high = d + (4 + c) * d_row;
    _mm256_storeu_ps(low, _mm256_add_ps(_mm256_loadu_ps(low), _mm256_permute2f128_ps(b[c], b[4 + c], 0x20)));
    _mm256_storeu_ps(high, _mm256_add_ps(_mm256_loadu_ps(high), _mm256_permute2f128_ps(b[c], b[4 + c], 0x31)));
  }
}
#endif

/* dst[b, h, i, j] += src[b, h, j, i] for b < nb, h < nh, i < m, j < n: dst with strides (d_b, d_h, d_i, 1), src
 * with strides (s_b, s_h, s_j, 1) along (b, h, j, i). PyTorch's add reads such a transposed operand one
 * element per row; here each tile is read by rows and transposed in registers. Tiles of rows (or columns, see
 * ROWS_OUTER) are shared among `threads` OpenMP threads (the process's OpenMP runtime, PyTorch's own where it
 * uses libgomp). */
void add_transposed(float *dst, const float *src, int64_t nb, int64_t nh, int64_t m, int64_t n, int64_t d_b,
                    int64_t d_h, int64_t d_i, int64_t s_b, int64_t s_h, int64_t s_j, int threads) {
  const int64_t outer = ROWS_OUTER ? m : n, inner = ROWS_OUTER ? n : m;
  const int64_t outer_tiles = (outer + TILE - 1) / TILE;
#pragma omp parallel for collapse(3) schedule(static) num_threads(threads)
  for (int64_t b = 0; b < nb; b++)
    for (int64_t h = 0; h < nh; h++)
      for (int64_t t = 0; t < outer_tiles; t++)
        for (int64_t u = 0; u < inner; u += TILE) {
          const int64_t i0 = ROWS_OUTER ? t * TILE : u, j0 = ROWS_OUTER ? u : t * TILE;
          const int64_t ti = m - i0 < TILE ? m - i0 : TILE, tj = n - j0 < TILE ? n - j0 : TILE;
          float *d = dst + b * d_b + h * d_h + i0 * d_i + j0;
          const float *s = src + b * s_b + h * s_h + i0 + j0 * s_j;
#ifdef add_full_tile
          if (ti == TILE && tj == TILE) {
            add_full_tile(d, d_i, s, s_j);
            continue;
          }
#endif
          add_tile(d, d_i, s, s_j, ti, tj);
        }
}
