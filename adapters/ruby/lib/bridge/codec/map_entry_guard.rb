# frozen_string_literal: true

require_relative "../errors"

module Bridge
  module Codec
    # Works around a memory-safety bug of upb in Debian's ruby-google-protobuf 3.21.12: a map entry
    # that carries a field other than its key (1) and value (2), or its key or value with the wrong
    # wire type, makes upb move the entry to the unknown fields through memory it does not own.
    # With a message-valued map that is a segmentation fault or a NoMemoryError: 17 bytes
    # (`320f2a02c3a912090a07652d6163757465` into the interop Composite) killed the worker.
    #
    # Before upb sees the bytes of a message type that can reach a map field, this walks them
    # (without allocating anything the input declares) and, only when such an entry is there,
    # rewrites the bytes without it: the entry is dropped, as upb's intent (and the Python runtime,
    # also upb) has it. Malformed bytes are a DecodeError here already, before upb.
    module MapEntryGuard
      WIRE_TYPES = Hash.new(0).merge(
        string: 2, bytes: 2, message: 2, double: 1, fixed64: 1, sfixed64: 1, float: 5, fixed32: 5, sfixed32: 5
      ).freeze
      # A known field the walk looks into: a map field (+entry+: the plan of its entries, nil when
      # their values hold no maps) or a message field whose type can reach one (+plan+ of that type).
      # +key_text+ / +value_text+: the key / value is a string (UTF-8 checked); +value_class+: the
      # value's message class.
      MapField = Struct.new(:key_wire, :value_wire, :entry, :key_text, :value_text, :value_class)
      MessageField = Struct.new(:descriptor)
      # Returned for a map entry upb would mishandle.
      DROP = "".b.freeze

      @plans = {}
      @lock = Mutex.new

      module_function

      # +bytes+ as upb may safely decode them as +descriptor+'s message (the same String when
      # nothing had to change).
      def sanitize(descriptor, bytes, max_depth)
        plan = plan(descriptor) or return bytes
        bytes = bytes.b unless bytes.encoding == Encoding::BINARY
        Walk.new(bytes, max_depth).message(plan, 0, bytes.bytesize, 0) || bytes
      end

      # The fields of +descriptor+ the walk looks into, by number; nil when no map field can be
      # reached from it (nothing to guard).
      def plan(descriptor)
        return @plans[descriptor] if @plans.key?(descriptor)

        @lock.synchronize { @plans.key?(descriptor) ? @plans[descriptor] : (@plans[descriptor] = build(descriptor)) }
      end

      def build(descriptor)
        return nil unless reaches_map?(descriptor)

        sample = descriptor.msgclass.new
        descriptor.each_with_object({}) do |fd, fields|
          next unless fd.type == :message

          sub = fd.subtype
          if map?(fd, sample)
            key = sub.lookup("key")
            value = sub.lookup("value")
            inner = value.type == :message && reaches_map?(value.subtype) ? { 2 => MessageField.new(value.subtype).freeze } : nil
            fields[fd.number] = MapField.new(WIRE_TYPES[key.type], WIRE_TYPES[value.type], inner&.freeze,
                                             key.type == :string, value.type == :string,
                                             value.type == :message ? value.subtype.msgclass : nil).freeze
          elsif reaches_map?(sub)
            fields[fd.number] = MessageField.new(sub).freeze
          end
        end.freeze
      end

      def reaches_map?(descriptor)
        seen = {}
        todo = [descriptor]
        until todo.empty?
          d = todo.pop
          next if seen[d]

          seen[d] = true
          sample = d.msgclass.new
          d.each do |fd|
            next unless fd.type == :message
            return true if map?(fd, sample)

            todo << fd.subtype
          end
        end
        false
      end

      # ruby-google-protobuf 3.21 does not expose map_entry; a map field reads as a Map.
      def map?(field, sample) = field.label == :repeated && field.get(sample).is_a?(Google::Protobuf::Map)

      # One pass over one input.
      class Walk
        def initialize(bytes, max_depth)
          @s = bytes
          @pos = 0
          @max_depth = max_depth
        end

        # The message in [from, to) (+plan+: its fields to look into) rewritten, or nil when it
        # needs no change. Deeper than upb's limit there is nothing to guard: upb refuses it.
        def message(plan, from, to, depth)
          return nil if depth > @max_depth

          out = nil
          copied = from
          @pos = from
          while @pos < to
            start = @pos
            tag = tag(to)
            wire = tag & 7
            field = wire == 2 ? plan[tag >> 3] : nil
            if field.nil?
              skip(wire, tag >> 3, to, depth)
              next
            end
            tag_end = @pos
            length = varint(to)
            body = @pos
            raise DecodeError, "a length of #{length} goes past the end of the data" if length > to - body

            finish = body + length
            replacement = field.is_a?(MapField) ? entry(field, body, finish, depth + 1) : sub(field, body, finish, depth + 1)
            @pos = finish
            next if replacement.nil?

            out ||= String.new(capacity: to - from, encoding: Encoding::BINARY)
            out << @s.byteslice(copied, start - copied)
            unless replacement.equal?(DROP)
              out << @s.byteslice(start, tag_end - start) << encode_varint(replacement.bytesize) << replacement
            end
            copied = finish
          end
          return nil unless out

          out << @s.byteslice(copied, to - copied)
        end

        private

        def sub(field, from, to, depth)
          message(MapEntryGuard.plan(field.descriptor), from, to, depth)
        end

        # A map entry in [from, to): DROP when upb would mishandle it, its bytes rewritten when its
        # value (a message) needed it, or nil. An entry to drop is checked first as upb would parse
        # it (structure, UTF-8 of string keys and values, the value message), so bytes upb refuses
        # are still refused.
        def entry(field, from, to, depth)
          @pos = from
          stray = false
          parts = []
          while @pos < to
            tag = tag(to)
            number = tag >> 3
            wire = tag & 7
            start = @pos
            skip(wire, number, to, depth)
            if (number == 1 && wire == field.key_wire) || (number == 2 && wire == field.value_wire)
              parts << number << start << @pos
            else
              stray = true
            end
          end
          return field.entry && message(field.entry, from, to, depth) unless stray

          parts.each_slice(3) { |number, start, finish| check(field, number, start, finish, depth) }
          DROP
        end

        # A key or value of an entry to drop, as upb would check it.
        def check(field, number, start, finish, depth)
          text = number == 1 ? field.key_text : field.value_text
          klass = number == 2 ? field.value_class : nil
          return unless text || klass

          @pos = start
          length = varint(finish)
          bytes = @s.byteslice(@pos, length)
          if text
            raise DecodeError, "a map entry's string is not valid UTF-8" unless bytes.force_encoding(Encoding::UTF_8).valid_encoding?
          else
            Protobuf.decode_nested(klass, bytes, @max_depth - depth - 1)
          end
        ensure
          @pos = finish
        end

        # The varint at the position (which it passes).
        def varint(to)
          raise DecodeError, "truncated varint" if @pos >= to

          byte = @s.getbyte(@pos)
          @pos += 1
          return byte if byte < 0x80

          value = byte & 0x7f
          shift = 7
          while shift < 70
            raise DecodeError, "truncated varint" if @pos >= to

            byte = @s.getbyte(@pos)
            @pos += 1
            value |= (byte & 0x7f) << shift
            return value if byte < 0x80

            shift += 7
          end
          raise DecodeError, "varint longer than 10 bytes"
        end

        # A field's tag: a varint of at most 5 bytes and 32 bits, as upb reads it.
        def tag(to)
          start = @pos
          value = varint(to)
          raise DecodeError, "field tag longer than 5 bytes or 32 bits" if @pos - start > 5 || value > 0xffff_ffff

          value
        end

        def encode_varint(value)
          out = "".b
          while value >= 0x80
            out << ((value & 0x7f) | 0x80)
            value >>= 7
          end
          out << value
        end

        # Skips a field's value of wire type +wire+ (a group to its end).
        def skip(wire, number, to, depth)
          raise DecodeError, "field number 0" if number.zero?

          case wire
          when 0 then varint(to)
          when 1 then fixed(8, to)
          when 5 then fixed(4, to)
          when 2
            length = varint(to)
            raise DecodeError, "a length of #{length} goes past the end of the data" if length > to - @pos

            @pos += length
          when 3
            raise DecodeError, "groups nested deeper than #{@max_depth} levels" if depth > @max_depth + 1

            while (tag = tag(to)) != ((number << 3) | 4)
              skip(tag & 7, tag >> 3, to, depth + 1)
            end
          else raise DecodeError, "invalid wire type #{wire}"
          end
        end

        def fixed(size, to)
          raise DecodeError, "truncated fixed-size field" if @pos + size > to

          @pos += size
        end
      end
    end
  end
end
