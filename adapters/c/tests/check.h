/* The C test program's tiny harness, shared by its source files. */
#ifndef BRIDGE_TEST_CHECK_H
#define BRIDGE_TEST_CHECK_H

#include <stdio.h>

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAIL %s:%d: ", __func__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* Runs one test (0 = passed) and counts it. */
void run(const char *name, int (*fn)(void));

/* test_conn.c: the Gearman connection layer against a socketpair peer. */
void conn_tests(void);

/* test_bare.c: bare methods (the JSON vectors, RAW, the bare job flow). */
void bare_tests(void);

/* test_signing.c: signed jobs and replies (the signing vectors, keys, the checks, the cache). */
void signing_tests(void);

/* test_observe.c: the command line, job log lines and trace context (docs/workers.md). */
void observe_tests(void);

#endif
