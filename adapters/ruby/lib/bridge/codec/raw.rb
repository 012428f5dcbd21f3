# frozen_string_literal: true

require "google/protobuf"
require_relative "../errors"

module Bridge
  module Codec
    # RAW (wire contract section 8.1): the payload is the bytes of the message's only field, a
    # bytes or string field (a string as UTF-8; a payload that is not valid UTF-8 does not decode
    # as one). What `gearman -f NAME < file` and echo-style workers send and read.
    module Raw
      @fields = {}
      @lock = Mutex.new

      module_function

      def encode(message)
        value = field(message.class.descriptor).get(message)
        value.encoding == Encoding::BINARY ? value : value.b
      end

      def decode(klass, bytes)
        descriptor = klass.descriptor
        field = field(descriptor)
        message = klass.new
        if field.type == :string
          text = bytes.dup.force_encoding(Encoding::UTF_8)
          unless text.valid_encoding?
            raise DecodeError, "not a RAW #{descriptor.name}: #{field.name} is a string and the payload is not UTF-8"
          end

          field.set(message, text)
        else
          field.set(message, bytes.encoding == Encoding::BINARY ? bytes : bytes.b)
        end
        message
      end

      # The one field a RAW payload stands for; ArgumentError for any other message (the
      # generator refuses RAW on those; a hand-written Service is checked when it declares the rpc).
      def field(descriptor)
        @fields[descriptor] || @lock.synchronize { @fields[descriptor] ||= find_field(descriptor) }
      end

      def find_field(descriptor)
        fields = descriptor.to_a
        only = fields.first
        unless fields.size == 1 && %i[bytes string].include?(only.type) && only.label != :repeated
          raise ArgumentError, "encoding RAW needs a message with exactly one bytes or string field, " \
                               "not #{descriptor.name}"
        end

        only
      end
    end
  end
end
