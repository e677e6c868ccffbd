/*
 * Unit tests of the spool: framing, CRC, torn tail, corrupt records,
 * rotation, size limit and full disk back-pressure, writer slots.
 * Each test works in its own temporary directory.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pixel/spool.h"

#include "delivery_private.h" /* pixel__spool_set_fsync(): a failing fsync */

static char tmpdir[256];

static void setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_spool.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) {
        /* best effort */
    }
}

static pixel_spool *open_spool(uint64_t segment_bytes, uint64_t max_bytes, int fsync_policy)
{
    pixel_spool_options o = PIXEL_SPOOL_OPTIONS_INIT;
    pixel_spool *s = NULL;
    pixel_error err;

    memset(&err, 0, sizeof(err));
    o.dir = tmpdir;
    o.segment_bytes = segment_bytes;
    o.max_bytes = max_bytes;
    o.fsync = fsync_policy;
    o.fsync_batch = 4;
    ck_assert_msg(pixel_spool_open(&s, &o, &err) == 0, "%s", err.text);
    return s;
}

static pixel_spool_msg make_msg(char *buf, size_t size, int i)
{
    pixel_spool_msg m;

    memset(&m, 0, sizeof(m));
    snprintf(buf, size, "{\"eid\":\"e-%06d\",\"ev\":\"page_view\"}", i);
    m.value = buf;
    m.value_len = strlen(buf);
    m.topic = "events";
    m.topic_len = 6;
    m.key = (i % 2) ? "user-1" : NULL;
    m.key_len = (i % 2) ? 6 : 0;
    m.type = "page_view";
    m.type_len = 9;
    m.pipeline_version = "7";
    m.pipeline_version_len = 1;
    m.timestamp_ms = 1000 + i;
    return m;
}

static void append_n(pixel_spool *s, int from, int n)
{
    char buf[128];
    pixel_error err;

    for (int i = from; i < from + n; i++) {
        pixel_spool_msg m = make_msg(buf, sizeof(buf), i);
        memset(&err, 0, sizeof(err));
        ck_assert_msg(pixel_spool_append(s, &m, &err) >= 0, "%s", err.text);
    }
}

static char *first_segment(void)
{
    pixel_spool_segment *segs;
    size_t n;
    char *p;

    ck_assert_int_eq(pixel_spool_segments(tmpdir, &segs, &n, NULL), 0);
    ck_assert_uint_ge(n, 1);
    p = strdup(segs[0].path);
    pixel_spool_segments_free(segs, n);
    return p;
}

/* Read a whole segment: counts of records, corrupt and torn items. */
typedef struct scan {
    int records, corrupt, torn;
    uint64_t first_bad, offsets[64];
    int ids[64];
} scan;

static scan scan_segment(const char *path)
{
    pixel_spool_reader *r;
    pixel_spool_msg m;
    uint64_t off, end;
    scan sc;
    int item;

    memset(&sc, 0, sizeof(sc));
    ck_assert_int_eq(pixel_spool_reader_open(&r, path, NULL), 0);
    for (;;) {
        pixel_error err;
        memset(&err, 0, sizeof(err));
        item = pixel_spool_reader_next(r, &m, &off, &end, &err);
        ck_assert_int_ge(item, 0);
        if (item == PIXEL_SPOOL_END) {
            break;
        }
        if (item == PIXEL_SPOOL_RECORD) {
            int id = -1;
            ck_assert_int_eq(sscanf(m.value, "{\"eid\":\"e-%d", &id), 1);
            if (sc.records < 64) {
                sc.ids[sc.records] = id;
                sc.offsets[sc.records] = off;
            }
            sc.records++;
            continue;
        }
        /* The report names the segment and the offset. */
        ck_assert_ptr_nonnull(strstr(err.text, path));
        ck_assert_ptr_nonnull(strstr(err.text, "offset"));
        if (sc.corrupt + sc.torn == 0) {
            sc.first_bad = off;
        }
        if (item == PIXEL_SPOOL_CORRUPT) {
            sc.corrupt++;
        } else {
            sc.torn++;
            break;
        }
    }
    pixel_spool_reader_close(r);
    return sc;
}

START_TEST(crc32c_matches_the_standard_check_value)
{
    ck_assert_uint_eq(pixel_crc32c(0, "123456789", 9), 0xE3069283u);
    /* Incremental use gives the same result. */
    ck_assert_uint_eq(pixel_crc32c(pixel_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
}
END_TEST

START_TEST(spool_round_trip_keeps_every_field)
{
    pixel_spool *s = open_spool(0, 0, PIXEL_SPOOL_FSYNC_BATCH);
    pixel_spool_reader *r;
    pixel_spool_msg m;
    char *path;
    char buf[128];

    append_n(s, 0, 10);
    pixel_spool_close(s);
    path = first_segment();
    ck_assert_int_eq(pixel_spool_reader_open(&r, path, NULL), 0);
    for (int i = 0; i < 10; i++) {
        pixel_spool_msg want = make_msg(buf, sizeof(buf), i);
        ck_assert_int_eq(pixel_spool_reader_next(r, &m, NULL, NULL, NULL), PIXEL_SPOOL_RECORD);
        ck_assert_uint_eq(m.value_len, want.value_len);
        ck_assert(memcmp(m.value, want.value, m.value_len) == 0);
        ck_assert_uint_eq(m.topic_len, 6);
        ck_assert(memcmp(m.topic, "events", 6) == 0);
        if (i % 2) {
            ck_assert_uint_eq(m.key_len, 6);
            ck_assert(memcmp(m.key, "user-1", 6) == 0);
        } else {
            ck_assert_ptr_null(m.key);
        }
        ck_assert_ptr_null(m.schema_id);
        ck_assert(m.type_len == 9 && memcmp(m.type, "page_view", 9) == 0);
        ck_assert(m.pipeline_version_len == 1 && m.pipeline_version[0] == '7');
        ck_assert_int_eq(m.timestamp_ms, 1000 + i);
    }
    ck_assert_int_eq(pixel_spool_reader_next(r, &m, NULL, NULL, NULL), PIXEL_SPOOL_END);
    pixel_spool_reader_close(r);
    free(path);
}
END_TEST

START_TEST(spool_batch_fsync_reports_durability)
{
    pixel_spool *s = open_spool(0, 0, PIXEL_SPOOL_FSYNC_BATCH); /* batch of 4 */
    char buf[128];
    int rcs[5];

    for (int i = 0; i < 5; i++) {
        pixel_spool_msg m = make_msg(buf, sizeof(buf), i);
        rcs[i] = pixel_spool_append(s, &m, NULL);
    }
    ck_assert_int_eq(rcs[0], 0);
    ck_assert_int_eq(rcs[2], 0);
    ck_assert_int_eq(rcs[3], 1); /* the 4th record completed a batch */
    ck_assert_int_eq(rcs[4], 0);
    ck_assert_uint_eq(pixel_spool_unsynced(s), 1);
    ck_assert_int_eq(pixel_spool_sync(s, NULL), 0);
    ck_assert_uint_eq(pixel_spool_unsynced(s), 0);
    pixel_spool_close(s);
}
END_TEST

/* The spool's fsync stand-in: fails the next call when armed. */
static int fsync_fail;

static int fsync_fails_when_armed(int fd)
{
    if (fsync_fail) {
        fsync_fail = 0;
        errno = EIO;
        return -1;
    }
    return fsync(fd);
}

/*
 * A batch fsync that fails inside an append: the append says so, but the
 * records appended before it were promised to be durable "after the next
 * pixel_spool_sync()".  They went down with the failed fsync, so that next
 * sync must not report success, nor pixel_spool_unsynced() 0, even though
 * the failed segment is closed and nothing is left to fsync.  After it the
 * spool goes on in a new segment, durable as usual.
 */
START_TEST(spool_sync_reports_records_lost_by_an_append_that_failed_to_fsync)
{
    pixel_spool *s = open_spool(0, 0, PIXEL_SPOOL_FSYNC_BATCH); /* batch of 4 */
    char buf[128];
    pixel_error err;

    pixel__spool_set_fsync(s, fsync_fails_when_armed);
    for (int i = 0; i < 3; i++) {
        pixel_spool_msg m = make_msg(buf, sizeof(buf), i);
        ck_assert_int_eq(pixel_spool_append(s, &m, NULL), 0); /* durable after the next sync */
    }
    fsync_fail = 1;
    {
        pixel_spool_msg m = make_msg(buf, sizeof(buf), 3);
        ck_assert_int_eq(pixel_spool_append(s, &m, NULL), PIXEL_EIO); /* the batch's fsync */
    }
    ck_assert_uint_gt(pixel_spool_unsynced(s), 0);
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(pixel_spool_sync(s, &err), PIXEL_EIO);
    ck_assert_msg(strstr(err.text, "not durable") != NULL, "%s", err.text);
    /* Reported once; what follows is durable again. */
    ck_assert_uint_eq(pixel_spool_unsynced(s), 0);
    ck_assert_int_eq(pixel_spool_sync(s, NULL), 0);
    {
        pixel_spool_msg m = make_msg(buf, sizeof(buf), 4);
        ck_assert_int_eq(pixel_spool_append(s, &m, NULL), 0);
    }
    ck_assert_uint_eq(pixel_spool_unsynced(s), 1);
    ck_assert_int_eq(pixel_spool_sync(s, NULL), 0);
    ck_assert_uint_eq(pixel_spool_unsynced(s), 0);
    pixel_spool_close(s);
}
END_TEST

START_TEST(spool_torn_tail_is_detected_and_cut_on_reopen)
{
    pixel_spool *s = open_spool(0, 0, PIXEL_SPOOL_FSYNC_ALWAYS);
    struct stat st;
    scan sc;
    char *path;

    append_n(s, 0, 3);
    pixel_spool_close(s);
    path = first_segment();
    ck_assert_int_eq(stat(path, &st), 0);
    /* A crash in the middle of the third record's payload. */
    ck_assert_int_eq(truncate(path, st.st_size - 5), 0);
    sc = scan_segment(path);
    ck_assert_int_eq(sc.records, 2);
    ck_assert_int_eq(sc.torn, 1);
    ck_assert_int_eq(sc.corrupt, 0);

    /* The next writer in that slot cuts the tail at the last good record. */
    s = open_spool(0, 0, PIXEL_SPOOL_FSYNC_ALWAYS);
    pixel_spool_close(s);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq((uint64_t)st.st_size, sc.first_bad);
    sc = scan_segment(path);
    ck_assert_int_eq(sc.records, 2);
    ck_assert_int_eq(sc.torn + sc.corrupt, 0);
    free(path);
}
END_TEST

START_TEST(spool_zeroed_tail_is_torn_not_misread)
{
    pixel_spool *s = open_spool(0, 0, PIXEL_SPOOL_FSYNC_ALWAYS);
    static const char zeros[100];
    scan sc;
    char *path;
    int fd;

    append_n(s, 0, 2);
    pixel_spool_close(s);
    path = first_segment();
    fd = open(path, O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, zeros, sizeof(zeros)), (ssize_t)sizeof(zeros));
    close(fd);
    sc = scan_segment(path);
    ck_assert_int_eq(sc.records, 2);
    ck_assert_int_eq(sc.torn, 1);
    free(path);
}
END_TEST

static void flip_byte(const char *path, uint64_t off)
{
    unsigned char c;
    int fd = open(path, O_RDWR);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, &c, 1, (off_t)off), 1);
    c ^= 0x5a;
    ck_assert_int_eq(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
}

START_TEST(spool_corrupt_payload_is_reported_and_skipped)
{
    pixel_spool *s = open_spool(0, 0, PIXEL_SPOOL_FSYNC_ALWAYS);
    scan before, after;
    char *path;

    append_n(s, 0, 5);
    pixel_spool_close(s);
    path = first_segment();
    before = scan_segment(path);
    ck_assert_int_eq(before.records, 5);
    /* A byte in the middle of record 2's payload. */
    flip_byte(path, before.offsets[2] + 40);
    after = scan_segment(path);
    ck_assert_int_eq(after.corrupt, 1);
    ck_assert_int_eq(after.torn, 0);
    ck_assert_uint_eq(after.first_bad, before.offsets[2]);
    ck_assert_int_eq(after.records, 4);
    ck_assert_int_eq(after.ids[0], 0);
    ck_assert_int_eq(after.ids[1], 1);
    ck_assert_int_eq(after.ids[2], 3);
    ck_assert_int_eq(after.ids[3], 4);
    free(path);
}
END_TEST

START_TEST(spool_corrupt_length_is_caught_by_the_header_crc)
{
    pixel_spool *s = open_spool(0, 0, PIXEL_SPOOL_FSYNC_ALWAYS);
    scan before, after;
    char *path;

    append_n(s, 0, 5);
    pixel_spool_close(s);
    path = first_segment();
    before = scan_segment(path);
    /* The length field of record 1: without the header CRC the reader would
     * trust a wrong length and misread what follows. */
    flip_byte(path, before.offsets[1] + 4);
    after = scan_segment(path);
    ck_assert_int_eq(after.corrupt, 1);
    ck_assert_uint_eq(after.first_bad, before.offsets[1]);
    ck_assert_int_eq(after.records, 4);
    ck_assert_int_eq(after.ids[1], 2);
    free(path);
}
END_TEST

START_TEST(spool_rotates_segments_and_lists_them_in_order)
{
    pixel_spool *s = open_spool(400, 0, PIXEL_SPOOL_FSYNC_NEVER);
    pixel_spool_segment *segs;
    size_t n;
    int next = 0;

    append_n(s, 0, 20);
    ck_assert_int_eq(pixel_spool_segments(tmpdir, &segs, &n, NULL), 0);
    ck_assert_uint_gt(n, 3);
    ck_assert_int_eq(segs[n - 1].active, 1); /* we still hold the slot */
    ck_assert_int_eq(segs[0].active, 0);
    for (size_t i = 0; i < n; i++) {
        scan sc = scan_segment(segs[i].path);
        ck_assert_uint_le(segs[i].size, 400);
        for (int k = 0; k < sc.records; k++) {
            ck_assert_int_eq(sc.ids[k], next++);
        }
        if (i > 0) {
            ck_assert_uint_gt(segs[i].seq, segs[i - 1].seq);
        }
    }
    ck_assert_int_eq(next, 20);
    pixel_spool_segments_free(segs, n);
    pixel_spool_close(s);
}
END_TEST

START_TEST(spool_size_limit_refuses_instead_of_dropping)
{
    pixel_spool *s = open_spool(300, 1000, PIXEL_SPOOL_FSYNC_NEVER);
    pixel_spool_segment *segs;
    pixel_error err;
    char buf[128];
    int accepted = 0, rc = 0;
    size_t n;

    for (int i = 0; i < 100; i++) {
        pixel_spool_msg m = make_msg(buf, sizeof(buf), i);
        memset(&err, 0, sizeof(err));
        rc = pixel_spool_append(s, &m, &err);
        if (rc < 0) {
            break;
        }
        accepted++;
    }
    ck_assert_int_eq(rc, PIXEL_DELIVERY_EFULL);
    ck_assert_ptr_nonnull(strstr(err.text, "limit"));
    ck_assert_int_gt(accepted, 5);
    ck_assert_uint_le(pixel_spool_bytes(s), 1000);

    /* Every accepted record is on disk, nothing else. */
    ck_assert_int_eq(pixel_spool_segments(tmpdir, &segs, &n, NULL), 0);
    {
        int total = 0;
        for (size_t i = 0; i < n; i++) {
            total += scan_segment(segs[i].path).records;
        }
        ck_assert_int_eq(total, accepted);
    }
    /* Replay frees space: the writer notices and accepts again. */
    for (size_t i = 0; i + 1 < n; i++) {
        ck_assert_int_eq(unlink(segs[i].path), 0);
    }
    pixel_spool_segments_free(segs, n);
    usleep(600 * 1000); /* the writer re-measures at most every 500 ms */
    {
        pixel_spool_msg m = make_msg(buf, sizeof(buf), 999);
        ck_assert_int_ge(pixel_spool_append(s, &m, NULL), 0);
    }
    pixel_spool_close(s);
}
END_TEST

START_TEST(spool_full_disk_rolls_back_and_reports_full)
{
    pixel_spool *s = open_spool(0, 0, PIXEL_SPOOL_FSYNC_ALWAYS);
    struct rlimit rl;
    pixel_error err;
    char buf[128];
    int accepted = 0, rc = 0;
    char *path;
    scan sc;

    /* A file size limit stands in for a full disk: writes fail part-way. */
    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rl.rlim_cur = 1000;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    for (int i = 0; i < 100; i++) {
        pixel_spool_msg m = make_msg(buf, sizeof(buf), i);
        memset(&err, 0, sizeof(err));
        rc = pixel_spool_append(s, &m, &err);
        if (rc < 0) {
            break;
        }
        accepted++;
    }
    /* Lift the limit before any assertion: Check reports through a file. */
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_FSIZE, &rl);
    ck_assert_int_eq(rc, PIXEL_DELIVERY_EFULL);
    pixel_spool_close(s);
    path = first_segment();
    sc = scan_segment(path);
    /* The half-written record was rolled back: a clean end, no torn tail. */
    ck_assert_int_eq(sc.records, accepted);
    ck_assert_int_eq(sc.torn + sc.corrupt, 0);
    free(path);
}
END_TEST

START_TEST(spool_two_writers_never_share_a_directory)
{
    pixel_spool *a = open_spool(0, 0, PIXEL_SPOOL_FSYNC_NEVER);
    pixel_spool *b = open_spool(0, 0, PIXEL_SPOOL_FSYNC_NEVER);

    ck_assert_str_ne(pixel_spool_writer_dir(a), pixel_spool_writer_dir(b));
    append_n(a, 0, 3);
    append_n(b, 100, 3);
    pixel_spool_close(a);
    /* A new writer takes the freed slot and starts a new segment there. */
    a = open_spool(0, 0, PIXEL_SPOOL_FSYNC_NEVER);
    append_n(a, 200, 1);
    {
        pixel_spool_segment *segs;
        size_t n;
        ck_assert_int_eq(pixel_spool_segments(tmpdir, &segs, &n, NULL), 0);
        ck_assert_uint_eq(n, 3);
        ck_assert_str_eq(segs[0].writer_dir, segs[1].writer_dir);
        ck_assert_uint_eq(segs[1].seq, segs[0].seq + 1);
        pixel_spool_segments_free(segs, n);
    }
    pixel_spool_close(a);
    pixel_spool_close(b);
}
END_TEST

START_TEST(spool_reader_rejects_a_foreign_file)
{
    char path[300];
    pixel_spool_reader *r;
    pixel_error err;
    FILE *f;

    snprintf(path, sizeof(path), "%s/x.seg", tmpdir);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("not a spool segment at all\n", f);
    fclose(f);
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(pixel_spool_reader_open(&r, path, &err), PIXEL_DELIVERY_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(err.text, "offset 0"));
}
END_TEST

static Suite *spool_suite(void)
{
    Suite *s = suite_create("spool");
    TCase *tc = tcase_create("spool");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, crc32c_matches_the_standard_check_value);
    tcase_add_test(tc, spool_round_trip_keeps_every_field);
    tcase_add_test(tc, spool_batch_fsync_reports_durability);
    tcase_add_test(tc, spool_sync_reports_records_lost_by_an_append_that_failed_to_fsync);
    tcase_add_test(tc, spool_torn_tail_is_detected_and_cut_on_reopen);
    tcase_add_test(tc, spool_zeroed_tail_is_torn_not_misread);
    tcase_add_test(tc, spool_corrupt_payload_is_reported_and_skipped);
    tcase_add_test(tc, spool_corrupt_length_is_caught_by_the_header_crc);
    tcase_add_test(tc, spool_rotates_segments_and_lists_them_in_order);
    tcase_add_test(tc, spool_size_limit_refuses_instead_of_dropping);
    tcase_add_test(tc, spool_full_disk_rolls_back_and_reports_full);
    tcase_add_test(tc, spool_two_writers_never_share_a_directory);
    tcase_add_test(tc, spool_reader_rejects_a_foreign_file);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(spool_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
