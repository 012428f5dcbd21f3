# frozen_string_literal: true

require_relative "test_helper"
require "json"

# Every case of schemas/testdata/vectors.json (wire contract section 6), in both encodings.
class TestCodecVectors < Minitest::Test
  CASES = JSON.parse(File.read(TestSupport::VECTORS))

  def self.klass(type)
    Google::Protobuf::DescriptorPool.generated_pool.lookup(type)&.msgclass or raise "no Ruby class for #{type}"
  end

  def hex(bytes) = bytes.unpack1("H*")
  def unhex(text) = [text].pack("H*")

  def test_there_are_vectors_of_every_kind
    assert_operator CASES.size, :>=, 100
    assert(CASES.any? { |c| c["invalid"] && c["msgpack_hex"] })
    assert(CASES.any? { |c| c["invalid"] && c["protobuf_hex"] })
    assert(CASES.any? { |c| c["type"] == "bridge.v1.Request" })
  end

  CASES.each do |vector|
    name = vector.fetch("name")
    klass = klass(vector.fetch("type"))
    if vector["invalid"]
      define_method("test_#{name}_is_rejected") do
        if vector["msgpack_hex"]
          assert_raises(Bridge::DecodeError) { Bridge::Codec::Msgpack.decode(klass, unhex(vector["msgpack_hex"])) }
        end
        if vector["protobuf_hex"]
          assert_raises(Bridge::DecodeError) { Bridge::Codec::Protobuf.decode(klass, unhex(vector["protobuf_hex"])) }
        end
      end
      next
    end

    define_method("test_#{name}") do
      msgpack = vector.fetch("msgpack_hex")
      protobuf = vector.fetch("protobuf_hex")
      from_protobuf = Bridge::Codec::Protobuf.decode(klass, unhex(protobuf))
      from_msgpack = Bridge::Codec::Msgpack.decode(klass, unhex(msgpack))
      from_json = klass.decode_json(JSON.generate(vector.fetch("json")))
      # msgpack is canonical (field order, smallest forms, sorted maps): byte-exact from every source
      assert_equal msgpack, hex(Bridge::Codec::Msgpack.encode(from_protobuf)), "msgpack from the protobuf bytes"
      assert_equal msgpack, hex(Bridge::Codec::Msgpack.encode(from_msgpack)), "msgpack round trip"
      assert_equal msgpack, hex(Bridge::Codec::Msgpack.encode(from_json)), "msgpack from the canonical JSON"
      if vector["canonical_protobuf"]
        assert_equal protobuf, hex(Bridge::Codec::Protobuf.encode(from_msgpack)), "protobuf from the msgpack bytes"
        assert_equal protobuf, hex(Bridge::Codec::Protobuf.encode(from_protobuf)), "protobuf round trip"
      else
        # maps: protobuf leaves entry order open; the decoded messages must still be the same
        assert_equal hex(Bridge::Codec::Msgpack.encode(from_protobuf)),
                     hex(Bridge::Codec::Msgpack.encode(klass.decode(Bridge::Codec::Protobuf.encode(from_msgpack))))
      end
    end
  end
end
