# frozen_string_literal: true

require "google/protobuf"
require "msgpack"
require_relative "../errors"

module Bridge
  module Codec
    # The msgpack mapping of wire-contract section 5, walking Google::Protobuf descriptors, so one
    # codec serves every message class. ruby-msgpack already writes integers and strings in their
    # smallest form, Floats as float 64, UTF-8 Strings as str and binary Strings as bin; what it does
    # not decide (which fields, in what order, map key order, NaN's bits) is done here.
    module Msgpack
      # A field as the codec walks it: +kind+ is :plain (no presence), :presence, :repeated or :map.
      Field = Struct.new(:name, :number, :type, :kind, :descriptor, :subtype, :key, :value, :oneof) do
        def message? = type == :message
      end
      # The key and value halves of a map field's entry.
      Half = Struct.new(:type, :subtype)

      INT_RANGES = {
        int32: -2**31...2**31, sint32: -2**31...2**31, sfixed32: -2**31...2**31, enum: -2**31...2**31,
        uint32: 0...2**32, fixed32: 0...2**32,
        int64: -2**63...2**63, sint64: -2**63...2**63, sfixed64: -2**63...2**63,
        uint64: 0...2**64, fixed64: 0...2**64
      }.freeze
      # Deeper nesting is refused (as protobuf and the Python codec do), so a hostile payload cannot
      # exhaust the stack.
      MAX_NESTING = 100
      NAN = [0xcb, 0x7ff8000000000000].pack("CQ>").freeze
      EMPTY_MAP = "\x80".b.freeze

      @plans = {}
      @by_name = {}
      @plans_lock = Mutex.new

      module_function

      def encode(message)
        packer = MessagePack::Packer.new
        write_message(packer, message)
        packer.to_s
      rescue NoMethodError, TypeError, ArgumentError => e
        raise EncodeError, "cannot encode #{message.class} as msgpack: #{e.message}"
      end

      # +unknown_keys: false+ for a bare method's payload (section 8.1): unknown keys are refused.
      def decode(klass, bytes, unknown_keys: true)
        Reader.new(bytes, unknown_keys: unknown_keys).read_top(klass)
      rescue RangeError, TypeError, ArgumentError, Google::Protobuf::TypeError => e
        raise DecodeError, "#{klass.descriptor.name}: #{e.message}"
      end

      # Zero bytes of bare JSON or MSGPACK (wire contract section 8.1): the message of a type
      # without fields (google.protobuf.Empty), else a decoding error: no encoder writes zero bytes
      # for a message that has fields, and a peer whose json_encode failed (PHP's returns false) or
      # whose handler forgot to return sends exactly that.
      def empty_bare_payload(klass, encoding)
        descriptor = klass.descriptor
        unless plan(descriptor).empty?
          raise DecodeError, "an empty payload is not a bare #{encoding} #{descriptor.name} " \
                             "(an empty message is written #{encoding == 'JSON' ? '{}' : '0x80'})"
        end

        klass.new
      end

      # --- encoding ---------------------------------------------------------------------------

      def write_message(packer, message)
        present = []
        plan(message.class.descriptor).each do |field|
          value = field.descriptor.get(message)
          case field.kind
          when :plain
            present << field << value unless default?(field, value)
          when :presence
            present << field << value if field.descriptor.has?(message)
          else
            present << field << value unless value.length.zero?
          end
        end
        packer.write_map_header(present.size / 2)
        present.each_slice(2) do |field, value|
          packer.write_string(field.name)
          case field.kind
          when :repeated
            packer.write_array_header(value.size)
            value.each { |item| write_value(packer, field.type, field.subtype, item) }
          when :map then write_map(packer, field, value)
          else write_value(packer, field.type, field.subtype, value)
          end
        end
      end

      def write_map(packer, field, map)
        key_type = field.key.type
        keys = map.keys
        keys = key_type == :bool ? keys.sort_by { |k| k ? 1 : 0 } : keys.sort # String#<=> is bytewise
        packer.write_map_header(keys.size)
        keys.each do |key|
          write_value(packer, key_type, nil, key)
          write_value(packer, field.value.type, field.value.subtype, map[key])
        end
      end

      def write_value(packer, type, subtype, value)
        case type
        when :string then packer.write_string(value)
        when :bytes then packer.write_bin(value)
        when :double, :float
          value.nan? ? packer.buffer << NAN : packer.write_float(value)
        when :bool then value ? packer.write_true : packer.write_false
        when :enum then packer.write_int(value.is_a?(Integer) ? value : subtype.lookup_name(value))
        when :message
          value.nil? ? packer.buffer << EMPTY_MAP : write_message(packer, value)
        else packer.write_int(value)
        end
      end

      def default?(field, value)
        case field.type
        when :string, :bytes then value.empty?
        when :bool then !value
        when :double, :float then value.zero? && (1.0 / value).positive? # -0.0 is not the default
        when :enum then (value.is_a?(Integer) ? value : field.subtype.lookup_name(value)).zero?
        else value.zero?
        end
      end

      # --- descriptor plans -------------------------------------------------------------------

      # The fields of a message in ascending number order, with what the codec needs to know about
      # each; built once per message type.
      def plan(descriptor)
        @plans[descriptor] || @plans_lock.synchronize { @plans[descriptor] ||= build_plan(descriptor) }
      end

      def plan_by_name(descriptor)
        @by_name[descriptor] || begin
          fields = plan(descriptor).to_h { |f| [f.name, f] }.freeze
          @plans_lock.synchronize { @by_name[descriptor] ||= fields }
        end
      end

      def build_plan(descriptor)
        in_oneof = {} # field name => oneof name, including the synthetic oneofs of proto3 optional
        descriptor.each_oneof { |oneof| oneof.each { |f| in_oneof[f.name] = oneof.name } }
        sample = descriptor.msgclass.new
        descriptor.map do |fd|
          kind, key, value = classify(fd, in_oneof, sample)
          Field.new(-fd.name.dup.force_encoding(Encoding::UTF_8), fd.number, fd.type, kind, fd, fd.subtype, key, value, in_oneof[fd.name]).freeze
        end.sort_by(&:number).freeze
      end

      def classify(fd, in_oneof, sample)
        if fd.label == :repeated
          return [:repeated] unless fd.get(sample).is_a?(Google::Protobuf::Map)

          entry = fd.subtype
          key = entry.lookup("key")
          value = entry.lookup("value")
          return [:map, Half.new(key.type, nil).freeze, Half.new(value.type, value.subtype).freeze]
        end
        [fd.type == :message || in_oneof[fd.name] ? :presence : :plain]
      end
    end
  end
end

require_relative "msgpack_reader"
