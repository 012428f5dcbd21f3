# frozen_string_literal: true

module Bridge
  module Gearman
    # The byte stream broke the Gearman framing: bad magic, an unknown packet type, a body over the
    # limit or too few arguments. The connection it came from is lost; close it.
    class ProtocolError < StandardError; end

    MAGIC_REQ = "\0REQ".b.freeze # worker or client -> server
    MAGIC_RES = "\0RES".b.freeze # server -> worker or client
    HEADER_SIZE = 12
    HEADER_FORMAT = "a4NN"
    # Largest body a decoder accepts unless told otherwise (room for 64 MiB payloads and more).
    DEFAULT_MAX_BODY = 256 * 1024 * 1024
    NUL = "\0".b.freeze

    # Every binary packet type of gearmand 1.1.20, with its argument count and whether the last
    # argument is opaque data (the rest of the body, NUL bytes allowed). Numbers and layout match
    # gearmand's command table and bridge/protocol (the Python layer).
    TYPES = {
      CAN_DO: [1, 1, false],
      CANT_DO: [2, 1, false],
      RESET_ABILITIES: [3, 0, false],
      PRE_SLEEP: [4, 0, false],
      NOOP: [6, 0, false],
      SUBMIT_JOB: [7, 3, true], # function, unique, data
      JOB_CREATED: [8, 1, false], # handle
      GRAB_JOB: [9, 0, false],
      NO_JOB: [10, 0, false],
      JOB_ASSIGN: [11, 3, true], # handle, function, data
      WORK_STATUS: [12, 3, false], # handle, numerator, denominator
      WORK_COMPLETE: [13, 2, true], # handle, data
      WORK_FAIL: [14, 1, false], # handle
      GET_STATUS: [15, 1, false],
      ECHO_REQ: [16, 1, true],
      ECHO_RES: [17, 1, true],
      SUBMIT_JOB_BG: [18, 3, true],
      ERROR: [19, 2, false], # code, text
      STATUS_RES: [20, 5, false],
      SUBMIT_JOB_HIGH: [21, 3, true],
      SET_CLIENT_ID: [22, 1, false],
      CAN_DO_TIMEOUT: [23, 2, false],
      ALL_YOURS: [24, 0, false],
      WORK_EXCEPTION: [25, 2, true], # handle, data
      OPTION_REQ: [26, 1, false],
      OPTION_RES: [27, 1, false],
      WORK_DATA: [28, 2, true],
      WORK_WARNING: [29, 2, true],
      GRAB_JOB_UNIQ: [30, 0, false],
      JOB_ASSIGN_UNIQ: [31, 4, true], # handle, function, unique, data
      SUBMIT_JOB_HIGH_BG: [32, 3, true],
      SUBMIT_JOB_LOW: [33, 3, true],
      SUBMIT_JOB_LOW_BG: [34, 3, true],
      SUBMIT_JOB_SCHED: [35, 8, true],
      SUBMIT_JOB_EPOCH: [36, 4, true],
      SUBMIT_REDUCE_JOB: [37, 5, true],
      SUBMIT_REDUCE_JOB_BACKGROUND: [38, 5, true],
      GRAB_JOB_ALL: [39, 0, false],
      JOB_ASSIGN_ALL: [40, 5, true],
      GET_STATUS_UNIQUE: [41, 1, false],
      STATUS_RES_UNIQUE: [42, 6, false]
    }.freeze

    # Type number => name, argument count, opaque last argument; indexed by number for the hot path.
    LAYOUT = [].tap do |layout|
      TYPES.each { |name, (number, argc, data)| layout[number] = [name, argc, data].freeze }
    end.freeze
    NUMBERS = TYPES.transform_values(&:first).freeze

    # One packet: +type+ is a symbol of TYPES, +args+ binary strings.
    Packet = Struct.new(:magic, :type, :args) do
      def encode
        Gearman.encode(type, *args, magic: magic)
      end
    end

    module_function

    # The bytes of one packet. Every argument but the last must be free of NUL bytes and the count
    # must be the type's; anything else is a ProtocolError (never a malformed packet on the wire).
    def encode(type, *args, magic: MAGIC_REQ)
      head, data = encode_head(type, *args, magic: magic)
      data ? head << data.b : head
    end

    # The header plus every argument but the last (each followed by its NUL), and the last argument
    # apart: lets a caller write a large payload after the head instead of copying both into one
    # string. The last argument is nil for types without arguments.
    def encode_head(type, *args, magic: MAGIC_REQ)
      number, argc, = TYPES.fetch(type) { raise ProtocolError, "unknown packet type #{type.inspect}" }
      raise ProtocolError, "#{type} takes #{argc} argument(s), got #{args.size}" if args.size != argc

      body_size = args.sum(&:bytesize) + [argc - 1, 0].max
      head = [magic, number, body_size].pack(HEADER_FORMAT)
      return [head, nil] if argc.zero?

      args[0...-1].each do |arg|
        arg = arg.b
        raise ProtocolError, "#{type}: only the last argument may contain NUL bytes" if arg.include?(NUL)

        head << arg << NUL
      end
      [head, args.last]
    end

    # Incremental decoder: #feed any split of the byte stream, get back the packets it completes.
    # +max_body+ bounds the body a header may announce (checked before any of the body is buffered);
    # +expect+ restricts the magic (MAGIC_RES on a worker). After an error it refuses more input.
    class Decoder
      attr_reader :max_body

      def initialize(max_body: DEFAULT_MAX_BODY, expect: nil)
        raise ArgumentError, "max_body must be >= 0" if max_body.negative?

        @max_body = max_body
        @expect = expect
        @buffer = String.new(encoding: Encoding::BINARY)
        @broken = nil
      end

      # Bytes received but not yet part of a complete packet.
      def buffered
        @buffer.bytesize
      end

      # Bytes still missing to complete the packet being received (0 when unknown); lets a reader
      # size its next read.
      def wanted
        return 0 if @buffer.bytesize < HEADER_SIZE

        HEADER_SIZE + @buffer.unpack1("N", offset: 8) - @buffer.bytesize
      end

      def feed(data)
        raise ProtocolError, "stream already broken: #{@broken.message}" if @broken

        data = data.b unless data.encoding == Encoding::BINARY
        # Usually nothing is pending: parse the chunk itself, so a payload is sliced out of the
        # bytes read (no copy into a buffer) and only an incomplete tail is kept.
        buf = @buffer.empty? ? data : (@buffer << data)
        packets = []
        pos = 0
        total = buf.bytesize
        while total - pos >= HEADER_SIZE
          magic, number, size = buf.unpack(HEADER_FORMAT, offset: pos)
          layout = check(magic, number, size)
          body_end = pos + HEADER_SIZE + size
          break if body_end > total

          packets << packet(buf, magic, layout, pos + HEADER_SIZE, body_end)
          pos = body_end
        end
        keep_tail(buf, pos, total)
        packets
      rescue ProtocolError => e
        @broken = e
        @buffer = String.new(encoding: Encoding::BINARY)
        raise
      end

      private

      def keep_tail(buf, pos, total)
        if pos == total
          @buffer = String.new(encoding: Encoding::BINARY) unless @buffer.empty?
        elsif buf.equal?(@buffer)
          @buffer = buf.byteslice(pos, total - pos) if pos.positive?
        else
          @buffer = String.new(capacity: [total - pos, 64 * 1024].max, encoding: Encoding::BINARY)
          @buffer << (pos.zero? ? buf : buf.byteslice(pos, total - pos))
        end
      end

      def check(magic, number, size)
        unless magic == MAGIC_RES || magic == MAGIC_REQ
          raise ProtocolError, "bad magic #{magic.inspect}: not a Gearman packet"
        end
        raise ProtocolError, "unexpected magic #{magic.inspect}, want #{@expect.inspect}" if @expect && magic != @expect

        layout = LAYOUT[number]
        raise ProtocolError, "unknown packet type #{number}" unless layout
        raise ProtocolError, "#{layout[0]} body of #{size} bytes exceeds the limit of #{@max_body}" if size > @max_body

        layout
      end

      def packet(buf, magic, layout, start, stop)
        name, argc, data = layout
        if argc.zero?
          raise ProtocolError, "#{name} carries no arguments, got a body" if stop != start

          return Packet.new(magic, name, [])
        end
        args = []
        pos = start
        (argc - 1).times do
          nul = buf.index(NUL, pos)
          raise ProtocolError, "#{name} needs #{argc} arguments, got #{args.size + 1}" if nul.nil? || nul >= stop

          args << buf.byteslice(pos, nul - pos)
          pos = nul + 1
        end
        # Text arguments: some senders end the last one with a NUL too (gearmand's WORK_FAIL).
        stop -= 1 if !data && stop > pos && buf.getbyte(stop - 1).zero?
        args << buf.byteslice(pos, stop - pos)
        Packet.new(magic, name, args)
      end
    end
  end
end
