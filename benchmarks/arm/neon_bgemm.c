/*
 * NEON bitpacking and binary convolution for aarch64 (horq-keras), the stand-in for LCE's
 * kernels in benchmarks/arm_emulated.py, built the way LCE describes its own (indirect
 * binary GEMM, 8 output channels at a time, fused output transform; see the comment above
 * struct step). LCE's own kernels are hand-written assembly; these counts estimate them.
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
 *              Filters are packed, the output transform folded and the indirection
 *              buffer filled once before the counted runs (LCE does all three once, on
 *              the op's first run, as long as the input tensor stays where it is).
 *
 * Usage: neon_bgemm OP IN OUT REPEATS DIMS...   IN holds the inputs in the order above,
 * OUT receives the output. The op runs once (warm-up), then REPEATS times between two
 * marker system calls (tags 1 and 2) that benchmarks/arm/marker_plugin.c counts.
 */
#include <arm_neon.h>
#include <math.h>
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

/*
 * The binary convolution. Filters are packed once (as LCE does at prepare time) into groups
 * of 8 output channels: for each 128-bit step of the receptive field, the 8 filters' 128
 * bits lie side by side (128 bytes). The receptive field of an output pixel is not copied
 * (no im2col): an indirection buffer holds, per output pixel, a pointer to the packed input
 * row of each kernel position (or to a zero row: +1 padding), plus one to the zero row.
 * A step table says where each 128-bit step's two 64-bit words sit (kernel position and
 * word offset): with an even word count per pixel both come from one row; with an odd one
 * a step joins the last word of one position to the first of the next, and a final odd
 * word is paired with the zero row.
 * The inner loop computes 2 output pixels x 8 output channels: 16 uint16x8 accumulators,
 * 2 input registers, 8 filter registers and the temporaries share the 32 NEON registers
 * (gcc -O2 spills one accumulator: 3 of the about 62 instructions of a step). Per step
 * and pixel pair: 8 filter loads, then per filter and pixel veorq, vcntq_u8 and
 * vpadalq_u8 (byte counts widened to 16 bits as they are added, nothing wider until the
 * store).
 * The store reduces each pixel's 8 accumulators with a vpaddq tree to 8 channel counts,
 * then either widens them once and applies out = a * popcount + b in one multiply-add
 * per 4 channels, or, for a bitpacked output, compares the 16-bit counts with per-channel
 * thresholds and stores one byte of signs per 8 channels (struct transform).
 */
struct step { int32_t lo_pos, lo_off, hi_pos, hi_off; };

struct conv {
    int h, w, c, o, kh, kw, sh, sw, same, packed;
    int cw, ho, wo, pad_h, pad_w, positions, steps, groups, ow;
    float k;
};

/* uint16 lanes take 2 bytes of counts (<= 16) per step: at most 4095 steps per output. */
#define MAX_STEPS 4095

/* Where the 64-bit words of each 128-bit step lie: position s->positions is the zero row. */
static struct step *step_table(const struct conv *s)
{
    int words = s->positions * s->cw;
    struct step *t = xmalloc(sizeof(struct step) * s->steps);
    for (int j = 0; j < s->steps; j++) {
        int lo = 2 * j, hi = 2 * j + 1;
        t[j].lo_pos = lo / s->cw;
        t[j].lo_off = lo % s->cw;
        t[j].hi_pos = hi < words ? hi / s->cw : s->positions;
        t[j].hi_off = hi < words ? hi % s->cw : 0;
    }
    return t;
}

/* Filters [O, KH, KW, Cw] -> [group][step][8 filters][2 words]; absent filters are zero. */
static uint64_t *pack_filters(const struct conv *s, const struct step *t, const uint64_t *f)
{
    uint64_t *packed = xmalloc(sizeof(uint64_t) * 16 * s->groups * s->steps);
    int words = s->positions * s->cw;
    for (int g = 0; g < s->groups; g++)
        for (int j = 0; j < s->steps; j++)
            for (int i = 0; i < 8 && 8 * g + i < s->o; i++) {
                const uint64_t *row = f + (size_t)(8 * g + i) * words;
                uint64_t *dst = packed + ((size_t)(g * s->steps + j) * 8 + i) * 2;
                dst[0] = row[t[j].lo_pos * s->cw + t[j].lo_off];
                dst[1] = t[j].hi_pos < s->positions ? row[t[j].hi_pos * s->cw + t[j].hi_off] : 0;
            }
    return packed;
}

/* Per output pixel, positions + 1 pointers: each kernel position's input row or the zero row. */
static void indirection(const struct conv *s, const uint64_t *in, const uint64_t *zero,
                        const uint64_t **rows)
{
    for (int oy = 0; oy < s->ho; oy++)
        for (int ox = 0; ox < s->wo; ox++, rows += s->positions + 1) {
            for (int ky = 0; ky < s->kh; ky++) {
                int y = oy * s->sh + ky - s->pad_h;
                for (int kx = 0; kx < s->kw; kx++) {
                    int x = ox * s->sw + kx - s->pad_w;
                    int inside = y >= 0 && y < s->h && x >= 0 && x < s->w;
                    rows[ky * s->kw + kx] = inside ? in + ((size_t)y * s->w + x) * s->cw : zero;
                }
            }
            rows[s->positions] = zero;
        }
}

/* Two 64-bit words, from lo and hi, as one 128-bit register. */
static inline uint8x16_t load_words(const uint64_t *lo, const uint64_t *hi)
{
    uint64x2_t x = vcombine_u64(vld1_u64(lo), vdup_n_u64(0));
    return vreinterpretq_u8_u64(vld1q_lane_u64(hi, x, 1));
}

/* One 128-bit step of 2 pixels (x0, x1) against 8 filters (w: 8 x 16 bytes). */
static inline void step8(uint8x16_t x0, uint8x16_t x1, const uint8_t *w, uint16x8_t *acc0,
                         uint16x8_t *acc1)
{
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        uint8x16_t wi = vld1q_u8(w + 16 * i);
        acc0[i] = vpadalq_u8(acc0[i], vcntq_u8(veorq_u8(x0, wi)));
        acc1[i] = vpadalq_u8(acc1[i], vcntq_u8(veorq_u8(x1, wi)));
    }
}

/*
 * All steps of one group for 2 pixels. Three loops with the same step order as the step
 * table: an even word count per pixel reads 128 bits at a time from each position's row;
 * one word per pixel joins positions 2j and 2j + 1 (the last odd one with the zero row);
 * other odd counts follow the table.
 */
static inline void accumulate(const struct conv *s, const struct step *t, const uint8_t *w,
                              const uint64_t *const *rows0, const uint64_t *const *rows1,
                              uint16x8_t *acc0, uint16x8_t *acc1)
{
    if (s->cw % 2 == 0) {
        for (int pos = 0; pos < s->positions; pos++) {
            const uint64_t *r0 = rows0[pos], *r1 = rows1[pos];
            for (int off = 0; off < s->cw; off += 2, w += 128)
                step8(vreinterpretq_u8_u64(vld1q_u64(r0 + off)),
                      vreinterpretq_u8_u64(vld1q_u64(r1 + off)), w, acc0, acc1);
        }
    } else if (s->cw == 1) {
        for (int pos = 0; pos < s->positions; pos += 2, w += 128)
            step8(load_words(rows0[pos], rows0[pos + 1]), load_words(rows1[pos], rows1[pos + 1]),
                  w, acc0, acc1);
    } else {
        for (int j = 0; j < s->steps; j++, w += 128)
            step8(load_words(rows0[t[j].lo_pos] + t[j].lo_off, rows0[t[j].hi_pos] + t[j].hi_off),
                  load_words(rows1[t[j].lo_pos] + t[j].lo_off, rows1[t[j].hi_pos] + t[j].hi_off),
                  w, acc0, acc1);
    }
}

/* The 8 channel popcounts of one pixel: a pairwise-add tree over its 8 accumulators. */
static inline uint16x8_t channel_counts(const uint16x8_t *acc)
{
    uint16x8_t a = vpaddq_u16(acc[0], acc[1]), b = vpaddq_u16(acc[2], acc[3]);
    uint16x8_t c = vpaddq_u16(acc[4], acc[5]), d = vpaddq_u16(acc[6], acc[7]);
    return vpaddq_u16(vpaddq_u16(a, b), vpaddq_u16(c, d));
}

/*
 * The output transform, folded once from the multiplier m and bias of each channel.
 * Floats: out = a * popcount + b (a = -2 m, b = m K + bias). Bitpacked output: the sign
 * bit of out is (popcount >= threshold) XOR flip, an integer comparison (no floats).
 */
struct transform { float *a, *b; uint16_t *threshold, *flip; };

/* Threshold and flip of one channel: out = m (K - 2 pc) + bias < 0 for an integer pc. */
static void sign_threshold(double m, double bias, double k, uint16_t *threshold,
                           uint16_t *flip)
{
    if (m == 0.0) { /* out = bias: the same sign for every pc */
        *threshold = 0;
        *flip = bias < 0.0 ? 0 : 0xFFFF;
        return;
    }
    double x = (k + bias / m) / 2; /* out < 0 <=> pc > x (m > 0), pc < x (m < 0) */
    double t = m > 0.0 ? floor(x) + 1 : ceil(x);
    *threshold = (uint16_t)(t < 0 ? 0 : t > 65535 ? 65535 : t);
    *flip = m > 0.0 ? 0 : 0xFFFF;
}

/* Channels past o never set a bit (their threshold exceeds every count). */
static struct transform fold_transform(const struct conv *s, const float *mult,
                                       const float *bias)
{
    size_t n = 8 * (size_t)s->groups;
    struct transform tr = {xmalloc(sizeof(float) * n), xmalloc(sizeof(float) * n),
                           xmalloc(sizeof(uint16_t) * n), xmalloc(sizeof(uint16_t) * n)};
    for (size_t o = 0; o < n; o++) tr.threshold[o] = 0xFFFF;
    for (int o = 0; o < s->o; o++) {
        tr.a[o] = -2.0f * mult[o];
        tr.b[o] = mult[o] * s->k + bias[o];
        sign_threshold(mult[o], bias[o], s->k, tr.threshold + o, tr.flip + o);
    }
    return tr;
}

/* Stores the transformed counts of the 8 channels of group g of one pixel. */
static inline void store_group(const struct conv *s, const struct transform *tr,
                               uint16x8_t counts, int g, float *out, uint8_t *packed)
{
    if (packed != NULL) {
        static const uint8_t weights[8] = {1, 2, 4, 8, 16, 32, 64, 128};
        uint16x8_t neg = veorq_u16(vcgeq_u16(counts, vld1q_u16(tr->threshold + 8 * g)),
                                   vld1q_u16(tr->flip + 8 * g));
        packed[g] = vaddv_u8(vand_u8(vmovn_u16(neg), vld1_u8(weights)));
        return;
    }
    const float *a = tr->a + 8 * g, *b = tr->b + 8 * g;
    float32x4_t lo = vfmaq_f32(vld1q_f32(b), vld1q_f32(a),
                               vcvtq_f32_u32(vmovl_u16(vget_low_u16(counts))));
    float32x4_t hi = vfmaq_f32(vld1q_f32(b + 4), vld1q_f32(a + 4),
                               vcvtq_f32_u32(vmovl_high_u16(counts)));
    int n = s->o - 8 * g < 8 ? s->o - 8 * g : 8;
    if (n == 8) {
        vst1q_f32(out + 8 * g, lo);
        vst1q_f32(out + 8 * g + 4, hi);
    } else {
        float tail[8];
        vst1q_f32(tail, lo);
        vst1q_f32(tail + 4, hi);
        memcpy(out + 8 * g, tail, sizeof(float) * n);
    }
}

/* Output pixels p0 and p1 (p1 == p0 for a last odd pixel, stored once) of every group. */
static void pixel_pair(const struct conv *s, const struct step *t, const uint64_t *filters,
                       const struct transform *tr, const uint64_t *const *rows0,
                       const uint64_t *const *rows1, float *out0, float *out1,
                       uint8_t *packed0, uint8_t *packed1)
{
    for (int g = 0; g < s->groups; g++) {
        const uint8_t *w = (const uint8_t *)(filters + (size_t)g * s->steps * 16);
        uint16x8_t acc0[8], acc1[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) acc0[i] = acc1[i] = vdupq_n_u16(0);
        accumulate(s, t, w, rows0, rows1, acc0, acc1);
        store_group(s, tr, channel_counts(acc0), g, out0, packed0);
        if (rows1 != rows0)
            store_group(s, tr, channel_counts(acc1), g, out1, packed1);
    }
}

static void bconv(const struct conv *s, const struct step *t, const uint64_t *filters,
                  const struct transform *tr, const uint64_t **rows, float *out,
                  uint64_t *packed)
{
    int pixels = s->ho * s->wo, stride = s->positions + 1;
    for (int p = 0; p < pixels; p += 2) {
        int q = p + 1 < pixels ? p + 1 : p;
        pixel_pair(s, t, filters, tr, rows + (size_t)p * stride, rows + (size_t)q * stride,
                   out + (size_t)p * s->o, out + (size_t)q * s->o,
                   packed ? (uint8_t *)(packed + (size_t)p * s->ow) : NULL,
                   packed ? (uint8_t *)(packed + (size_t)q * s->ow) : NULL);
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
    s.positions = s.kh * s.kw;
    s.steps = (s.positions * cw + 1) / 2;
    s.groups = (s.o + 7) / 8;
    s.ow = (s.o + 63) / 64;
    s.k = (float)(s.positions * c);
    if (s.steps > MAX_STEPS) {
        fprintf(stderr, "receptive field of %d 128-bit steps: at most %d\n", s.steps, MAX_STEPS);
        return 2;
    }
    size_t in_words = (size_t)h * w * cw, f_words = (size_t)s.o * s.positions * cw;
    expect_size(size, 8 * (in_words + f_words) + 2 * sizeof(float) * s.o);
    const uint64_t *x = in, *f = x + in_words;
    const float *mult = (const float *)(f + f_words), *bias = mult + s.o;
    /* Prepare time (LCE packs filters and folds the output transform once). */
    struct step *t = step_table(&s);
    uint64_t *filters = pack_filters(&s, t, f);
    struct transform tr = fold_transform(&s, mult, bias);
    uint64_t *zero = xmalloc(sizeof(uint64_t) * cw);
    const uint64_t **rows = xmalloc(sizeof(uint64_t *) * s.ho * s.wo * (s.positions + 1));
    float *out = xmalloc(sizeof(float) * s.ho * s.wo * s.o);
    uint64_t *packed = s.packed ? xmalloc(sizeof(uint64_t) * s.ho * s.wo * s.ow) : NULL;
    indirection(&s, x, zero, rows); /* LCE fills it once too, on its first run */
    for (int r = -1; r < repeats; r++) {
        if (r == 0) marker(1);
        bconv(&s, t, filters, &tr, rows, out, packed);
    }
    marker(2);
    if (s.packed)
        write_file(argv[3], packed, sizeof(uint64_t) * s.ho * s.wo * s.ow);
    else
        write_file(argv[3], out, sizeof(float) * s.ho * s.wo * s.o);
    return 0;
}
