# frozen_string_literal: true

require "google/protobuf"
require_relative "v1/envelope_pb"
require_relative "errors"

module Bridge
  # The job envelope (bridge.v1.Request) as the dispatcher reads it: the same fields and numbers,
  # with the metadata map declared as what a map is on the wire, repeated key/value messages.
  # upb 3.21 mishandles a map entry that carries a stray field (Codec::MapEntryGuard); read as
  # ordinary messages, such entries are safe and the guard's walk is spared on every job. A stray
  # field in an entry is ignored and the entry kept, as the protobuf specification has it.
  module RequestView
    Google::Protobuf::DescriptorPool.generated_pool.build do
      add_file("bridge/runtime/ruby/request_view.proto", syntax: :proto3) do
        add_message "bridge.runtime.ruby.RequestView" do
          optional :version, :uint32, 1
          optional :deadline_ms, :int64, 2
          repeated :metadata, :message, 3, "bridge.runtime.ruby.RequestView.Entry"
          optional :encoding, :int32, 4 # bridge.v1.Encoding, open: any number is kept
          optional :body, :bytes, 5
          optional :key_id, :string, 6
          optional :nonce, :bytes, 7
          optional :mac, :bytes, 8
        end
        add_message "bridge.runtime.ruby.RequestView.Entry" do
          optional :key, :string, 1
          optional :value, :string, 2
        end
      end
    end
    MESSAGE = Google::Protobuf::DescriptorPool.generated_pool.lookup("bridge.runtime.ruby.RequestView").msgclass
    ENTRY = Google::Protobuf::DescriptorPool.generated_pool.lookup("bridge.runtime.ruby.RequestView.Entry").msgclass
    # The fields, read through their descriptors: protobuf 3.21's generated accessors go through
    # method_missing, several times slower, and this runs once per job.
    FIELDS = MESSAGE.descriptor.to_h { |field| [field.name.to_sym, field] }.freeze
    VERSION, DEADLINE, METADATA, ENCODING, BODY, KEY_ID, NONCE, MAC =
      FIELDS.values_at(:version, :deadline_ms, :metadata, :encoding, :body, :key_id, :nonce, :mac)
    DECODE_OPTIONS = { recursion_limit: 100 }.freeze

    module_function

    # The envelope in +payload+; DecodeError when it is not one.
    def decode(payload)
      MESSAGE.decode(payload, DECODE_OPTIONS)
    rescue Google::Protobuf::ParseError, ArgumentError, TypeError, RangeError => e
      raise DecodeError, e.message
    end

    # The metadata entries as a Hash (the last of repeated keys wins, as in a map).
    def metadata(entries)
      entries.each_with_object({}) { |entry, hash| hash[entry.key] = entry.value }
    end
  end
end
