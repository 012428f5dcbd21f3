# frozen_string_literal: true

require_relative "test_helper"

class TestPacket < Minitest::Test
  G = Bridge::Gearman

  def res(type, *args) = G.encode(type, *args, magic: G::MAGIC_RES)

  def test_header_is_magic_type_and_size_big_endian
    bytes = G.encode(:CAN_DO, "echo")
    assert_equal "\0REQ\x00\x00\x00\x01\x00\x00\x00\x04echo".b, bytes
    assert_equal Encoding::BINARY, bytes.encoding
  end

  def test_packets_without_arguments_have_an_empty_body
    assert_equal "\0REQ\x00\x00\x00\x1e\x00\x00\x00\x00".b, G.encode(:GRAB_JOB_UNIQ)
    assert_equal "\0REQ\x00\x00\x00\x04\x00\x00\x00\x00".b, G.encode(:PRE_SLEEP)
  end

  def test_type_numbers_match_gearmand
    expected = { CAN_DO: 1, PRE_SLEEP: 4, NOOP: 6, NO_JOB: 10, WORK_STATUS: 12, WORK_COMPLETE: 13,
                 WORK_FAIL: 14, ECHO_REQ: 16, ECHO_RES: 17, ERROR: 19, SET_CLIENT_ID: 22,
                 WORK_EXCEPTION: 25, WORK_DATA: 28, WORK_WARNING: 29, GRAB_JOB_UNIQ: 30,
                 JOB_ASSIGN_UNIQ: 31, STATUS_RES_UNIQUE: 42 }
    expected.each { |name, number| assert_equal number, G::NUMBERS.fetch(name), name }
    assert_nil G::LAYOUT[0]
    assert_nil G::LAYOUT[5]
  end

  # Byte-level framing: sizes count bytes, not characters; NULs inside the data argument survive.
  def test_multibyte_utf8_and_nul_bytes_are_framed_by_bytes
    data = "héllo ✓ 🚀\0tail\0".encode(Encoding::UTF_8)
    bytes = res(:JOB_ASSIGN_UNIQ, "H:vm:1", "text.v1.T.Slug", "ünïque", data)
    body_size = "H:vm:1".bytesize + "text.v1.T.Slug".bytesize + "ünïque".bytesize + data.bytesize + 3
    assert_equal body_size, bytes.unpack1("N", offset: 8)
    assert_equal 12 + body_size, bytes.bytesize
    packets = G::Decoder.new.feed(bytes)
    assert_equal 1, packets.size
    handle, function, unique, payload = packets[0].args
    assert_equal "H:vm:1", handle
    assert_equal "text.v1.T.Slug", function
    assert_equal "ünïque".b, unique
    assert_equal data.b, payload
    assert_equal Encoding::BINARY, payload.encoding
  end

  def test_every_split_of_the_stream_gives_the_same_packets
    stream = res(:NOOP) + res(:JOB_ASSIGN_UNIQ, "H:1", "f", "", "a\0b✓".b) + res(:NO_JOB) +
             res(:WORK_FAIL, "H:2") + res(:ECHO_RES, "\0\0")
    (1..stream.bytesize).each do |cut|
      decoder = G::Decoder.new
      packets = decoder.feed(stream.byteslice(0, cut)) + decoder.feed(stream.byteslice(cut..))
      assert_equal %i[NOOP JOB_ASSIGN_UNIQ NO_JOB WORK_FAIL ECHO_RES], packets.map(&:type), "cut at #{cut}"
      assert_equal 0, decoder.buffered
    end
  end

  def test_byte_by_byte
    stream = res(:JOB_ASSIGN_UNIQ, "H:1", "f", "u", "x" * 100) * 2
    decoder = G::Decoder.new
    packets = stream.each_char.flat_map { |byte| decoder.feed(byte) }
    assert_equal 2, packets.size
    assert_equal "x" * 100, packets[1].args[3]
  end

  def test_many_packets_in_one_read
    stream = (0...500).map { |i| res(:WORK_DATA, "H:#{i}", "d#{i}") }.join
    packets = G::Decoder.new.feed(stream)
    assert_equal 500, packets.size
    assert_equal %w[H:499 d499], packets.last.args
  end

  def test_trailing_nul_after_a_text_argument_is_accepted
    # gearmand's own WORK_FAIL may end the handle with a NUL
    raw = ["\0RES", 14, 4].pack("a4NN") + "H:1\0"
    assert_equal ["H:1"], G::Decoder.new.feed(raw)[0].args
  end

  def test_bad_magic_is_a_protocol_error_and_the_decoder_stays_broken
    decoder = G::Decoder.new
    error = assert_raises(G::ProtocolError) { decoder.feed("HTTP/1.1 200 OK\r\n") }
    assert_match(/bad magic/, error.message)
    assert_raises(G::ProtocolError) { decoder.feed(res(:NOOP)) }
  end

  def test_expected_magic
    assert_raises(G::ProtocolError) { G::Decoder.new(expect: G::MAGIC_RES).feed(G.encode(:NOOP)) }
  end

  def test_unknown_type_is_a_protocol_error
    assert_raises(G::ProtocolError) { G::Decoder.new.feed(["\0RES", 5, 0].pack("a4NN")) }
    assert_raises(G::ProtocolError) { G::Decoder.new.feed(["\0RES", 43, 0].pack("a4NN")) }
  end

  def test_oversized_body_fails_on_the_header_before_buffering
    decoder = G::Decoder.new(max_body: 16)
    error = assert_raises(G::ProtocolError) { decoder.feed(["\0RES", 28, 17].pack("a4NN")) }
    assert_match(/exceeds the limit of 16/, error.message)
    assert_equal 16, G::Decoder.new(max_body: 16).feed(res(:WORK_DATA, "H", "x" * 14))[0].args.sum(&:bytesize) + 1
  end

  def test_too_few_arguments_and_body_on_argumentless_type
    assert_raises(G::ProtocolError) { G::Decoder.new.feed(["\0RES", 31, 3].pack("a4NN") + "H:1") }
    assert_raises(G::ProtocolError) { G::Decoder.new.feed(["\0RES", 6, 1].pack("a4NN") + "x") }
  end

  def test_encoder_refuses_malformed_packets
    assert_raises(G::ProtocolError) { G.encode(:WORK_COMPLETE, "H:1") }
    assert_raises(G::ProtocolError) { G.encode(:WORK_COMPLETE, "H\0:1", "data") }
    assert_raises(G::ProtocolError) { G.encode(:NOT_A_TYPE) }
  end

  def test_encode_head_leaves_the_payload_apart
    payload = "p" * 100_000
    head, data = G.encode_head(:WORK_COMPLETE, "H:1", payload)
    assert_same payload, data
    assert_equal G.encode(:WORK_COMPLETE, "H:1", payload), head + data
  end

  def test_every_type_round_trips
    G::TYPES.each do |name, (_number, argc, _data)|
      args = Array.new(argc) { |i| i == argc - 1 ? "last\0arg" : "a#{i}" }
      packet = G::Decoder.new.feed(res(name, *args)).first
      assert_equal name, packet.type
      assert_equal args, packet.args
    end
  end
end
