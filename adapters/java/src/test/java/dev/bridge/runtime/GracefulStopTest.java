package dev.bridge.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.bridge.runtime.gearman.PacketType;
import dev.bridge.v1.Error;
import dev.bridge.v1.Request;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** SIGTERM to a worker process: it stops grabbing, finishes the running jobs, then exits 0. */
@Timeout(60)
class GracefulStopTest {
    @Test
    void sigtermFinishesRunningJobsThenExitsZero() throws Exception {
        try (Gearmand gearmand = new Gearmand()) {
            String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
            Process worker = new ProcessBuilder(List.of(java, "-cp", System.getProperty("java.class.path"),
                    SignalWorkerMain.class.getName(), gearmand.address()))
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                    .start();
            try {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
                while (gearmand.status("t.Sleep")[2] < 2) {
                    if (!worker.isAlive()) {
                        throw new AssertionError("worker exited early with status " + worker.exitValue());
                    }
                    assertTrue(System.nanoTime() < deadline, "worker did not register");
                    Thread.sleep(50);
                }
                byte[] body = Error.newBuilder().setMessage("800").build().toByteArray();
                byte[] job = Request.newBuilder().setVersion(1).setBody(com.google.protobuf.ByteString.copyFrom(body))
                        .build().toByteArray();
                try (TestClient a = new TestClient(gearmand.address()); TestClient b = new TestClient(gearmand.address())) {
                    a.submit("t.Sleep", job);
                    b.submit("t.Sleep", job);
                    while (gearmand.status("t.Sleep")[1] < 2) { // both running
                        Thread.sleep(20);
                    }
                    worker.destroy(); // SIGTERM
                    for (TestClient c : List.of(a, b)) {
                        TestClient.Outcome out = c.await(10_000);
                        assertEquals(PacketType.WORK_COMPLETE, out.endType());
                        assertArrayEquals(body, out.reply());
                    }
                }
                assertTrue(worker.waitFor(10, TimeUnit.SECONDS), "worker did not exit after SIGTERM");
                assertEquals(0, worker.exitValue());
            } finally {
                worker.destroyForcibly();
            }
        }
    }
}
