# frozen_string_literal: true

require_relative "test_helper"
require "json"

# Mutations of every case of schemas/testdata/vectors.json, in the encoding it is written in:
# truncations, bit flips, and length or count fields inflated to claim far more than the data
# holds. Decoding any of them either gives a message or raises Bridge::DecodeError: never another
# exception, never an allocation of the claimed size (wire contract 5.9). Deterministic (fixed
# seed) and bounded in time.
class TestCodecFuzz < Minitest::Test
  CASES = JSON.parse(File.read(TestSupport::VECTORS), max_nesting: false)
  SEED = 20_261_130
  TIME_BUDGET = 4.0 # seconds for the random rounds, after one full deterministic pass
  POISON = ["080120022a0e81a76e756d62657273ddffffffff"].pack("H*") # issue 11: killed Ruby workers

  # Headers that claim ~4 GiB (or 64 Ki) of data: array, map, str, bin, ext; then protobuf's
  # length-delimited tag of field 1 with a 4 GiB length.
  MSGPACK_INFLATED = ["ddffffffff", "dfffffffff", "dbffffffff", "c6ffffffff", "c9ffffffff05", "dcffff", "deffff",
                      "daffff", "c5ffff", "c8ffff05"].map { |h| [h].pack("H*") }.freeze
  PROTOBUF_INFLATED = ["0affffffff0f", "12ffffffff0f", "6affffffff0f", "0a80808080808080808001"].map { |h| [h].pack("H*") }.freeze

  def klass(type) = Google::Protobuf::DescriptorPool.generated_pool.lookup(type).msgclass

  def inputs
    CASES.flat_map do |vector|
      %w[msgpack protobuf].filter_map do |encoding|
        hex = vector["#{encoding}_hex"] or next
        [vector["name"], klass(vector["type"]), encoding.to_sym, [hex].pack("H*")]
      end
    end
  end

  # Decodes +bytes+; fails the test on anything but a message or a DecodeError. Returns :ok or :error.
  def check(name, klass, encoding, bytes, how)
    view(bytes) if klass == Bridge::V1::Request && encoding == :protobuf
    message = Bridge::Codec.decode(klass, bytes, encoding)
    assert_kind_of klass, message
    Bridge::Codec.encode(message, encoding) # what decodes must encode again
    :ok
  rescue Bridge::DecodeError
    :error
  rescue Exception => e # rubocop:disable Lint/RescueException -- NoMemoryError is the bug this looks for
    flunk "#{name} (#{encoding}, #{how}): #{e.class}: #{e.message[0, 200]} for #{bytes.unpack1('H*')[0, 120]}"
  end

  # The envelope as the dispatcher reads it (Bridge::RequestView): a view or a DecodeError.
  def view(bytes)
    Bridge::RequestView.decode(bytes)
  rescue Bridge::DecodeError
    nil
  end

  # Every byte of +bytes+ that could be a header with a length, inflated one at a time (in a large
  # input, the first 512 bytes, where its headers are, and 64 more spread over the rest).
  def inflations(bytes, encoding)
    patterns = encoding == :msgpack ? MSGPACK_INFLATED : PROTOBUF_INFLATED
    size = bytes.bytesize
    positions = size <= 512 ? (0...size).to_a : (0...512).to_a + Array.new(64) { |k| 512 + (k * (size - 512) / 64) }
    out = []
    positions.each do |i|
      byte = bytes.getbyte(i)
      header = encoding == :msgpack ? (0x80..0xbf).cover?(byte) || (0xc4..0xdf).cover?(byte) : (byte & 7) == 2
      next unless header

      pattern = patterns[(i + byte) % patterns.size]
      out << (bytes.byteslice(0, i) + pattern + bytes.byteslice(i + 1..)) # the header replaced
      out << (bytes.byteslice(0, i) + pattern + bytes.byteslice(i..)) # a header inserted
    end
    out
  end

  def test_the_poison_job_body_is_a_decode_error
    envelope = Bridge::V1::Request.decode(POISON)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    error = assert_raises(Bridge::DecodeError) do
      Bridge::Codec.decode(Bridge::Interop::V1::Composite, envelope.body, :msgpack)
    end
    assert_match(/array.*4294967295/, error.message)
    assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, :<, 0.1
  end

  def test_inflated_lengths_truncations_and_bit_flips_give_only_decode_errors
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    counts = Hash.new(0)
    all = inputs
    assert_operator all.size, :>=, 130
    # One deterministic pass: every inflation and every truncation (at most 64 per input).
    all.each do |name, klass, encoding, bytes|
      inflations(bytes, encoding).each { |b| counts[check(name, klass, encoding, b, "inflated")] += 1 }
      cuts = bytes.bytesize <= 64 ? (0...bytes.bytesize).to_a : Array.new(64) { |k| k * bytes.bytesize / 64 }
      cuts.each { |n| counts[check(name, klass, encoding, bytes.byteslice(0, n), "truncated to #{n}")] += 1 }
    end
    # Then random bit flips (1 to 3 bits) and splices until the time budget is spent.
    random = Random.new(SEED)
    rounds = 0
    while Process.clock_gettime(Process::CLOCK_MONOTONIC) - started < TIME_BUDGET || rounds.zero?
      all.each do |name, klass, encoding, bytes|
        next if bytes.empty?

        mutated = bytes.dup
        random.rand(1..3).times do
          i = random.rand(mutated.bytesize)
          mutated.setbyte(i, mutated.getbyte(i) ^ (1 << random.rand(8)))
        end
        counts[check(name, klass, encoding, mutated, "bits flipped")] += 1
        i = random.rand(bytes.bytesize)
        spliced = bytes.byteslice(0, i) + random.bytes(random.rand(1..6)) + bytes.byteslice(i..)
        counts[check(name, klass, encoding, spliced, "random bytes spliced in")] += 1
      end
      rounds += 1
    end
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    assert_operator counts[:error], :>, 1000, "the mutations should mostly be rejected: #{counts}"
    assert_operator counts[:ok], :>, 100, "some mutations are still valid messages: #{counts}"
    assert_operator elapsed, :<, TIME_BUDGET + 5, "fuzzing took #{elapsed.round(1)} s"
  end
end
