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
 * (no im2col): an indirection buffer holds, per block of output pixels and per kernel
 * position, the block's pointers to the packed input rows side by side (a zero row where
 * the position lies in the +1 padding), then the block's pointers to the zero row.
 * A step table says where each 128-bit step's two 64-bit words sit (kernel position and
 * word offset):
 * - an even word count per pixel: both words from one row; blocks of 2 pixels;
 * - one word per pixel (64 channels or fewer): the two words of a register are the same
 *   position's word of two pixels, and the filters hold their word twice, so one step is
 *   one kernel position of 2 pixels and no half register is wasted; blocks of 4 pixels;
 * - other odd counts: a step joins the last word of one position to the first of the
 *   next, and a final odd word is paired with the zero row; blocks of 2 pixels.
 * The inner loop computes 2 input registers x 8 output channels: 16 uint16x8 accumulators,
 * 2 input registers and the filter registers share the 32 NEON registers. Per step: 8
 * filter loads, then per filter and input register veorq, vcntq_u8 and vpadalq_u8 (byte
 * counts widened to 16 bits as they are added, nothing wider until the store; the first
 * step widens with vpaddlq_u8 instead of adding to zeroed accumulators).
 * The store reduces the accumulators with a vpaddq tree to 8 channel counts per pixel (for
 * two pixels in one register the last level is vuzp1q/vuzp2q, which separates them), then
 * either widens them once and applies out = a * popcount + b in one multiply-add per 4
 * channels, or, for a bitpacked output, compares the 16-bit counts with per-channel
 * thresholds and stores one byte of signs per 8 channels (struct transform).
 * A 1x1 convolution with at most 4 words per pixel has a single step per pixel, so the
 * reduction and store would weigh as much as the popcounts: there the loops are swapped
 * (function pointwise): a group's 8 filters and its transform stay in registers while the
 * pixels stream past, the counts are summed as bytes (no widening accumulators: one step)
 * and a table lookup (vqtbl1q_u8) spreads them to 32-bit lanes, separating pixels at once.
 */
struct step { int32_t lo_pos, lo_off, hi_pos, hi_off; };

struct conv {
    int h, w, c, o, kh, kw, sh, sw, same, packed;
    int cw, ho, wo, pad_h, pad_w, positions, steps, groups, ow;
    int paired;   /* one word per pixel: two pixels share a register, filter words doubled */
    int block;    /* output pixels per block of the indirection buffer: 4 paired, else 2 */
    int blocks;   /* ceil(ho wo / block); the last block repeats its last pixel */
    int pointwise; /* 1x1 with 1, 2 or 4 words per pixel: the swapped loops */
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
        if (s->paired) { /* the word of position j, for both pixels of a register */
            t[j] = (struct step){j, 0, j, 0};
            continue;
        }
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

/*
 * Per block of s->block output pixels, (positions + 1) x block pointers: for each kernel
 * position the block's input rows (or the zero row) side by side, then the zero row.
 */
static void indirection(const struct conv *s, const uint64_t *in, const uint64_t *zero,
                        const uint64_t **rows)
{
    int pixels = s->ho * s->wo, n = s->block;
    for (int p = 0; p < s->blocks * n; p++) {
        int q = p < pixels ? p : pixels - 1, oy = q / s->wo, ox = q % s->wo;
        const uint64_t **r = rows + (size_t)(p / n) * (s->positions + 1) * n + p % n;
        for (int ky = 0; ky < s->kh; ky++) {
            int y = oy * s->sh + ky - s->pad_h;
            for (int kx = 0; kx < s->kw; kx++) {
                int x = ox * s->sw + kx - s->pad_w;
                int inside = y >= 0 && y < s->h && x >= 0 && x < s->w;
                r[(ky * s->kw + kx) * n] = inside ? in + ((size_t)y * s->w + x) * s->cw : zero;
            }
        }
        r[s->positions * n] = zero;
    }
}

/* Two 64-bit words, from lo and hi, as one 128-bit register. */
static inline uint8x16_t load_words(const uint64_t *lo, const uint64_t *hi)
{
    uint64x2_t x = vcombine_u64(vld1_u64(lo), vdup_n_u64(0));
    return vreinterpretq_u8_u64(vld1q_lane_u64(hi, x, 1));
}

/* One 128-bit step of 2 input registers (x0, x1) against 8 filters (w: 8 x 16 bytes);
 * the first step of an output starts the accumulators. */
static inline void step8(uint8x16_t x0, uint8x16_t x1, const uint8_t *w, uint16x8_t *acc0,
                         uint16x8_t *acc1, int first)
{
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        uint8x16_t wi = vld1q_u8(w + 16 * i);
        uint8x16_t c0 = vcntq_u8(veorq_u8(x0, wi)), c1 = vcntq_u8(veorq_u8(x1, wi));
        acc0[i] = first ? vpaddlq_u8(c0) : vpadalq_u8(acc0[i], c0);
        acc1[i] = first ? vpaddlq_u8(c1) : vpadalq_u8(acc1[i], c1);
    }
}

/*
 * All steps of one group for one block (rows: its pointers, n per position), in the step
 * table's order: an even word count per pixel reads 128 bits at a time from each position's
 * row; one word per pixel joins the same position of pixels (0, 1) and (2, 3); other odd
 * counts follow the table.
 */
static inline void accumulate(const struct conv *s, const struct step *t, const uint8_t *w,
                              const uint64_t *const *rows, uint16x8_t *acc0, uint16x8_t *acc1)
{
    if (s->paired) {
        step8(load_words(rows[0], rows[1]), load_words(rows[2], rows[3]), w, acc0, acc1, 1);
        for (int pos = 1; pos < s->positions; pos++) {
            const uint64_t *const *r = rows + 4 * pos;
            step8(load_words(r[0], r[1]), load_words(r[2], r[3]), w + 128 * pos, acc0, acc1, 0);
        }
    } else if (s->cw % 2 == 0) {
        step8(vreinterpretq_u8_u64(vld1q_u64(rows[0])), vreinterpretq_u8_u64(vld1q_u64(rows[1])),
              w, acc0, acc1, 1);
        w += 128;
        for (int pos = 0; pos < s->positions; pos++) {
            const uint64_t *r0 = rows[2 * pos], *r1 = rows[2 * pos + 1];
            for (int off = pos == 0 ? 2 : 0; off < s->cw; off += 2, w += 128)
                step8(vreinterpretq_u8_u64(vld1q_u64(r0 + off)),
                      vreinterpretq_u8_u64(vld1q_u64(r1 + off)), w, acc0, acc1, 0);
        }
    } else {
        for (int j = 0; j < s->steps; j++, w += 128) {
            const uint64_t *const *lo = rows + 2 * t[j].lo_pos, *const *hi = rows + 2 * t[j].hi_pos;
            uint8x16_t x0 = load_words(lo[0] + t[j].lo_off, hi[0] + t[j].hi_off);
            uint8x16_t x1 = load_words(lo[1] + t[j].lo_off, hi[1] + t[j].hi_off);
            if (j == 0)
                step8(x0, x1, w, acc0, acc1, 1);
            else
                step8(x0, x1, w, acc0, acc1, 0);
        }
    }
}

/* The 8 channel popcounts of one pixel: a pairwise-add tree over its 8 accumulators. */
static inline uint16x8_t channel_counts(const uint16x8_t *acc)
{
    uint16x8_t a = vpaddq_u16(acc[0], acc[1]), b = vpaddq_u16(acc[2], acc[3]);
    uint16x8_t c = vpaddq_u16(acc[4], acc[5]), d = vpaddq_u16(acc[6], acc[7]);
    return vpaddq_u16(vpaddq_u16(a, b), vpaddq_u16(c, d));
}

/* The 8 channel popcounts of each of two pixels sharing accumulators (lanes 0-3 the first
 * pixel's, 4-7 the second's): two tree levels leave them interleaved, vuzp separates them. */
static inline void pair_counts(const uint16x8_t *acc, uint16x8_t *first, uint16x8_t *second)
{
    uint16x8_t a = vpaddq_u16(acc[0], acc[1]), b = vpaddq_u16(acc[2], acc[3]);
    uint16x8_t c = vpaddq_u16(acc[4], acc[5]), d = vpaddq_u16(acc[6], acc[7]);
    uint16x8_t lo = vpaddq_u16(a, b), hi = vpaddq_u16(c, d);
    *first = vuzp1q_u16(lo, hi);
    *second = vuzp2q_u16(lo, hi);
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

/* The transform of the 8 channels of one group, in registers. */
struct group_transform {
    float32x4_t a_lo, a_hi;
    const float *b; /* loaded where it is added: the multiply-add overwrites it */
    uint16x8_t threshold, flip;
    int n;
};

static inline struct group_transform load_group(const struct conv *s, const struct transform *tr,
                                                int g)
{
    struct group_transform gt;
    gt.n = s->o - 8 * g < 8 ? s->o - 8 * g : 8;
    if (s->packed) {
        gt.threshold = vld1q_u16(tr->threshold + 8 * g);
        gt.flip = vld1q_u16(tr->flip + 8 * g);
    } else {
        gt.a_lo = vld1q_f32(tr->a + 8 * g);
        gt.a_hi = vld1q_f32(tr->a + 8 * g + 4);
        gt.b = tr->b + 8 * g;
    }
    return gt;
}

/* Floats out[0..n) of one pixel's group from its channel counts in 32-bit lanes. */
static inline void store_floats(const struct group_transform *gt, uint32x4_t lo, uint32x4_t hi,
                                float *out, int n)
{
    float32x4_t f_lo = vfmaq_f32(vld1q_f32(gt->b), gt->a_lo, vcvtq_f32_u32(lo));
    float32x4_t f_hi = vfmaq_f32(vld1q_f32(gt->b + 4), gt->a_hi, vcvtq_f32_u32(hi));
    if (n == 8) {
        vst1q_f32(out, f_lo);
        vst1q_f32(out + 4, f_hi);
    } else {
        float tail[8];
        vst1q_f32(tail, f_lo);
        vst1q_f32(tail + 4, f_hi);
        memcpy(out, tail, sizeof(float) * n);
    }
}

/* One byte of signs of one pixel's group from its 16-bit channel counts. */
static inline void store_signs(const struct group_transform *gt, uint16x8_t counts,
                               uint8_t *packed)
{
    static const uint8_t weights[8] = {1, 2, 4, 8, 16, 32, 64, 128};
    uint16x8_t neg = veorq_u16(vcgeq_u16(counts, gt->threshold), gt->flip);
    *packed = vaddv_u8(vand_u8(vmovn_u16(neg), vld1_u8(weights)));
}

/* Stores one pixel's group from its 16-bit counts at dst (its floats or its byte of signs). */
static inline void store_counts(const struct group_transform *gt, uint16x8_t counts,
                                int packed, int n, uint8_t *dst)
{
    if (packed)
        store_signs(gt, counts, dst);
    else
        store_floats(gt, vmovl_u16(vget_low_u16(counts)), vmovl_high_u16(counts), (float *)dst,
                     n);
}

/* Where group g of output pixel p is stored (float output or bitpacked). */
static inline uint8_t *output_at(const struct conv *s, float *out, uint64_t *packed, size_t p,
                                 int g)
{
    return packed ? (uint8_t *)(packed + p * s->ow) + g : (uint8_t *)(out + p * s->o + 8 * g);
}

/* Blocks of output pixels, every group for each block (pixels past the last are written
 * to the outputs' spare rows). */
static void bconv_blocks(const struct conv *s, const struct step *t, const uint64_t *filters,
                         const struct transform *tr, const uint64_t **rows, float *out,
                         uint64_t *packed)
{
    int n = s->block;
    for (int b = 0; b < s->blocks; b++) {
        const uint64_t *const *r = rows + (size_t)b * (s->positions + 1) * n;
        size_t p = (size_t)b * n;
        for (int g = 0; g < s->groups; g++) {
            const uint8_t *w = (const uint8_t *)(filters + (size_t)g * s->steps * 16);
            struct group_transform gt = load_group(s, tr, g);
            uint16x8_t acc0[8], acc1[8], c0, c1, c2, c3;
            accumulate(s, t, w, r, acc0, acc1);
            if (s->paired) {
                pair_counts(acc0, &c0, &c1);
                pair_counts(acc1, &c2, &c3);
                store_counts(&gt, c2, s->packed, gt.n, output_at(s, out, packed, p + 2, g));
                store_counts(&gt, c3, s->packed, gt.n, output_at(s, out, packed, p + 3, g));
            } else {
                c0 = channel_counts(acc0);
                c1 = channel_counts(acc1);
            }
            store_counts(&gt, c0, s->packed, gt.n, output_at(s, out, packed, p, g));
            store_counts(&gt, c1, s->packed, gt.n, output_at(s, out, packed, p + 1, g));
        }
    }
}

/* The 8 byte counts (8 filters) of one register, summed over its 16 bytes by pairs: bytes
 * 2i and 2i + 1 of the result belong to filter i, one to each half of the register. */
static inline uint8x16_t filter_bytes(uint8x16_t x, const uint8x16_t *w)
{
    uint8x16_t c[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) c[i] = vcntq_u8(veorq_u8(x, w[i]));
    uint8x16_t a = vpaddq_u8(c[0], c[1]), b = vpaddq_u8(c[2], c[3]);
    uint8x16_t d = vpaddq_u8(c[4], c[5]), e = vpaddq_u8(c[6], c[7]);
    return vpaddq_u8(vpaddq_u8(a, b), vpaddq_u8(d, e));
}

/* Table lookups that take byte first + stride * i (channel i of a pixel) into lane i: of
 * 32-bit lanes (lo: channels 0-3, hi: 4-7) or of 16-bit lanes (all 8); other bytes zero. */
struct spread { uint8x16_t lo, hi, all; };

static struct spread spread_table(int first, int stride)
{
    uint8_t lo[16], hi[16], all[16];
    memset(lo, 0xFF, 16);
    memset(hi, 0xFF, 16);
    memset(all, 0xFF, 16);
    for (int i = 0; i < 4; i++) {
        lo[4 * i] = (uint8_t)(first + stride * i);
        hi[4 * i] = (uint8_t)(first + stride * (i + 4));
    }
    for (int i = 0; i < 8; i++) all[2 * i] = (uint8_t)(first + stride * i);
    return (struct spread){vld1q_u8(lo), vld1q_u8(hi), vld1q_u8(all)};
}

/* Stores one pixel's group from the byte counts in v that sp picks out. */
static inline void store_bytes(const struct group_transform *gt, uint8x16_t v,
                               const struct spread *sp, int packed, int n, uint8_t *dst)
{
    if (packed)
        store_signs(gt, vreinterpretq_u16_u8(vqtbl1q_u8(v, sp->all)), dst);
    else
        store_floats(gt, vreinterpretq_u32_u8(vqtbl1q_u8(v, sp->lo)),
                     vreinterpretq_u32_u8(vqtbl1q_u8(v, sp->hi)), (float *)dst, n);
}

/*
 * Every block of a 1x1 convolution against one group, whose filter registers are w; dst:
 * the group's output in pixel 0, rows of row_bytes. One word per pixel (blocks of 4, two
 * pixels per register): a register's sums end as filter i's counts of its two pixels in
 * bytes 2i and 2i + 1. Two words (blocks of 2): one more vpaddq adds each pixel's pair sums
 * (pixel 0 in bytes 0-7, pixel 1 in 8-15). Four words: the two registers' counts are added
 * as bytes (<= 16 each), and the pair sums (up to 256) widened by vpaddlq_u8.
 * cw, packed and n are constants where it is inlined.
 */
static inline __attribute__((always_inline)) void
pointwise_group(const struct conv *s, const struct group_transform *gt, const uint8x16_t *w,
                const struct spread *sp, const uint64_t *const *rows, uint8_t *dst,
                size_t row_bytes, int cw, int packed, int n)
{
    const uint64_t *const *end = rows + (size_t)2 * s->block * s->blocks;
    for (; rows != end; rows += 2 * s->block, dst += s->block * row_bytes) {
        if (cw == 1) {
            uint8x16_t v0 = filter_bytes(load_words(rows[0], rows[1]), w);
            uint8x16_t v1 = filter_bytes(load_words(rows[2], rows[3]), w);
            store_bytes(gt, v0, sp, packed, n, dst);
            store_bytes(gt, v0, sp + 1, packed, n, dst + row_bytes);
            store_bytes(gt, v1, sp, packed, n, dst + 2 * row_bytes);
            store_bytes(gt, v1, sp + 1, packed, n, dst + 3 * row_bytes);
        } else if (cw == 2) {
            uint8x16_t v = vpaddq_u8(filter_bytes(vld1q_u8((const uint8_t *)rows[0]), w),
                                     filter_bytes(vld1q_u8((const uint8_t *)rows[1]), w));
            store_bytes(gt, v, sp, packed, n, dst);
            store_bytes(gt, v, sp + 1, packed, n, dst + row_bytes);
        } else {
            for (int i = 0; i < 2; i++) {
                const uint8_t *x = (const uint8_t *)rows[i];
                uint8x16_t x0 = vld1q_u8(x), x1 = vld1q_u8(x + 16), c[8];
#pragma GCC unroll 8
                for (int f = 0; f < 8; f++)
                    c[f] = vaddq_u8(vcntq_u8(veorq_u8(x0, w[f])),
                                    vcntq_u8(veorq_u8(x1, w[8 + f])));
                uint8x16_t a = vpaddq_u8(c[0], c[1]), e = vpaddq_u8(c[2], c[3]);
                uint8x16_t d = vpaddq_u8(c[4], c[5]), h = vpaddq_u8(c[6], c[7]);
                store_counts(gt, vpaddlq_u8(vpaddq_u8(vpaddq_u8(a, e), vpaddq_u8(d, h))),
                             packed, n, dst + i * row_bytes);
            }
        }
    }
}

/* pointwise_group with the word count as a constant. */
static inline __attribute__((always_inline)) void
pointwise_words(const struct conv *s, const struct group_transform *gt, const uint8x16_t *w,
                const struct spread *sp, const uint64_t *const *rows, uint8_t *dst,
                size_t row_bytes, int packed, int n)
{
    if (s->cw == 1)
        pointwise_group(s, gt, w, sp, rows, dst, row_bytes, 1, packed, n);
    else if (s->cw == 2)
        pointwise_group(s, gt, w, sp, rows, dst, row_bytes, 2, packed, n);
    else
        pointwise_group(s, gt, w, sp, rows, dst, row_bytes, 4, packed, n);
}

/*
 * A 1x1 convolution with 1, 2 or 4 words per pixel, groups outside and pixels inside: the
 * group's filters (8 or 16 registers), its transform and the spread tables stay in
 * registers across the pixel loop.
 */
static void pointwise(const struct conv *s, const uint64_t *filters, const struct transform *tr,
                      const uint64_t **rows, float *out, uint64_t *packed)
{
    struct spread sp[2];
    sp[0] = s->cw == 1 ? spread_table(0, 2) : spread_table(0, 1);
    sp[1] = s->cw == 1 ? spread_table(1, 2) : spread_table(8, 1);
    int regs = s->cw == 4 ? 16 : 8;
    size_t row_bytes = packed ? 8 * (size_t)s->ow : sizeof(float) * s->o;
    for (int g = 0; g < s->groups; g++) {
        uint8x16_t w[16];
        const uint8_t *fg = (const uint8_t *)(filters + (size_t)g * s->steps * 16);
        for (int i = 0; i < regs; i++) w[i] = vld1q_u8(fg + 16 * i);
        struct group_transform gt = load_group(s, tr, g);
        uint8_t *dst = output_at(s, out, packed, 0, g);
        if (packed)
            pointwise_words(s, &gt, w, sp, rows, dst, row_bytes, 1, 8);
        else if (gt.n == 8)
            pointwise_words(s, &gt, w, sp, rows, dst, row_bytes, 0, 8);
        else
            pointwise_words(s, &gt, w, sp, rows, dst, row_bytes, 0, gt.n);
    }
}

static void bconv(const struct conv *s, const struct step *t, const uint64_t *filters,
                  const struct transform *tr, const uint64_t **rows, float *out,
                  uint64_t *packed)
{
    if (s->pointwise)
        pointwise(s, filters, tr, rows, out, packed);
    else
        bconv_blocks(s, t, filters, tr, rows, out, packed);
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
    s.paired = cw == 1;
    s.steps = s.paired ? s.positions : (s.positions * cw + 1) / 2;
    s.block = s.paired ? 4 : 2;
    s.blocks = (s.ho * s.wo + s.block - 1) / s.block;
    s.pointwise = s.positions == 1 && (cw == 1 || cw == 2 || cw == 4);
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
    size_t rows_out = (size_t)s.blocks * s.block; /* whole blocks: spare rows at the end */
    const uint64_t **rows = xmalloc(sizeof(uint64_t *) * rows_out * (s.positions + 1));
    float *out = xmalloc(sizeof(float) * rows_out * s.o);
    uint64_t *packed = s.packed ? xmalloc(sizeof(uint64_t) * rows_out * s.ow) : NULL;
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
