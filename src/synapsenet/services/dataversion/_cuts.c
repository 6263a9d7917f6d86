/*
 * The compiled part of cutting a file into chunks: FastCDC cuts moved to row ends, the
 * guided cutter's matching loop, and BLAKE3 chunk addresses, all without the GIL.
 *
 * cuts() finds where chunks end in a read window: the cut point of FastCDC 2020 as the
 * pyfastcdc package computes it (the gear tables and masks are its own, passed in), moved
 * forward to a row end for CSV files (see StreamCutter). One call cuts a whole window.
 *
 * follow() checks, chunk after chunk, that a new version of a file still holds the chunks
 * an earlier cut of it found (see StreamCutter.cut_guided): the byte checks, the BLAKE3 of
 * each candidate and the comparison with the recorded address, for a whole run of unchanged
 * chunks in one call. In Python, with the blake3 package, each chunk cost a call that gave
 * the GIL away and then waited to get it back from the threads that compress and parse,
 * ~10,000 times per 200 MB.
 *
 * The hash is BLAKE3 as its specification defines it (unkeyed, 32-byte output): 1 KiB
 * chunks of 64-byte blocks compressed with the chunk counter, chunk chaining values merged
 * pairwise into a left-complete binary tree, ROOT on the last compression. Full 1 KiB
 * chunks are compressed eight at a time in the lanes of a vector (GCC/Clang vector
 * extensions: SSE2 on any x86-64; with GCC on Linux, AVX2 or AVX-512, whose rotations are
 * one instruction, where the CPU has them), the fewer than eight left over in one more
 * vector call on a zero-padded copy; the last chunk and the parents one at a time. The
 * rounds are unrolled, and with GCC the rotations by 16 and 8 bits are byte shuffles. On a
 * Xeon with AVX-512, 100 MB in 20 KiB pieces hashed at 0.9-1.1 GB/s with AVX2 and eight
 * lanes only, 1.5-1.6 GB/s so (the blake3 package's assembly: 3.0-3.4 GB/s); on an AMD
 * EPYC with AVX2, 1.02-1.12 GB/s before the unrolling and the shuffles, 1.29-1.51 GB/s
 * after. addresses() exposes the hash for the oracle tests, which compare it with the
 * blake3 package, as they compare cuts() with pyfastcdc.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define BLOCK_LEN 64
#define CHUNK_LEN 1024
#define LANES 8
/*
 * addresses() releases the GIL only for calls that hash at least this much: hashing one
 * 20 KiB chunk takes ~15 us, less than taking the GIL back from a thread that got it.
 */
#define RELEASE_BYTES (256 * 1024)
#define DIGEST_LEN 32

enum { CHUNK_START = 1, CHUNK_END = 2, PARENT = 4, ROOT = 8 };

static const uint32_t IV[8] = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
                               0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u};

/* Message word order of each of the seven rounds (the permutation applied round by round). */
static const uint8_t SCHEDULE[7][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8},
    {3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1},
    {10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6},
    {12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4},
    {9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7},
    {11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13},
};

static inline uint32_t load32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

/* A right rotation of 32-bit words, or of each lane of a vector of them. */
#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

/* BLAKE3's mixing function; R(x, n) rotates x right by n bits. */
#define MIX_WITH(R, a, b, c, d, x, y)                                                          \
    do {                                                                                       \
        a = a + b + (x);                                                                       \
        d = R(d ^ a, 16);                                                                      \
        c = c + d;                                                                             \
        b = R(b ^ c, 12);                                                                      \
        a = a + b + (y);                                                                       \
        d = R(d ^ a, 8);                                                                       \
        c = c + d;                                                                             \
        b = R(b ^ c, 7);                                                                       \
    } while (0)
#define MIX(a, b, c, d, x, y) MIX_WITH(ROTR, a, b, c, d, x, y)

/*
 * The seven rounds over the state v0..v15 and the message m: columns, then diagonals, with
 * the mixing function G. Unrolled, so that every message index is a constant.
 */
#define ROUNDS(G)                                                                              \
    _Pragma("GCC unroll 7") for (int r = 0; r < 7; r++) {                                    \
        const uint8_t *s = SCHEDULE[r];                                                        \
        G(v0, v4, v8, v12, m[s[0]], m[s[1]]);                                                  \
        G(v1, v5, v9, v13, m[s[2]], m[s[3]]);                                                  \
        G(v2, v6, v10, v14, m[s[4]], m[s[5]]);                                                 \
        G(v3, v7, v11, v15, m[s[6]], m[s[7]]);                                                 \
        G(v0, v5, v10, v15, m[s[8]], m[s[9]]);                                                 \
        G(v1, v6, v11, v12, m[s[10]], m[s[11]]);                                               \
        G(v2, v7, v8, v13, m[s[12]], m[s[13]]);                                                \
        G(v3, v4, v9, v14, m[s[14]], m[s[15]]);                                                \
    }

/* One compression; cv becomes the first eight words of its output. */
static void compress(uint32_t cv[8], const uint8_t block[BLOCK_LEN], uint32_t block_len,
                     uint64_t counter, uint32_t flags) {
    uint32_t m[16];
    for (int i = 0; i < 16; i++) m[i] = load32(block + 4 * i);
    uint32_t v0 = cv[0], v1 = cv[1], v2 = cv[2], v3 = cv[3], v4 = cv[4], v5 = cv[5],
             v6 = cv[6], v7 = cv[7], v8 = IV[0], v9 = IV[1], v10 = IV[2], v11 = IV[3],
             v12 = (uint32_t)counter, v13 = (uint32_t)(counter >> 32), v14 = block_len,
             v15 = flags;
    ROUNDS(MIX);
    cv[0] = v0 ^ v8, cv[1] = v1 ^ v9, cv[2] = v2 ^ v10, cv[3] = v3 ^ v11;
    cv[4] = v4 ^ v12, cv[5] = v5 ^ v13, cv[6] = v6 ^ v14, cv[7] = v7 ^ v15;
}

/* The chaining value of one chunk (1 to 1024 bytes; 0 only for the empty input). */
static void chunk_cv(const uint8_t *in, size_t len, uint64_t counter, uint32_t root,
                     uint32_t cv[8]) {
    memcpy(cv, IV, sizeof(IV));
    uint32_t flags = CHUNK_START;
    while (len > BLOCK_LEN) {
        compress(cv, in, BLOCK_LEN, counter, flags);
        in += BLOCK_LEN, len -= BLOCK_LEN, flags = 0;
    }
    uint8_t last[BLOCK_LEN] = {0};
    memcpy(last, in, len);
    compress(cv, last, (uint32_t)len, counter, flags | CHUNK_END | root);
}

#if defined(__GNUC__) || defined(__clang__)
typedef uint32_t lanes_t __attribute__((vector_size(4 * LANES)));
typedef uint8_t lane_bytes_t __attribute__((vector_size(4 * LANES)));
typedef int8_t byte_mask_t __attribute__((vector_size(4 * LANES)));

/*
 * Rotations of each lane: by 16 and 8 bits a byte shuffle (one instruction from SSSE3 on,
 * where the shifts and the OR take three), by 12 and 7 bits shifts.
 */
#define BYTE_ROTATION(a, b, c, d)                                                              \
    {a, b, c, d, 4 + a, 4 + b, 4 + c, 4 + d, 8 + a, 8 + b, 8 + c, 8 + d, 12 + a, 12 + b,       \
     12 + c, 12 + d, 16 + a, 16 + b, 16 + c, 16 + d, 20 + a, 20 + b, 20 + c, 20 + d, 24 + a,   \
     24 + b, 24 + c, 24 + d, 28 + a, 28 + b, 28 + c, 28 + d}
static inline lanes_t rotr_lanes(lanes_t x, int n) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && defined(__GNUC__) && !defined(__clang__)
    if (n == 16) {
        return (lanes_t)__builtin_shuffle((lane_bytes_t)x, (byte_mask_t)BYTE_ROTATION(2, 3, 0, 1));
    }
    if (n == 8) {
        return (lanes_t)__builtin_shuffle((lane_bytes_t)x, (byte_mask_t)BYTE_ROTATION(1, 2, 3, 0));
    }
#endif
    return ROTR(x, n);
}
#define VMIX(a, b, c, d, x, y) MIX_WITH(rotr_lanes, a, b, c, d, x, y)

/*
 * r[w][lane] = word w of the 32 bytes at in + lane * CHUNK_LEN: eight rows read whole and
 * transposed by swapping off-diagonal blocks, 4x4, then 2x2, then 1x1.
 */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#if defined(__clang__)
#define SHUFFLE(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
typedef int32_t mask_t __attribute__((vector_size(4 * LANES)));
#define SHUFFLE(a, b, ...) __builtin_shuffle(a, b, (mask_t){__VA_ARGS__})
#endif
static inline void load_transposed(const uint8_t *in, lanes_t r[8]) {
    for (int lane = 0; lane < LANES; lane++) memcpy(&r[lane], in + (size_t)lane * CHUNK_LEN, 32);
    for (int i = 0; i < 4; i++) {
        lanes_t low = SHUFFLE(r[i], r[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        r[i + 4] = SHUFFLE(r[i], r[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
        r[i] = low;
    }
    for (int group = 0; group < 8; group += 4) {
        for (int i = group; i < group + 2; i++) {
            lanes_t low = SHUFFLE(r[i], r[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
            r[i + 2] = SHUFFLE(r[i], r[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
            r[i] = low;
        }
    }
    for (int i = 0; i < 8; i += 2) {
        lanes_t low = SHUFFLE(r[i], r[i + 1], 0, 8, 2, 10, 4, 12, 6, 14);
        r[i + 1] = SHUFFLE(r[i], r[i + 1], 1, 9, 3, 11, 5, 13, 7, 15);
        r[i] = low;
    }
}
#else
static inline void load_transposed(const uint8_t *in, lanes_t r[8]) {
    for (int w = 0; w < 8; w++) {
        for (int lane = 0; lane < LANES; lane++) {
            r[w][lane] = load32(in + (size_t)lane * CHUNK_LEN + 4 * w);
        }
    }
}
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define DISPATCH __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define DISPATCH
#endif

/* The chaining values of LANES full chunks at in + i * CHUNK_LEN, counters counter + i. */
DISPATCH static void chunks_cv8(const uint8_t *in, uint64_t counter, uint32_t out[][8]) {
    lanes_t h[8], lo, hi;
    for (int i = 0; i < 8; i++) {
        for (int lane = 0; lane < LANES; lane++) h[i][lane] = IV[i];
    }
    for (int lane = 0; lane < LANES; lane++) {
        lo[lane] = (uint32_t)(counter + (uint64_t)lane);
        hi[lane] = (uint32_t)((counter + (uint64_t)lane) >> 32);
    }
    for (int b = 0; b < CHUNK_LEN / BLOCK_LEN; b++) {
        lanes_t m[16];
        load_transposed(in + (size_t)b * BLOCK_LEN, m);
        load_transposed(in + (size_t)b * BLOCK_LEN + 32, m + 8);
        uint32_t flags =
            (b == 0 ? CHUNK_START : 0) | (b == CHUNK_LEN / BLOCK_LEN - 1 ? CHUNK_END : 0);
        lanes_t v0 = h[0], v1 = h[1], v2 = h[2], v3 = h[3], v4 = h[4], v5 = h[5], v6 = h[6],
                v7 = h[7], v12 = lo, v13 = hi, v8, v9, v10, v11, v14, v15;
        for (int lane = 0; lane < LANES; lane++) {
            v8[lane] = IV[0], v9[lane] = IV[1], v10[lane] = IV[2], v11[lane] = IV[3];
            v14[lane] = BLOCK_LEN, v15[lane] = flags;
        }
        ROUNDS(VMIX);
        h[0] = v0 ^ v8, h[1] = v1 ^ v9, h[2] = v2 ^ v10, h[3] = v3 ^ v11;
        h[4] = v4 ^ v12, h[5] = v5 ^ v13, h[6] = v6 ^ v14, h[7] = v7 ^ v15;
    }
    for (int lane = 0; lane < LANES; lane++) {
        for (int i = 0; i < 8; i++) out[lane][i] = h[i][lane];
    }
}
#else
static void chunks_cv8(const uint8_t *in, uint64_t counter, uint32_t out[][8]) {
    for (int lane = 0; lane < LANES; lane++) {
        chunk_cv(in + (size_t)lane * CHUNK_LEN, CHUNK_LEN, counter + lane, 0, out[lane]);
    }
}
#endif

static void store_le(uint8_t out[DIGEST_LEN], const uint32_t cv[8]) {
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)cv[i], out[4 * i + 1] = (uint8_t)(cv[i] >> 8);
        out[4 * i + 2] = (uint8_t)(cv[i] >> 16), out[4 * i + 3] = (uint8_t)(cv[i] >> 24);
    }
}

/* The parent of two chaining values, in place into left. */
static void parent_cv(uint32_t left[8], const uint32_t right[8], uint32_t flags) {
    uint8_t block[BLOCK_LEN];
    store_le(block, left);
    store_le(block + 32, right);
    memcpy(left, IV, sizeof(IV));
    compress(left, block, BLOCK_LEN, 0, PARENT | flags);
}

/* Chaining values a hash of up to len bytes needs room for (at least one). */
static size_t cv_count(size_t len) { return len / CHUNK_LEN + 1; }

/*
 * BLAKE3 of in[0:len] into out. cvs has room for cv_count(len) chaining values. Chunk
 * chaining values are merged level by level, pairing neighbours and carrying an odd last
 * one up: the left-complete tree of the specification.
 */
static void hash_one(const uint8_t *in, size_t len, uint32_t (*cvs)[8], uint8_t out[DIGEST_LEN]) {
    size_t chunks = len == 0 ? 1 : (len + CHUNK_LEN - 1) / CHUNK_LEN;
    if (chunks == 1) {
        chunk_cv(in, len, 0, ROOT, cvs[0]);
        store_le(out, cvs[0]);
        return;
    }
    size_t full = chunks - 1; /* every chunk but the last is full */
    size_t done = 0;
    for (; done + LANES <= full; done += LANES) chunks_cv8(in + done * CHUNK_LEN, done, cvs + done);
    if (full - done > 1) {
        /* The full chunks left, in the first lanes of one more vector call (on a copy). */
        uint8_t rest[LANES * CHUNK_LEN];
        uint32_t rest_cvs[LANES][8];
        memcpy(rest, in + done * CHUNK_LEN, (full - done) * CHUNK_LEN);
        memset(rest + (full - done) * CHUNK_LEN, 0, (LANES - (full - done)) * CHUNK_LEN);
        chunks_cv8(rest, done, rest_cvs);
        memcpy(cvs + done, rest_cvs, (full - done) * sizeof(cvs[0]));
        done = full;
    }
    for (; done < full; done++) chunk_cv(in + done * CHUNK_LEN, CHUNK_LEN, done, 0, cvs[done]);
    chunk_cv(in + full * CHUNK_LEN, len - full * CHUNK_LEN, full, 0, cvs[full]);
    size_t n = chunks;
    while (n > 2) {
        size_t half = 0;
        for (size_t i = 0; i + 1 < n; i += 2, half++) {
            parent_cv(cvs[i], cvs[i + 1], 0);
            if (half != i) memcpy(cvs[half], cvs[i], sizeof(cvs[0]));
        }
        if (n % 2) memcpy(cvs[half++], cvs[n - 1], sizeof(cvs[0]));
        n = half;
    }
    parent_cv(cvs[0], cvs[1], ROOT);
    store_le(out, cvs[0]);
}

static PyObject *hex_of(const uint8_t digest[DIGEST_LEN]) {
    static const char hex[] = "0123456789abcdef";
    PyObject *text = PyUnicode_New(2 * DIGEST_LEN, 127);
    if (text == NULL) return NULL;
    Py_UCS1 *chars = PyUnicode_1BYTE_DATA(text);
    for (int j = 0; j < DIGEST_LEN; j++) {
        chars[2 * j] = (Py_UCS1)hex[digest[j] >> 4];
        chars[2 * j + 1] = (Py_UCS1)hex[digest[j] & 15];
    }
    return text;
}

static PyObject *addresses(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer data;
    Py_ssize_t start;
    PyObject *sizes_arg;
    if (!PyArg_ParseTuple(args, "y*nO:addresses", &data, &start, &sizes_arg)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t *sizes = NULL;
    uint8_t *digests = NULL;
    uint32_t(*cvs)[8] = NULL;
    PyObject *seq = PySequence_Fast(sizes_arg, "addresses() sizes must be a sequence of ints");
    if (seq == NULL) goto done;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    sizes = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(count ? count : 1));
    digests = PyMem_Malloc(DIGEST_LEN * (size_t)(count ? count : 1));
    if (sizes == NULL || digests == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (start < 0 || start > data.len) {
        PyErr_Format(PyExc_ValueError, "addresses() start %zd is outside the buffer of %zd bytes",
                     start, data.len);
        goto done;
    }
    Py_ssize_t end = start, largest = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t size = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(seq, i));
        if (size == -1 && PyErr_Occurred()) goto done;
        if (size < 0 || size > data.len - end) {
            PyErr_Format(PyExc_ValueError,
                         "addresses() size %zd at byte %zd runs past the buffer of %zd bytes",
                         size, end, data.len);
            goto done;
        }
        sizes[i] = size, end += size;
        if (size > largest) largest = size;
    }
    cvs = PyMem_Malloc(sizeof(cvs[0]) * cv_count((size_t)largest));
    if (cvs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const uint8_t *in = (const uint8_t *)data.buf + start;
    PyThreadState *released = end - start >= RELEASE_BYTES ? PyEval_SaveThread() : NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        hash_one(in, (size_t)sizes[i], cvs, digests + DIGEST_LEN * i);
        in += sizes[i];
    }
    if (released != NULL) PyEval_RestoreThread(released);
    result = PyList_New(count);
    if (result == NULL) goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *text = hex_of(digests + DIGEST_LEN * i);
        if (text == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, text);
    }
done:
    Py_XDECREF(seq);
    PyMem_Free(sizes);
    PyMem_Free(digests);
    PyMem_Free(cvs);
    PyBuffer_Release(&data);
    return result;
}

/*
 * Whether guide chunk `number`, of `size` bytes, may start at `start` (the byte checks of
 * StreamCutter._matches, before any hashing).
 */
static int plausible(const uint8_t *data, Py_ssize_t len, Py_ssize_t start, Py_ssize_t number,
                     const int64_t *sizes, Py_ssize_t chunks, const uint8_t *firsts,
                     Py_ssize_t min_size, Py_ssize_t reach, int quote) {
    if (number >= chunks - 1 || len - start < reach) return 0;
    Py_ssize_t size = (Py_ssize_t)sizes[number];
    if (size < min_size || size >= reach) return 0;
    Py_ssize_t end = start + size;
    if (data[end] != firsts[number + 1]) return 0;
    if (quote < 0) return 1;
    if (data[end - 1] != '\n') return 0;
    Py_ssize_t line = end - 1;
    while (line > start && data[line - 1] != '\n') line--;
    Py_ssize_t quotes = 0;
    for (Py_ssize_t i = line; i < end - 1; i++) quotes += data[i] == (uint8_t)quote;
    return quotes % 2 == 0;
}

static PyObject *follow(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer data, sizes, firsts, digests;
    Py_ssize_t start, number, min_size, reach;
    int quote;
    if (!PyArg_ParseTuple(args, "y*nny*y*y*nni:follow", &data, &start, &number, &sizes, &firsts,
                          &digests, &min_size, &reach, &quote)) {
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t chunks = sizes.len / (Py_ssize_t)sizeof(int64_t);
    uint32_t(*cvs)[8] = NULL;
    if (sizes.len % (Py_ssize_t)sizeof(int64_t) || firsts.len != chunks ||
        digests.len != chunks * DIGEST_LEN) {
        PyErr_Format(PyExc_ValueError,
                     "follow() needs 8-byte sizes, first bytes and 32-byte digests of as many "
                     "chunks; got %zd, %zd and %zd bytes",
                     sizes.len, firsts.len, digests.len);
        goto done;
    }
    if (start < 0 || start > data.len || number < 0 || reach < 1 ||
        min_size < 1) {
        PyErr_Format(PyExc_ValueError,
                     "follow() start %zd, number %zd, min_size %zd or reach %zd out of range",
                     start, number, min_size, reach);
        goto done;
    }
    cvs = PyMem_Malloc(sizeof(cvs[0]) * cv_count((size_t)reach));
    if (cvs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const uint8_t *bytes = data.buf;
    const int64_t *size_of = sizes.buf;
    const uint8_t *expected = digests.buf;
    uint8_t digest[DIGEST_LEN];
    int mismatch = 0;
    Py_BEGIN_ALLOW_THREADS
    while (plausible(bytes, data.len, start, number, size_of, chunks, firsts.buf, min_size, reach,
                     quote)) {
        hash_one(bytes + start, (size_t)size_of[number], cvs, digest);
        if (memcmp(digest, expected + DIGEST_LEN * number, DIGEST_LEN) != 0) {
            mismatch = 1;
            break;
        }
        start += (Py_ssize_t)size_of[number], number++;
    }
    Py_END_ALLOW_THREADS
    if (mismatch) {
        PyObject *text = hex_of(digest);
        if (text != NULL) result = Py_BuildValue("nnN", start, number, text);
    } else {
        result = Py_BuildValue("nnO", start, number, Py_None);
    }
done:
    PyMem_Free(cvs);
    PyBuffer_Release(&data);
    PyBuffer_Release(&sizes);
    PyBuffer_Release(&firsts);
    PyBuffer_Release(&digests);
    return result;
}

/* FastCDC's parameters, as pyfastcdc derives them from the sizes. */
typedef struct {
    Py_ssize_t min_size, avg_size, max_size;
    uint64_t mask_s, mask_l, mask_s_ls, mask_l_ls;
    const uint64_t *gear, *gear_ls;
} gear_t;

/* FastCDC 2020's cut point in in[0:len]: the length of the chunk that starts there. */
static Py_ssize_t gear_cut(const uint8_t *in, Py_ssize_t len, const gear_t *g) {
    Py_ssize_t remaining = len, center = g->avg_size;
    if (remaining <= g->min_size) return remaining;
    if (remaining > g->max_size) {
        remaining = g->max_size;
    } else if (remaining < center) {
        center = remaining;
    }
    uint64_t hash = 0;
    Py_ssize_t pos = (g->min_size / 2) * 2, middle = (center / 2) * 2, end = (remaining / 2) * 2;
    for (; pos < middle; pos += 2) {
        hash = (hash << 2) + g->gear_ls[in[pos]];
        if (!(hash & g->mask_s_ls)) return pos;
        hash += g->gear[in[pos + 1]];
        if (!(hash & g->mask_s)) return pos + 1;
    }
    for (; pos < end; pos += 2) {
        hash = (hash << 2) + g->gear_ls[in[pos]];
        if (!(hash & g->mask_l_ls)) return pos;
        hash += g->gear[in[pos + 1]];
        if (!(hash & g->mask_l)) return pos + 1;
    }
    return remaining;
}

static Py_ssize_t find_newline(const uint8_t *data, Py_ssize_t from, Py_ssize_t to) {
    const uint8_t *found = from < to ? memchr(data + from, '\n', (size_t)(to - from)) : NULL;
    return found == NULL ? -1 : found - data;
}

/*
 * The first row end at or after `cut` (StreamCutter._row_end): after the first newline
 * past the cut with an even number of quotes since the start of the line the cut falls
 * in, at most max_size past the cut; the stream's end if it comes first; else the cut,
 * clearing *aligned.
 */
static Py_ssize_t row_end(const uint8_t *data, Py_ssize_t len, Py_ssize_t start, Py_ssize_t cut,
                          Py_ssize_t max_size, uint8_t quote, int eof, int *aligned) {
    Py_ssize_t limit = cut + max_size < len ? cut + max_size : len;
    Py_ssize_t counted = cut - 1;
    while (counted > start && data[counted - 1] != '\n') counted--;
    Py_ssize_t quotes = 0;
    for (Py_ssize_t newline = find_newline(data, cut - 1, limit); newline != -1;
         newline = find_newline(data, newline + 1, limit)) {
        for (Py_ssize_t i = counted; i < newline; i++) quotes += data[i] == quote;
        if (quotes % 2 == 0) return newline + 1;
        counted = newline;
    }
    if (limit == len && eof) return limit;
    *aligned = 0;
    return cut;
}

static PyObject *cuts(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer data, gear, gear_ls;
    Py_ssize_t start, reach, most;
    int eof, quote;
    gear_t g;
    unsigned long long mask_s, mask_l;
    if (!PyArg_ParseTuple(args, "y*nnpnnnnKKy*y*i:cuts", &data, &start, &reach, &eof, &most,
                          &g.min_size, &g.avg_size, &g.max_size, &mask_s, &mask_l, &gear,
                          &gear_ls, &quote)) {
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t *ends = NULL;
    if (gear.len != 256 * 8 || gear_ls.len != 256 * 8) {
        PyErr_Format(PyExc_ValueError, "cuts() needs gear tables of 256 uint64; got %zd and %zd bytes",
                     gear.len, gear_ls.len);
        goto done;
    }
    if (start < 0 || start > data.len || reach < 1 || g.min_size < 1 ||
        g.min_size > g.avg_size || g.avg_size > g.max_size || quote > 255) {
        PyErr_Format(PyExc_ValueError,
                     "cuts() start %zd, reach %zd, sizes %zd/%zd/%zd or quote %d out of range",
                     start, reach, g.min_size, g.avg_size, g.max_size, quote);
        goto done;
    }
    g.mask_s = mask_s, g.mask_l = mask_l, g.mask_s_ls = mask_s << 1, g.mask_l_ls = mask_l << 1;
    g.gear = gear.buf, g.gear_ls = gear_ls.buf;
    Py_ssize_t room = (data.len - start) / g.min_size + 2;
    if (most < 0 || most > room) most = room;
    ends = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(most ? most : 1));
    if (ends == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const uint8_t *bytes = data.buf;
    Py_ssize_t len = data.len, count = 0, pos = start;
    int aligned = 1;
    Py_BEGIN_ALLOW_THREADS
    while (count < most && pos < len && (eof || len - pos >= reach)) {
        Py_ssize_t end = pos + gear_cut(bytes + pos, len - pos, &g);
        if (quote >= 0 && end != len) {
            end = row_end(bytes, len, pos, end, g.max_size, (uint8_t)quote, eof, &aligned);
        }
        ends[count++] = pos = end;
    }
    Py_END_ALLOW_THREADS
    PyObject *list = PyList_New(count);
    if (list == NULL) goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *end = PyLong_FromSsize_t(ends[i]);
        if (end == NULL) {
            Py_DECREF(list);
            goto done;
        }
        PyList_SET_ITEM(list, i, end);
    }
    result = Py_BuildValue("NO", list, aligned ? Py_True : Py_False);
done:
    PyMem_Free(ends);
    PyBuffer_Release(&data);
    PyBuffer_Release(&gear);
    PyBuffer_Release(&gear_ls);
    return result;
}

static PyMethodDef methods[] = {
    {"cuts", cuts, METH_VARARGS,
     "cuts(data, start, reach, eof, most, min_size, avg_size, max_size, mask_s, mask_l,\n"
     "     gear, gear_ls, quote) -> tuple[list[int], bool]\n\n"
     "Where the chunks from start end: FastCDC cuts, moved to row ends if quote >= 0, while\n"
     "reach bytes are left after a chunk's start (to the end if eof), at most `most` chunks\n"
     "(all if negative). Also whether every cut moved to a row end. The GIL is released."},
    {"addresses", addresses, METH_VARARGS,
     "addresses(data, start, sizes) -> list[str]\n\n"
     "The hex BLAKE3 digests of consecutive pieces of data: sizes[0] bytes from start, then\n"
     "sizes[1] bytes, and so on. The GIL is released while hashing 256 KiB or more."},
    {"follow", follow, METH_VARARGS,
     "follow(data, start, number, sizes, firsts, digests, min_size, reach, quote)\n"
     "    -> tuple[int, int, str | None]\n\n"
     "Take guide chunks number, number + 1, ... at start, start + sizes[number], ... of data\n"
     "while each passes the byte checks of StreamCutter._matches and hashes to its digest.\n"
     "sizes: int64 per chunk; firsts: each chunk's first byte; digests: 32 bytes per chunk;\n"
     "quote: the quote byte when cutting at rows, -1 otherwise. Returns where it stopped, the\n"
     "guide chunk expected there, and the hex address of the bytes there if they passed the\n"
     "byte checks but hashed to another address (None otherwise). The GIL is released."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cuts", "BLAKE3 addresses of chunks, and the guided matching loop.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cuts(void) { return PyModule_Create(&module); }
