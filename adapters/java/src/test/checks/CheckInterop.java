import dev.bridge.interop.v1.*;
import dev.bridge.runtime.*;

public final class CheckInterop {
    public static void main(String[] args) throws Exception {
        InteropService echoOnly = new InteropService() {
            @Override
            public Blob echoBlob(Blob request, CallContext context) {
                return request;
            }
        };
        Worker worker = Worker.builder().servers("127.0.0.1:1").build();
        InteropBridge.register(worker, echoOnly);
        System.out.println(String.join(",", worker.functions()));
        System.out.println(InteropBridge.STREAM.isServerStreaming() + " "
                + InteropBridge.ECHO.isServerStreaming());
        try {
            echoOnly.notImplemented(Empty.getDefaultInstance(), null);
        } catch (BridgeException e) {
            System.out.println(e.code() + " " + e.getMessage());
        }
        Blob blob = Blob.newBuilder().setText("x").build();
        System.out.println(echoOnly.echoBlob(blob, null) == blob);
    }
}
