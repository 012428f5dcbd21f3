package dev.bridge.runtime;

/**
 * Thrown by a handler to end its job with a bare WORK_FAIL: the worker gives up without an
 * explanation, and the Python caller gets {@code WorkerFailed}. Prefer {@link BridgeException},
 * which tells the caller why.
 */
public class JobFailedException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public JobFailedException() {
        super("job failed");
    }

    public JobFailedException(String reason) {
        super(reason);
    }
}
