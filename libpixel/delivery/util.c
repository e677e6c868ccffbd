/* Small helpers of the delivery component: errors, clocks, directories. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "delivery_private.h"

void pixel__d_error_clear(pixel_error *err)
{
    if (err) {
        memset(err, 0, sizeof(*err));
    }
}

int pixel__d_error(pixel_error *err, int code, const char *source, long line, long column,
                   const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || err->text[0] != '\0') {
        return code;
    }
    err->code = code;
    err->line = line;
    err->column = column;
    if (source != NULL) {
        snprintf(err->source, sizeof(err->source), "%s", source);
    }
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return code;
}

int64_t pixel__d_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pixel__d_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pixel__d_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc;

    if (fd < 0) {
        return -1;
    }
    rc = fsync(fd);
    close(fd);
    return rc;
}

int pixel__d_mkdirs(const char *dir)
{
    char buf[4096];
    size_t n = strlen(dir);

    if (n == 0 || n >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, dir, n + 1);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0750) < 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    if (mkdir(buf, 0750) < 0 && errno != EEXIST) {
        return -1;
    }
    return 0;
}

PIXEL_API const char *pixel_delivery_status_str(int status)
{
    switch (status) {
        case PIXEL_DELIVERY_EFULL:
            return "spool full (back-pressure)";
        case PIXEL_DELIVERY_ELOCKED:
            return "spool locked";
        case PIXEL_DELIVERY_EKAFKA:
            return "Kafka error";
        case PIXEL_DELIVERY_ECORRUPT:
            return "corrupt spool data";
        case PIXEL_OK:
            return "ok";
        case PIXEL_ERROR:
            return "error";
        case PIXEL_ENOMEM:
            return "out of memory";
        case PIXEL_ECONFIG:
            return "invalid configuration";
        case PIXEL_EIO:
            return "I/O error";
        case PIXEL_EVERSION:
            return "unknown version";
        case PIXEL_EINVAL:
            return "invalid argument";
        default:
            return "unknown status";
    }
}
