package dev.bridge.runtime;

import com.google.protobuf.DescriptorProtos.FileDescriptorProto;
import com.google.protobuf.DescriptorProtos.FileDescriptorSet;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.DescriptorValidationException;
import com.google.protobuf.Descriptors.FileDescriptor;
import com.google.protobuf.DynamicMessage;
import com.google.protobuf.Message;
import dev.bridge.v1.Request;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** The repository's schemas and vectors, as the tests see them. */
final class TestSchemas {
    private static Map<String, Descriptor> messages;

    private TestSchemas() {
    }

    static Path repoRoot() {
        String root = System.getProperty("bridge.repo.root");
        return Path.of(root != null ? root : "../..").toAbsolutePath().normalize();
    }

    static byte[] hex(String hex) {
        return HexFormat.of().parseHex(hex);
    }

    static String hex(byte[] bytes) {
        return HexFormat.of().formatHex(bytes);
    }

    /**
     * A default instance of the named type: the generated classes for the envelope (bridge.v1),
     * dynamic messages over the interop schema's descriptors for the rest.
     */
    static synchronized Message prototype(String fullName) throws Exception {
        if (fullName.equals(Request.getDescriptor().getFullName())) {
            return Request.getDefaultInstance();
        }
        if (fullName.equals(dev.bridge.v1.Error.getDescriptor().getFullName())) {
            return dev.bridge.v1.Error.getDefaultInstance();
        }
        if (messages == null) {
            messages = new HashMap<>();
            for (FileDescriptor file : interopFiles()) {
                for (Descriptor d : file.getMessageTypes()) {
                    messages.put(d.getFullName(), d);
                }
            }
        }
        Descriptor d = messages.get(fullName);
        if (d == null) {
            throw new IllegalArgumentException("no message type " + fullName);
        }
        return DynamicMessage.getDefaultInstance(d);
    }

    /**
     * The interop schema's descriptors: from the file the pytest wrapper passes
     * ({@code -Dbridge.interop.descriptors}), else made here by bridge's Python schema loader.
     */
    private static FileDescriptor[] interopFiles() throws IOException, InterruptedException, DescriptorValidationException {
        String given = System.getProperty("bridge.interop.descriptors", "");
        Path set;
        if (!given.isEmpty()) {
            set = Path.of(given);
        } else {
            set = Files.createTempFile("interop", ".pb");
            set.toFile().deleteOnExit();
            Process p = new ProcessBuilder("python3", "-c",
                    "import sys, bridge.schema as s; sys.stdout.buffer.write(s.load("
                            + "['schemas/interop/v1/interop.proto'], include_paths=['schemas']).sanitized_descriptor_set())")
                    .directory(repoRoot().toFile())
                    .redirectOutput(set.toFile())
                    .redirectError(ProcessBuilder.Redirect.INHERIT)
                    .start();
            if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
                p.destroyForcibly();
                throw new IOException("could not build the interop descriptor set with python3");
            }
        }
        FileDescriptorSet fds = FileDescriptorSet.parseFrom(Files.readAllBytes(set));
        Map<String, FileDescriptor> built = new HashMap<>();
        FileDescriptor[] out = new FileDescriptor[fds.getFileCount()];
        int i = 0;
        for (FileDescriptorProto proto : fds.getFileList()) { // dependencies come first
            FileDescriptor[] deps = proto.getDependencyList().stream().map(built::get).toArray(FileDescriptor[]::new);
            FileDescriptor fd = FileDescriptor.buildFrom(proto, deps);
            built.put(proto.getName(), fd);
            out[i++] = fd;
        }
        return out;
    }
}
