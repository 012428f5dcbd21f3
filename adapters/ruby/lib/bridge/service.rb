# frozen_string_literal: true

require_relative "errors"

module Bridge
  # What `bridge generate --lang ruby` builds a service's base class with, grpc-style:
  #
  #   class Service
  #     include Bridge::Service
  #     self.service_name = "text.v1.TextToolkit"
  #     rpc :Slugify, SlugRequest, SlugReply
  #     rpc :WordFrequencies, TextRequest, stream(WordCount)
  #     rpc :Legacy, Blob, Blob, function_name: "legacy_echo"
  #   end
  #
  # Each rpc gets a snake_case method (slugify(request, context)) that raises UNIMPLEMENTED until a
  # subclass defines it. A server-streaming method yields each reply (or returns an Enumerable).
  module Service
    # One rpc: its Gearman function name, message classes and the handler method it calls.
    # +owner+ is the generated class that declared it (and holds the UNIMPLEMENTED default).
    Rpc = Struct.new(:name, :function_name, :input, :output, :server_streaming, :method_name, :owner,
                     keyword_init: true) do
      # Whether +handler+ defines the method itself rather than inheriting the generated default.
      def implemented_by?(handler)
        handler.method(method_name).owner != owner
      end
    end

    # Marks the reply type of a server-streaming rpc.
    Stream = Struct.new(:type)

    def self.included(base)
      base.extend(ClassMethods)
    end

    module ClassMethods
      attr_writer :service_name

      # Full protobuf name of the service ("text.v1.TextToolkit"); subclasses inherit it.
      def service_name
        @service_name || (superclass.respond_to?(:service_name) ? superclass.service_name : nil)
      end

      def rpcs
        @rpcs ||= superclass.respond_to?(:rpcs) ? superclass.rpcs.dup : {}
      end

      def stream(type)
        Stream.new(type)
      end

      def rpc(name, input, output, function_name: nil)
        streaming = output.is_a?(Stream)
        method_name = underscore(name.to_s).to_sym
        rpcs[name.to_sym] = Rpc.new(
          name: name.to_s,
          function_name: function_name || "#{service_name}.#{name}",
          input: input,
          output: streaming ? output.type : output,
          server_streaming: streaming,
          method_name: method_name,
          owner: self
        ).freeze
        full_name = "#{service_name}.#{name}"
        define_method(method_name) do |_request, _context|
          raise Bridge::Error.new(:unimplemented, "#{full_name} is not implemented by this worker")
        end
      end

      private

      def underscore(name)
        name.gsub(/([A-Z]+)([A-Z][a-z])/, '\1_\2').gsub(/([a-z\d])([A-Z])/, '\1_\2').downcase
      end
    end
  end
end
