/*
 * A small NEON binary convolution for aarch64 (horq-keras), the stand-in for LCE's
 * hand-written kernels in benchmarks/arm_emulated.py. LCE's own kernels (assembly, tuned
 * blocking) are at least as fast; these counts are an upper bound on LCE's binary work.
 *
 *   quantize   H W C          float32 [H,W,C] -> 64-bit words [H,W,ceil(C/64)]
 *              (LceQuantize: bit i of a word is 1 where channel i is negative)
 *   dequantize H W C          words -> float32 +-1 (LceDequantize)
 *   bconv      H W C O KH KW SH SW SAME PACKED
 *              LceBconv2d: packed input [H,W,Cw], packed filters [O,KH,KW,Cw],
 *              float32 multiplier [O] and bias [O] (the fused batch norm / alpha) ->
 *              out = multiplier * (K - 2 popcount(x XOR w)) + bias, K = KH KW C,
 *              float32 [Ho,Wo,O] or, with PACKED=1, its signs bitpacked.
 *              SAME=1 pads with +1 (zero words: LCE's 'same-one' padding).
 *              Method: im2col of the packed words (a patch row of KH*KW*Cw words, padded
 *              to an even count), then a GEMM over 128-bit lanes: veorq, vcntq_u8
 *              popcount, vpadalq_u8 accumulation, register-blocked 2 pixels x 4 filters.
 *
 * Usage: neon_bgemm OP IN OUT REPEATS DIMS...   IN holds the inputs in the order above,
 * OUT receives the output. The op runs once (warm-up), then REPEATS times between two
 * marker system calls (tags 1 and 2) that benchmarks/arm/marker_plugin.c counts.
 */
#include <arm_neon.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MARKER_SYSCALL 4090

static void marker(long tag) { syscall(MARKER_SYSCALL, tag); }

static void *xmalloc(size_t n)
{
    void *p = aligned_alloc(64, (n + 63) / 64 * 64 + 64);
    if (p == NULL) { fprintf(stderr, "out of memory\n"); exit(2); }
    memset(p, 0, n);
    return p;
}

/* Pack c floats into ceil(c/64) words: bit i of word w is (x[64w+i] < 0). */
static void pack_signs(const float *x, int c, uint64_t *out)
{
    static const uint8_t weights[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t bit = vld1q_u8(weights);
    int w = 0;
    for (; (w + 1) * 64 <= c; w++, x += 64) {
        uint8x16_t b[4];
        for (int j = 0; j < 4; j++) {
            const float *y = x + 16 * j;
            uint16x8_t lo = vcombine_u16(vmovn_u32(vcltzq_f32(vld1q_f32(y))),
                                         vmovn_u32(vcltzq_f32(vld1q_f32(y + 4))));
            uint16x8_t hi = vcombine_u16(vmovn_u32(vcltzq_f32(vld1q_f32(y + 8))),
                                         vmovn_u32(vcltzq_f32(vld1q_f32(y + 12))));
            b[j] = vandq_u8(vcombine_u8(vmovn_u16(lo), vmovn_u16(hi)), bit);
        }
        uint8x16_t q = vpaddq_u8(vpaddq_u8(b[0], b[1]), vpaddq_u8(b[2], b[3]));
        out[w] = vgetq_lane_u64(vreinterpretq_u64_u8(vpaddq_u8(q, q)), 0);
    }
    if (w * 64 < c) { /* tail channels */
        uint64_t word = 0;
        for (int i = 0; w * 64 + i < c; i++) word |= (uint64_t)(x[i] < 0.0f) << i;
        out[w] = word;
    }
}

static void quantize(const float *x, int pixels, int c, uint64_t *out)
{
    int cw = (c + 63) / 64;
    for (int p = 0; p < pixels; p++) pack_signs(x + (size_t)p * c, c, out + (size_t)p * cw);
}

static void dequantize(const uint64_t *in, int pixels, int c, float *out)
{
    static const uint32_t nibble_bits[4] = {1, 2, 4, 8};
    const uint32x4_t bits = vld1q_u32(nibble_bits);
    const float32x4_t plus = vdupq_n_f32(1.0f), minus = vdupq_n_f32(-1.0f);
    int cw = (c + 63) / 64;
    for (int p = 0; p < pixels; p++) {
        float *y = out + (size_t)p * c;
        for (int w = 0; w < cw; w++) {
            uint64_t word = in[(size_t)p * cw + w];
            int n = c - 64 * w < 64 ? c - 64 * w : 64;
            int i = 0;
            for (; i + 4 <= n; i += 4) {
                uint32x4_t m = vtstq_u32(vdupq_n_u32((uint32_t)(word >> i)), bits);
                vst1q_f32(y + 64 * w + i, vbslq_f32(m, minus, plus));
            }
            for (; i < n; i++) y[64 * w + i] = (word >> i) & 1 ? -1.0f : 1.0f;
        }
    }
}

struct conv {
    int h, w, c, o, kh, kw, sh, sw, same, packed;
    int cw, ho, wo, pad_h, pad_w, k_words, k_even, o_pad, p_pad;
};

/* Rows of k_even words per output pixel: the receptive field's packed words. */
static void im2col(const struct conv *s, const uint64_t *in, uint64_t *cols)
{
    for (int oy = 0; oy < s->ho; oy++)
        for (int ox = 0; ox < s->wo; ox++) {
            uint64_t *row = cols + (size_t)(oy * s->wo + ox) * s->k_even;
            for (int ky = 0; ky < s->kh; ky++) {
                int y = oy * s->sh + ky - s->pad_h;
                for (int kx = 0; kx < s->kw; kx++, row += s->cw) {
                    int x = ox * s->sw + kx - s->pad_w;
                    if (y < 0 || y >= s->h || x < 0 || x >= s->w)
                        memset(row, 0, sizeof(uint64_t) * s->cw); /* +1 padding */
                    else
                        memcpy(row, in + ((size_t)y * s->w + x) * s->cw,
                               sizeof(uint64_t) * s->cw);
                }
            }
        }
}

static void bgemm(const struct conv *s, const uint64_t *cols, const uint64_t *filters,
                  const float *mult, const float *bias, float *out)
{
    const float k = (float)(s->kh * s->kw * s->c);
    for (int p = 0; p < s->p_pad; p += 2) {
        const uint64_t *a0 = cols + (size_t)p * s->k_even, *a1 = a0 + s->k_even;
        for (int f = 0; f < s->o_pad; f += 4) {
            const uint64_t *w0 = filters + (size_t)f * s->k_even;
            uint16x8_t acc[2][4];
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 4; j++) acc[i][j] = vdupq_n_u16(0);
            for (int d = 0; d < s->k_even; d += 2) {
                uint8x16_t x0 = vreinterpretq_u8_u64(vld1q_u64(a0 + d));
                uint8x16_t x1 = vreinterpretq_u8_u64(vld1q_u64(a1 + d));
                for (int j = 0; j < 4; j++) {
                    uint8x16_t wj = vreinterpretq_u8_u64(vld1q_u64(w0 + (size_t)j * s->k_even + d));
                    acc[0][j] = vpadalq_u8(acc[0][j], vcntq_u8(veorq_u8(x0, wj)));
                    acc[1][j] = vpadalq_u8(acc[1][j], vcntq_u8(veorq_u8(x1, wj)));
                }
            }
            for (int i = 0; i < 2 && p + i < s->ho * s->wo; i++)
                for (int j = 0; j < 4 && f + j < s->o; j++) {
                    float dot = k - 2.0f * (float)vaddvq_u16(acc[i][j]);
                    out[(size_t)(p + i) * s->o + f + j] = mult[f + j] * dot + bias[f + j];
                }
        }
    }
}

static void *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *data = xmalloc(*size);
    if (fread(data, 1, *size, f) != *size) { perror(path); exit(2); }
    fclose(f);
    return data;
}

static void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, size, f) != size) { perror(path); exit(2); }
    fclose(f);
}

static void expect_size(size_t got, size_t want)
{
    if (got != want) {
        fprintf(stderr, "input file has %zu bytes, expected %zu\n", got, want);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    if (argc < 8) {
        fprintf(stderr, "usage: neon_bgemm quantize|dequantize|bconv IN OUT REPEATS DIMS...\n");
        return 2;
    }
    const char *op = argv[1];
    int repeats = atoi(argv[4]);
    int h = atoi(argv[5]), w = atoi(argv[6]), c = atoi(argv[7]), cw = (c + 63) / 64;
    size_t size;
    void *in = read_file(argv[2], &size);
    if (strcmp(op, "quantize") == 0) {
        expect_size(size, sizeof(float) * h * w * c);
        uint64_t *out = xmalloc(sizeof(uint64_t) * h * w * cw);
        quantize(in, h * w, c, out);
        marker(1);
        for (int r = 0; r < repeats; r++) quantize(in, h * w, c, out);
        marker(2);
        write_file(argv[3], out, sizeof(uint64_t) * h * w * cw);
        return 0;
    }
    if (strcmp(op, "dequantize") == 0) {
        expect_size(size, sizeof(uint64_t) * h * w * cw);
        float *out = xmalloc(sizeof(float) * h * w * c);
        dequantize(in, h * w, c, out);
        marker(1);
        for (int r = 0; r < repeats; r++) dequantize(in, h * w, c, out);
        marker(2);
        write_file(argv[3], out, sizeof(float) * h * w * c);
        return 0;
    }
    if (strcmp(op, "bconv") != 0 || argc != 15) {
        fprintf(stderr, "unknown op or wrong arguments: %s\n", op);
        return 2;
    }
    struct conv s = {h, w, c, atoi(argv[8]), atoi(argv[9]), atoi(argv[10]), atoi(argv[11]),
                     atoi(argv[12]), atoi(argv[13]), atoi(argv[14])};
    s.cw = cw;
    s.pad_h = s.same ? (s.kh - 1) / 2 : 0;
    s.pad_w = s.same ? (s.kw - 1) / 2 : 0;
    s.ho = s.same ? (h + s.sh - 1) / s.sh : (h - s.kh) / s.sh + 1;
    s.wo = s.same ? (w + s.sw - 1) / s.sw : (w - s.kw) / s.sw + 1;
    s.k_words = s.kh * s.kw * cw;
    s.k_even = (s.k_words + 1) / 2 * 2;
    s.o_pad = (s.o + 3) / 4 * 4;
    s.p_pad = (s.ho * s.wo + 1) / 2 * 2;
    size_t in_words = (size_t)h * w * cw, f_words = (size_t)s.o * s.k_words;
    expect_size(size, 8 * (in_words + f_words) + 2 * sizeof(float) * s.o);
    const uint64_t *x = in, *f = x + in_words;
    const float *mult = (const float *)(f + f_words), *bias = mult + s.o;
    /* Filters repacked once into rows of k_even words (LCE packs them at prepare time). */
    uint64_t *filters = xmalloc(sizeof(uint64_t) * s.o_pad * s.k_even);
    for (int o = 0; o < s.o; o++)
        memcpy(filters + (size_t)o * s.k_even, f + (size_t)o * s.k_words, 8 * s.k_words);
    uint64_t *cols = xmalloc(sizeof(uint64_t) * s.p_pad * s.k_even);
    float *out = xmalloc(sizeof(float) * s.p_pad * s.o);
    int ow = (s.o + 63) / 64;
    uint64_t *packed = xmalloc(sizeof(uint64_t) * s.ho * s.wo * ow);
    for (int r = -1; r < repeats; r++) {
        if (r == 0) marker(1);
        im2col(&s, x, cols);
        bgemm(&s, cols, filters, mult, bias, out);
        if (s.packed) quantize(out, s.ho * s.wo, s.o, packed);
    }
    marker(2);
    if (s.packed)
        write_file(argv[3], packed, sizeof(uint64_t) * s.ho * s.wo * ow);
    else
        write_file(argv[3], out, sizeof(float) * s.ho * s.wo * s.o);
    return 0;
}
