# frozen_string_literal: true

require "google/protobuf"
require_relative "errors"
require_relative "codec/msgpack"
require_relative "codec/map_entry_guard"
require_relative "codec/bare_json"
require_relative "codec/raw"

module Bridge
  # The body encodings of the wire contract. Bridge::Codec.decode(klass, bytes, encoding) and
  # Bridge::Codec.encode(message, encoding) with encoding :protobuf or :msgpack (enveloped and bare
  # methods), :json or :raw (bare methods only, section 8).
  module Codec
    ENCODINGS = %i[protobuf msgpack].freeze
    BARE_ENCODINGS = %i[protobuf msgpack json raw].freeze

    module_function

    def decode(klass, bytes, encoding)
      case encoding
      when :protobuf then Protobuf.decode(klass, bytes)
      when :msgpack then Msgpack.decode(klass, bytes)
      when :json then BareJson.decode(klass, bytes)
      when :raw then Raw.decode(klass, bytes)
      else raise ArgumentError, "unknown encoding #{encoding.inspect}"
      end
    end

    def encode(message, encoding)
      case encoding
      when :protobuf then Protobuf.encode(message)
      when :msgpack then Msgpack.encode(message)
      when :json then BareJson.encode(message)
      when :raw then Raw.encode(message)
      else raise ArgumentError, "unknown encoding #{encoding.inspect}"
      end
    end

    # Protobuf, through the message class protoc generated (upb inside ruby-google-protobuf).
    module Protobuf
      # Wire contract 5.9: messages nested 100 deep decode and encode, 101 deep do not. upb's own
      # default is 64 both ways; Debian's 3.21.12 takes recursion_limit: on decode and encode.
      # upb's decoder accepts depth == limit, its encoder only depth < limit.
      MAX_DEPTH = 100
      DECODE_OPTIONS = { recursion_limit: MAX_DEPTH }.freeze
      ENCODE_OPTIONS = { recursion_limit: 101 }.freeze

      module_function

      def decode(klass, bytes)
        klass.decode(MapEntryGuard.sanitize(klass.descriptor, bytes, MAX_DEPTH), DECODE_OPTIONS)
      rescue DecodeError => e
        raise DecodeError, "not a valid #{klass.descriptor.name}: #{e.message}"
      rescue Google::Protobuf::ParseError, ArgumentError, TypeError, RangeError => e
        raise DecodeError, "not a valid #{klass.descriptor.name}: #{e.message}"
      end

      # A message +limit+ levels above the depth limit (a map value the guard checks).
      def decode_nested(klass, bytes, limit)
        raise DecodeError, "messages nested deeper than #{MAX_DEPTH} levels" if limit.negative?

        klass.decode(MapEntryGuard.sanitize(klass.descriptor, bytes, limit), recursion_limit: limit)
      rescue Google::Protobuf::ParseError, ArgumentError, TypeError, RangeError => e
        raise DecodeError, "not a valid #{klass.descriptor.name}: #{e.message}"
      end

      def encode(message)
        message.class.encode(message, ENCODE_OPTIONS)
      rescue NoMethodError, ArgumentError, TypeError, RuntimeError => e
        raise EncodeError, "cannot encode #{message.class}: #{e.message}"
      end
    end
  end
end
