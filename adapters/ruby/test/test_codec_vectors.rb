# frozen_string_literal: true

require_relative "test_helper"
require "json"

# Every case of schemas/testdata/vectors.json (wire contract section 6), in both encodings.
class TestCodecVectors < Minitest::Test
  CASES = JSON.parse(File.read(TestSupport::VECTORS), max_nesting: false)
  # upb's JSON parser stops at 64 levels whatever it is told: deeper cases are checked against
  # their protobuf bytes instead of their JSON.
  JSON_DEPTH_LIMIT = 60

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
    assert(CASES.any? { |c| c["decode_only"] && c["msgpack_hex"] })
    assert(CASES.any? { |c| c["decode_only"] && c["protobuf_hex"] })
  end

  def self.depth(json) = json.is_a?(Hash) || json.is_a?(Array) ? 1 + (json.is_a?(Hash) ? json.values : json).map { |v| depth(v) }.max.to_i : 0

  # The message of a case's canonical JSON, as msgpack bytes (the comparable form).
  def from_json(klass, vector)
    klass.decode_json(JSON.generate(vector.fetch("json"), max_nesting: false))
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

    if vector["decode_only"]
      define_method("test_#{name}_decodes") do
        expected = hex(Bridge::Codec::Msgpack.encode(from_json(klass, vector)))
        encoding = vector["msgpack_hex"] ? :msgpack : :protobuf
        assert_equal 1, [vector["msgpack_hex"], vector["protobuf_hex"]].compact.size
        decoded = Bridge::Codec.decode(klass, unhex(vector.fetch("#{encoding}_hex")), encoding)
        assert_equal expected, hex(Bridge::Codec::Msgpack.encode(decoded))
      end
      next
    end

    define_method("test_#{name}") do
      msgpack = vector.fetch("msgpack_hex")
      protobuf = vector.fetch("protobuf_hex")
      from_protobuf = Bridge::Codec::Protobuf.decode(klass, unhex(protobuf))
      from_msgpack = Bridge::Codec::Msgpack.decode(klass, unhex(msgpack))
      from_json = TestCodecVectors.depth(vector["json"]) > JSON_DEPTH_LIMIT ? from_protobuf : from_json(klass, vector)
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
