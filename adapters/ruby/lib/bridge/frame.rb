# frozen_string_literal: true

require "securerandom"
require "zlib"

module Bridge
  # Reply frames (wire contract section 3): every WORK_DATA and WORK_COMPLETE of a bridge method
  # is a 23-byte header, then the encoded message. Big-endian: magic 0xB7, kind, encoding, type tag
  # (CRC-32 of the reply type's full name), attempt id (random per run of a job, never 0),
  # sequence (a stream item's index; a stream end's item count; else 0).
  module Frame
    MAGIC = 0xB7
    REPLY = 1 # WORK_COMPLETE of a unary rpc
    ITEM = 2 # WORK_DATA of a streaming rpc
    END_OF_STREAM = 3 # WORK_COMPLETE of a streaming rpc (no body)
    MARKER = 4 # WORK_DATA before a run's first status or warning (no body)
    ENCODINGS = { protobuf: 1, msgpack: 2 }.freeze
    HEADER = "CCCNQ>Q>"
    HEADER_SIZE = 23

    # A parsed frame (for tests and tools).
    Parsed = Struct.new(:kind, :encoding, :tag, :attempt, :sequence, :body)

    module_function

    # The type tag of a message type: Zlib.crc32("bridge.interop.v1.Composite") = 0x8dc965d8.
    def tag(full_name) = Zlib.crc32(full_name)

    # A random non-zero 64-bit attempt id.
    def new_attempt_id
      loop do
        id = SecureRandom.random_bytes(8).unpack1("Q>")
        return id unless id.zero?
      end
    end

    # The frame's bytes: header, then +body+. +encoding+ is :protobuf or :msgpack.
    def encode(kind, encoding, tag, attempt, sequence, body = nil)
      header = [MAGIC, kind, ENCODINGS.fetch(encoding), tag, attempt, sequence].pack(HEADER)
      return header if body.nil? || body.empty?

      header << (body.encoding == Encoding::BINARY ? body : body.b)
    end

    # Splits a WORK_DATA / WORK_COMPLETE payload; ArgumentError when it is no frame.
    def parse(payload)
      raise ArgumentError, "#{payload.bytesize} bytes, shorter than a frame header" if payload.bytesize < HEADER_SIZE

      magic, kind, encoding, tag, attempt, sequence = payload.unpack(HEADER)
      raise ArgumentError, format("not a frame (first byte 0x%02x)", magic) unless magic == MAGIC

      Parsed.new(kind, ENCODINGS.key(encoding), tag, attempt, sequence, payload.byteslice(HEADER_SIZE..))
    end
  end
end
