/*
 * The baseline for bench/c/run.sh: a minimal libgearman worker (no bridge runtime) answering
 * each job of FUNCTION with its payload. Usage: raw_echo SERVERS FUNCTION
 */
#include <libgearman-1.0/gearman.h>
#include <stdio.h>
#include <string.h>

static gearman_return_t echo(gearman_job_st *job, void *context)
{
    (void)context;
    return gearman_job_send_complete(job, gearman_job_workload(job), gearman_job_workload_size(job));
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s SERVERS FUNCTION\n", argv[0]);
        return 2;
    }
    gearman_worker_st *worker = gearman_worker_create(NULL);
    if (worker == NULL || gearman_failed(gearman_worker_add_servers(worker, argv[1])) ||
        gearman_failed(gearman_worker_define_function(worker, argv[2], strlen(argv[2]),
                                                      gearman_function_create(echo), 0, NULL))) {
        fprintf(stderr, "raw_echo: %s\n", worker ? gearman_worker_error(worker) : "no memory");
        return 1;
    }
    for (;;) {
        gearman_return_t rc = gearman_worker_work(worker);
        if (rc != GEARMAN_SUCCESS && rc != GEARMAN_IO_WAIT && rc != GEARMAN_NO_JOBS) {
            fprintf(stderr, "raw_echo: %s\n", gearman_worker_error(worker));
            gearman_worker_free(worker);
            return 1;
        }
    }
}
