/* Eight MD5 streams at once on AVX2: the parts of an S3 multipart ETag hashed side by side.
 *
 * MD5 is one long chain of dependent 32-bit operations: a single stream keeps one core's
 * arithmetic units mostly idle (about 0.6-0.8 GB/s here, OpenSSL's assembly included). The
 * parts of a multipart upload are independent streams, so eight of them can share each vector
 * instruction, one per 32-bit lane ("multi-buffer" hashing, as Intel's isa-l_crypto md5_mb and
 * minio's md5-simd do). No Python package ships it, hence this small module.
 *
 * Python API (module sparc.client._md5lanes):
 *   available() -> bool            whether this CPU runs the AVX2 kernel
 *   update(states, blocks) -> None  states: a writable buffer of 8 x 16 bytes (each lane's
 *       A, B, C, D, little-endian, as an MD5 state); blocks: a sequence of 1 to 8 buffers of the
 *       same length, a multiple of 64. Lane i absorbs blocks[i]; lanes past len(blocks) are left
 *       unchanged. The GIL is released while hashing.
 * Padding and the digest are the caller's (sparc.client._md5parts).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define LANES 8

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2_KERNEL 1

#define TARGET __attribute__((target("avx2")))
#define ADD(x, y) _mm256_add_epi32((x), (y))
#define XOR(x, y) _mm256_xor_si256((x), (y))
#define AND(x, y) _mm256_and_si256((x), (y))
#define OR(x, y) _mm256_or_si256((x), (y))
#define ROTL(x, s) OR(_mm256_slli_epi32((x), (s)), _mm256_srli_epi32((x), 32 - (s)))
#define F(b, c, d) XOR((d), AND((b), XOR((c), (d))))
#define G(b, c, d) XOR((c), AND((d), XOR((b), (c))))
#define H(b, c, d) XOR(XOR((b), (c)), (d))
#define I(b, c, d) XOR((c), OR((b), XOR((d), ones)))
#define STEP(f, a, b, c, d, k, s, t) \
    a = ADD(b, ROTL(ADD(ADD(a, f(b, c, d)), ADD(m[k], _mm256_set1_epi32((int)(t)))), s))

/* The sixteen message words of one 64-byte block of each lane, word w of lane i in m[w][i]. */
TARGET static inline void load_words(__m256i m[16], const uint8_t *const p[LANES], size_t at) {
    for (int half = 0; half < 2; half++) {
        /* rows: 8 words (32 bytes) of each lane; transpose 8x8 32-bit */
        __m256i r0 = _mm256_loadu_si256((const __m256i *)(p[0] + at + 32 * half));
        __m256i r1 = _mm256_loadu_si256((const __m256i *)(p[1] + at + 32 * half));
        __m256i r2 = _mm256_loadu_si256((const __m256i *)(p[2] + at + 32 * half));
        __m256i r3 = _mm256_loadu_si256((const __m256i *)(p[3] + at + 32 * half));
        __m256i r4 = _mm256_loadu_si256((const __m256i *)(p[4] + at + 32 * half));
        __m256i r5 = _mm256_loadu_si256((const __m256i *)(p[5] + at + 32 * half));
        __m256i r6 = _mm256_loadu_si256((const __m256i *)(p[6] + at + 32 * half));
        __m256i r7 = _mm256_loadu_si256((const __m256i *)(p[7] + at + 32 * half));
        __m256i t0 = _mm256_unpacklo_epi32(r0, r1), t1 = _mm256_unpackhi_epi32(r0, r1);
        __m256i t2 = _mm256_unpacklo_epi32(r2, r3), t3 = _mm256_unpackhi_epi32(r2, r3);
        __m256i t4 = _mm256_unpacklo_epi32(r4, r5), t5 = _mm256_unpackhi_epi32(r4, r5);
        __m256i t6 = _mm256_unpacklo_epi32(r6, r7), t7 = _mm256_unpackhi_epi32(r6, r7);
        __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
        __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
        __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
        __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
        __m256i *w = m + 8 * half;
        w[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
        w[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
        w[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
        w[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
        w[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
        w[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
        w[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
        w[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
    }
}

TARGET static void md5_avx2(uint32_t state[4][LANES], const uint8_t *const p[LANES], size_t length) {
    __m256i a = _mm256_loadu_si256((const __m256i *)state[0]);
    __m256i b = _mm256_loadu_si256((const __m256i *)state[1]);
    __m256i c = _mm256_loadu_si256((const __m256i *)state[2]);
    __m256i d = _mm256_loadu_si256((const __m256i *)state[3]);
    const __m256i ones = _mm256_set1_epi32(-1);
    __m256i m[16];
    for (size_t at = 0; at < length; at += 64) {
        __m256i a0 = a, b0 = b, c0 = c, d0 = d;
        load_words(m, p, at);
        /* RFC 1321's 64 steps: STEP(round function, registers, message word, shift, T[i]) with
         * T[i] = floor(|sin(i + 1)| * 2^32); the registers rotate one place per step. */
    STEP(F, a, b, c, d, 0, 7, 0xd76aa478u);
    STEP(F, d, a, b, c, 1, 12, 0xe8c7b756u);
    STEP(F, c, d, a, b, 2, 17, 0x242070dbu);
    STEP(F, b, c, d, a, 3, 22, 0xc1bdceeeu);
    STEP(F, a, b, c, d, 4, 7, 0xf57c0fafu);
    STEP(F, d, a, b, c, 5, 12, 0x4787c62au);
    STEP(F, c, d, a, b, 6, 17, 0xa8304613u);
    STEP(F, b, c, d, a, 7, 22, 0xfd469501u);
    STEP(F, a, b, c, d, 8, 7, 0x698098d8u);
    STEP(F, d, a, b, c, 9, 12, 0x8b44f7afu);
    STEP(F, c, d, a, b, 10, 17, 0xffff5bb1u);
    STEP(F, b, c, d, a, 11, 22, 0x895cd7beu);
    STEP(F, a, b, c, d, 12, 7, 0x6b901122u);
    STEP(F, d, a, b, c, 13, 12, 0xfd987193u);
    STEP(F, c, d, a, b, 14, 17, 0xa679438eu);
    STEP(F, b, c, d, a, 15, 22, 0x49b40821u);
    STEP(G, a, b, c, d, 1, 5, 0xf61e2562u);
    STEP(G, d, a, b, c, 6, 9, 0xc040b340u);
    STEP(G, c, d, a, b, 11, 14, 0x265e5a51u);
    STEP(G, b, c, d, a, 0, 20, 0xe9b6c7aau);
    STEP(G, a, b, c, d, 5, 5, 0xd62f105du);
    STEP(G, d, a, b, c, 10, 9, 0x02441453u);
    STEP(G, c, d, a, b, 15, 14, 0xd8a1e681u);
    STEP(G, b, c, d, a, 4, 20, 0xe7d3fbc8u);
    STEP(G, a, b, c, d, 9, 5, 0x21e1cde6u);
    STEP(G, d, a, b, c, 14, 9, 0xc33707d6u);
    STEP(G, c, d, a, b, 3, 14, 0xf4d50d87u);
    STEP(G, b, c, d, a, 8, 20, 0x455a14edu);
    STEP(G, a, b, c, d, 13, 5, 0xa9e3e905u);
    STEP(G, d, a, b, c, 2, 9, 0xfcefa3f8u);
    STEP(G, c, d, a, b, 7, 14, 0x676f02d9u);
    STEP(G, b, c, d, a, 12, 20, 0x8d2a4c8au);
    STEP(H, a, b, c, d, 5, 4, 0xfffa3942u);
    STEP(H, d, a, b, c, 8, 11, 0x8771f681u);
    STEP(H, c, d, a, b, 11, 16, 0x6d9d6122u);
    STEP(H, b, c, d, a, 14, 23, 0xfde5380cu);
    STEP(H, a, b, c, d, 1, 4, 0xa4beea44u);
    STEP(H, d, a, b, c, 4, 11, 0x4bdecfa9u);
    STEP(H, c, d, a, b, 7, 16, 0xf6bb4b60u);
    STEP(H, b, c, d, a, 10, 23, 0xbebfbc70u);
    STEP(H, a, b, c, d, 13, 4, 0x289b7ec6u);
    STEP(H, d, a, b, c, 0, 11, 0xeaa127fau);
    STEP(H, c, d, a, b, 3, 16, 0xd4ef3085u);
    STEP(H, b, c, d, a, 6, 23, 0x04881d05u);
    STEP(H, a, b, c, d, 9, 4, 0xd9d4d039u);
    STEP(H, d, a, b, c, 12, 11, 0xe6db99e5u);
    STEP(H, c, d, a, b, 15, 16, 0x1fa27cf8u);
    STEP(H, b, c, d, a, 2, 23, 0xc4ac5665u);
    STEP(I, a, b, c, d, 0, 6, 0xf4292244u);
    STEP(I, d, a, b, c, 7, 10, 0x432aff97u);
    STEP(I, c, d, a, b, 14, 15, 0xab9423a7u);
    STEP(I, b, c, d, a, 5, 21, 0xfc93a039u);
    STEP(I, a, b, c, d, 12, 6, 0x655b59c3u);
    STEP(I, d, a, b, c, 3, 10, 0x8f0ccc92u);
    STEP(I, c, d, a, b, 10, 15, 0xffeff47du);
    STEP(I, b, c, d, a, 1, 21, 0x85845dd1u);
    STEP(I, a, b, c, d, 8, 6, 0x6fa87e4fu);
    STEP(I, d, a, b, c, 15, 10, 0xfe2ce6e0u);
    STEP(I, c, d, a, b, 6, 15, 0xa3014314u);
    STEP(I, b, c, d, a, 13, 21, 0x4e0811a1u);
    STEP(I, a, b, c, d, 4, 6, 0xf7537e82u);
    STEP(I, d, a, b, c, 11, 10, 0xbd3af235u);
    STEP(I, c, d, a, b, 2, 15, 0x2ad7d2bbu);
    STEP(I, b, c, d, a, 9, 21, 0xeb86d391u);
        a = ADD(a, a0); b = ADD(b, b0); c = ADD(c, c0); d = ADD(d, d0);
    }
    _mm256_storeu_si256((__m256i *)state[0], a);
    _mm256_storeu_si256((__m256i *)state[1], b);
    _mm256_storeu_si256((__m256i *)state[2], c);
    _mm256_storeu_si256((__m256i *)state[3], d);
}
#else
#define HAVE_AVX2_KERNEL 0
#endif

static int kernel_available(void) {
#if HAVE_AVX2_KERNEL
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

static PyObject *available(PyObject *self, PyObject *Py_UNUSED(noargs)) {
    (void)self;
    return PyBool_FromLong(kernel_available());
}

static PyObject *update(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *states_obj, *blocks_obj;
    if (!PyArg_ParseTuple(args, "OO:update", &states_obj, &blocks_obj))
        return NULL;
    if (!kernel_available()) {
        PyErr_SetString(PyExc_RuntimeError, "this CPU has no AVX2: hash with hashlib");
        return NULL;
    }
    Py_buffer states;
    if (PyObject_GetBuffer(states_obj, &states, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    PyObject *seq = PySequence_Tuple(blocks_obj);  /* a copy: nothing can resize it meanwhile */
    if (seq == NULL) {
        PyBuffer_Release(&states);
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    Py_buffer views[LANES];
    Py_ssize_t got = 0;
    PyObject *result = NULL;
    if (states.len != 16 * LANES) {
        PyErr_Format(PyExc_ValueError, "states must be %d bytes, not %zd", 16 * LANES, states.len);
        goto done;
    }
    if (n < 1 || n > LANES) {
        PyErr_Format(PyExc_ValueError, "1 to %d blocks, not %zd", LANES, n);
        goto done;
    }
    for (; got < n; got++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(seq, got), &views[got], PyBUF_C_CONTIGUOUS) < 0)
            goto done;
    }
    Py_ssize_t length = views[0].len;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (views[i].len != length || length % 64) {
            PyErr_SetString(PyExc_ValueError, "blocks must have one length, a multiple of 64");
            goto done;
        }
    }
#if HAVE_AVX2_KERNEL
    {
        /* lanes as columns: lane i's A at lanes[0][i] (the kernel's layout) */
        uint32_t lanes[4][LANES];
        uint32_t saved[LANES][4];
        const uint8_t *p[LANES];
        memcpy(saved, states.buf, sizeof saved);
        for (int i = 0; i < LANES; i++) {
            for (int w = 0; w < 4; w++)
                lanes[w][i] = saved[i][w];
            p[i] = (const uint8_t *)views[i < n ? i : 0].buf;  /* spare lanes repeat lane 0 */
        }
        Py_BEGIN_ALLOW_THREADS
        md5_avx2(lanes, p, (size_t)length);
        Py_END_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++)
            for (int w = 0; w < 4; w++)
                saved[i][w] = lanes[w][i];
        memcpy(states.buf, saved, sizeof saved);
    }
#endif
    result = Py_None;
    Py_INCREF(result);
done:
    for (Py_ssize_t i = 0; i < got; i++)
        PyBuffer_Release(&views[i]);
    Py_DECREF(seq);
    PyBuffer_Release(&states);
    return result;
}

static PyMethodDef methods[] = {
    {"available", available, METH_NOARGS, "Whether this CPU runs the eight-lane MD5 kernel (AVX2)."},
    {"update", update, METH_VARARGS, "update(states, blocks): eight MD5 states absorb up to eight blocks."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_md5lanes", "Eight MD5 streams at once (AVX2).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__md5lanes(void) { return PyModule_Create(&module); }
