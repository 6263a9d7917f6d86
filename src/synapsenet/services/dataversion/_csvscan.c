/*
 * Per-chunk statistics of row-aligned CSV bytes in one pass, without building columns.
 *
 * scan(data, ends, kinds, nulls, text, low, high, flow, fhigh, rows) reads headerless CSV
 * bytes whose chunks end at the offsets `ends` and writes, per chunk (segment) and column,
 * what segment_stats computes from the parsed table: rows, nulls, string bytes, and the
 * smallest and largest value. It does so only for input it reads exactly as pyarrow's CSV
 * reader does with the options of tabular._csv_conversion; for anything else (a type it does
 * not know, a value outside its strict grammar, a quote inside an unquoted field, a line
 * end inside quotes, an empty line, a lone carriage return, a row with another number of
 * fields, invalid UTF-8) it stops and returns the reason as a string, and the caller parses
 * the bytes with pyarrow instead. The GIL is released while scanning.
 *
 * Column kinds: 'i' int64, 'f' float64, 'd' date32, 'b' bool, 's' string (UTF-8).
 * Outputs (C-contiguous, writable, preallocated by the caller; ncols x nseg unless noted):
 *   nulls  int64: nulls per segment;
 *   text   int64: bytes of the non-null strings (string columns);
 *   low, high  int64: min and max of int, date (days since 1970-01-01) and bool (0/1)
 *          columns, 0 where a segment has no value;
 *   flow, fhigh  float64: the same for float columns;
 *   rows   int64 [nseg]: rows per segment.
 * Returns, once done, the string columns' bounds: a tuple with, per string column, the
 * segments' minimums as Arrow string data and int32 offsets, then their maximums likewise
 * (an empty string where a segment has no value); or the reason it stopped, a str.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_csvscan_pow10.h"

#define K_INT 'i'
#define K_FLOAT 'f'
#define K_DATE 'd'
#define K_BOOL 'b'
#define K_STRING 's'

/* Longest numeric field converted through strtod_l (longer ones fall back to pyarrow). */
#define FLOAT_TEXT_MAX 64

static locale_t c_locale;

typedef struct {
    char *data;
    size_t size;
    size_t capacity;
} buffer;

static int buffer_reserve(buffer *b, size_t size) {
    if (size <= b->capacity) return 0;
    size_t capacity = b->capacity ? b->capacity : 256;
    while (capacity < size) capacity *= 2;
    char *grown = realloc(b->data, capacity);
    if (grown == NULL) return -1;
    b->data = grown;
    b->capacity = capacity;
    return 0;
}

/* A string bound of the current segment: bytes in the input, or in `held` if unescaped. */
typedef struct {
    const char *ptr;
    size_t len;
    int set;
    buffer held;
} bound;

/* One column's statistics of the current segment, and where each segment's go. */
typedef struct {
    char kind;
    int64_t values; /* non-null values so far in the segment */
    int64_t nulls, text, low, high;
    double flow, fhigh;
    bound smin, smax;
    int64_t *o_nulls, *o_text, *o_low, *o_high;
    double *o_flow, *o_fhigh;
    /* string bounds of the finished segments, back to back: Arrow string data and offsets */
    buffer low_text, high_text;
    int32_t *low_offsets, *high_offsets; /* nseg + 1 each */
} column;

typedef struct {
    const char *data;
    size_t size;
    const int64_t *ends;
    Py_ssize_t nseg;
    column *cols;
    Py_ssize_t ncols;
    int64_t *rows;
    buffer scratch; /* an escaped field, unescaped */
    buffer tail;    /* a last row without a line end, with one */
    const char *reason;
} scanner;

static const char *const NULL_TOKENS[] = {
    "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
    "1.#QNAN", "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null",
};
#define NULL_TOKEN_COUNT (sizeof(NULL_TOKENS) / sizeof(NULL_TOKENS[0]))
#define NULL_TOKEN_MAX 8

/* pyarrow's default null values: the empty field and the tokens above (unquoted only). */
static int is_null_token(const char *p, size_t n) {
    if (n == 0) return 1;
    if (n > NULL_TOKEN_MAX) return 0;
    switch (p[0]) {
    case '#':
    case '-':
    case '1':
    case 'N':
    case 'n':
        break;
    default:
        return 0;
    }
    for (size_t i = 0; i < NULL_TOKEN_COUNT; i++) {
        if (NULL_TOKENS[i][0] == p[0] && strlen(NULL_TOKENS[i]) == n &&
            memcmp(NULL_TOKENS[i], p, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static int parse_int64(const char *p, size_t n, int64_t *out) {
    int negative = n && p[0] == '-';
    size_t i = (size_t)negative;
    if (i == n) return -1;
    uint64_t magnitude = 0;
    const uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        unsigned digit = (unsigned char)p[i] - '0';
        if (digit > 9) return -1;
        if (magnitude > (limit - digit) / 10) return -1;
        magnitude = magnitude * 10 + digit;
    }
    *out = negative ? (int64_t)(0 - magnitude) : (int64_t)magnitude;
    return 0;
}

static const double POW10[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/*
 * man * 10^e10 rounded to the nearest double (ties to even), by the Eisel-Lemire method
 * (D. Lemire, "Number Parsing at a Gigabyte per Second", 2021): the top bits of the
 * product of the decimal mantissa with a 128-bit mantissa of 10^e10. Returns -1 where the
 * truncated table could make the rounding wrong, and for results that would be subnormal,
 * infinite or outside the table: the caller then converts another way.
 */
static int eisel_lemire(uint64_t man, long e10, int negative, double *out) {
    if (man == 0) {
        *out = negative ? -0.0 : 0.0;
        return 0;
    }
    if (e10 < POW10_MIN || e10 > POW10_MAX) return -1;
    int clz = __builtin_clzll(man);
    man <<= clz;
    /* floor(e10 * log2(10)) + 64 + the exponent bias, less the normalising shift */
    int64_t scaled = 217706 * (int64_t)e10;
    int64_t log2_floor = scaled >= 0 ? scaled / 65536 : -((-scaled + 65535) / 65536);
    uint64_t exp2 = (uint64_t)(log2_floor + 64 + 1023) - (uint64_t)clz;
    const uint64_t *power = POW10_128[e10 - POW10_MIN];
    unsigned __int128 x = (unsigned __int128)man * power[0];
    uint64_t x_high = (uint64_t)(x >> 64), x_low = (uint64_t)x;
    if ((x_high & 0x1FF) == 0x1FF && x_low + man < man) {
        /* the low bits may carry into the kept ones: add the table's lower half */
        unsigned __int128 y = (unsigned __int128)man * power[1];
        uint64_t y_high = (uint64_t)(y >> 64), y_low = (uint64_t)y;
        uint64_t merged_high = x_high, merged_low = x_low + y_high;
        if (merged_low < x_low) merged_high++;
        if ((merged_high & 0x1FF) == 0x1FF && merged_low + 1 == 0 && y_low + man < man) {
            return -1;
        }
        x_high = merged_high;
        x_low = merged_low;
    }
    uint64_t top = x_high >> 63;
    uint64_t mantissa = x_high >> (top + 9); /* 54 bits */
    exp2 -= 1 ^ top;
    if (x_low == 0 && (x_high & 0x1FF) == 0 && (mantissa & 3) == 1) return -1; /* a tie? */
    mantissa += mantissa & 1;
    mantissa >>= 1;
    if (mantissa >> 53) {
        mantissa >>= 1;
        exp2 += 1;
    }
    if (exp2 - 1 >= 0x7FF - 1) return -1; /* subnormal or infinite */
    uint64_t bits = exp2 << 52 | (mantissa & UINT64_C(0x000FFFFFFFFFFFFF));
    if (negative) bits |= UINT64_C(0x8000000000000000);
    memcpy(out, &bits, sizeof(bits));
    return 0;
}

/*
 * mantissa * 10^power (the number's decimal digits exact in `mantissa`), correctly rounded:
 * by one exact multiplication or division where the mantissa fits in 2^53 and the power of
 * ten is at most 22, else by the Eisel-Lemire method; -1 where neither decides.
 */
static int decimal_to_double(uint64_t mantissa, long power, int negative, double *out) {
    if (mantissa <= (UINT64_C(1) << 53) && power >= -22 && power <= 22) {
        double value = (double)mantissa; /* exact, as is the power of ten: one rounding */
        value = power < 0 ? value / POW10[-power] : value * POW10[power];
        *out = negative ? -value : value;
        return 0;
    }
    return eisel_lemire(mantissa, power, negative, out);
}

/*
 * A decimal number: -?(digits[.digits*] | .digits)([eE][+-]?digits)?, converted with
 * correct rounding (as pyarrow's fast_float does): by decimal_to_double where its digits
 * fit in 64 bits and it decides, else by strtod_l in the C locale.
 */
static int parse_float64(const char *p, size_t n, double *out) {
    int negative = n && p[0] == '-';
    size_t i = (size_t)negative;
    uint64_t mantissa = 0;
    int digits = 0, significant = 0, fraction = 0;
    for (; i < n && (unsigned)((unsigned char)p[i] - '0') <= 9; i++, digits++) {
        if (mantissa || p[i] != '0') {
            significant++;
            if (significant <= 19) mantissa = mantissa * 10 + (unsigned)(p[i] - '0');
        }
    }
    if (i < n && p[i] == '.') {
        for (i++; i < n && (unsigned)((unsigned char)p[i] - '0') <= 9; i++, digits++) {
            fraction++;
            if (mantissa || p[i] != '0') {
                significant++;
                if (significant <= 19) mantissa = mantissa * 10 + (unsigned)(p[i] - '0');
            }
        }
    }
    if (digits == 0) return -1;
    long exponent = 0;
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        int exponent_negative = 0;
        if (i < n && (p[i] == '+' || p[i] == '-')) exponent_negative = p[i++] == '-';
        size_t first = i;
        for (; i < n && (unsigned)((unsigned char)p[i] - '0') <= 9; i++) {
            if (exponent < 100000) exponent = exponent * 10 + (p[i] - '0');
        }
        if (i == first) return -1;
        if (exponent_negative) exponent = -exponent;
    }
    if (i != n) return -1;
    long power = exponent - fraction;
    if (significant <= 19 && decimal_to_double(mantissa, power, negative, out) == 0) return 0;
    if (n >= FLOAT_TEXT_MAX) return -1;
    char text[FLOAT_TEXT_MAX];
    memcpy(text, p, n);
    text[n] = '\0';
    char *end = NULL;
    *out = strtod_l(text, &end, c_locale);
    return end == text + n ? 0 : -1;
}

static int is_leap(long year) {
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

/* YYYY-MM-DD (year 1 to 9999) as days since 1970-01-01. */
static int parse_date(const char *p, size_t n, int64_t *out) {
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n != 10 || p[4] != '-' || p[7] != '-') return -1;
    long parts[3] = {0, 0, 0};
    const int starts[3] = {0, 5, 8}, widths[3] = {4, 2, 2};
    for (int k = 0; k < 3; k++) {
        for (int j = 0; j < widths[k]; j++) {
            unsigned digit = (unsigned char)p[starts[k] + j] - '0';
            if (digit > 9) return -1;
            parts[k] = parts[k] * 10 + digit;
        }
    }
    long year = parts[0], month = parts[1], day = parts[2];
    if (year < 1 || month < 1 || month > 12 || day < 1) return -1;
    if (day > month_days[month - 1] + (month == 2 && is_leap(year))) return -1;
    /* Days from the civil date (proleptic Gregorian), after Howard Hinnant's algorithm. */
    long y = month <= 2 ? year - 1 : year;
    long era = (y >= 0 ? y : y - 399) / 400;
    long year_of_era = y - era * 400;
    long day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    long day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    *out = era * 146097 + day_of_era - 719468;
    return 0;
}

static int parse_bool(const char *p, size_t n, int64_t *out) {
    static const char *const truths[] = {"1", "True", "TRUE", "true"};
    static const char *const falsities[] = {"0", "False", "FALSE", "false"};
    for (int k = 0; k < 4; k++) {
        if (strlen(truths[k]) == n && memcmp(truths[k], p, n) == 0) {
            *out = 1;
            return 0;
        }
        if (strlen(falsities[k]) == n && memcmp(falsities[k], p, n) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t extra;
        uint32_t code;
        if (c >= 0xC2 && c <= 0xDF) {
            extra = 1;
            code = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            extra = 2;
            code = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            extra = 3;
            code = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= extra) return 0;
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            code = (code << 6) | (s[i + k] & 0x3F);
        }
        if ((extra == 2 && code < 0x800) || (extra == 3 && code < 0x10000)) return 0;
        if ((code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF) return 0;
        i += extra + 1;
    }
    return 1;
}

static inline int compare_bytes(const char *a, size_t an, const char *b, size_t bn) {
    if (an && bn && *a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c;
    return an < bn ? -1 : an > bn;
}

/* Make `b` the value (ptr, len); copy it if it lives in the scratch buffer. */
static int bound_set(bound *b, const char *ptr, size_t len, int in_scratch) {
    if (in_scratch) {
        if (buffer_reserve(&b->held, len ? len : 1) < 0) return -1;
        memcpy(b->held.data, ptr, len);
        ptr = b->held.data;
    }
    b->ptr = ptr;
    b->len = len;
    b->set = 1;
    return 0;
}

static void take_integer(column *col, int64_t value) {
    if (col->values++ == 0) {
        col->low = col->high = value;
        return;
    }
    if (value < col->low) col->low = value;
    if (value > col->high) col->high = value;
}

/* Of zeros, -0.0 is the smaller (IEEE 754 minimum and maximum), as in segment_stats. */
static void take_real(column *col, double value) {
    if (col->values++ == 0) {
        col->flow = col->fhigh = value;
        return;
    }
    if (value < col->flow || (value == col->flow && signbit(value))) col->flow = value;
    if (value > col->fhigh || (value == col->fhigh && !signbit(value))) col->fhigh = value;
}

/* A string value; `ascii` when the caller saw no byte over 0x7F (else UTF-8 is checked). */
static int take_string(scanner *s, column *col, const char *p, size_t n, int ascii,
                       int in_scratch) {
    if (!ascii && !valid_utf8((const unsigned char *)p, n)) {
        s->reason = "invalid UTF-8 in a string column";
        return -1;
    }
    col->values++;
    col->text += (int64_t)n;
    if (!col->smin.set || compare_bytes(p, n, col->smin.ptr, col->smin.len) < 0) {
        if (bound_set(&col->smin, p, n, in_scratch) < 0) goto nomem;
    }
    if (!col->smax.set || compare_bytes(p, n, col->smax.ptr, col->smax.len) > 0) {
        if (bound_set(&col->smax, p, n, in_scratch) < 0) goto nomem;
    }
    return 0;
nomem:
    s->reason = "out of memory";
    return -1;
}

/* Append segment `seg`'s bound `b` (if any) to a column's bounds. */
static int keep_bound(scanner *s, const bound *b, buffer *text, int32_t *offsets,
                      Py_ssize_t seg) {
    size_t length = b->set ? b->len : 0;
    if (text->size + length > INT32_MAX || buffer_reserve(text, text->size + length + 1) < 0) {
        s->reason = "out of memory";
        return -1;
    }
    memcpy(text->data + text->size, b->ptr, length);
    text->size += length;
    offsets[seg + 1] = (int32_t)text->size;
    return 0;
}

/* Write out segment `seg`'s statistics and start the next segment's. */
static int finish_segment(scanner *s, Py_ssize_t seg) {
    for (Py_ssize_t c = 0; c < s->ncols; c++) {
        column *col = &s->cols[c];
        col->o_nulls[seg] = col->nulls;
        col->o_text[seg] = col->text;
        col->o_low[seg] = col->values ? col->low : 0;
        col->o_high[seg] = col->values ? col->high : 0;
        col->o_flow[seg] = col->values ? col->flow : 0.0;
        col->o_fhigh[seg] = col->values ? col->fhigh : 0.0;
        if (col->kind == K_STRING) {
            if (keep_bound(s, &col->smin, &col->low_text, col->low_offsets, seg) < 0) return -1;
            if (keep_bound(s, &col->smax, &col->high_text, col->high_offsets, seg) < 0) return -1;
            col->smin.set = col->smax.set = 0;
        }
        col->values = col->nulls = col->text = 0;
    }
    return 0;
}

/*
 * Any field, the slow and thorough way: `p` is its first byte, `stop` the row's line end.
 * Returns where the field ends (a delimiter, or `stop`), or NULL with the reason set.
 */
static const char *any_field(scanner *s, column *col, const char *p, const char *stop) {
    const char *value;
    size_t length;
    int quoted = 0, in_scratch = 0;
    if (*p == '"') {
        quoted = 1;
        const char *start = ++p;
        size_t escapes = 0;
        for (;;) {
            while (*p != '"' && *p != '\n' && *p != '\r') p++;
            if (*p != '"') {
                s->reason = "a line end inside a quoted field";
                return NULL;
            }
            if (p[1] == '"') {
                escapes++;
                p += 2;
                continue;
            }
            break;
        }
        value = start;
        length = (size_t)(p - start);
        p++; /* the closing quote; the line end at `stop` keeps this within the row */
        if (escapes) {
            if (buffer_reserve(&s->scratch, length) < 0) {
                s->reason = "out of memory";
                return NULL;
            }
            size_t out = 0;
            for (size_t k = 0; k < length; k++) {
                s->scratch.data[out++] = value[k];
                if (value[k] == '"') k++;
            }
            value = s->scratch.data;
            length = out;
            in_scratch = 1;
        }
    } else {
        const char *start = p;
        while (*p != ',' && *p != '\n' && *p != '\r') {
            if (*p == '"') {
                s->reason = "a quote inside an unquoted field";
                return NULL;
            }
            p++;
        }
        value = start;
        length = (size_t)(p - start);
    }
    if (p != stop && *p != ',') {
        s->reason = *p == '\r' ? "a carriage return that does not end a line"
                               : "a quoted field followed by more text";
        return NULL;
    }
    if (!quoted && is_null_token(value, length)) {
        col->nulls++;
        return p;
    }
    if (col->kind == K_STRING) {
        if (take_string(s, col, value, length, 0, in_scratch) < 0) { /* UTF-8 checked */
            return NULL;
        }
        return p;
    }
    int64_t integer = 0;
    double real = 0.0;
    int failed = in_scratch; /* a number with a quote inside is no number */
    if (!failed) {
        switch (col->kind) {
        case K_INT:
            failed = parse_int64(value, length, &integer);
            break;
        case K_DATE:
            failed = parse_date(value, length, &integer);
            break;
        case K_BOOL:
            failed = parse_bool(value, length, &integer);
            break;
        default:
            failed = parse_float64(value, length, &real);
        }
    }
    if (failed) {
        s->reason = "a value the fast reader does not take";
        return NULL;
    }
    if (col->kind == K_FLOAT) {
        take_real(col, real);
    } else {
        take_integer(col, integer);
    }
    return p;
}

/* Whether `p` ends a field: a delimiter, or the row's line end. */
#define ENDS_FIELD(p, stop) (*(p) == ',' || (const char *)(p) == (stop))

/*
 * The common fields, parsed as they are found: returns where the field ends (a delimiter or
 * `stop`) once its value is taken, or NULL, having taken nothing, for any_field to read
 * (a null word, a quoted number, an exponent, an escaped quote) or refuse.
 */
static inline const char *common_field(scanner *s, column *col, const char *p,
                                       const char *stop) {
    const unsigned char *u = (const unsigned char *)p;
    switch (col->kind) {
    case K_INT: {
        int negative = *u == '-';
        const unsigned char *digits = u + negative;
        uint64_t magnitude = 0;
        for (u = digits; (unsigned)(*u - '0') <= 9; u++) magnitude = magnitude * 10 + (*u - '0');
        size_t count = (size_t)(u - digits);
        /* 19 digits may overflow */
        if (count == 0 || count > 18 || !ENDS_FIELD(u, stop)) return NULL;
        take_integer(col, negative ? -(int64_t)magnitude : (int64_t)magnitude);
        return (const char *)u;
    }
    case K_FLOAT: {
        int negative = *u == '-';
        u += negative;
        uint64_t mantissa = 0;
        const unsigned char *first = u;
        for (; (unsigned)(*u - '0') <= 9; u++) mantissa = mantissa * 10 + (*u - '0');
        size_t integral = (size_t)(u - first);
        size_t fraction = 0;
        if (*u == '.') {
            const unsigned char *point = ++u;
            for (; (unsigned)(*u - '0') <= 9; u++) mantissa = mantissa * 10 + (*u - '0');
            fraction = (size_t)(u - point);
        }
        /* at most 19 digits (no overflow), no exponent */
        if (integral + fraction == 0 || integral + fraction > 19 || !ENDS_FIELD(u, stop)) {
            return NULL;
        }
        double value;
        if (decimal_to_double(mantissa, -(long)fraction, negative, &value) < 0) return NULL;
        take_real(col, value);
        return (const char *)u;
    }
    case K_DATE: {
        int64_t days;
        if (stop - p < 10 || !ENDS_FIELD(p + 10, stop) || parse_date(p, 10, &days) < 0) {
            return NULL;
        }
        take_integer(col, days);
        return p + 10;
    }
    case K_STRING: {
        const unsigned char *start, *end;
        unsigned char high = 0;
        if (*u == '"') {
            start = ++u;
            while (*u != '"' && *u != '\n' && *u != '\r') high |= *u++;
            /* no closing quote, an escaped quote, or more after the closing quote */
            if (*u != '"' || !ENDS_FIELD(u + 1, stop)) return NULL;
            end = u + 1;
        } else {
            start = u;
            while (*u != ',' && *u != '\n' && *u != '\r' && *u != '"') high |= *u++;
            if (!ENDS_FIELD(u, stop) || is_null_token((const char *)start, (size_t)(u - start))) {
                return NULL;
            }
            end = u;
        }
        if (take_string(s, col, (const char *)start, (size_t)(u - start), high < 0x80, 0) < 0) {
            return stop; /* the reason is set */
        }
        return (const char *)end;
    }
    default:
        return NULL;
    }
}

/* One row: `p` its first byte, `stop` its line end ('\n', or the '\r' of "\r\n"). */
static int scan_row(scanner *s, const char *p, const char *stop) {
    if (p == stop) {
        s->reason = "an empty line";
        return -1;
    }
    for (Py_ssize_t c = 0; c < s->ncols; c++) {
        column *col = &s->cols[c];
        const char *end;
        if (*p == ',' || p == stop) {
            end = p; /* an empty field: missing */
            col->nulls++;
        } else {
            end = common_field(s, col, p, stop);
            if (s->reason != NULL) return -1;
            if (end == NULL) {
                end = any_field(s, col, p, stop);
                if (end == NULL) return -1;
            }
        }
        if (c + 1 < s->ncols) {
            if (end == stop) {
                s->reason = "a row with fewer fields than columns";
                return -1;
            }
            p = end + 1;
        } else if (end != stop) {
            s->reason = "a row with more fields than columns";
            return -1;
        }
    }
    return 0;
}

static int scan_rows(scanner *s) {
    const char *data = s->data;
    const size_t size = s->size;
    size_t pos = 0;
    Py_ssize_t seg = 0;
    if (size >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) {
        s->reason = "a byte order mark at the start";
        return -1;
    }
    while (pos < size) {
        while (seg < s->nseg && (size_t)s->ends[seg] <= pos) {
            if (finish_segment(s, seg++) < 0) return -1;
        }
        if (seg == s->nseg) {
            s->reason = "bytes after the last chunk end";
            return -1;
        }
        const char *row = data + pos;
        const char *line_end = memchr(row, '\n', size - pos);
        size_t next;
        if (line_end == NULL) {
            /* the last row has no line end: read a copy that has one */
            size_t length = size - pos;
            if (data[size - 1] == ',') {
                /* pyarrow reads an empty last field there as quoted after a quoted one */
                s->reason = "an empty last field without a line end";
                return -1;
            }
            if (buffer_reserve(&s->tail, length + 1) < 0) {
                s->reason = "out of memory";
                return -1;
            }
            memcpy(s->tail.data, row, length);
            s->tail.data[length] = '\n';
            row = s->tail.data;
            line_end = row + length;
            next = size;
        } else {
            next = (size_t)(line_end - data) + 1;
        }
        if (next > (size_t)s->ends[seg]) {
            s->reason = "a row across a chunk end";
            return -1;
        }
        const char *stop = line_end > row && line_end[-1] == '\r' ? line_end - 1 : line_end;
        if (scan_row(s, row, stop) < 0) return -1;
        s->rows[seg]++;
        pos = next;
    }
    while (seg < s->nseg) {
        if (finish_segment(s, seg++) < 0) return -1;
    }
    return 0;
}

typedef struct {
    Py_buffer view;
    int held;
} held_buffer;

static int get_output(PyObject *object, held_buffer *out, Py_ssize_t bytes, const char *name) {
    if (PyObject_GetBuffer(object, &out->view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        return -1;
    }
    out->held = 1;
    if (out->view.len != bytes) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, not %zd", name, out->view.len,
                     bytes);
        return -1;
    }
    return 0;
}

/* Per string column: (min data, min offsets, max data, max offsets), as bytes. */
static PyObject *string_bounds(scanner *s) {
    PyObject *result = PyList_New(0);
    if (result == NULL) return NULL;
    for (Py_ssize_t c = 0; c < s->ncols; c++) {
        column *col = &s->cols[c];
        if (col->kind != K_STRING) continue;
        Py_ssize_t offsets = (s->nseg + 1) * (Py_ssize_t)sizeof(int32_t);
        PyObject *item = Py_BuildValue(
            "(y#y#y#y#)", col->low_text.data ? col->low_text.data : "",
            (Py_ssize_t)col->low_text.size, (const char *)col->low_offsets, offsets,
            col->high_text.data ? col->high_text.data : "", (Py_ssize_t)col->high_text.size,
            (const char *)col->high_offsets, offsets);
        if (item == NULL || PyList_Append(result, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(item);
    }
    PyObject *tuple = PyList_AsTuple(result);
    Py_DECREF(result);
    return tuple;
}

static PyObject *scan(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *objects[10];
    if (!PyArg_ParseTuple(args, "OOOOOOOOOO", &objects[0], &objects[1], &objects[2],
                          &objects[3], &objects[4], &objects[5], &objects[6], &objects[7],
                          &objects[8], &objects[9])) {
        return NULL;
    }
    held_buffer views[10];
    memset(views, 0, sizeof(views));
    scanner s;
    memset(&s, 0, sizeof(s));
    PyObject *result = NULL;
    int32_t *string_slots = NULL;

    for (int k = 0; k < 3; k++) {
        if (PyObject_GetBuffer(objects[k], &views[k].view, PyBUF_C_CONTIGUOUS) < 0) goto done;
        views[k].held = 1;
    }
    if (views[1].view.len % 8) {
        PyErr_SetString(PyExc_ValueError, "ends must be int64 values");
        goto done;
    }
    s.data = views[0].view.buf;
    s.size = (size_t)views[0].view.len;
    s.ends = views[1].view.buf;
    s.nseg = views[1].view.len / 8;
    s.ncols = views[2].view.len;
    const char *kinds = views[2].view.buf;
    if (s.ncols == 0) {
        PyErr_SetString(PyExc_ValueError, "kinds names no column");
        goto done;
    }
    Py_ssize_t cells = s.ncols * s.nseg * 8;
    const char *names[] = {"nulls", "text", "low", "high", "flow", "fhigh", "rows"};
    for (int k = 3; k < 10; k++) {
        Py_ssize_t bytes = k == 9 ? s.nseg * 8 : cells;
        if (get_output(objects[k], &views[k], bytes, names[k - 3]) < 0) goto done;
    }
    s.cols = PyMem_Calloc((size_t)s.ncols, sizeof(column));
    string_slots = PyMem_Calloc((size_t)(2 * s.ncols * (s.nseg + 1)), sizeof(int32_t));
    if (s.cols == NULL || string_slots == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t c = 0; c < s.ncols; c++) {
        column *col = &s.cols[c];
        col->kind = kinds[c];
        if (strchr("ifdbs", col->kind) == NULL || col->kind == '\0') {
            PyErr_Format(PyExc_ValueError, "unknown column kind %c", (int)col->kind);
            goto done;
        }
        Py_ssize_t at = c * s.nseg;
        col->o_nulls = (int64_t *)views[3].view.buf + at;
        col->o_text = (int64_t *)views[4].view.buf + at;
        col->o_low = (int64_t *)views[5].view.buf + at;
        col->o_high = (int64_t *)views[6].view.buf + at;
        col->o_flow = (double *)views[7].view.buf + at;
        col->o_fhigh = (double *)views[8].view.buf + at;
        col->low_offsets = string_slots + 2 * c * (s.nseg + 1);
        col->high_offsets = col->low_offsets + s.nseg + 1;
    }
    s.rows = views[9].view.buf;
    memset(s.rows, 0, (size_t)s.nseg * 8);

    int status;
    Py_BEGIN_ALLOW_THREADS status = scan_rows(&s);
    Py_END_ALLOW_THREADS

    if (status < 0) {
        result = PyUnicode_FromString(s.reason);
    } else {
        result = string_bounds(&s);
    }

done:
    for (int k = 0; k < 10; k++) {
        if (views[k].held) PyBuffer_Release(&views[k].view);
    }
    if (s.cols != NULL) {
        for (Py_ssize_t c = 0; c < s.ncols; c++) {
            free(s.cols[c].smin.held.data);
            free(s.cols[c].smax.held.data);
            free(s.cols[c].low_text.data);
            free(s.cols[c].high_text.data);
        }
    }
    PyMem_Free(s.cols);
    PyMem_Free(string_slots);
    free(s.scratch.data);
    free(s.tail.data);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(data, ends, kinds, nulls, text, low, high, flow, fhigh, rows) -> tuple | str\n\n"
     "Per-segment statistics of row-aligned CSV bytes; see synapsenet.services.dataversion."
     "csv_scan."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_csvscan",
    .m_doc = "Per-chunk statistics of CSV bytes in one pass.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__csvscan(void) {
    if (c_locale == (locale_t)0) {
        c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
        if (c_locale == (locale_t)0) return PyErr_NoMemory();
    }
    return PyModule_Create(&module_def);
}
