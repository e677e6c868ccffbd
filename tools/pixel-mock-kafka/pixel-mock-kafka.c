/*
 * pixel-mock-kafka: a Kafka cluster for tests and demos, from librdkafka's
 * mock cluster (rdkafka_mock.h).  It speaks the real Kafka protocol on
 * 127.0.0.1, keeps messages in memory, and takes brokers down and up on
 * command.  It is not a Kafka broker: nothing is persisted.  Like Kafka's
 * brokers, its brokers set TCP_NODELAY on the connections they accept.
 *
 *   pixel-mock-kafka [-n BROKERS] [-t TOPIC[:PARTITIONS]]... [-c FIFO] [-b FILE]
 *
 * The bootstrap servers ("127.0.0.1:port,...") are printed as the first line
 * of stdout and, with -b, written to FILE (renamed into place, so a reader
 * never sees half of it).  Commands, one per line, come from stdin, or from
 * the FIFO given with -c (created if missing; then stdin is ignored):
 *
 *   down ID|all     take broker ID (1..N) or every broker down
 *   up ID|all       bring it back
 *   rtt ID|all MS   add MS milliseconds of round-trip delay
 *   quit            stop
 *
 * Each command is answered on stdout with "ok ..." or "error ...".  The
 * helper stops on quit, on SIGTERM/SIGINT, or at the end of stdin when no
 * FIFO is used.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "../common/version.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int usage_to(FILE *out, int status)
{
    fputs("usage: pixel-mock-kafka [-n BROKERS] [-t TOPIC[:PARTITIONS]]... [-c FIFO] [-b FILE]\n"
          "A Kafka cluster for tests and demos (librdkafka's mock cluster) on 127.0.0.1:\n"
          "real Kafka protocol, messages kept in memory only (at most 5 MB a partition).\n"
          "  -n BROKERS          number of brokers (default 3)\n"
          "  -t TOPIC[:PARTS]    create a topic (repeatable)\n"
          "  -c FIFO             read commands from FIFO (created if missing) instead of stdin\n"
          "  -b FILE             also write the bootstrap servers to FILE\n"
          "The bootstrap servers are the first line of stdout.  Commands, one a line:\n"
          "  down ID|all, up ID|all, rtt ID|all MS, quit\n" TOOL_VERSION_HELP,
          out);
    return status;
}

static int usage(void)
{
    return usage_to(stderr, 2);
}

/* Apply one command; returns 1 to quit. */
static int command(rd_kafka_mock_cluster_t *mc, int brokers, char *line)
{
    char verb[16], who[16];
    int ms = 0, n, first, last;

    n = sscanf(line, "%15s %15s %d", verb, who, &ms);
    if (n >= 1 && strcmp(verb, "quit") == 0) {
        printf("ok quit\n");
        return 1;
    }
    if (n < 2) {
        printf("error expected: down ID|all, up ID|all, rtt ID|all MS, quit\n");
        return 0;
    }
    if (strcmp(who, "all") == 0) {
        first = 1;
        last = brokers;
    } else {
        char *end;
        long id = strtol(who, &end, 10);
        if (*end != '\0' || id < 1 || id > brokers) {
            printf("error no broker %s (1..%d)\n", who, brokers);
            return 0;
        }
        first = last = (int)id;
    }
    for (int id = first; id <= last; id++) {
        rd_kafka_resp_err_t e;
        if (strcmp(verb, "down") == 0) {
            e = rd_kafka_mock_broker_set_down(mc, id);
        } else if (strcmp(verb, "up") == 0) {
            e = rd_kafka_mock_broker_set_up(mc, id);
        } else if (strcmp(verb, "rtt") == 0 && n == 3) {
            e = rd_kafka_mock_broker_set_rtt(mc, id, ms);
        } else {
            printf("error unknown command %s\n", verb);
            return 0;
        }
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            printf("error broker %d: %s\n", id, rd_kafka_err2str(e));
            return 0;
        }
    }
    printf("ok %s %s\n", verb, who);
    return 0;
}

static int write_bootstrap(const char *path, const char *servers)
{
    char tmp[4096];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL) {
        return -1;
    }
    fprintf(f, "%s\n", servers);
    if (fclose(f) != 0) {
        return -1;
    }
    return rename(tmp, path);
}

int main(int argc, char **argv)
{
    int brokers = 3, opt, in_fd = 0;
    const char *fifo = NULL, *bfile = NULL;
    const char *topics[64];
    int ntopics = 0;
    char errstr[512], buf[4096];
    size_t have = 0;
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    if (tool_version_asked(argc, argv, "pixel-mock-kafka")) {
        return 0;
    }
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        return usage_to(stdout, 0); /* help asked for: stdout, status 0 */
    }

    while ((opt = getopt(argc, argv, "n:t:c:b:h")) != -1) {
        switch (opt) {
            case 'n':
                brokers = (int)strtol(optarg, NULL, 10);
                break;
            case 't':
                if (ntopics < 64) {
                    topics[ntopics++] = optarg;
                }
                break;
            case 'c':
                fifo = optarg;
                break;
            case 'b':
                bfile = optarg;
                break;
            default:
                return usage();
        }
    }
    if (brokers < 1 || brokers > 32) {
        return usage();
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    /*
     * TCP_NODELAY on the brokers' side, as Kafka's own brokers set it.
     * rdkafka_mock.h has no socket option of its own, but the mock sets up
     * each connection it accepts with the socket settings of the handle
     * that hosts it (rd_kafka_transport_post_connect_setup() with the
     * cluster's handle), socket.nagle.disable included.  With Nagle on, a
     * response written while an earlier one is unacknowledged waited for
     * the client's delayed ACK (about 40 ms).
     */
    if (rd_kafka_conf_set(conf, "socket.nagle.disable", "true", errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        fprintf(stderr, "pixel-mock-kafka: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "pixel-mock-kafka: %s\n", errstr);
        return 1;
    }
    mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (mc == NULL) {
        fprintf(stderr, "pixel-mock-kafka: cannot start the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    for (int i = 0; i < ntopics; i++) {
        char name[256];
        int parts = 4;
        const char *colon = strchr(topics[i], ':');
        size_t len = colon ? (size_t)(colon - topics[i]) : strlen(topics[i]);
        snprintf(name, sizeof(name), "%.*s", (int)len, topics[i]);
        if (colon != NULL) {
            parts = (int)strtol(colon + 1, NULL, 10);
        }
        if (rd_kafka_mock_topic_create(mc, name, parts, brokers < 3 ? brokers : 3) != 0) {
            fprintf(stderr, "pixel-mock-kafka: cannot create topic %s\n", name);
        }
    }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    if (bfile != NULL && write_bootstrap(bfile, rd_kafka_mock_cluster_bootstraps(mc)) < 0) {
        fprintf(stderr, "pixel-mock-kafka: cannot write %s: %s\n", bfile, strerror(errno));
    }
    if (fifo != NULL) {
        if (mkfifo(fifo, 0600) < 0 && errno != EEXIST) {
            fprintf(stderr, "pixel-mock-kafka: cannot create %s: %s\n", fifo, strerror(errno));
            stop = 1;
        }
        /* O_RDWR: the FIFO never reports end-of-file between writers. */
        in_fd = open(fifo, O_RDWR | O_CLOEXEC);
        if (in_fd < 0) {
            fprintf(stderr, "pixel-mock-kafka: cannot open %s: %s\n", fifo, strerror(errno));
            stop = 1;
        }
    }
    while (!stop) {
        struct pollfd p = {.fd = in_fd, .events = POLLIN};
        ssize_t n;
        char *nl;

        if (poll(&p, 1, 200) <= 0) {
            continue;
        }
        n = read(in_fd, buf + have, sizeof(buf) - 1 - have);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            break; /* end of stdin */
        }
        have += (size_t)n;
        buf[have] = '\0';
        while (!stop && (nl = strchr(buf, '\n')) != NULL) {
            *nl = '\0';
            if (buf[0] != '\0' && command(mc, brokers, buf)) {
                stop = 1;
            }
            fflush(stdout);
            have -= (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, have + 1);
        }
        if (have == sizeof(buf) - 1) {
            have = 0; /* an absurd line: drop it */
        }
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    if (fifo != NULL && in_fd >= 0) {
        close(in_fd);
    }
    return 0;
}
