# frozen_string_literal: true

require "base64"
require "json"
require "strscan"
require "google/protobuf"
require_relative "../errors"
require_relative "msgpack"

module Bridge
  module Codec
    # The JSON mapping of bare methods (wire contract section 8.2): what a PHP json_decode, a Perl
    # JSON::XS or a Python json worker reads and writes. Protobuf's canonical JSON mapping with the
    # listed differences: keys are the .proto field names, every field without presence is
    # written, 64-bit integers are numbers; on input [] is also an empty message or map and 0 / 1
    # a bool.
    #
    # A walk over the message's descriptor (the msgpack codec's field plans), not upb's
    # encode_json / decode_json plus fixes: Debian's upb 3.21 refuses JSON nested deeper than 64
    # levels whatever it is told (the contract decodes 100) and writes -0.0 as "-0", which every
    # JSON reader takes for the integer 0. Well-known types (google.protobuf.*) keep their
    # canonical form, so they do go through upb's encode_json / decode_json.
    #
    #   BareJson.encode(reply)                # => '{"name":"x","count":3,...}' (UTF-8 bytes)
    #   BareJson.decode(ResizeRequest, json)  # DecodeError: not JSON, unknown key, wrong type...
    module BareJson
      MAX_NESTING = Msgpack::MAX_NESTING
      # The parser's own bound: a message level takes at most a few JSON levels (a map of
      # messages: two; a repeated message: two), so this refuses hostile depth early and the walk
      # below decides at MAX_NESTING message levels.
      PARSE_OPTIONS = { max_nesting: 4 * (MAX_NESTING + 2), allow_nan: false, create_additions: false }.freeze
      GENERATE_OPTIONS = { max_nesting: false, allow_nan: false }.freeze
      WELL_KNOWN = "google.protobuf."
      # Their canonical JSON is the wrapped value (64-bit ones as strings); upb's decode_json
      # cannot read one on its own, so the walk does them.
      WRAPPERS = %w[DoubleValue FloatValue Int64Value UInt64Value Int32Value UInt32Value BoolValue StringValue
                    BytesValue].to_h { |name| ["google.protobuf.#{name}", true] }.freeze
      INT_TYPES = Msgpack::INT_RANGES
      # A number in a string (leading zeros allowed there, as protobuf's parsers do).
      NUMBER = /\A-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?\z/.freeze
      INTEGER = /\A-?\d+\z/.freeze
      EXACT_FLOAT_INTEGERS = 2**53
      NOT_BASE64 = "^A-Za-z0-9+/_=-" # for String#count: a trailing "-" is itself
      # Ruby's JSON parser also takes /* */ and // comments and unknown escapes ("\m" as "m"): JSON
      # it is not, and the other runtimes refuse it. Found by jumping from quote to backslash to
      # slash over the bytes (the parser itself checks the rest).
      OUTSIDE_STRINGS = %r{["\\/]}n.freeze
      INSIDE_STRINGS = /["\\]/n.freeze
      ESCAPE = %r{["\\/bfnrt]|u\h{4}}n.freeze
      SPECIAL_FLOATS = { "NaN" => Float::NAN, "Infinity" => Float::INFINITY, "-Infinity" => -Float::INFINITY }.freeze

      @plans = {}
      @lock = Mutex.new

      module_function

      def encode(message)
        JSON.generate(write_message(message, 0), GENERATE_OPTIONS).force_encoding(Encoding::BINARY)
      rescue NoMethodError, TypeError, ArgumentError, JSON::GeneratorError => e
        raise EncodeError, "cannot encode #{message.class} as JSON: #{e.message}"
      end

      def decode(klass, bytes)
        return Msgpack.empty_bare_payload(klass, "JSON") if bytes.empty?

        name = klass.descriptor.name
        text = bytes.dup.force_encoding(Encoding::UTF_8)
        raise DecodeError, "not a JSON #{name}: the payload is not valid UTF-8" unless text.valid_encoding?

        strict!(text, name)
        value = begin
          JSON.parse(text, PARSE_OPTIONS)
        rescue JSON::ParserError => e
          raise DecodeError, "not a JSON #{name}: #{e.message[0, 200]}"
        end
        unless value.is_a?(Hash) || value == []
          raise DecodeError, "not a JSON #{name}: expected an object, got #{kind(value)}"
        end

        read_message(klass, value, name, 0)
      rescue Google::Protobuf::ParseError, RangeError, TypeError, ArgumentError, Google::Protobuf::TypeError => e
        raise DecodeError, "not a JSON #{name}: #{e.message}"
      end

      # Refuses what Ruby's JSON parser would accept beyond JSON: comments, unknown escapes.
      def strict!(text, name)
        return unless text.include?("/") || text.include?("\\")

        scanner = StringScanner.new(text.b)
        in_string = false
        while scanner.skip_until(in_string ? INSIDE_STRINGS : OUTSIDE_STRINGS)
          if scanner.matched == '"'
            in_string = !in_string
            next
          end
          next if in_string && scanner.skip(ESCAPE)

          what = scanner.matched == "/" ? "a comment" : "an invalid escape"
          raise DecodeError, "not a JSON #{name}: #{what} at byte #{scanner.pos - 1}"
        end
      end

      # --- writing -----------------------------------------------------------------------------

      def write_message(message, depth)
        raise EncodeError, "messages nested deeper than #{MAX_NESTING} levels" if depth > MAX_NESTING

        klass = message.class
        plan = plan(klass)
        return write_wrapper(message, plan.wrapped) if plan.wrapped
        return JSON.parse(klass.encode_json(message), PARSE_OPTIONS) if plan.well_known

        out = {}
        plan.fields.each do |field|
          next if field.kind == :presence && !field.descriptor.has?(message)

          value = field.descriptor.get(message)
          out[field.name] = case field.kind
                            when :repeated then value.map { |item| write_value(field.type, item, depth) }
                            when :map then write_map(field, value, depth)
                            else write_value(field.type, value, depth)
                            end
        end
        out
      end

      def write_wrapper(message, field)
        value = write_value(field.type, field.get(message), 0)
        %i[int64 uint64].include?(field.type) ? value.to_s : value
      end

      def write_map(field, map, depth)
        value_type = field.value.type
        map.each_with_object({}) { |(key, value), out| out[key.to_s] = write_value(value_type, value, depth) }
      end

      def write_value(type, value, depth)
        case type
        when :bytes then Base64.strict_encode64(value)
        when :double then value.finite? ? value : special(value)
        when :float then value.finite? ? float32(value) : special(value)
        when :enum then value.is_a?(Symbol) ? value.to_s : value # a number the enum does not name
        when :message then write_message(value, depth + 1)
        else value # strings, bools and integers (64-bit ones as numbers: the difference from canonical)
        end
      end

      def special(value) = value.nan? ? "NaN" : (value.positive? ? "Infinity" : "-Infinity")

      # The shortest decimal that reads back as the same float 32 (0.1, not 0.10000000149011612).
      def float32(value)
        return value if value.zero?

        (1..9).each do |digits|
          candidate = format("%.#{digits}g", value).to_f
          return candidate if [candidate].pack("e").unpack1("e") == value
        end
        value
      end

      # --- reading -----------------------------------------------------------------------------

      def read_message(klass, value, path, depth)
        raise DecodeError, "messages nested deeper than #{MAX_NESTING} levels" if depth > MAX_NESTING

        plan = plan(klass)
        if plan.wrapped # canonical: the 2^53 limit of reading rule 4 is for the fields of other messages
          return klass.new(value: read_value(plan.wrapped.type, nil, value, path, depth, wrapper: true))
        end
        return read_well_known(klass, value, path) if plan.well_known

        value = {} if value == []
        raise DecodeError, "#{path}: expected an object, got #{kind(value)}" unless value.is_a?(Hash)

        message = klass.new
        fields = plan.keys
        oneofs = nil
        value.each do |key, item|
          field = fields[key] or raise DecodeError, "#{path}: unknown field #{key.inspect}"
          next if item.nil? && !null_value?(field) # null means unset

          if field.oneof
            oneofs ||= {}
            seen = oneofs[field.oneof]
            raise DecodeError, "#{path}: more than one member of oneof '#{field.oneof}' is set" if seen && seen != field.name

            oneofs[field.oneof] = field.name
          end
          read_field(message, field, item, "#{path}.#{key}", depth)
        end
        message
      end

      def read_field(message, field, item, path, depth)
        case field.kind
        when :repeated
          raise DecodeError, "#{path}: expected an array, got #{kind(item)}" unless item.is_a?(Array)

          target = field.descriptor.get(message)
          item.each_with_index { |v, i| target << read_value(field.type, field.subtype, v, "#{path}[#{i}]", depth) }
        when :map
          item = {} if item == []
          raise DecodeError, "#{path}: expected an object, got #{kind(item)}" unless item.is_a?(Hash)

          target = field.descriptor.get(message)
          item.each do |key, v|
            where = "#{path}[#{key.inspect}]"
            target[map_key(field.key.type, key, where)] = read_value(field.value.type, field.value.subtype, v, where, depth)
          end
        else
          field.descriptor.set(message, read_value(field.type, field.subtype, item, path, depth))
        end
      end

      def read_value(type, subtype, value, path, depth, wrapper: false)
        case type
        when :string
          raise DecodeError, "#{path}: expected a string, got #{kind(value)}" unless value.is_a?(String)
          raise DecodeError, "#{path}: the string is not valid UTF-8" unless value.valid_encoding?

          value
        when :bytes then read_bytes(value, path)
        when :bool then read_bool(value, path)
        when :double, :float then read_float(type, value, path)
        when :enum then read_enum(subtype, value, path)
        when :message then read_message(subtype.msgclass, value, path, depth + 1)
        else read_integer(type, value, path, wrapper: wrapper)
        end
      end

      def read_bytes(value, path)
        raise DecodeError, "#{path}: expected base64, got #{kind(value)}" unless value.is_a?(String)

        padding = value.index("=")
        if value.count(NOT_BASE64).positive? ||
           (padding && (value.bytesize - padding > 2 || value.count("=") != value.bytesize - padding))
          raise DecodeError, "#{path}: not base64: #{value[0, 40].inspect}"
        end

        text = value.delete("=").tr("-_", "+/")
        raise DecodeError, "#{path}: #{value[0, 40].inspect} is not base64 (bad length)" if text.length % 4 == 1

        # Bits left over in the last character are ignored, as protobuf's parsers do.
        (text + "=" * (-text.length % 4)).unpack1("m")
      end

      def read_bool(value, path)
        return value if value == true || value == false
        return value == 1 if value.is_a?(Integer) && (value.zero? || value == 1) # Perl writes 1 / 0

        raise DecodeError, "#{path}: expected true or false, got #{kind(value)}"
      end

      def read_float(type, value, path)
        number = case value
                 when Integer, Float then value.to_f
                 when String then SPECIAL_FLOATS[value] || (NUMBER.match?(value) ? value.to_f : nil)
                 end
        raise DecodeError, "#{path}: expected a number, got #{kind(value)}" if number.nil?
        if number.infinite? && !SPECIAL_FLOATS.key?(value)
          raise DecodeError, "#{path}: #{value} is out of range for #{type}"
        end
        if type == :float && number.finite? && [number].pack("e").unpack1("e").infinite?
          raise DecodeError, "#{path}: #{value} is out of range for float"
        end

        number
      end

      def read_enum(subtype, value, path)
        if value.is_a?(String)
          return value.to_sym if subtype.lookup_name(value.to_sym)
          return read_integer(:enum, value, path) if INTEGER.match?(value)

          raise DecodeError, "#{path}: #{value[0, 60].inspect} is not a value of #{subtype.name}"
        end
        unless value.is_a?(Integer) || value.is_a?(Float)
          raise DecodeError, "#{path}: expected an enum name or number, got #{kind(value)}"
        end

        read_integer(:enum, value, path)
      end

      # A JSON number with an integral value or a string of digits (reading rule 4). One written
      # with a fraction or exponent part (JSON.parse makes it a Float) only up to 2^53 in magnitude:
      # beyond, it may already be a peer's rounded float (PHP's json_decode of a uint64 above
      # 2^63-1, written back), unless +wrapper+ (a wrapper's value reads as canonical).
      def read_integer(type, value, path, wrapper: false)
        number = case value
                 when Integer then value
                 when Float then integral(value, path, wrapper)
                 when String # digits only (wire contract 8.2, reading rule 4)
                   Integer(value, 10) if INTEGER.match?(value)
                 end
        raise DecodeError, "#{path}: expected an integer, got #{kind(value)}" if number.nil?
        raise DecodeError, "#{path}: #{number} is out of range for #{type}" unless INT_TYPES.fetch(type).cover?(number)

        number
      end

      def integral(number, path, wrapper)
        raise DecodeError, "#{path}: #{number} is not an integer" unless number.finite? && number == number.floor
        if !wrapper && number.abs > EXACT_FLOAT_INTEGERS
          raise DecodeError, "#{path}: #{number} is written as a float, exact only up to 2^53: " \
                             "write an integer without a fraction or exponent"
        end

        number.to_i
      end

      def map_key(type, key, path)
        case type
        when :string then key
        when :bool
          return key == "true" if %w[true false].include?(key)

          raise DecodeError, "#{path}: a bool map key must be \"true\" or \"false\""
        else
          raise DecodeError, "#{path}: not an integer map key" unless INTEGER.match?(key)

          read_integer(type, Integer(key, 10), path)
        end
      end

      def read_well_known(klass, value, path)
        value = {} if value == []
        klass.decode_json(JSON.generate(value, GENERATE_OPTIONS))
      rescue Google::Protobuf::ParseError, JSON::GeneratorError, RuntimeError => e
        raise DecodeError, "#{path}: #{e.message}"
      end

      # --- descriptors ---------------------------------------------------------------------------

      def well_known?(descriptor) = descriptor.name.start_with?(WELL_KNOWN)

      # A google.protobuf.Value field, where null is a value (NULL_VALUE), as canonical.
      def null_value?(field) = %i[presence plain].include?(field.kind) && field.subtype&.name == "google.protobuf.Value"

      # What the walk needs of a message class, built once: its fields (the msgpack codec's plan),
      # the same by .proto name and by lowerCamelCase JSON name, and whether it is a well-known type
      # (+wrapped+: a wrapper's value field).
      Plan = Struct.new(:fields, :keys, :well_known, :wrapped)

      def plan(klass)
        @plans[klass] || @lock.synchronize { @plans[klass] ||= build_plan(klass.descriptor) }
      end

      def build_plan(descriptor)
        fields = Msgpack.plan(descriptor)
        keys = fields.each_with_object({}) do |field, out|
          out[field.name] = field
          out[field.descriptor.json_name] ||= field
        end
        wrapped = WRAPPERS[descriptor.name] ? descriptor.lookup("value") : nil
        Plan.new(fields, keys.freeze, well_known?(descriptor), wrapped).freeze
      end

      def kind(value)
        case value
        when nil then "null"
        when Hash then "an object"
        when Array then "an array"
        when String then "a string"
        when true, false then value.to_s
        else "the number #{value}"
        end
      end
    end
  end
end
