import dev.bridge.runtime.gearman.GearmanWorker;
import dev.bridge.runtime.gearman.ServerAddress;
import java.time.Duration;

/**
 * The baseline for the Java shim's benchmark: a hand-written echo worker on the same socket code
 * (dev.bridge.runtime.gearman) with no bridge layer: the payload goes back as it came.
 * Usage: java RawEcho SERVERS FUNCTION [CONCURRENCY]
 */
public final class RawEcho {
    public static void main(String[] args) throws InterruptedException {
        int concurrency = args.length > 2 ? Integer.parseInt(args[2]) : 1;
        GearmanWorker worker = new GearmanWorker(ServerAddress.parseList(args[0]), concurrency,
                256 * 1024 * 1024, "raw-echo", GearmanWorker.Settings.DEFAULT);
        worker.register(args[1], job -> job.complete(job.payloadArray(), job.payloadOffset(), job.payloadLength()));
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            worker.stop();
            try {
                worker.awaitTermination(Duration.ofSeconds(30));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }));
        worker.start();
        worker.awaitTermination(Duration.ofDays(365));
    }
}
