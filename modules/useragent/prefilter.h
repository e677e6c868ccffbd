/*
 * A literal prefilter for a list of regexes (uap-core's ~1,150), so that a
 * user agent the cache has not seen is matched against a few dozen regexes
 * instead of all of them.
 *
 * At load, each regex is read (a subset of PCRE syntax; anything else, and
 * the regex is always tried) for a few sets of literals such that every
 * match contains a literal of each set, compared without ASCII case.  A
 * regex with no such set (or only very short literals) is always tried.
 * For a user agent, one pass over its lower-cased bytes finds the literals
 * it contains and marks the regexes whose sets are all there; the caller
 * then tries, in the regexes' own order, only the marked ones and the
 * always-tried ones.  The first match is therefore the same as without the
 * prefilter.
 */
#ifndef USERAGENT_PREFILTER_H
#define USERAGENT_PREFILTER_H

#include <stddef.h>
#include <stdint.h>

typedef struct prefilter prefilter;

/* An empty prefilter for nregex regexes (ids 0..nregex-1); NULL when out of memory. */
prefilter *prefilter_new(size_t nregex);
/* Read regex `id` (NUL-terminated PCRE pattern); 0, or -1 when out of memory. */
int prefilter_add(prefilter *pf, size_t id, const char *pattern);
/* Build the index after the last prefilter_add(); 0 or -1. */
int prefilter_build(prefilter *pf);
void prefilter_free(prefilter *pf);

/* 64-bit words of the bit set prefilter_scan() fills. */
size_t prefilter_words(const prefilter *pf);
/* Bytes of the scratch memory prefilter_scan() needs (the caller's own, so
 * that a scan allocates nothing and instances do not share it). */
size_t prefilter_work_bytes(const prefilter *pf);
/* Set bit id of `marks` (prefilter_words() words) for every regex worth
 * trying on s, and clear the others, with `work` (prefilter_work_bytes()
 * bytes, any alignment of malloc()) as scratch; 0. */
int prefilter_scan(const prefilter *pf, const char *s, size_t n, uint64_t *marks, void *work);

/* For tests and stats: regexes that are always tried, and literals indexed. */
size_t prefilter_always(const prefilter *pf);
size_t prefilter_literals(const prefilter *pf);

#endif
