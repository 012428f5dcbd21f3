package dev.bridge.runtime;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.DynamicMessage;
import dev.bridge.runtime.gearman.GearmanWorker;
import java.net.ServerSocket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** docs/workers.md: a job server that cannot be reached is a warning naming it (HOST:PORT). */
@Timeout(30)
class UnreachableServerTest {
    @Test
    void anUnreachableJobServerIsAWarningNamingIt() throws Exception {
        int port;
        try (ServerSocket probe = new ServerSocket(0)) { // free now, nothing listens once closed
            port = probe.getLocalPort();
        }
        List<LogRecord> records = new CopyOnWriteArrayList<>();
        Handler capture = new Handler() {
            @Override
            public void publish(LogRecord record) {
                records.add(record);
            }

            @Override
            public void flush() {
            }

            @Override
            public void close() {
            }
        };
        Logger logger = Logger.getLogger(GearmanWorker.class.getName());
        logger.addHandler(capture);
        DynamicMessage empty = (DynamicMessage) TestSchemas.prototype("bridge.interop.v1.Empty");
        Worker worker = Worker.builder().servers("127.0.0.1:" + port).keys(null).build();
        worker.register(Rpc.unary("u.Nothing", empty, empty), (request, ctx) -> request);
        try {
            worker.start();
            String expected = "cannot reach 127.0.0.1:" + port + " ";
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (records.stream().noneMatch(r -> r.getLevel() == Level.WARNING
                    && new java.util.logging.SimpleFormatter().formatMessage(r).startsWith(expected))) {
                assertTrue(System.nanoTime() < deadline, "no warning naming the server: " + records);
                Thread.sleep(20);
            }
        } finally {
            worker.stop();
            logger.removeHandler(capture);
        }
    }
}
