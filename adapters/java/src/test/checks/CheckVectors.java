import com.google.protobuf.ByteString;
import com.google.protobuf.DynamicMessage;
import com.google.protobuf.Message;
import dev.bridge.runtime.Codecs;
import dev.bridge.runtime.MsgpackCodec;
import dev.bridge.v1.Encoding;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.HexFormat;

/**
 * Per line "name type encoding hex" (encoding 1 protobuf, 2 msgpack, 3 bare JSON): the generated
 * class's decode and DynamicMessage's, each re-encoded as msgpack, or ERR and the error.
 */
public final class CheckVectors {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        HexFormat hex = HexFormat.of();
        for (String line; (line = in.readLine()) != null; ) {
            String[] f = line.split(" ", -1);
            String simple = f[1].substring(f[1].lastIndexOf('.') + 1);
            Message prototype = (Message) Class.forName("dev.bridge.interop.v1." + simple)
                    .getMethod("getDefaultInstance").invoke(null);
            Encoding encoding = Encoding.forNumber(Integer.parseInt(f[2]));
            byte[] bytes = hex.parseHex(f[3]);
            try {
                Message dynamicPrototype = DynamicMessage.getDefaultInstance(prototype.getDescriptorForType());
                Message generated = encoding == Encoding.JSON
                        ? Codecs.decodeBare(bytes, 0, bytes.length, encoding, prototype)
                        : Codecs.decode(ByteString.copyFrom(bytes), encoding, prototype);
                Message dynamic = encoding == Encoding.JSON
                        ? Codecs.decodeBare(bytes, 0, bytes.length, encoding, dynamicPrototype)
                        : Codecs.decode(ByteString.copyFrom(bytes), encoding, dynamicPrototype);
                System.out.println(f[0] + " " + hex.formatHex(MsgpackCodec.encode(generated)) + " "
                        + hex.formatHex(MsgpackCodec.encode(dynamic)));
            } catch (Exception e) {
                System.out.println(f[0] + " ERR " + e);
            }
        }
    }
}
