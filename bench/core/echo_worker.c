/* Minimal libgearman worker for the benchmark: "echo" answers each job with its payload. */
#include <libgearman/gearman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gearman_return_t echo(gearman_job_st *job, void *context)
{
  (void)context;
  const void *workload = gearman_job_workload(job);
  size_t size = gearman_job_workload_size(job);
  return gearman_job_send_complete(job, workload, size);
}

int main(int argc, char **argv)
{
  if (argc != 3) {
    fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
    return 2;
  }
  gearman_worker_st *worker = gearman_worker_create(NULL);
  if (worker == NULL) return 1;
  if (gearman_worker_add_server(worker, argv[1], (in_port_t)atoi(argv[2])) != GEARMAN_SUCCESS) {
    fprintf(stderr, "%s\n", gearman_worker_error(worker));
    return 1;
  }
  gearman_function_t fn = gearman_function_create(echo);
  if (gearman_worker_define_function(worker, "echo", 4, fn, 0, NULL) != GEARMAN_SUCCESS) {
    fprintf(stderr, "%s\n", gearman_worker_error(worker));
    return 1;
  }
  for (;;) {
    gearman_return_t rc = gearman_worker_work(worker);
    if (rc != GEARMAN_SUCCESS && rc != GEARMAN_IO_WAIT && rc != GEARMAN_NO_JOBS) {
      fprintf(stderr, "%s\n", gearman_worker_error(worker));
      gearman_worker_free(worker);
      return 1;
    }
  }
}
