package dev.bridge.runtime;

import dev.bridge.v1.Error;

/**
 * A worker process for {@link GracefulStopTest}: serves {@code t.Sleep}, which sleeps
 * {@code message} milliseconds and echoes its request. Usage: SignalWorkerMain SERVERS
 */
public final class SignalWorkerMain {
    private SignalWorkerMain() {
    }

    public static void main(String[] args) throws InterruptedException {
        Worker worker = Worker.builder().servers(args[0]).concurrency(2).build();
        worker.register(Rpc.unary("t.Sleep", Error.getDefaultInstance(), Error.getDefaultInstance()),
                (request, context) -> {
                    Thread.sleep(Long.parseLong(request.getMessage()));
                    return request;
                });
        worker.run();
    }
}
