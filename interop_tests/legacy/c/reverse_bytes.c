/* A plain libgearman worker as C shops wrote them: the classic gearman_worker_add_function API, the
 * job's bytes in, bytes out, no bridge code. It serves "reverse_bytes": the workload with its bytes
 * in reverse order (NULs and invalid UTF-8 included). legacy.proto declares it as
 * Legacy.ReverseBytes (bare: true, encoding: RAW).
 *
 *   cc -o reverse_bytes reverse_bytes.c -lgearman && ./reverse_bytes 127.0.0.1 4730
 */
#include <libgearman/gearman.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *reverse_bytes(gearman_job_st *job, void *context, size_t *result_size,
                           gearman_return_t *ret_ptr)
{
  (void)context;
  const unsigned char *workload = gearman_job_workload(job);
  size_t size = gearman_job_workload_size(job);
  unsigned char *result = malloc(size ? size : 1);
  if (result == NULL) {
    *ret_ptr = GEARMAN_WORK_FAIL;
    return NULL;
  }
  for (size_t i = 0; i < size; i++) {
    result[i] = workload[size - 1 - i];
  }
  *result_size = size;
  *ret_ptr = GEARMAN_SUCCESS;
  return result; /* libgearman frees it */
}

int main(int argc, char *argv[])
{
  const char *host = argc > 1 ? argv[1] : "127.0.0.1";
  in_port_t port = (in_port_t)(argc > 2 ? atoi(argv[2]) : GEARMAN_DEFAULT_TCP_PORT);

  gearman_worker_st *worker = gearman_worker_create(NULL);
  if (worker == NULL) {
    fprintf(stderr, "gearman_worker_create failed\n");
    return 1;
  }
  gearman_return_t ret = gearman_worker_add_server(worker, host, port);
  if (ret != GEARMAN_SUCCESS) {
    fprintf(stderr, "%s\n", gearman_worker_error(worker));
    return 1;
  }
  ret = gearman_worker_add_function(worker, "reverse_bytes", 0, reverse_bytes, NULL);
  if (ret != GEARMAN_SUCCESS) {
    fprintf(stderr, "%s\n", gearman_worker_error(worker));
    return 1;
  }
  while (1) {
    ret = gearman_worker_work(worker);
    if (ret != GEARMAN_SUCCESS) {
      fprintf(stderr, "%s\n", gearman_worker_error(worker));
      break;
    }
  }
  gearman_worker_free(worker);
  return 0;
}
