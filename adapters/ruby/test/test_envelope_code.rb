# frozen_string_literal: true

require_relative "test_helper"
require "open3"

# lib/bridge/v1/envelope_pb.rb is protoc's output for schemas/bridge/v1/envelope.proto, committed so
# the gem works without protoc. It must stay what Debian's protoc 3.21.12 makes of the schema today.
class TestEnvelopeCode < Minitest::Test
  def test_committed_envelope_code_is_up_to_date
    Dir.mktmpdir do |out|
      _, err, status = Open3.capture3("protoc", "-I", File.join(TestSupport::REPO_ROOT, "schemas"),
                                      "--ruby_out=#{out}", "bridge/v1/envelope.proto")
      assert status.success?, "protoc failed: #{err}"
      expected = File.read(File.join(out, "bridge", "v1", "envelope_pb.rb"))
      actual = File.read(File.join(TestSupport::ADAPTER_ROOT, "lib", "bridge", "v1", "envelope_pb.rb"))
      assert_equal expected, actual, "regenerate: protoc -I schemas --ruby_out=adapters/ruby/lib bridge/v1/envelope.proto"
    end
  end

  def test_envelope_round_trip
    request = Bridge::V1::Request.new(version: 1, deadline_ms: -1, metadata: { "k" => "✓" }, encoding: :MSGPACK,
                                      body: "\0\x80".b)
    assert_equal request, Bridge::V1::Request.decode(Bridge::V1::Request.encode(request))
  end
end
