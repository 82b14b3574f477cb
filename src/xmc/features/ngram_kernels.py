"""numba kernels of the TF-IDF featuriser: words, n-gram keys, per-document counts, the vocabulary.

Texts arrive as one array of Unicode code points (``uint32``) with document offsets. A word is a
maximal run of two or more word characters, which is exactly what scikit-learn's default
``token_pattern`` ``(?u)\\b\\w\\w+\\b`` finds: ``\\b\\w`` can only start at a run's first character and
the greedy ``\\w+`` runs to its end. A word character is what Python's ``re`` calls one
(``str.isalnum()`` or ``_``), looked up in a table built once from Python itself
(:func:`word_char_table`), so the two agree on every code point.

An n-gram is known by a 64-bit key: FNV-1a over a word's code points, then a splitmix64 finaliser,
folded word by word (``mix(key * GOLDEN + word)``). The key of a term string (words joined by one
space, the form scikit-learn and ``terms.txt`` use) is computed by the same fold, so a saved
vocabulary maps back to keys without re-reading any corpus. Two distinct n-grams share a key with
probability about ``n**2 / 2**65`` (10 million distinct n-grams: 3e-6); a collision inside a
vocabulary is detected when its lookup table is built.

Tables are open-addressing arrays (key 0 marks an empty slot; a key that hashes to 0 is moved to
1). The document-frequency table is split into one region per thread by the key's high bits, so
the threads insert without locks and the result does not depend on scheduling.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from xmc.utils.prefetch import prefetch
from xmc.utils.sparse import serial_version

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
SPACE = 32
PART_SHIFT = np.uint64(40)  # the document-frequency table's region: bits 40.. of the key
MAX_NGRAM = 8  # n is kept in the low 3 bits of a representative (n - 1)


@nb.njit(cache=True, inline="always")
def _mix(h):
    h = (h ^ (h >> np.uint64(30))) * MIX1
    h = (h ^ (h >> np.uint64(27))) * MIX2
    return h ^ (h >> np.uint64(31))


@nb.njit(cache=True, inline="always")
def _word_key(codes, start, end):
    h = FNV_OFFSET
    for i in range(start, end):
        h = (h ^ np.uint64(codes[i])) * FNV_PRIME
    return _mix(h)


@nb.njit(cache=True, inline="always")
def _fold(key, word):
    return _mix(key * GOLDEN + word)


@nb.njit(cache=True, inline="always")
def _nonzero(key):
    return key if key != np.uint64(0) else np.uint64(1)


@nb.njit(cache=True, inline="always")
def _n_ngrams(n_words, ngram_max):
    total = 0
    for n in range(1, ngram_max + 1):
        total += max(0, n_words - n + 1)
    return total


@nb.njit(cache=True, parallel=True)
def words(codes, doc_ptr, is_word):
    """Every document's words: ``word_ptr`` (per document), each word's key, start and end."""
    n_docs = doc_ptr.size - 1
    counts = np.zeros(n_docs, np.int64)
    for d in nb.prange(n_docs):
        run, c = 0, 0
        for i in range(doc_ptr[d], doc_ptr[d + 1]):
            if is_word[codes[i]]:
                run += 1
            else:
                c += run >= 2
                run = 0
        counts[d] = c + (run >= 2)
    word_ptr = np.zeros(n_docs + 1, np.int64)
    word_ptr[1:] = np.cumsum(counts)
    keys = np.empty(word_ptr[-1], np.uint64)
    starts = np.empty(word_ptr[-1], np.int64)
    ends = np.empty(word_ptr[-1], np.int64)
    for d in nb.prange(n_docs):
        w, i, end = word_ptr[d], doc_ptr[d], doc_ptr[d + 1]
        while i < end:
            if not is_word[codes[i]]:
                i += 1
                continue
            j = i + 1
            while j < end and is_word[codes[j]]:
                j += 1
            if j - i >= 2:
                keys[w], starts[w], ends[w] = _word_key(codes, i, j), i, j
                w += 1
            i = j
    return word_ptr, keys, starts, ends


@nb.njit(cache=True, inline="always")
def _ngram_key(word_keys, w, n):
    key = word_keys[w]
    for k in range(1, n):
        key = _fold(key, word_keys[w + k])
    return _nonzero(key)


@nb.njit(cache=True, parallel=True)
def unique_ngrams(word_ptr, word_keys, ngram_max):
    """Each document's distinct n-grams (1..``ngram_max`` words) in first-seen order: ``ptr``, key,
    count in the document, and a representative ``word_index * 8 + n - 1`` of its first occurrence."""
    n_docs = word_ptr.size - 1
    bound = np.zeros(n_docs + 1, np.int64)
    for d in range(n_docs):
        bound[d + 1] = bound[d] + _n_ngrams(word_ptr[d + 1] - word_ptr[d], ngram_max)
    keys = np.empty(bound[-1], np.uint64)
    counts = np.empty(bound[-1], np.int32)
    reps = np.empty(bound[-1], np.int64)
    found = np.zeros(n_docs, np.int64)
    for d in nb.prange(n_docs):
        m = bound[d + 1] - bound[d]
        if m == 0:
            continue
        size = 8
        while size < 2 * m:
            size *= 2
        mask = np.uint64(size - 1)
        slot_key = np.zeros(size, np.uint64)
        slot_at = np.empty(size, np.int64)  # the output position of the key in this slot
        out, lo, hi = bound[d], word_ptr[d], word_ptr[d + 1]
        for n in range(1, ngram_max + 1):
            for w in range(lo, hi - n + 1):
                key = _ngram_key(word_keys, w, n)
                s = key & mask
                while slot_key[s] != 0 and slot_key[s] != key:
                    s = (s + np.uint64(1)) & mask
                if slot_key[s] == key:
                    counts[slot_at[s]] += 1
                else:
                    slot_key[s], slot_at[s] = key, out
                    keys[out], counts[out], reps[out] = key, 1, w * 8 + n - 1
                    out += 1
        found[d] = out - bound[d]
    ptr = np.zeros(n_docs + 1, np.int64)
    ptr[1:] = np.cumsum(found)
    k2 = np.empty(ptr[-1], np.uint64)
    c2 = np.empty(ptr[-1], np.int32)
    r2 = np.empty(ptr[-1], np.int64)
    for d in nb.prange(n_docs):
        k2[ptr[d]:ptr[d + 1]] = keys[bound[d]:bound[d] + found[d]]
        c2[ptr[d]:ptr[d + 1]] = counts[bound[d]:bound[d] + found[d]]
        r2[ptr[d]:ptr[d + 1]] = reps[bound[d]:bound[d] + found[d]]
    return ptr, k2, c2, r2


@nb.njit(cache=True, inline="always")
def _region(key, n_parts):
    return np.int64((key >> PART_SHIFT) & np.uint64(n_parts - 1))


@nb.njit(cache=True, parallel=True)
def count_documents(table_keys, table_df, table_tf, table_rep, n_parts, keys, dfs, counts, reps, rep_base):
    """Add n-grams to the document-frequency table (``n_parts`` regions, a power of two, one thread
    each): df += dfs, tf += counts, representative = the first seen (``rep_base`` + its ``reps``).
    One chunk's per-document n-grams come with ``dfs`` of 1; a grown table's old entries with their
    totals. Returns the number of new keys per region."""
    region_size = table_keys.size // n_parts
    mask = np.uint64(region_size - 1)
    added = np.zeros(n_parts, np.int64)
    for p in nb.prange(n_parts):
        base = p * region_size
        for i in range(keys.size):
            key = keys[i]
            if _region(key, n_parts) != p:
                continue
            s = key & mask
            while table_keys[base + s] != 0 and table_keys[base + s] != key:
                s = (s + np.uint64(1)) & mask
            slot = base + s
            if table_keys[slot] == 0:
                table_keys[slot], table_rep[slot] = key, rep_base + reps[i]
                added[p] += 1
            table_df[slot] += dfs[i]
            table_tf[slot] += counts[i]
    return added



@nb.njit(cache=True)
def region_counts(keys, n_parts):
    out = np.zeros(n_parts, np.int64)
    for key in keys:
        out[_region(key, n_parts)] += 1
    return out


@nb.njit(cache=True)
def build_lookup(keys, values, size):
    """An open-addressing table ``key -> value`` of ``size`` slots (a power of two); ``-1`` as the
    returned collision index when two keys are equal (the caller names the terms)."""
    table_keys = np.zeros(size, np.uint64)
    table_vals = np.full(size, -1, np.int32)
    mask = np.uint64(size - 1)
    for i in range(keys.size):
        s = keys[i] & mask
        while table_keys[s] != 0:
            if table_keys[s] == keys[i]:
                return table_keys, table_vals, i
            s = (s + np.uint64(1)) & mask
        table_keys[s], table_vals[s] = keys[i], values[i]
    return table_keys, table_vals, -1


@nb.njit(cache=True, inline="always")
def _lookup(table_keys, table_vals, key):
    mask = np.uint64(table_keys.size - 1)
    s = key & mask
    while table_keys[s] != 0:
        if table_keys[s] == key:
            return table_vals[s]
        s = (s + np.uint64(1)) & mask
    return -1


@nb.njit(cache=True, parallel=True)
def count_rows(word_ptr, word_keys, ngram_max, table_keys, table_vals):
    """Each document's vocabulary n-grams as a count row: ``ptr``, column ids (sorted), counts."""
    n_docs = word_ptr.size - 1
    bound = np.zeros(n_docs + 1, np.int64)
    for d in range(n_docs):
        bound[d + 1] = bound[d] + _n_ngrams(word_ptr[d + 1] - word_ptr[d], ngram_max)
    cols = np.empty(bound[-1], np.int32)
    counts = np.empty(bound[-1], np.int32)
    found = np.zeros(n_docs, np.int64)
    mask = np.uint64(table_keys.size - 1)
    for d in nb.prange(n_docs):
        out, lo, hi = bound[d], word_ptr[d], word_ptr[d + 1]
        # the keys first, their slots prefetched, then the look-ups: the vocabulary's table is larger
        # than the caches, and independent misses are waited for side by side
        keys = np.empty(bound[d + 1] - bound[d], np.uint64)
        k = 0
        for n in range(1, ngram_max + 1):
            for w in range(lo, hi - n + 1):
                keys[k] = _ngram_key(word_keys, w, n)
                prefetch(table_keys, np.int64(keys[k] & mask))
                prefetch(table_vals, np.int64(keys[k] & mask))
                k += 1
        for key in keys:
            j = _lookup(table_keys, table_vals, key)
            if j >= 0:
                cols[out] = j
                out += 1
        cols[bound[d]:out].sort()
        o = bound[d] - 1  # run lengths, in place
        for e in range(bound[d], out):
            if e == bound[d] or cols[e] != cols[o]:
                o += 1
                cols[o], counts[o] = cols[e], 0
            counts[o] += 1
        found[d] = o + 1 - bound[d]
    ptr = np.zeros(n_docs + 1, np.int64)
    ptr[1:] = np.cumsum(found)
    out_cols = np.empty(ptr[-1], np.int32)
    out_counts = np.empty(ptr[-1], np.int32)
    for d in nb.prange(n_docs):
        out_cols[ptr[d]:ptr[d + 1]] = cols[bound[d]:bound[d] + found[d]]
        out_counts[ptr[d]:ptr[d + 1]] = counts[bound[d]:bound[d] + found[d]]
    return ptr, out_cols, out_counts


@nb.njit(cache=True, parallel=True)
def remap_rows(ptr, cols, counts, new_ids):
    """Count rows with every column renamed by ``new_ids`` (``-1``: dropped), re-sorted per row."""
    n_docs = ptr.size - 1
    kept = np.zeros(n_docs, np.int64)
    for d in nb.prange(n_docs):
        for e in range(ptr[d], ptr[d + 1]):
            kept[d] += new_ids[cols[e]] >= 0
    out_ptr = np.zeros(n_docs + 1, np.int64)
    out_ptr[1:] = np.cumsum(kept)
    out_cols = np.empty(out_ptr[-1], np.int32)
    out_counts = np.empty(out_ptr[-1], np.int32)
    for d in nb.prange(n_docs):
        packed = np.empty(kept[d], np.int64)  # (column << 32 | count): one sort orders both
        k = 0
        for e in range(ptr[d], ptr[d + 1]):
            j = new_ids[cols[e]]
            if j >= 0:
                packed[k] = (np.int64(j) << 32) | counts[e]
                k += 1
        packed.sort()
        for k in range(packed.size):
            out_cols[out_ptr[d] + k] = packed[k] >> 32
            out_counts[out_ptr[d] + k] = packed[k] & 0xFFFFFFFF
    return out_ptr, out_cols, out_counts


@nb.njit(cache=True, parallel=True)
def tfidf_values(ptr, cols, counts, idf, sublinear):
    """``(1 + log tf or tf) * idf``, each row scaled to unit L2 norm, in float32 as scikit-learn
    computes it (``tf`` as float32, ``log`` in float32, the row norm summed in float64)."""
    n_docs = ptr.size - 1
    data = np.empty(cols.size, np.float32)
    for d in nb.prange(n_docs):
        norm = 0.0
        for e in range(ptr[d], ptr[d + 1]):
            tf = np.float32(counts[e])
            if sublinear:
                tf = np.float32(np.log(tf)) + np.float32(1.0)
            v = tf * idf[cols[e]]
            data[e] = v
            norm += np.float64(v) * np.float64(v)
        if norm > 0:
            scale = np.sqrt(norm)
            for e in range(ptr[d], ptr[d + 1]):
                data[e] = np.float32(data[e] / scale)
    return data


@nb.njit(cache=True)
def term_codes(codes, word_starts, word_ends, reps, base):
    """The strings of the n-grams whose representatives (``word_index * 8 + n - 1``, counted from
    ``base``) are ``reps``, as code points: words joined by a space, each term ended by a newline."""
    total = 0
    for r in reps:
        w, n = (r >> 3) - base, (r & 7) + 1
        for k in range(n):
            total += word_ends[w + k] - word_starts[w + k] + 1
    out = np.empty(total, np.uint32)
    o = 0
    for r in reps:
        w, n = (r >> 3) - base, (r & 7) + 1
        for k in range(n):
            for i in range(word_starts[w + k], word_ends[w + k]):
                out[o] = codes[i]
                o += 1
            out[o] = SPACE if k < n - 1 else 10
            o += 1
    return out


@nb.njit(cache=True)
def term_keys(codes, term_ptr):
    """The key of each term string (``codes[term_ptr[t]:term_ptr[t + 1]]``, words joined by spaces)."""
    n = term_ptr.size - 1
    out = np.empty(n, np.uint64)
    for t in range(n):
        key, first, start = np.uint64(0), True, term_ptr[t]
        for i in range(term_ptr[t], term_ptr[t + 1] + 1):
            if i == term_ptr[t + 1] or codes[i] == SPACE:
                word = _word_key(codes, start, i)
                key = word if first else _fold(key, word)
                first, start = False, i + 1
        out[t] = _nonzero(key)
    return out


words_serial = serial_version(words)
count_rows_serial = serial_version(count_rows)
tfidf_values_serial = serial_version(tfidf_values)
